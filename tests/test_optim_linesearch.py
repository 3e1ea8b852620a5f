"""The strong-Wolfe line search (N&W Alg. 3.5–3.6 with eq. 3.59 and 3.60) against analytic line
minima, numpy's cubic, the formula of its first trial, and its flagged stop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_study import optim
from jaxopt_study.optim import linesearch


def search_once(loss, params, direction, *, previous_value=None, **options):
  """One update of the line search along `direction` from `params`: (step α, state, evaluations)."""
  tx = linesearch.scale_by_wolfe_linesearch(**options)
  state = tx.init(params)
  if previous_value is not None:
    state = state._replace(previous_value=jnp.asarray(previous_value, state.value.dtype))
  calls = []

  def counted(p):
    jax.debug.callback(lambda: calls.append(None))
    return loss(p)

  value, grad = jax.value_and_grad(loss)(params)
  update = jax.jit(functools.partial(tx.update, value=value, grad=grad, value_fn=counted))
  updates, state = update(direction, state, params)
  jax.effects_barrier()
  step = float(jnp.vdot(updates["x"], direction["x"]) / jnp.vdot(direction["x"], direction["x"]))
  return step, state, len(calls)


def quadratic_along_a_line(curvature=3.0, minimizer=0.7):
  """f(x) = ½ c (x₀ − m)² + x₁²: along u = (1, 0) from 0 the exact step is m."""
  loss = lambda p: 0.5 * curvature * (p["x"][0] - minimizer) ** 2 + p["x"][1] ** 2  # noqa: E731
  return loss, {"x": jnp.asarray([0.0, 0.5])}, {"x": jnp.asarray([1.0, 0.0])}


def test_cubic_minimizer_is_numpys_on_a_cubic_and_exact_on_a_quadratic(x64):
  cubic = np.polynomial.Polynomial([1.0, -2.0, -0.5, 0.4])
  a, b = 0.3, 2.5
  got = float(
    linesearch.cubic_minimizer(a, cubic(a), cubic.deriv()(a), b, cubic(b), cubic.deriv()(b))
  )
  roots = cubic.deriv().roots()
  expected = roots[cubic.deriv(2)(roots) > 0]  # the local minimizer
  np.testing.assert_allclose(got, expected, rtol=1e-12)
  q = np.polynomial.Polynomial([0.5, -1.2, 0.8])
  slope = q.deriv()
  got = float(linesearch.cubic_minimizer(0.0, q(0.0), slope(0.0), 3.0, q(3.0), slope(3.0)))
  np.testing.assert_allclose(got, 1.2 / 1.6, rtol=1e-12)
  no_minimum = linesearch.cubic_minimizer(-1.0, -2.0, 4.0, 1.0, 2.0, 4.0)  # x³ + x: increasing
  assert np.isnan(float(no_minimum))


@pytest.mark.parametrize(("minimizer", "trials"), [(0.7, 2), (4.0, 2), (30.0, 3)])
def test_exact_minimizer_on_a_quadratic_once_two_trials_frame_it(x64, minimizer, trials):
  """First trial α₀ = 1 past (0.7) or short of (4, 30) the minimizer m: the next trial, the
  cubic through two values and slopes (exact on a quadratic), is m; beyond 1 + 5 · 1 = 6 the
  extrapolation stops at 6 (at most 5 times the last distance), and the third trial is m."""
  loss, params, direction = quadratic_along_a_line(minimizer=minimizer)
  step, state, evaluations = search_once(
    loss, params, direction, curv_rtol=1e-3, initial_step="one"
  )
  np.testing.assert_allclose(step, minimizer, rtol=1e-12)
  assert int(state.info.num_linesearch_steps) == trials == evaluations
  assert bool(state.info.wolfe) and not bool(state.info.stalled)


def test_first_trial_is_equation_3_60_and_is_kept_when_it_meets_the_conditions(x64):
  """α₀ = 1.01 · 2 (f_k − f_{k−1}) / φ'(0) (N&W eq. 3.60), accepted at once with c₂ = 0.9."""
  loss, params, direction = quadratic_along_a_line(minimizer=4.0)
  value = float(loss(params))
  slope = float(jax.grad(loss)(params)["x"] @ direction["x"])  # φ'(0) = −c m = −12
  previous_value = value + 20.0  # the last step decreased f by 20
  expected = 1.01 * 2 * (value - previous_value) / slope
  assert 0 < expected < 8  # within the Wolfe interval of this quadratic
  step, state, evaluations = search_once(
    loss, params, direction, previous_value=previous_value, max_initial_step=None
  )
  np.testing.assert_allclose(step, expected, rtol=1e-14)
  assert evaluations == 1
  capped, _, _ = search_once(loss, params, direction, previous_value=previous_value)
  np.testing.assert_allclose(capped, 1.0, rtol=1e-14)  # max_initial_step=1: a quasi-Newton step


