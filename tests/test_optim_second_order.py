"""Newton's method (eq. 8.28, LM damping), saddle-free Newton (Dauphin et al. 2014) and Newton for
∇f = 0 against float64 numpy references of their formulas, on quadratics, a saddle, Rosenbrock and
a tiny MLP."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import tiny_mlp_problem
from jax.flatten_util import ravel_pytree
from minimize_helpers import minimize, rosenbrock, rosenbrock_start, scipy_evaluations

from jaxopt_study import hessian, optim
from jaxopt_study.optim import second_order


def make_step(tx, loss, jit=True):
  """step(params, state) -> (new params, state, the step as a flat vector), jitted once."""

  def step(params, state):
    value, grad = jax.value_and_grad(loss)(params)
    updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return optax.apply_updates(params, updates), state, ravel_pytree(updates)[0]

  return jax.jit(step) if jit else step


def one_step(tx, loss, params, state=None, jit=True):
  """(new params, state, the step as a flat numpy vector) after one update from `params`."""
  state = tx.init(params) if state is None else state
  new_params, state, step = make_step(tx, loss, jit)(params, state)
  return new_params, state, np.asarray(step)


def flat_grad_and_hessian(loss, params):
  """∇f and ∇²f in ravel order from jax.hessian (independent of jaxopt_study.hessian), float64."""
  flat, unravel = ravel_pytree(params)
  f = lambda x: loss(unravel(x))  # noqa: E731
  return np.asarray(jax.grad(f)(flat), np.float64), np.asarray(jax.hessian(f)(flat), np.float64)


def quadratic(seed=0, dtype=jnp.float64):
  """A strictly convex quadratic ½θᵀAθ − bᵀθ on a two-leaf pytree (N = 6): (params, loss, θ*)."""
  rng = np.random.default_rng(seed)
  root = rng.normal(size=(6, 6))
  a = root @ root.T + 0.5 * np.eye(6)
  b = rng.normal(size=6)
  params = {"w": jnp.zeros((2, 2), dtype), "v": jnp.ones((2,), dtype)}
  unravel = ravel_pytree(params)[1]

  def loss(p):
    theta = ravel_pytree(p)[0]
    return 0.5 * theta @ jnp.asarray(a, dtype) @ theta - jnp.asarray(b, dtype) @ theta

  return params, loss, unravel(jnp.asarray(np.linalg.solve(a, b), dtype))


def saddle_loss(p):
  """f(x, y) = x² + y⁴/4 − y²/2: a saddle at (0, 0), minima at (0, ±1)."""
  return p["x"] ** 2 + p["y"] ** 4 / 4 - p["y"] ** 2 / 2


def near_saddle() -> dict:
  return {"x": jnp.asarray(0.3), "y": jnp.asarray(0.05)}


def run(tx, loss, params, steps):
  step, state = make_step(tx, loss), tx.init(params)
  for _ in range(steps):
    params, state, _ = step(params, state)
  return params


# ------------------------------------------------------------------------------------- Newton


@pytest.mark.parametrize("jit", [True, False])
def test_newton_solves_a_convex_quadratic_in_one_step(x64, jit):
  params, loss, solution = quadratic()
  new_params, state, _ = one_step(optim.newton(), loss, params, jit=jit)
  ravel = lambda t: np.asarray(ravel_pytree(t)[0])  # noqa: E731
  np.testing.assert_allclose(ravel(new_params), ravel(solution), rtol=1e-10, atol=1e-12)
  assert float(state.shift) == 0.0 and int(state.count) == 1


def test_newton_step_with_damping_matches_the_formula(x64):
  params, loss = tiny_mlp_problem()
  grad, hessian = flat_grad_and_hessian(loss, params)
  damping = 0.1 - np.linalg.eigvalsh(hessian).min()  # H + λI positive definite: no shift
  _, state, step = one_step(optim.newton(damping, learning_rate=0.5), loss, params)
  expected = -0.5 * np.linalg.solve(hessian + damping * np.eye(grad.size), grad)
  np.testing.assert_allclose(step, expected, rtol=1e-9)
  assert float(state.shift) == 0.0


def book_shifted_cholesky(matrix):
  """Nocedal & Wright (2006) Algorithm 3.3, with β = 10⁻³ max |A_ii|, in numpy."""
  beta = 1e-3 * np.max(np.abs(np.diag(matrix)))
  tau = 0.0 if np.min(np.diag(matrix)) > 0 else beta - np.min(np.diag(matrix))
  while True:
    try:
      return np.linalg.cholesky(matrix + tau * np.eye(len(matrix))), tau
    except np.linalg.LinAlgError:
      tau = max(2 * tau, beta)


def test_newton_shifts_an_indefinite_hessian_to_a_descent_step(x64):
  params, loss = tiny_mlp_problem()
  grad, hessian = flat_grad_and_hessian(loss, params)
  assert np.linalg.eigvalsh(hessian).min() < -1e-3  # the tiny MLP starts at indefinite curvature
  _, state, step = one_step(optim.newton(), loss, params)
  factor, tau = book_shifted_cholesky(hessian)
  assert tau > 0
  np.testing.assert_allclose(float(state.shift), tau, rtol=1e-12)
  expected = -np.linalg.solve(factor @ factor.T, grad)
  np.testing.assert_allclose(step, expected, rtol=1e-8)
  assert grad @ step < 0  # downhill
  # the textbook step of eq. 8.28 solves the indefinite system as it is
  _, _, raw = one_step(optim.newton(indefinite="solve"), loss, params)
  np.testing.assert_allclose(raw, -np.linalg.solve(hessian, grad), rtol=1e-8)


@pytest.mark.slow  # the §8.2.3 behaviour, also run by the saddles_newton experiment
def test_newton_is_attracted_to_the_saddle_and_saddle_free_newton_is_not(x64):
  """§8.2.3, Dauphin et al. (2014) Fig. 2: from near the saddle of x² + y⁴/4 − y²/2."""
  grad, _ = flat_grad_and_hessian(saddle_loss, near_saddle())
  _, _, first = one_step(optim.newton(indefinite="solve"), saddle_loss, near_saddle())
  assert grad[1] * first[1] > 0  # along y (negative curvature) the textbook step goes uphill
  newton_end = run(optim.newton(indefinite="solve"), saddle_loss, near_saddle(), 8)
  assert abs(float(newton_end["x"])) < 1e-12 and abs(float(newton_end["y"])) < 1e-12
  for tx in (optim.saddle_free_newton(1e-6), optim.saddle_free_newton(1e-6, krylov_dim=2)):
    end = run(tx, saddle_loss, near_saddle(), 12)
    np.testing.assert_allclose([float(end["x"]), float(end["y"])], [0.0, 1.0], atol=1e-9)
  # the default (shifted) Newton step never goes uphill: it leaves the saddle too
  end = run(optim.newton(), saddle_loss, near_saddle(), 30)
  np.testing.assert_allclose([float(end["x"]), abs(float(end["y"]))], [0.0, 1.0], atol=1e-9)


def test_adaptive_damping_follows_the_ratio_of_actual_to_predicted_decrease(x64):
  """Martens (2010) §4.1: on a quadratic the model is exact, ρ = 1 and λ shrinks by 2/3."""
  params, loss, _ = quadratic()
  tx = optim.newton(0.5, adaptive=True)
  new_params, state, _ = one_step(tx, loss, params)
  np.testing.assert_allclose(float(state.ratio), 1.0, rtol=1e-10)
  np.testing.assert_allclose(float(state.damping), 0.5 * 2 / 3, rtol=1e-14)
  value, grad = jax.value_and_grad(loss)(new_params)  # kept for value_and_grad_from_state
  np.testing.assert_allclose(float(state.value), float(value), rtol=1e-12)
  np.testing.assert_allclose(
    ravel_pytree(state.grad)[0], ravel_pytree(grad)[0], rtol=1e-10, atol=1e-12
  )


def test_adaptive_damping_rejects_an_uphill_step(x64):
  """On Rosenbrock at Newton's first iterate, the undamped step jumps to f ≈ 1400: rejected."""
  params = {"x": jnp.asarray([-1.1752809, 1.38067416])}
  tx = optim.newton(1e-3, adaptive=True)
  new_params, state, step = one_step(tx, rosenbrock, params)
  assert not bool(state.accepted) and float(state.ratio) < 0
  np.testing.assert_array_equal(step, 0.0)
  np.testing.assert_allclose(float(state.damping), 1.5e-3, rtol=1e-14)
  np.testing.assert_allclose(float(state.value), float(rosenbrock(params)), rtol=1e-14)
  # with enough damping the step is taken, and every accepted step decreases f
  values = [float(rosenbrock(params))]
  step, state = make_step(tx, rosenbrock), tx.init(params)._replace(damping=jnp.asarray(3.0))
  for _ in range(10):
    params, state, _ = step(params, state)
    values.append(float(rosenbrock(params)))
  assert np.all(np.diff(values) <= 0) and values[-1] < 0.5 * values[0]


