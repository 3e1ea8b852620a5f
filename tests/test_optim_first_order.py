"""Tests of optim/first_order.py and validate.py.

Every optimizer is compared, over a whole trajectory, with a float64 numpy transcription of the
book's pseudocode (Goodfellow et al. 2016, Alg. 8.1 to 8.7; Zeiler 2012; Jacobs 1988), run on the
problems of tests/helpers.py with a linearly decaying learning rate.
"""

import functools
import warnings

import chex
import helpers
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from jaxopt_study import optim, validate

STEPS = 30
TAU = 20  # the linear decay reaches ε_τ = ε_0 / 10 at step 20, then stays there

# ---------------------------------------------------------------- the book's pseudocode, in numpy


def book_linear_decay(eps0, eps_tau, tau):
  """§8.3.1, eq. 8.14: ε_k = (1 − α) ε_0 + α ε_τ with α = k / τ, then ε_τ after τ."""

  def lr(k):
    alpha = min(k / tau, 1.0)
    return (1 - alpha) * eps0 + alpha * eps_tau

  return lr


def book_sgd(grad, theta, lr, steps):
  path = [theta]
  for k in range(steps):
    g = grad(theta)
    theta = theta - lr(k) * g
    path.append(theta)
  return path


def book_momentum(grad, theta, lr, steps, momentum):
  v = np.zeros_like(theta)
  path = [theta]
  for k in range(steps):
    g = grad(theta)
    v = momentum * v - lr(k) * g
    theta = theta + v
    path.append(theta)
  return path


def book_nesterov(grad, theta, lr, steps, momentum):
  """Alg. 8.3 holding θ and v; returns the look-ahead points θ̃ = θ + αv that we carry."""
  v = np.zeros_like(theta)
  path = [theta + momentum * v]
  for k in range(steps):
    theta_interim = theta + momentum * v
    g = grad(theta_interim)
    v = momentum * v - lr(k) * g
    theta = theta + v
    path.append(theta + momentum * v)
  return path


def book_adagrad(grad, theta, lr, steps, eps):
  r = np.zeros_like(theta)
  path = [theta]
  for k in range(steps):
    g = grad(theta)
    r = r + g * g
    theta = theta - lr(k) / (eps + np.sqrt(r)) * g
    path.append(theta)
  return path


def book_rmsprop(grad, theta, lr, steps, decay, eps):
  r = np.zeros_like(theta)
  path = [theta]
  for k in range(steps):
    g = grad(theta)
    r = decay * r + (1 - decay) * g * g
    theta = theta - lr(k) / np.sqrt(eps + r) * g
    path.append(theta)
  return path


def book_rmsprop_nesterov(grad, theta, lr, steps, decay, momentum, eps):
  """Alg. 8.6 holding θ and v (δ under the root); returns θ̃ = θ + αv."""
  r = np.zeros_like(theta)
  v = np.zeros_like(theta)
  path = [theta + momentum * v]
  for k in range(steps):
    theta_interim = theta + momentum * v
    g = grad(theta_interim)
    r = decay * r + (1 - decay) * g * g
    v = momentum * v - lr(k) / np.sqrt(eps + r) * g
    theta = theta + v
    path.append(theta + momentum * v)
  return path


def book_adam(grad, theta, lr, steps, b1, b2, eps):
  s = np.zeros_like(theta)
  r = np.zeros_like(theta)
  t = 0
  path = [theta]
  for k in range(steps):
    g = grad(theta)
    t = t + 1
    s = b1 * s + (1 - b1) * g
    r = b2 * r + (1 - b2) * g * g
    s_hat = s / (1 - b1**t)
    r_hat = r / (1 - b2**t)
    theta = theta - lr(k) * s_hat / (np.sqrt(r_hat) + eps)
    path.append(theta)
  return path


def book_adadelta(grad, theta, lr, steps, decay, eps):
  """Zeiler (2012) Alg. 1, with the step scaled by the learning rate."""
  mean_sq_grad = np.zeros_like(theta)
  mean_sq_step = np.zeros_like(theta)
  path = [theta]
  for k in range(steps):
    g = grad(theta)
    mean_sq_grad = decay * mean_sq_grad + (1 - decay) * g * g
    step = -np.sqrt(mean_sq_step + eps) / np.sqrt(mean_sq_grad + eps) * g
    mean_sq_step = decay * mean_sq_step + (1 - decay) * step * step
    theta = theta + lr(k) * step
    path.append(theta)
  return path