def test_first_call_guesses_a_step_of_length_about_one(x64):
  """f_{−1} = f₀ + ‖g‖/2 at the first call: α₀ = 1.01/‖g‖ along u = −g, as scipy's CG and BFGS."""
  loss = lambda p: jnp.sum((p["x"] - 3.0) ** 2)  # noqa: E731
  params = {"x": jnp.zeros(4)}
  direction = jax.tree.map(jnp.negative, jax.grad(loss)(params))  # ‖g‖ = 12
  tx = linesearch.scale_by_wolfe_linesearch(max_linesearch_steps=1, max_initial_step=None)
  value, grad = jax.value_and_grad(loss)(params)
  updates, _ = tx.update(direction, tx.init(params), params, value=value, grad=grad, value_fn=loss)
  np.testing.assert_allclose(np.linalg.norm(updates["x"]), 1.01, rtol=1e-14)


def test_state_holds_value_and_gradient_at_the_new_point(x64):
  """`optax.value_and_grad_from_state` then needs no evaluation at the accepted point."""
  loss = lambda p: jnp.sum(jnp.cosh(p["x"] - 1.0))  # noqa: E731
  params = {"x": jnp.asarray([0.0, 2.5, -1.0])}
  direction = jax.tree.map(jnp.negative, jax.grad(loss)(params))
  step, state, evaluations = search_once(loss, params, direction, curv_rtol=0.1)
  new_params = optax.tree.add_scale(params, step, direction)
  value, grad = jax.value_and_grad(loss)(new_params)
  np.testing.assert_allclose(state.value, value, rtol=1e-12)
  np.testing.assert_allclose(state.grad["x"], grad["x"], rtol=1e-10, atol=1e-14)
  assert abs(float(grad["x"] @ direction["x"])) <= 0.1 * float(direction["x"] @ direction["x"])
  assert evaluations == int(state.info.num_linesearch_steps)


def test_no_decrease_anywhere_takes_no_step_and_flags_it(x64):
  """f = −x for x ≤ 0 and NaN beyond: every trial along +x is NaN, so no step, stalled."""
  loss = lambda p: jnp.sum(jnp.where(p["x"] > 0, jnp.nan, -p["x"]))  # noqa: E731
  params, direction = {"x": jnp.zeros(1)}, {"x": jnp.ones(1)}
  step, state, evaluations = search_once(loss, params, direction, max_linesearch_steps=12)
  assert step == 0.0 and bool(state.info.stalled) and not bool(state.info.wolfe)
  assert evaluations == 12
  np.testing.assert_array_equal(state.value, 0.0)  # f where it stays
  assert bool(linesearch.is_stalled((state,)))


def test_an_uphill_direction_is_not_searched(x64):
  loss, params, direction = quadratic_along_a_line()
  uphill = jax.tree.map(jnp.negative, direction)
  step, state, evaluations = search_once(loss, params, uphill)
  assert step == 0.0 and bool(state.info.stalled) and evaluations == 0