@pytest.mark.parametrize("name", ["newton", "saddle_free_newton"])
def test_a_damping_that_inject_hyperparams_changes_or_schedules_is_the_one_used(x64, name):
  """Under `optax.inject_hyperparams`, λ set in the state after init, or a schedule of λ, is the
  λ of the step (the state's λ of init was used before: the step ignored both)."""
  params, loss = tiny_mlp_problem()
  grad, hessian = flat_grad_and_hessian(loss, params)
  eigenvalues, vectors = np.linalg.eigh(hessian)
  if name == "newton":  # H + λI positive definite for both λ below: no shift
    curvature = eigenvalues
    base = 0.1 - eigenvalues.min()
  else:
    curvature, base = np.abs(eigenvalues), 0.05

  def expected(damping):
    return -vectors @ ((vectors.T @ grad) / (curvature + damping))

  tx = optax.inject_hyperparams(getattr(optim, name))(damping=base)
  state = tx.init(params)
  state.hyperparams["damping"] = jnp.asarray(base + 10.0)
  np.testing.assert_allclose(one_step(tx, loss, params, state)[2], expected(base + 10.0), rtol=1e-8)
  tx = optax.inject_hyperparams(getattr(optim, name))(
    damping=lambda k: jnp.where(k == 0, base + 10.0, base)
  )
  step = make_step(tx, loss)
  _, state, first = step(params, tx.init(params))
  _, _, second = step(params, state)
  np.testing.assert_allclose(first, expected(base + 10.0), rtol=1e-8)
  np.testing.assert_allclose(second, expected(base), rtol=1e-8)


