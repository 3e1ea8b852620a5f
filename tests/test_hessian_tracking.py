"""The in-loop curvature monitor against exact dense eigenvalues, traces and quadratic forms."""

import jax
import jax.experimental
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from helpers import tiny_mlp_problem
from jax.flatten_util import ravel_pytree

from jaxopt_study import Problem, hessian, losses, optim, train
from jaxopt_study import data as data_lib
from jaxopt_study.hessian import tracking


class TinyMLP(nnx.Module):
  """64 -> 6 tanh -> 10: 460 parameters, small enough for a dense Hessian."""

  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(64, 6, rngs=rngs, param_dtype=jnp.float64)
    self.out = nnx.Linear(6, 10, rngs=rngs, param_dtype=jnp.float64)

  def __call__(self, x):
    return self.out(jnp.tanh(self.hidden(x)))


def _problem() -> Problem:
  digits = data_lib.load_digits()
  return Problem(
    model=TinyMLP,
    loss=lambda model, batch: losses.softmax_cross_entropy(model(batch[0]), batch[1]),
    train_data=(jnp.asarray(digits.x_train[:150], jnp.float64), digits.y_train[:150]),
  )


def _dense(problem: Problem, result: train.TrainResult) -> tuple[np.ndarray, np.ndarray]:
  """The exact Hessian of the training loss at the result's parameters, and the gradient."""
  loss = problem.params_loss(result.model_state)
  flat, unravel = ravel_pytree(result.params)

  def flat_loss(x):
    return loss(unravel(x), *problem.train_data)

  return np.asarray(jax.hessian(flat_loss)(flat)), np.asarray(jax.grad(flat_loss)(flat))


def test_measure_equals_dense_answers_on_a_tiny_mlp(x64):
  params, loss = tiny_mlp_problem()
  options = hessian.CurvatureOptions(lanczos_steps=22, probes=3000)
  metrics, state = jax.jit(lambda p, s: tracking.measure(loss, p, s, options, step=jnp.asarray(0)))(
    params, tracking.init(params, options)
  )
  flat, unravel = ravel_pytree(params)
  matrix = np.asarray(jax.hessian(lambda x: loss(unravel(x)))(flat))
  grad = np.asarray(jax.grad(lambda x: loss(unravel(x)))(flat))
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  np.testing.assert_allclose(metrics["lambda_max"], eigenvalues[-1], rtol=1e-10)
  np.testing.assert_allclose(metrics["g_hess_g"], grad @ matrix @ grad, rtol=1e-10)
  np.testing.assert_allclose(metrics["g_dot_g"], grad @ grad, rtol=1e-12)
  # Hutchinson: Var(zᵀHz) = 2 Σ_{i≠j} H_ij², the mean of 3000 probes within 4 standard errors
  off_diagonal = matrix - np.diag(np.diag(matrix))
  standard_error = np.sqrt(2 * np.sum(off_diagonal**2) / 3000)
  assert abs(float(metrics["hessian_trace"]) - np.trace(matrix)) < 4 * standard_error
  assert abs(abs(np.vdot(state.top_vector, eigenvectors[:, -1])) - 1) < 1e-8


def test_a_bfloat16_model_is_measured_in_float32():
  """Lanczos and its small eigenproblem (LAPACK has none in bfloat16, which failed to compile)
  run in float32 around the model's bfloat16 Hessian-vector products: λ_max within bfloat16's
  rounding of the exact value of the same network in float64 (0.2% off when written)."""
  params, loss = tiny_mlp_problem(dtype=jnp.bfloat16)
  options = hessian.CurvatureOptions(lanczos_steps=22)
  metrics, state = jax.jit(lambda p, s: tracking.measure(loss, p, s, options, step=jnp.asarray(0)))(
    params, tracking.init(params, options)
  )
  assert metrics["lambda_max"].dtype == state.top_vector.dtype == jnp.float32
  with jax.enable_x64(True):
    exact, _ = tiny_mlp_problem(dtype=jnp.float64)
    exact = jax.tree.map(lambda a, b: jnp.asarray(b, jnp.float64), exact, params)
    flat, unravel = ravel_pytree(exact)
    _, loss64 = tiny_mlp_problem(dtype=jnp.float64)
    top = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda x: loss64(unravel(x)))(flat)))[-1]
  np.testing.assert_allclose(metrics["lambda_max"], top, rtol=1e-2)  # bfloat16: ε = 2⁻⁷