def book_delta_bar_delta(grad, theta, lr, steps, kappa, phi, theta_avg):
  """Jacobs (1988); `lr` is the initial rate of every parameter, a number."""
  rates = np.full_like(theta, lr)
  bar_delta = np.zeros_like(theta)
  path = [theta]
  for _ in range(steps):
    g = grad(theta)
    agreement = bar_delta * g
    rates = np.where(agreement > 0, rates + kappa, rates)
    rates = np.where(agreement < 0, (1 - phi) * rates, rates)
    theta = theta - rates * g
    bar_delta = (1 - theta_avg) * g + theta_avg * bar_delta
    path.append(theta)
  return path


# -------------------------------------------------------------------------- cases and runners

HYPERPARAMS = {
  "sgd": ("plain", {}, book_sgd),
  "momentum": ("plain", {"momentum": 0.9}, book_momentum),
  "nesterov": ("plain", {"momentum": 0.9}, book_nesterov),
  "adagrad": ("adaptive", {"eps": 1e-7}, book_adagrad),
  "rmsprop": ("adaptive", {"decay": 0.9, "eps": 1e-6}, book_rmsprop),
  "rmsprop_nesterov": (
    "adaptive",
    {"decay": 0.9, "momentum": 0.9, "eps": 1e-8},
    book_rmsprop_nesterov,
  ),
  "adam": ("adaptive", {"b1": 0.9, "b2": 0.999, "eps": 1e-8}, book_adam),
  "adadelta": ("adadelta", {"decay": 0.95, "eps": 1e-6}, book_adadelta),
  "delta_bar_delta": ("plain", None, book_delta_bar_delta),
}
NAMES = list(HYPERPARAMS)
LEARNING_RATES = {  # per problem and kind of optimizer: small enough to stay stable for 30 steps
  "bowl": {"plain": 0.05, "adaptive": 0.05, "adadelta": 1.0},
  "rosenbrock": {"plain": 1e-4, "adaptive": 1e-2, "adadelta": 1.0},
  "mlp": {"plain": 0.1, "adaptive": 0.02, "adadelta": 1.0},
}


def problem(name):
  """(params, loss) of a tests/helpers.py problem, in the current default float precision."""
  if name == "bowl":
    return helpers.bowl_params(), helpers.bowl_loss
  if name == "rosenbrock":
    return helpers.rosenbrock_params(), helpers.rosenbrock_loss
  return helpers.tiny_mlp_problem()


def build(name, base_lr):
  """(constructor kwargs, the book's loop with its hyperparameters bound) for an optimizer."""
  kind, hyperparams, book = HYPERPARAMS[name]
  if name == "delta_bar_delta":  # its initial rate is a number: the rates then adapt themselves
    kwargs = {"learning_rate": base_lr, "kappa": base_lr / 10, "phi": 0.2, "theta": 0.7}
    return kwargs, functools.partial(book, lr=base_lr, kappa=base_lr / 10, phi=0.2, theta_avg=0.7)
  kwargs = {"learning_rate": optim.linear_decay(base_lr, base_lr / 10, TAU), **hyperparams}
  book_lr = book_linear_decay(base_lr, base_lr / 10, TAU)
  return kwargs, functools.partial(book, lr=book_lr, **hyperparams)


def run(tx, loss, params, steps=STEPS, jit=True):
  """The carried params after each of `steps` updates, flattened (row 0 is the start).

  Jitted, the steps run in one `lax.scan`, whose carry must keep its types from step to step (the
  state changing dtype or shape, which would make a jitted update recompile, is an error there).
  """

  def step(carry, _):
    params, state = carry
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    return (params, state), ravel_pytree(params)[0]

  carry = (params, tx.init(params))
  if jit:
    _, path = jax.jit(lambda carry: jax.lax.scan(step, carry, length=steps))(carry)
  else:
    path = []
    for _ in range(steps):
      carry, flat = step(carry, None)
      path.append(flat)
  return np.concatenate([ravel_pytree(params)[0][None], np.stack(path)])


@functools.cache
def flat_grad(problem_name):
  """The jitted gradient of a problem's loss on its flattened params (one compile per problem)."""
  params, loss = problem(problem_name)
  unravel = ravel_pytree(params)[1]
  return jax.jit(lambda flat: ravel_pytree(jax.grad(loss)(unravel(flat)))[0])