# ---------------------------------------------------------------------------- saddle-free Newton


def test_saddle_free_newton_step_matches_the_formula(x64):
  params, loss = tiny_mlp_problem()
  grad, hessian = flat_grad_and_hessian(loss, params)
  eigenvalues, vectors = np.linalg.eigh(hessian)
  assert eigenvalues.min() < 0
  _, _, step = one_step(optim.saddle_free_newton(0.05, learning_rate=0.7), loss, params)
  expected = -0.7 * vectors @ ((vectors.T @ grad) / (np.abs(eigenvalues) + 0.05))
  np.testing.assert_allclose(step, expected, rtol=1e-8)


def test_saddle_free_newton_searches_the_damping_for_the_lowest_loss(x64):
  """Dauphin et al. (2014), Algorithm 1: λ ← argmin_λ f(θ + Δθ(λ)) over the candidates, by hand
  from each candidate's formula step (float64 numpy) and the loss there; the state records it."""
  params, loss = tiny_mlp_problem()
  grad, hessian = flat_grad_and_hessian(loss, params)
  eigenvalues, vectors = np.linalg.eigh(hessian)
  flat, unravel = ravel_pytree(params)
  candidates = (1e-3, 0.05, 1.0, 30.0)
  losses, steps = [], []
  for lam in candidates:
    steps.append(-1.0 * vectors @ ((vectors.T @ grad) / (np.abs(eigenvalues) + lam)))
    losses.append(float(loss(unravel(flat + steps[-1]))))
  best = int(np.argmin(losses))
  assert 0 < best < len(candidates) - 1  # an interior λ wins: the search matters here
  tx = optim.saddle_free_newton(candidates, learning_rate=1.0)
  _, state, step = one_step(tx, loss, params)
  np.testing.assert_allclose(step, steps[best], rtol=1e-8)
  assert float(state.damping) == candidates[best]
  # a lone candidate is the fixed-λ step
  _, _, lone = one_step(
    optim.saddle_free_newton([candidates[best]], learning_rate=1.0), loss, params
  )
  _, _, fixed = one_step(
    optim.saddle_free_newton(candidates[best], learning_rate=1.0), loss, params
  )
  np.testing.assert_array_equal(lone, fixed)