def test_preconditioned_top_eigenvalue_is_that_of_dense_p_inverse_h(x64):
  params, loss = tiny_mlp_problem()
  diagonal = jax.tree.map(
    lambda x: 0.5 + jnp.arange(x.size, dtype=x.dtype).reshape(x.shape), params
  )
  options = hessian.CurvatureOptions(lanczos_steps=22, probes=1, preconditioner=lambda s: s)
  metrics, _ = tracking.measure(
    loss, params, tracking.init(params, options), options, step=jnp.asarray(0), opt_state=diagonal
  )
  flat, unravel = ravel_pytree(params)
  matrix = np.asarray(jax.hessian(lambda x: loss(unravel(x)))(flat))
  p = np.asarray(ravel_pytree(diagonal)[0])
  expected = np.max(np.linalg.eigvals(matrix / p[:, None]).real)  # P⁻¹H, not symmetric
  np.testing.assert_allclose(metrics["preconditioned_lambda_max"], expected, rtol=1e-9)


def _counted(matrix: np.ndarray, calls: list):
  """v ↦ H v, counting its calls inside compiled loops (an ordered host callback)."""

  def count(v):
    calls.append(1)
    return v

  def matvec(v):
    v = jax.experimental.io_callback(count, jax.ShapeDtypeStruct(v.shape, v.dtype), v, ordered=True)
    return jnp.asarray(matrix) @ v

  return matvec


def test_lanczos_stops_at_the_residual_tolerance_and_not_before(x64):
  """Eigenvalues 1, ..., 60 (a gap of 1/60 at the top) in a random basis; from a start near the
  top eigenvector the run stops early with ‖H y − θ y‖ ≤ tol |θ|, checked on the dense matrix."""
  rng = np.random.default_rng(0)
  basis, _ = np.linalg.qr(rng.normal(size=(60, 60)))
  matrix = basis @ np.diag(np.arange(1.0, 61.0)) @ basis.T
  start = basis[:, -1] + 0.05 * rng.normal(size=60) / np.sqrt(60)
  start = jnp.asarray(start / np.linalg.norm(start))
  tolerance = 1e-8
  calls = []
  value, vector = jax.jit(
    lambda s: tracking._top_eigenpair(_counted(matrix, calls), s, 40, tolerance)
  )(start)
  vector = np.asarray(vector)
  residual = np.linalg.norm(matrix @ vector - float(value) * vector)
  assert residual <= tolerance * float(value) * (1 + 1e-6)
  assert abs(float(value) - 60.0) <= residual  # an eigenvalue within ‖r‖ of θ: the top one
  assert len(calls) < 40
  checked = len(calls)  # one step fewer leaves the residual above the tolerance
  value, vector = tracking._top_eigenpair(jnp.asarray(matrix).__matmul__, start, checked - 1, None)
  vector = np.asarray(vector)
  assert np.linalg.norm(matrix @ vector - float(value) * vector) > tolerance * float(value)
  calls.clear()
  jax.jit(lambda s: tracking._top_eigenpair(_counted(matrix, calls), s, 40, None))(start)
  assert len(calls) == 40


def test_monitor_with_a_tolerance_agrees_with_fixed_steps_on_a_tiny_mlp(x64):
  params, loss = tiny_mlp_problem()
  fixed = hessian.CurvatureOptions(lanczos_steps=22, probes=1)
  early = fixed._replace(tolerance=1e-9)
  metrics = {
    options.tolerance: tracking.measure(
      loss, params, tracking.init(params, options), options, step=jnp.asarray(0)
    )[0]
    for options in (fixed, early)
  }
  np.testing.assert_allclose(metrics[1e-9]["lambda_max"], metrics[None]["lambda_max"], rtol=1e-8)