def book_run(book, problem_name, clip_norm=None):
  """The book's loop from the problem's start, with the gradient clipped to `clip_norm` if given."""

  def grad(theta):
    g = np.asarray(flat_grad(problem_name)(theta))
    if clip_norm is not None:  # optax.clip_by_global_norm: g · min(1, c / ‖g‖)
      g = g * min(1.0, clip_norm / np.linalg.norm(g))
    return g

  theta0 = np.asarray(ravel_pytree(problem(problem_name)[0])[0])
  return np.stack(book(grad, theta0, steps=STEPS))


# ------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("problem_name", ["bowl", "rosenbrock", "mlp"])
@pytest.mark.parametrize("name", NAMES)
def test_trajectory_matches_book(x64, name, problem_name):
  params, loss = problem(problem_name)
  kwargs, book = build(name, LEARNING_RATES[problem_name][HYPERPARAMS[name][0]])
  ours = run(optim.OPTIMIZERS[name](**kwargs), loss, params)
  expected = book_run(book, problem_name)
  assert np.all(np.isfinite(expected)) and np.max(np.abs(expected[-1] - expected[0])) > 1e-3
  np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_composes_after_gradient_clipping(x64, name):
  params, loss = problem("rosenbrock")  # ‖g‖ ≈ 300 at the start, so the clip is active
  kwargs, book = build(name, LEARNING_RATES["rosenbrock"][HYPERPARAMS[name][0]])
  tx = optax.chain(optax.clip_by_global_norm(1.0), optim.OPTIMIZERS[name](**kwargs))
  expected = book_run(book, "rosenbrock", clip_norm=1.0)
  np.testing.assert_allclose(run(tx, loss, params), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_eager_agree(x64, name):
  params, loss = problem("bowl")
  kwargs, _ = build(name, LEARNING_RATES["bowl"][HYPERPARAMS[name][0]])
  tx = optim.OPTIMIZERS[name](**kwargs)
  eager = run(tx, loss, params, steps=3, jit=False)
  np.testing.assert_allclose(run(tx, loss, params, steps=3), eager, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_gives_the_same_trajectory(x64, name):
  params, loss = problem("bowl")
  kwargs, _ = build(name, LEARNING_RATES["bowl"][HYPERPARAMS[name][0]])
  injected = optax.inject_hyperparams(optim.OPTIMIZERS[name])(**kwargs)
  plain = optim.OPTIMIZERS[name](**kwargs)
  np.testing.assert_array_equal(  # eagerly, the same operations on the same numbers
    run(injected, loss, params, steps=4, jit=False), run(plain, loss, params, 4, jit=False)
  )
  # Jitted, XLA sees the plain hyperparameters as constants and the injected ones as arguments
  # and may fuse and contract (FMA) them differently: optax.inject_hyperparams(optax.adam) differs
  # from optax.adam by the same one or two ulps.
  np.testing.assert_allclose(
    run(injected, loss, params, steps=10), run(plain, loss, params, 10), rtol=1e-14, atol=1e-15
  )


def test_jitted_update_is_traced_once(x64):
  params, loss = problem("bowl")
  tx = optim.adam(optim.linear_decay(0.1, 0.01, 3))
  traces = []

  @jax.jit
  def step(params, state):
    traces.append(None)  # runs only while tracing
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(6):
    params, state = step(params, state)
  assert len(traces) == 1


@pytest.mark.parametrize("name", NAMES)
def test_nnx_optimizer_applies_the_update(name):
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  x = jnp.asarray([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.2]])
  y = jnp.asarray([[1.0], [0.0], [2.0]])
  grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
  kwargs, _ = build(name, 0.1)
  tx = optim.OPTIMIZERS[name](**kwargs)
  params = {"kernel": model.kernel[...], "bias": model.bias[...]}
  grad_dict = {"kernel": grads.kernel[...], "bias": grads.bias[...]}
  updates, _ = tx.update(grad_dict, tx.init(params), params)
  expected = optax.apply_updates(params, updates)

  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  optimizer.update(model, grads)
  np.testing.assert_allclose(model.kernel[...], expected["kernel"], rtol=1e-6)
  np.testing.assert_allclose(model.bias[...], expected["bias"], rtol=1e-6)
  assert np.max(np.abs(model.kernel[...] - params["kernel"])) > 1e-4
  if name == "sgd":  # Alg. 8.1 by hand: ε_0 = 0.1
    np.testing.assert_allclose(model.kernel[...], params["kernel"] - 0.1 * grad_dict["kernel"])


# ------------------------------------------------------------- where Optax agrees, and where not


def _max_gap(tx_a, tx_b, problem_name="bowl"):
  params, loss = problem(problem_name)
  return np.max(np.abs(run(tx_a, loss, params) - run(tx_b, loss, params)))


def test_momentum_differs_from_optax_only_under_a_schedule(x64):
  schedule = optim.linear_decay(0.1, 0.01, TAU)
  assert _max_gap(optim.momentum(schedule, 0.9), optax.sgd(schedule, momentum=0.9)) > 1e-6
  assert _max_gap(optim.momentum(0.1, 0.9), optax.sgd(0.1, momentum=0.9)) < 1e-12
  book_order = optax.chain(optax.scale_by_learning_rate(schedule), optax.trace(0.9))
  assert _max_gap(optim.momentum(schedule, 0.9), book_order) < 1e-12


def test_nesterov_differs_from_optax_only_under_a_schedule(x64):
  schedule = optim.linear_decay(0.1, 0.01, TAU)
  optax_nesterov = optax.sgd(schedule, momentum=0.9, nesterov=True)
  assert _max_gap(optim.nesterov(schedule, 0.9), optax_nesterov) > 1e-6
  assert _max_gap(optim.nesterov(0.1, 0.9), optax.sgd(0.1, momentum=0.9, nesterov=True)) < 1e-12


def sutskever_momentum(k):
  """A momentum schedule that moves at every step: Sutskever et al. (2013) eq. 5 with r = 3."""
  return min(1 - 2 ** (-1 - np.log2(k // 3 + 1)), 0.95)


def book_scheduled_momentum(grad, theta, lr, steps, alpha, nesterov):
  """Alg. 8.2 / 8.3 with α_k from a schedule; Nesterov returns the look-ahead θ_k + α_k v_k."""
  v = np.zeros_like(theta)
  path = [theta]
  for k in range(steps):
    g = grad(theta + alpha(k) * v if nesterov else theta)
    v = alpha(k) * v - lr(k) * g
    theta = theta + v
    path.append(theta + alpha(k + 1) * v if nesterov else theta)
  return path


@pytest.mark.parametrize("nesterov", [False, True])
def test_a_momentum_schedule_follows_the_book(x64, nesterov):
  """α_k and ε_k both scheduled; Nesterov's carried point is θ_k + α_k v_k at every step, which
  `optax.inject_hyperparams` (α_k held for the whole step) misses where α changes."""
  params, loss = problem("mlp")
  alpha = optax.piecewise_constant_schedule(
    sutskever_momentum(0), {k: sutskever_momentum(k) / sutskever_momentum(k - 1) for k in (3, 6, 9)}
  )
  expected_alpha = [float(alpha(k)) for k in range(STEPS + 1)]
  assert len(set(expected_alpha)) == 4
  lr = optim.linear_decay(0.1, 0.01, TAU)
  constructor = optim.nesterov if nesterov else optim.momentum
  ours = run(constructor(lr, alpha), loss, params)
  expected = book_run(
    functools.partial(
      book_scheduled_momentum,
      lr=book_linear_decay(0.1, 0.01, TAU),
      alpha=lambda k: expected_alpha[k],
      nesterov=nesterov,
    ),
    "mlp",
  )
  np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)
  injected = run(
    optax.inject_hyperparams(constructor)(learning_rate=lr, momentum=alpha), loss, params
  )
  gap = np.max(np.abs(injected - expected))
  assert (gap > 1e-6) if nesterov else (gap < 1e-12)


def test_adagrad_differs_from_optax(x64):
  assert _max_gap(optim.adagrad(0.05, eps=1e-7), optax.adagrad(0.05, eps=1e-7)) > 1e-6


def test_optax_equivalents(x64):
  schedule = optim.linear_decay(0.02, 0.002, TAU)
  assert _max_gap(optim.rmsprop(schedule, 0.9, 1e-6), optax.rmsprop(schedule, 0.9, 1e-6)) == 0
  optax_rmsprop_nesterov = optax.rmsprop(schedule, 0.9, 1e-8, momentum=0.9, nesterov=True)
  assert _max_gap(optim.rmsprop_nesterov(schedule, 0.9, 0.9, 1e-8), optax_rmsprop_nesterov) < 1e-12
  assert _max_gap(optim.adadelta(1.0, 0.95, 1e-6), optax.adadelta(1.0, 0.95, 1e-6)) == 0


def test_adam_is_optax_adam(x64):
  schedule = optim.linear_decay(0.02, 0.002, TAU)
  ours, theirs = optim.adam(schedule, 0.8, 0.99, 1e-7), optax.adam(schedule, 0.8, 0.99, 1e-7)
  assert _max_gap(ours, theirs) == 0
  params, _ = problem("mlp")
  chex.assert_trees_all_equal_structs(ours.init(params), theirs.init(params))


# ----------------------------------------------------------------------------------- validation


DBD = {"learning_rate": 0.1, "kappa": 0.01, "phi": 0.1, "theta": 0.5}


@pytest.mark.parametrize(
  ("constructor", "kwargs", "match"),
  [
    (optim.sgd, {"learning_rate": -0.1}, r"sgd: learning_rate=-0.1 must be finite and >= 0"),
    (optim.sgd, {"learning_rate": float("inf")}, "learning_rate"),
    (optim.momentum, {"learning_rate": 0.1, "momentum": 1.0}, r"momentum=1.0 .* \[0, 1\)"),
    (optim.nesterov, {"learning_rate": 0.1, "momentum": -0.1}, "momentum"),
    (optim.adagrad, {"learning_rate": 0.1, "eps": -1e-7}, "eps"),
    (optim.rmsprop, {"learning_rate": 0.1, "decay": 1.5}, r"rmsprop: decay=1.5 .* \[0, 1\)"),
    (optim.rmsprop, {"learning_rate": 0.1, "decay": float("nan")}, "decay"),
    (optim.rmsprop, {"learning_rate": 0.1, "decay": jnp.asarray(1.5)}, "decay=1.5"),
    (optim.rmsprop_nesterov, {"learning_rate": 0.1, "momentum": 1.2}, "momentum"),
    (optim.rmsprop_nesterov, {"learning_rate": 0.1, "eps": -1.0}, "eps"),
    (optim.adam, {"b1": 1.0}, "b1"),
    (optim.adam, {"b2": -0.5}, "b2"),
    (optim.adam, {"learning_rate": "0.1"}, "learning_rate='0.1' must be a number"),
    (optim.adadelta, {"decay": 1.0}, "decay"),
    (optim.adadelta, {"eps": 0.0}, "eps"),
    (optim.adagrad, {"learning_rate": 0.1, "eps": 0.0}, r"adagrad: eps=0.0 must be finite and > 0"),
    (optim.rmsprop, {"learning_rate": 0.1, "eps": 0.0}, "rmsprop: eps=0.0"),
    (optim.rmsprop_nesterov, {"learning_rate": 0.1, "eps": 0.0}, "eps=0.0"),
    (optim.adam, {"eps": 0.0}, "adam: eps=0.0"),
    (  # optax.inject_hyperparams on bfloat16 params: 0.999 arrives as 1.0, and the message says so
      optim.adam,
      {"b2": jnp.asarray(0.999, jnp.bfloat16)},
      r"adam: b2=1.0 must be in \[0, 1\); it arrived in bfloat16.*hyperparam_dtype=jnp.float32",
    ),
    (optim.scale_by_book_momentum, {"learning_rate": 0.1, "momentum": 2.0}, "momentum"),
    (optim.scale_by_book_adagrad, {"eps": -1.0}, "eps"),
    (optim.delta_bar_delta, {**DBD, "kappa": -0.01}, "kappa"),
    (optim.delta_bar_delta, {**DBD, "phi": 1.5}, r"phi=1.5 must be in \[0, 1\]"),
    (optim.delta_bar_delta, {**DBD, "theta": 1.0}, "theta"),
    (optim.delta_bar_delta, {**DBD, "learning_rate": -0.1}, "learning_rate"),
    (
      optim.delta_bar_delta,
      {**DBD, "learning_rate": optax.constant_schedule(0.1)},
      "learning_rate=.* must be a number",
    ),
  ],
)
def test_bad_hyperparameters_raise(constructor, kwargs, match):
  with pytest.raises(ValueError, match=match):
    constructor(**kwargs)


def test_validation_skips_traced_values_and_accepts_schedules():
  params = {"x": jnp.ones(2)}
  init = jax.jit(lambda decay: optim.rmsprop(0.1, decay=decay).init(params))
  init(1.5)  # traced: cannot be checked, so no error (inject_hyperparams relies on this)
  optim.momentum(optax.constant_schedule(-1.0))  # a schedule is not evaluated


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_unit_interval_check_matches_its_definition(value):
  inside = 0 <= value < 1
  if inside:
    validate.require_unit_interval("decay", value, "test")
  else:
    with pytest.raises(ValueError, match="test: decay="):
      validate.require_unit_interval("decay", value, "test")


def test_delta_bar_delta_refuses_integer_params_by_path():
  """It raised numpy's "data type not inexact" from jnp.finfo, naming nothing."""
  tx = optim.delta_bar_delta(0.1, 0.01, 0.2, 0.5)
  with pytest.raises(TypeError, match=r"delta_bar_delta: params\['w'\] has dtype int32"):
    tx.init({"b": jnp.ones(2), "w": jnp.asarray([1, 2], jnp.int32)})


def test_delta_bar_delta_rates_of_bfloat16_params_grow_as_in_float32():
  """κ = 1e-5 on a rate of 0.01: below half a bfloat16 rounding step (6e-5), so rates held in
  bfloat16 never grew; they are float32 now, and 50 agreeing steps give Jacobs's 0.01 + 50κ."""
  tx = optim.delta_bar_delta(0.01, kappa=2e-5, phi=0.1, theta=0.5)
  params = {"w": jnp.ones(3, jnp.bfloat16)}
  state = tx.init(params)
  for _ in range(50):
    _, state = tx.update({"w": jnp.ones(3, jnp.bfloat16)}, state, params)
  assert state.learning_rates["w"].dtype == jnp.float32
  np.testing.assert_allclose(state.learning_rates["w"], 0.01 + 49 * 2e-5, rtol=1e-5)


def test_an_eps_that_rounds_to_0_in_float16_is_warned_of_by_leaf():
  """δ = 1e-8 is 0 in float16: a gradient of exactly 0 then gives 0/0 = NaN (Optax's own Adam
  does the same, and its generic tests run float16 with that default, so a warning)."""
  params = {"b": jnp.ones(2), "w": jnp.ones(2, jnp.float16)}
  with pytest.warns(UserWarning, match=r"adam: eps=1e-08 rounds to 0 in float16.*params\['w'\]"):
    tx = optim.adam(0.1)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  assert bool(jnp.isnan(updates["w"]).all())  # what the warning is about
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    optim.adam(0.1, eps=1e-7).init(params)
    optim.adam(0.1).init({"w": jnp.ones(2, jnp.bfloat16)})  # bfloat16 has float32's range


def test_registry_names():
  assert set(NAMES) <= set(optim.OPTIMIZERS)  # the rest: tests/test_optim_second_order.py
  assert optim.OPTIMIZERS["adam"] is optim.adam


# ------------------------------------------------------------------------- complex parameters


def test_complex_second_moments_are_squared_moduli(x64):
  """AdaGrad, RMSProp, Adam and AdaDelta on g = 3 + 4i: the first step uses |g|² = 25, not g² =
  −7 + 24i, so it is −ε g / 5 up to δ (Optax's convention: the caller passes conj(∇f))."""
  g = {"z": jnp.asarray([3.0 + 4.0j])}
  cases = {  # δ = 1e-15 moves the step by 2e-16 relative
    optim.adagrad(0.1, eps=1e-15): -0.1 * g["z"] / 5,
    optim.rmsprop(0.1, decay=0.0, eps=1e-15): -0.1 * g["z"] / 5,
    optim.adam(0.1, eps=1e-15): -0.1 * g["z"] / 5,
    optim.adadelta(1.0, decay=0.0, eps=1e-6): -np.sqrt(1e-6) / np.sqrt(25 + 1e-6) * g["z"],
  }
  for tx, expected in cases.items():
    updates, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_allclose(updates["z"], expected, rtol=1e-12)


def test_delta_bar_delta_on_complex_params_tests_the_real_inner_product(x64):
  """Rates are real; s = Re(conj(δ̄) g): g at 80° from δ̄ grows the rate, at 100° shrinks it."""
  tx = optim.delta_bar_delta(learning_rate=0.1, kappa=0.05, phi=0.5, theta=0.0)
  params = {"z": jnp.zeros(2, jnp.complex128)}
  state = tx.init(params)
  assert state.learning_rates["z"].dtype == jnp.float64
  _, state = tx.update({"z": jnp.asarray([1.0 + 0j, 1.0 + 0j])}, state, params)
  turn = jnp.exp(1j * jnp.deg2rad(jnp.asarray([80.0, 100.0])))
  updates, state = tx.update({"z": turn}, state, params)
  np.testing.assert_allclose(state.learning_rates["z"], [0.15, 0.05], rtol=1e-12)
  np.testing.assert_allclose(updates["z"], -jnp.asarray([0.15, 0.05]) * turn, rtol=1e-12)