def test_the_damping_search_never_takes_a_step_whose_loss_is_not_finite():
  """f = −(x − 0.9)², concave (|h| = 2 turns the step downhill), and NaN beyond |x| > 1.5: from
  x = 0.5 the undamped step (to 0.1, f = −0.64) beats the damped one (to 0.233, f = −0.44); from
  x = −0.5 the undamped step lands at −1.9, where f is NaN, so the damped one is taken."""

  def loss(p):
    x = p["x"][0]
    return jnp.where(jnp.abs(x) > 1.5, jnp.nan, -((x - 0.9) ** 2))

  params = {"x": jnp.asarray([0.5])}
  _, state, step = one_step(optim.saddle_free_newton((0.0, 1.0)), loss, params)
  np.testing.assert_allclose(step, [-0.4], rtol=1e-6)
  assert float(state.damping) == 0.0
  params = {"x": jnp.asarray([-0.5])}
  _, state, step = one_step(optim.saddle_free_newton((0.0, 1.0)), loss, params)
  np.testing.assert_allclose(step, [-2.8 / 3], rtol=1e-6)
  assert float(state.damping) == 1.0
  # no candidate finite (to −1.9 and −1.83): no step, the state as it was (the count too)
  tx = optim.saddle_free_newton((0.0, 0.1))
  _, state, step = one_step(tx, loss, params)
  np.testing.assert_array_equal(step, [0.0])
  assert int(state.count) == 0 and float(state.damping) == 0.0


@pytest.mark.slow  # 6 s of compiling Lanczos inside the update (pytest -m slow)
def test_krylov_saddle_free_newton_is_exact_with_a_full_subspace(x64):
  params, loss = tiny_mlp_problem()
  size = ravel_pytree(params)[0].size
  _, _, exact = one_step(optim.saddle_free_newton(0.05), loss, params)
  _, _, krylov = one_step(optim.saddle_free_newton(0.05, krylov_dim=size), loss, params)
  np.testing.assert_allclose(krylov, exact, rtol=1e-7, atol=1e-10)
  grad, _ = flat_grad_and_hessian(loss, params)
  _, _, small = one_step(optim.saddle_free_newton(0.05, krylov_dim=5), loss, params)
  assert grad @ small < 0  # (|Ĥ| + λI)⁻¹ is positive definite on the subspace, which holds g
  assert np.linalg.norm(small - exact) > 1e-3 * np.linalg.norm(exact)


@pytest.mark.parametrize("krylov_dim", [None, 6])
def test_saddle_free_newton_cutoff_is_the_least_precise_leafs(x64, krylov_dim):
  """A float32 model beside one float64 leaf: H's null directions hold float32 rounding (about
  1e-8), which the pseudo-inverse cutoff N ε max|λ| took for curvature with float64's ε and
  divided by: ‖Δa‖ was 4.5 (dense) and 2.6e6 (Krylov, k = N) where the minimum-norm step is
  0.357, the step float32 params alone get."""
  w = jnp.asarray([0.3, -1.7, 0.77, 2.1, -0.45], jnp.float32)

  def loss(p):  # (w·a)² + b²: H = 2wwᵀ ⊕ 2, rank 1 on a
    return (jnp.dot(w, p["a"]) ** 2).astype(jnp.float64) + jnp.sum(p["b"] ** 2)

  params = {"a": jnp.ones(5, jnp.float32), "b": jnp.ones(1)}
  tx = optim.saddle_free_newton(0.0, krylov_dim=krylov_dim)
  _, _, step = one_step(tx, loss, params)
  w64 = np.asarray(w, np.float64)
  minimum_norm = np.concatenate([-w64.sum() * w64 / (w64 @ w64), [-1.0]])  # −H⁺g
  np.testing.assert_allclose(step, minimum_norm, rtol=1e-5, atol=1e-6)