@pytest.mark.slow
def test_monitor_in_training_equals_exact_top_eigenvalue_and_keeps_the_trajectory(x64):
  problem = _problem()
  common = dict(steps=40, batch_size=50, eval_every=10, seed=1)
  plain = train.train(problem, optim.sgd(0.5), **common)
  watched = train.train(problem, optim.sgd(0.5), curvature_every=20, **common)
  for name in plain.history:  # bit for bit: the monitor reads the state, never writes it
    np.testing.assert_array_equal(plain.history[name], watched.history[name])
  jax.tree.map(np.testing.assert_array_equal, plain.params, watched.params)
  measured = ~np.isnan(watched.history["lambda_max"])
  np.testing.assert_array_equal(watched.history["step"][measured], [0, 20, 40])
  for steps, value in zip([20, 40], watched.history["lambda_max"][measured][1:], strict=True):
    at_step = train.train(problem, optim.sgd(0.5), **common | {"steps": steps})
    matrix, grad = _dense(problem, at_step)
    np.testing.assert_allclose(value, np.linalg.eigvalsh(matrix)[-1], rtol=1e-3)
  matrix, grad = _dense(problem, watched)
  np.testing.assert_allclose(watched.history["g_hess_g"][-1], grad @ matrix @ grad, rtol=1e-8)


@pytest.mark.slow
def test_adam_preconditioned_sharpness_in_training_equals_dense_value(x64):
  problem = _problem()
  options = hessian.CurvatureOptions(preconditioner=optim.adam_preconditioner(b1=0.8, eps=1e-6))
  result = train.train(
    problem,
    optim.adam(0.01, b1=0.8, eps=1e-6),
    steps=30,
    batch_size=50,
    eval_every=15,
    curvature_every=15,
    curvature=options,
  )
  assert np.isnan(result.history["preconditioned_lambda_max"][0])  # P = 0 before a step
  adam_state = result.opt_state[0]
  t = int(adam_state.count)
  nu, _ = ravel_pytree(adam_state.nu)
  p = (1 - 0.8**t) * (np.sqrt(np.asarray(nu) / (1 - 0.999**t)) + 1e-6)
  matrix, _ = _dense(problem, result)
  expected = np.linalg.eigvalsh(matrix / np.sqrt(p)[:, None] / np.sqrt(p)[None, :])[-1]
  np.testing.assert_allclose(result.history["preconditioned_lambda_max"][-1], expected, rtol=1e-3)


def test_preconditioner_reads_injected_hyperparameters():
  params = {"w": jnp.ones((3,))}
  injected = optax.inject_hyperparams(optim.adam)(learning_rate=0.1, b1=0.5)
  state = injected.init(params)
  _, state = injected.update({"w": jnp.full((3,), 2.0)}, state, params)
  p = optim.adam_preconditioner(b1=0.9)(state)  # b1 = 0.5 from the state wins
  expected = (1 - 0.5) * (np.sqrt(0.001 * 4.0 / (1 - 0.999)) + 1e-8)
  np.testing.assert_allclose(p["w"], np.full(3, expected), rtol=1e-5)
  # another transformation's injected hyperparameters first in the chain: still Adam's are read
  # (the first injected node's were, so the defaults b1 = 0.9, b2 = 0.999 made P 3x too large)
  chained = optax.chain(
    optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=10.0),
    optax.inject_hyperparams(optim.adam)(learning_rate=0.1, b1=0.5, b2=0.9),
  )
  state = chained.init(params)
  for _ in range(3):
    _, state = chained.update({"w": jnp.full((3,), 2.0)}, state, params)
  expected = (1 - 0.5**3) * (np.sqrt((1 - 0.9**3) * 4.0 / (1 - 0.9**3)) + 1e-8)
  np.testing.assert_allclose(optim.adam_preconditioner()(state)["w"], expected, rtol=1e-5)