def test_a_decrease_without_the_curvature_condition_is_kept(x64):
  """With one trial that decreases f but leaves |φ'| > c₂|φ'(0)|, that trial is the step."""
  loss, params, direction = quadratic_along_a_line(minimizer=30.0)  # φ'(1) = −87, φ'(0) = −90
  step, state, _ = search_once(loss, params, direction, initial_step="one", max_linesearch_steps=1)
  assert step == 1.0 and not bool(state.info.wolfe) and not bool(state.info.stalled)


def test_init_takes_shapes_only_and_trees_without_leaves():
  tx = linesearch.scale_by_wolfe_linesearch()
  abstract = tx.init(jax.ShapeDtypeStruct((2, 4), jnp.float32))
  concrete = tx.init(jnp.zeros((2, 4), jnp.float32))
  same = jax.tree.map(lambda a, b: (a.shape, a.dtype) == (b.shape, b.dtype), abstract, concrete)
  assert all(jax.tree.leaves(same))
  assert tx.init({}).value.dtype == jnp.zeros([]).dtype
  assert tx.init(jnp.zeros(2, jnp.complex64)).value.dtype == jnp.float32


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"curv_rtol": 1.5}, "curv_rtol"),
    ({"slope_rtol": 0.5, "curv_rtol": 0.4}, "slope_rtol=0.5 must be < curv_rtol"),
    ({"max_linesearch_steps": 0}, "max_linesearch_steps"),
    ({"initial_step": "half"}, "initial_step"),
    ({"max_initial_step": -1.0}, "max_initial_step"),
  ],
)
def test_bad_options_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    linesearch.scale_by_wolfe_linesearch(**kwargs)


@pytest.mark.parametrize("name", ["conjugate_gradient", "bfgs", "lbfgs"])
def test_trial_points_have_the_params_dtypes_and_the_kept_value_is_at_the_applied_point(x64, name):
  """A float32 leaf beside a float64 one: α (float64) promoted the float32 leaf of every trial
  point, so the loss saw float64 there (a dtype-strict one failed) and the value kept for
  `optax.value_and_grad_from_state` was f at the unrounded point, 2.7e-8 from f at the params
  `optax.apply_updates` makes (still 1e-7 when the float32 point was α u rounded once, not, as
  `optax.apply_updates` does, the update α u rounded, then θ + α u rounded)."""
  tx = optim.OPTIMIZERS[name]()
  seen = set()

  def loss(p):  # f in float64 from the float32 leaf: f sees a float32 leaf's rounding
    seen.add(p["a"].dtype)
    weights = jnp.arange(1.0, 4.0)
    return jnp.sum(weights * (p["a"].astype(jnp.float64) - 1 / 3) ** 2) + jnp.sum(p["b"] ** 2)

  params = {"a": jnp.asarray([0.3, -0.7, 1.3], jnp.float32), "b": jnp.ones(2)}
  value, grad = jax.value_and_grad(loss)(params)
  updates, state = tx.update(grad, tx.init(params), params, value=value, grad=grad, value_fn=loss)
  new_params = optax.apply_updates(params, updates)
  assert seen == {jnp.dtype(jnp.float32)}
  assert float(loss(new_params)) < float(value)
  np.testing.assert_allclose(optax.tree.get(state, "value"), loss(new_params), rtol=1e-14)
  kept_grad = optax.tree.get(state, "grad")
  for leaf, expected in zip(
    jax.tree.leaves(kept_grad), jax.tree.leaves(jax.grad(loss)(new_params)), strict=True
  ):
    np.testing.assert_allclose(leaf, expected, rtol=1e-6)

  offset = jnp.asarray([0.1, 0.2, 0.3], jnp.float32)

  def strict_loss(p):  # lax.add refuses mixed dtypes
    return jnp.sum(jax.lax.add(p["a"], offset) ** 2) + jnp.sum(p["b"] ** 2)

  value, grad = jax.value_and_grad(strict_loss)(params)
  updates, _ = tx.update(
    grad, tx.init(params), params, value=value, grad=grad, value_fn=strict_loss
  )
  assert float(strict_loss(optax.apply_updates(params, updates))) < float(value)