def test_saddle_free_newton_steps_with_a_bfloat16_leaf_beside_float32_ones():
  """N ε with bfloat16's ε passes 1 from N = 128: every direction of H = 2I was cut and the step
  was 0, silently; the half-precision rule √N ε keeps them, and the step is the Newton step to
  the minimum at 0."""
  params = {
    "a": jnp.linspace(-1.0, 1.0, 200, dtype=jnp.float32),
    "b": jnp.ones(1, jnp.bfloat16),
  }

  def loss(p):  # H = 2I
    return jnp.sum(p["a"] ** 2) + jnp.sum(p["b"].astype(jnp.float32) ** 2)

  new_params, _, _ = one_step(optim.saddle_free_newton(0.0), loss, params)
  np.testing.assert_allclose(np.asarray(new_params["a"]), 0.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(new_params["b"], np.float32), 0.0, atol=1e-2)


# ----------------------------------------------------------------------------- both, Rosenbrock


@pytest.mark.parametrize("size", [2, 10])
@pytest.mark.parametrize(
  ("dtype", "gtol", "xtol"), [(jnp.float64, 1e-5, 1e-4), (jnp.float32, 1e-3, 2e-3)]
)
@pytest.mark.parametrize("name", ["newton", "saddle_free_newton"])
def test_rosenbrock_in_fewer_evaluations_than_scipy_trust_exact(x64, name, size, dtype, gtol, xtol):
  """Every evaluation counts (one per step, plus one per dense Hessian); scipy's trust-exact is
  Newton's method with an exact Hessian, globalized by a trust region."""
  tx = optim.newton() if name == "newton" else optim.saddle_free_newton(1e-6)
  params, evaluations, _ = minimize(tx, rosenbrock, rosenbrock_start(size, dtype), gtol)
  assert params["x"].dtype == dtype
  np.testing.assert_allclose(params["x"], 1.0, atol=xtol)
  reference, _ = scipy_evaluations("trust-exact", size, gtol)
  assert evaluations <= 1.5 * reference, (evaluations, reference)


def test_adaptive_newton_on_rosenbrock_against_scipy_newton_cg(x64):
  """Martens' λ rule (×3/2, ×2/3) spends evaluations on rejected steps: within 1.5× of scipy's
  Newton-CG (line search), not of trust-exact."""
  tx = optim.newton(1.0, adaptive=True)
  params, evaluations, _ = minimize(tx, rosenbrock, rosenbrock_start(2), 1e-5)
  np.testing.assert_allclose(params["x"], 1.0, atol=1e-4)
  reference, _ = scipy_evaluations("Newton-CG", 2, 1e-5)
  assert evaluations <= 1.5 * reference, (evaluations, reference)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", ["newton", "saddle_free_newton"])
def test_missing_value_fn_and_non_scalar_loss_are_refused(name):
  tx = optim.OPTIMIZERS[name](damping=0.1)
  params = {"x": jnp.ones(3)}
  grad = {"x": jnp.ones(3)}
  with pytest.raises(ValueError, match="value_fn"):
    tx.update(grad, tx.init(params), params, value=jnp.asarray(1.0), grad=grad)
  with pytest.raises(ValueError, match=r"shape \(3,\).*scalar"):
    tx.update(
      grad,
      tx.init(params),
      params,
      value=jnp.asarray(1.0),
      grad=grad,
      value_fn=lambda p: p["x"] ** 2,
    )


@pytest.mark.parametrize(
  "tx",
  [
    optim.newton(),
    optim.newton(1.0, adaptive=True),
    optim.saddle_free_newton(0.1),
    optim.critical_point_newton(),
  ],
)
def test_a_nan_loss_gives_no_step(tx):
  params = {"x": jnp.ones(3)}
  nan_loss = lambda p: jnp.sum(jnp.log(p["x"] - 2.0))  # noqa: E731  NaN at x = 1
  new_params, state, step = one_step(tx, nan_loss, params)
  np.testing.assert_array_equal(step, 0.0)
  np.testing.assert_array_equal(new_params["x"], params["x"])
  assert int(state.count) == 0  # the state is left as it was


def test_adaptive_newton_rejects_a_step_to_a_nan(x64):
  loss = lambda p: jnp.sum((p["x"] + 3.0) ** 2 + 0.0 * jnp.sqrt(p["x"]))  # noqa: E731  NaN if x < 0
  params = {"x": jnp.asarray([0.5])}
  new_params, state, step = one_step(optim.newton(1.0, adaptive=True), loss, params)
  assert not bool(state.accepted) and float(state.ratio) == -np.inf  # the trial x = −11/6 is NaN
  np.testing.assert_array_equal(step, 0.0)
  np.testing.assert_array_equal(new_params["x"], params["x"])
  np.testing.assert_allclose(float(state.damping), 1.5)


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"damping": -1.0}, "damping"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"indefinite": "ignore"}, "indefinite"),
    ({"adaptive": True, "damping": 0.0}, "damping"),
  ],
)
def test_bad_newton_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    optim.newton(**kwargs)