def test_adam_preconditioner_is_float64_in_a_float64_run(x64):
  """P = (1 − β₁ᵗ)(√(r / (1 − β₂ᵗ)) + δ) in the state's precision: 1 − β₂ᵗ in float32 was off by
  7e-4 relative at β₂ = 0.99999."""
  params, b1, b2 = {"w": jnp.asarray([1.0, -2.0, 0.5])}, 0.9, 0.99999
  tx = optim.adam(0.1, b1=b1, b2=b2)
  state, r = tx.init(params), np.zeros(3)
  for t, g in enumerate(([0.3, -1.0, 2.0], [0.1, 0.2, -0.4], [1.5, 0.0, 0.3]), start=1):
    _, state = tx.update({"w": jnp.asarray(g)}, state, params)
    r = b2 * r + (1 - b2) * np.square(g)
    p = optim.adam_preconditioner(b1=b1, b2=b2)(state)["w"]
    assert p.dtype == jnp.float64
    expected = (1 - b1**t) * (np.sqrt(r / (1 - b2**t)) + 1e-8)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_a_preconditioner_not_shaped_like_the_parameters_is_refused_by_name(x64):
  """P of another size, or an Adam state per parameter group (optax.partition), failed deep in
  JAX with a broadcasting error naming neither; both are refused as the loop is traced."""
  problem = _problem()
  common = dict(steps=20, batch_size=10, eval_every=10, curvature_every=10)
  options = hessian.CurvatureOptions(preconditioner=lambda state: {"w": jnp.ones(3)})
  with pytest.raises(ValueError, match="P has 3 entries for .* parameters"):
    train.train(problem, optim.sgd(0.1), curvature=options, **common)

  def labels(params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: "first" if "0" in jax.tree_util.keystr(path) else "rest", params
    )

  grouped = optax.partition({"first": optim.adam(0.1), "rest": optim.adam(0.01)}, labels)
  options = hessian.CurvatureOptions(preconditioner=optim.adam_preconditioner())
  with pytest.raises(ValueError, match="holds 2 ScaleByAdamStates, one per parameter group"):
    train.train(problem, grouped, curvature=options, **common)


@pytest.mark.parametrize(
  ("optimizer", "preconditioner", "after_one_step"),
  [
    (optim.rmsprop(0.1, decay=0.9, eps=1e-6), optim.rmsprop_preconditioner(1e-6),
     lambda g: np.sqrt(1e-6 + 0.1 * g**2)),
    (optim.adagrad(0.1, eps=1e-7), optim.adagrad_preconditioner(1e-7),
     lambda g: 1e-7 + np.abs(g)),
  ],
)  # fmt: skip
def test_rmsprop_and_adagrad_have_no_preconditioner_before_their_first_step(
  optimizer, preconditioner, after_one_step, x64
):
  """Before a step r = 0, and √δ or δ in P's place made a preconditioned sharpness 10²-10⁶ times
  the later values: P is NaN there (the monitor reports NaN, as for Adam's P = 0), and
  Algorithm 8.5's √(δ + r₁) or 8.4's δ + √r₁ after it."""
  params = {"w": jnp.asarray([1.0, -2.0, 0.5])}
  state = optimizer.init(params)
  assert np.all(np.isnan(preconditioner(state)["w"]))
  g = np.asarray([0.3, 0.0, -2.0])  # a zero gradient entry is a step taken all the same
  _, state = optimizer.update({"w": jnp.asarray(g)}, state, params)
  np.testing.assert_allclose(preconditioner(state)["w"], after_one_step(g), rtol=1e-12)


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(curvature_every=0), "curvature_every"),
    (dict(curvature_every=15), "multiple of eval_every"),
    (dict(curvature=hessian.CurvatureOptions()), "curvature_every"),
    (dict(curvature_every=10, curvature=hessian.CurvatureOptions(probes=0)), "probes"),
    (dict(curvature_every=10, curvature=hessian.CurvatureOptions(tolerance=0.0)), "tolerance"),
    (dict(curvature_every=10, curvature=hessian.CurvatureOptions(tolerance=1.5)), "tolerance"),
    (dict(curvature_every=10, curvature=hessian.CurvatureOptions(examples=151)), "examples"),
    (dict(curvature_every=10, curvature={"probes": 2}), "CurvatureOptions"),
    (
      dict(
        curvature_every=10,
        curvature=hessian.CurvatureOptions(preconditioner=optim.rmsprop_preconditioner),
      ),
      r"call it, optim.rmsprop_preconditioner\(\)",
    ),
  ],
)
def test_bad_monitor_arguments_are_refused_by_name(kwargs, message, x64):
  with pytest.raises((ValueError, TypeError), match=message):
    train.train(_problem(), optim.sgd(0.1), steps=20, batch_size=10, eval_every=10, **kwargs)


def test_preconditioner_of_the_wrong_optimizer_is_named():
  state = optim.sgd(0.1).init({"w": jnp.ones(2)})
  with pytest.raises(ValueError, match="ScaleByAdamState"):
    optim.adam_preconditioner()(state)