def test_bad_saddle_free_newton_hyperparameters():
  with pytest.raises(ValueError, match="krylov_dim"):
    optim.saddle_free_newton(0.1, krylov_dim=0)
  for damping, match in (([], "damping"), ((0.1, -1.0), r"damping\[1\]"), ("0.1", "damping")):
    with pytest.raises(ValueError, match=match):
      optim.saddle_free_newton(damping)
  tx = optim.saddle_free_newton(0.1, krylov_dim=4)
  params = {"x": jnp.ones(3)}
  with pytest.raises(ValueError, match="krylov_dim=4 must be ≤ N=3"):
    one_step(tx, lambda p: jnp.sum(p["x"] ** 2), params)


# ------------------------------------------------------------- Newton for a root of ∇f


def grad_norms(tx, loss, params, steps):
  """‖∇f‖ at θ_0 ... θ_steps of `tx`, the last params and state."""
  step, state = make_step(tx, loss), tx.init(params)
  norms = []
  for _ in range(steps):
    norms.append(float(np.linalg.norm(flat_grad_and_hessian(loss, params)[0])))
    params, state, _ = step(params, state)
  norms.append(float(np.linalg.norm(flat_grad_and_hessian(loss, params)[0])))
  return np.asarray(norms), params, state


def test_critical_point_newton_converges_quadratically_to_a_saddle(x64):
  """From near the saddle of x² + y⁴/4 − y²/2, ‖g‖ falls quadratically to the saddle itself."""
  norms, params, _ = grad_norms(optim.critical_point_newton(), saddle_loss, near_saddle(), 8)
  assert norms[-1] < 1e-15
  assert abs(float(params["x"])) < 1e-15 and abs(float(params["y"])) < 1e-15
  closing = [k for k in range(len(norms) - 1) if 1e-12 < norms[k + 1] and norms[k] < 1e-1]
  assert closing  # steps in the quadratic phase
  assert all(norms[k + 1] <= 10 * norms[k] ** 2 for k in closing), norms


def test_critical_point_newton_finds_a_maximum_and_a_minimum(x64):
  maximum = lambda p: -jnp.sum(jnp.asarray([1.0, 3.0]) * p["w"] ** 2) + jnp.sum(p["w"] ** 4)  # noqa: E731
  _, params, _ = grad_norms(
    optim.critical_point_newton(), maximum, {"w": jnp.asarray([0.3, -0.2])}, 12
  )
  np.testing.assert_allclose(params["w"], 0.0, atol=1e-14)  # the maximum at 0, not the minima
  assert hessian.classify(maximum, params).kind == "maximum"
  _, params, _ = grad_norms(
    optim.critical_point_newton(), saddle_loss, {"x": jnp.asarray(0.4), "y": jnp.asarray(0.8)}, 12
  )
  np.testing.assert_allclose([params["x"], params["y"]], [0.0, 1.0], atol=1e-14)


def test_critical_point_newton_step_matches_the_formula(x64):
  """Δθ = −(H² + μI)⁻¹ H g with μ = ν 4^(tries − 1) ‖g‖, from an independent jax.hessian."""
  params, loss = tiny_mlp_problem()
  tx = optim.critical_point_newton(damping=0.5)
  _, state, step = one_step(tx, loss, params)
  g, h = flat_grad_and_hessian(loss, params)
  mu = 0.5 * 4.0 ** (int(state.tries) - 1) * np.linalg.norm(g)
  expected = -np.linalg.solve(h @ h + mu * np.eye(g.size), h @ g)
  assert bool(state.accepted)
  np.testing.assert_allclose(step, expected, rtol=1e-9, atol=1e-13)
  new_g, _ = flat_grad_and_hessian(loss, ravel_pytree(params)[1](ravel_pytree(params)[0] + step))
  assert np.linalg.norm(new_g) < np.linalg.norm(g)


def test_critical_point_newton_converges_to_a_ring_of_minima(x64):
  """(x² + y² − 1)²: every point of the unit circle is a critical point, H is singular there
  (zero curvature along the circle), and μ = ν‖g‖ still gives quadratic convergence."""
  ring = lambda p: (p["x"] ** 2 + p["y"] ** 2 - 1.0) ** 2  # noqa: E731
  norms, params, _ = grad_norms(
    optim.critical_point_newton(), ring, {"x": jnp.asarray(1.5), "y": jnp.asarray(0.7)}, 10
  )
  assert norms[-1] < 1e-13
  assert float(params["x"] ** 2 + params["y"] ** 2) == pytest.approx(1.0, abs=1e-14)


def test_critical_point_newton_stalls_at_a_gradient_flat_point(x64):
  """f = x³/3 + x has no critical point; ½‖g‖² = ½(x² + 1)² is smallest at x = 0, where H = 2x
  vanishes (a gradient-flat point, Frye et al. 2021): the method creeps there, never below
  ‖g‖ = 1, only linearly (the Gauss–Newton model is singular there)."""
  flat = lambda p: p["x"] ** 3 / 3 + p["x"]  # noqa: E731
  norms, params, _ = grad_norms(optim.critical_point_newton(), flat, {"x": jnp.asarray(0.5)}, 40)
  assert np.all(norms >= 1.0) and np.all(np.diff(norms) <= 0)
  assert norms[-1] < 1.01 and abs(float(params["x"])) < 0.1
  assert norms[-1] - 1.0 > 1e-6  # still short of the minimum of ‖g‖ after 40 steps: slow


def test_critical_point_newton_takes_no_step_at_a_root(x64):
  tx = optim.critical_point_newton()
  new_params, state, step = one_step(
    tx, saddle_loss, {"x": jnp.asarray(0.0), "y": jnp.asarray(1.0)}
  )
  np.testing.assert_array_equal(step, 0.0)
  assert int(state.tries) == 0 and not bool(state.accepted)
  assert float(state.damping) == 1.0


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"damping": 0.0}, "damping"),
    ({"min_damping": -1.0}, "min_damping"),
    ({"max_tries": 0}, "max_tries"),
  ],
)
def test_bad_critical_point_newton_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    optim.critical_point_newton(**kwargs)


def log_bowl(p):
  """sum(w²) + log(w₀): NaN for w₀ < 0, -inf and an infinite gradient at w₀ = 0."""
  return jnp.sum(p["w"] ** 2) + jnp.log(p["w"][0])


@pytest.mark.parametrize(
  ("w", "match"),
  [
    ([np.inf, 1.0], r"params\['w'\] is not finite"),
    ([np.nan, 1.0], r"params\['w'\] is not finite"),
    ([-1.0, 1.0], "the loss at params is nan"),
    ([0.0, 1.0], "the loss at params is -inf"),
  ],
)
def test_critical_point_newton_refuses_a_point_it_cannot_evaluate(w, match):
  tx = optim.critical_point_newton()
  params = {"w": jnp.asarray(w)}
  state = tx.init({"w": jnp.ones(2)})
  value, grad = jax.value_and_grad(log_bowl)(params)
  with pytest.raises(ValueError, match="critical_point_newton: " + match):
    tx.update(grad, state, params, value=value, grad=grad, value_fn=log_bowl)
  if not np.all(np.isfinite(w)):
    with pytest.raises(ValueError, match=match):
      tx.init(params)


def test_critical_point_newton_names_the_non_finite_gradient_leaf():
  loss = lambda p: jnp.sum(p["a"] ** 2) + jnp.sum(jnp.sqrt(jnp.abs(p["b"])))  # noqa: E731
  params = {"a": jnp.ones(2), "b": jnp.asarray([0.0, 1.0])}  # ∂/∂b₀ = ±inf, the loss finite
  tx = optim.critical_point_newton()
  value, grad = jax.value_and_grad(loss)(params)
  leaf = r"at params is not finite in params\['b'\]"
  with pytest.raises(ValueError, match="the gradient grad " + leaf):
    tx.update(grad, tx.init(params), params, value=value, grad=grad, value_fn=loss)
  finite = jax.tree.map(jnp.nan_to_num, grad)
  with pytest.raises(ValueError, match="the incoming gradient " + leaf):
    tx.update(grad, tx.init(params), params, value=value, grad=finite, value_fn=loss)


@pytest.mark.parametrize(
  ("params", "error", "match"),
  [
    ({}, ValueError, "params has no arrays"),
    ({"w": jnp.zeros(0)}, ValueError, r"params has no entries"),
    ({"w": jnp.arange(2)}, TypeError, r"params\['w'\] has dtype int32"),
  ],
)
def test_critical_point_newton_refuses_params_without_curvature(params, error, match):
  tx = optim.critical_point_newton()
  loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))  # noqa: E731
  with pytest.raises(error, match="critical_point_newton: " + match):
    tx.init(params)
  with pytest.raises(error, match="critical_point_newton: " + match):
    tx.update(params, None, params, value=jnp.zeros([]), grad=params, value_fn=loss)


def test_critical_point_newton_steps_beside_a_zero_size_leaf_as_without_it(x64):
  """Only params with no entries at all are refused: an empty leaf beside others gets an empty
  step, and the others the steps they get alone."""
  empty = {"x": jnp.asarray(0.3), "y": jnp.asarray(0.05), "z": jnp.zeros((0, 3))}
  loss = lambda p: saddle_loss(p) + jnp.sum(p["z"])  # noqa: E731
  with_empty = run(optim.critical_point_newton(), loss, empty, 8)
  alone = run(optim.critical_point_newton(), saddle_loss, near_saddle(), 8)
  assert with_empty["z"].shape == (0, 3)
  for name in ("x", "y"):
    np.testing.assert_allclose(with_empty[name], alone[name], rtol=1e-15, atol=1e-15)
  np.testing.assert_allclose([alone["x"], alone["y"]], 0.0, atol=1e-12)  # the saddle


def test_critical_point_newton_in_jit_takes_no_step_at_a_nan_loss(x64):
  """Inside jit the values are unknown: the guard makes a NaN loss a zero update, state kept."""
  tx = optim.critical_point_newton()
  state = tx.init({"w": jnp.ones(2)})
  params, new_state, step = one_step(tx, log_bowl, {"w": jnp.asarray([-1.0, 1.0])}, state)
  np.testing.assert_array_equal(step, 0.0)
  np.testing.assert_array_equal(params["w"], [-1.0, 1.0])
  assert int(new_state.count) == 0


def test_hessian_matches_the_library_dense_hessian(x64):
  params, loss = tiny_mlp_problem()
  problem = second_order.loss_problem(loss, params, {}, "test")
  np.testing.assert_allclose(
    hessian.traced_hessian(problem), hessian.hessian_matrix(loss, params), rtol=1e-12, atol=1e-14
  )


@pytest.mark.parametrize(
  ("tx", "advice"),
  [
    (optim.newton(), r"use saddle_free_newton\(damping, krylov_dim=k\), .* or lbfgs\(\)"),
    (optim.saddle_free_newton(0.1), r"pass krylov_dim=k \(Dauphin .* or use lbfgs\(\)"),
    (optim.critical_point_newton(), r"minimize ½‖∇f‖² with lbfgs\(\)"),
  ],
  ids=["newton", "saddle_free_newton", "critical_point_newton"],
)
def test_a_dense_hessian_too_large_is_refused_with_the_optimizers_advice(tx, advice):
  """N = 300,000: H alone is 335 GiB in float32. The refusal named the spectrum tools
  (`spectrum(..., method="lanczos")`, `density`), which are no optimizers."""
  params = jnp.zeros(300_000)
  loss = lambda p: jnp.sum(p**2)  # noqa: E731
  value, grad = jax.value_and_grad(loss)(params)
  with pytest.raises(hessian.HessianTooLargeError) as error:
    tx.update(grad, tx.init(params), params, value=value, grad=grad, value_fn=loss)
  message = str(error.value)
  assert "the dense Hessian of N=300,000 parameters (float32) needs about" in message
  assert re.search(r"needs about \d+\.\d (GiB|TiB)", message)
  assert re.search(advice, message) and "spectrum" not in message and "density" not in message


def test_registry_holds_the_second_order_optimizers():
  assert optim.OPTIMIZERS["newton"] is optim.newton
  assert optim.OPTIMIZERS["saddle_free_newton"] is optim.saddle_free_newton
