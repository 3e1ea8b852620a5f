"""Optax's generic optimizer checks, run over every optimizer of `optim`: the contract of an Optax
citizen (convergence, extra arguments, tree.map_params, abstract init, inject_hyperparams,
MultiSteps, masked, apply_if_finite, lookahead, state sharding).

Adapted from Optax 0.2.8's tests (Apache 2.0): `_src/alias_test.py`, `contrib/_common_test.py`,
`_src/lookahead_test.py`, `transforms/_accumulation_test.py`, `transforms/_masking_test.py`,
`transforms/_conditionality_test.py`, `_src/sharding_test.py`.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from jaxopt_study import optim


class Case(NamedTuple):
  """An optimizer under test: `factory(**kwargs)`, how it is driven and what it supports."""

  factory: Callable[..., optax.GradientTransformation]
  kwargs: dict[str, Any]
  needs_loss: bool = False  # update takes value=, grad=, value_fn= (Newton, line searches)
  static: tuple[str, ...] = ()  # hyperparameters inject_hyperparams must not trace
  steps: int = 10_000  # the most updates of a convergence run (Optax's alias_test: 10 000)
  real_only: bool = False  # complex parameters refused (a TypeError), as documented


def _polyak(learning_rate, decay):
  return optim.polyak_average(optim.adam(learning_rate), mode="ema", decay=decay)


def _coordinate(learning_rate):
  return optim.coordinate_descent(optim.adam(learning_rate))


# Optax's hyperparameters where Optax has the optimizer (alias_test), else ones that solve both
# targets within `steps` in float32.
CASES = {
  "sgd": Case(optim.sgd, {"learning_rate": 1e-3}, steps=30_000),
  "momentum": Case(optim.momentum, {"learning_rate": 1e-3, "momentum": 0.9}),
  # at 1e-3 and 0.9 (Optax's sgd(nesterov=True) too) the complex Rosenbrock run crawls: f = 0.09
  # after 40 000 steps
  "nesterov": Case(optim.nesterov, {"learning_rate": 5e-4, "momentum": 0.95}),
  "adagrad": Case(optim.adagrad, {"learning_rate": 1.0}),
  "rmsprop": Case(optim.rmsprop, {"learning_rate": 5e-3}),
  "rmsprop_nesterov": Case(optim.rmsprop_nesterov, {"learning_rate": 5e-3, "momentum": 0.9}),
  "adam": Case(optim.adam, {"learning_rate": 1e-1}),
  # Optax's 0.1 ends its float32 Rosenbrock run 2.8e-2 away, at the edge of the tolerance
  "adadelta": Case(optim.adadelta, {"learning_rate": 0.02, "decay": 0.9}, steps=60_000),
  "delta_bar_delta": Case(
    optim.delta_bar_delta, {"learning_rate": 1e-3, "kappa": 1e-5, "phi": 0.5, "theta": 0.7}
  ),
  # the Newton family differs from Optax's complex support: it refuses complex parameters (its
  # Hessian is real, 2N × 2N), so its complex cases check the refusal
  "newton": Case(
    optim.newton, {"damping": 0.0, "learning_rate": 1.0}, True, steps=100, real_only=True
  ),
  "saddle_free_newton": Case(
    optim.saddle_free_newton,
    {"damping": 1e-3, "learning_rate": 1.0},
    True,
    steps=100,
    real_only=True,
  ),
  "critical_point_newton": Case(
    optim.critical_point_newton, {"damping": 1.0}, True, ("max_tries",), steps=100, real_only=True
  ),
  "conjugate_gradient": Case(optim.conjugate_gradient, {}, True, steps=500),
  "bfgs": Case(optim.bfgs, {}, True, steps=500),
  "lbfgs": Case(optim.lbfgs, {"memory_size": 10}, True, ("memory_size",), steps=500),
  "polyak_average": Case(_polyak, {"learning_rate": 1e-1, "decay": 0.9}),
  "coordinate_descent": Case(_coordinate, {"learning_rate": 1e-1}),
}
NAMES = sorted(CASES)
FIRST_ORDER = [name for name in NAMES if not CASES[name].needs_loss]


def names(heavy: Callable[[str], bool] = lambda name: CASES[name].needs_loss) -> list:
  """NAMES as parameters, those for which `heavy` holds marked slow (by default the ones that take
  the loss: each compiles a dense Hessian or a line search, 3-10 s)."""
  return [pytest.param(name, marks=pytest.mark.slow) if heavy(name) else name for name in NAMES]


def types(tree):
  """The type of every leaf (shape, dtype, weak type, sharding), and the tree's structure."""
  return jax.tree.structure(tree), [jax.typeof(leaf) for leaf in jax.tree.leaves(tree)]


def test_every_optimizer_is_under_test():
  assert set(optim.OPTIMIZERS) <= set(CASES), set(optim.OPTIMIZERS) - set(CASES)


def make(name: str) -> optax.GradientTransformationExtraArgs:
  case = CASES[name]
  return optax.with_extra_args_support(case.factory(**case.kwargs))


def update(name, tx, grads, state, params, objective, **extra):
  """One update as Optax's tests drive it; the loss for those that take it, as `optax.lbfgs`."""
  if CASES[name].needs_loss:
    value = objective(params)
    extra = {"value": value, "grad": grads, "value_fn": objective, **extra}
  return tx.update(grads, state, params, **extra)


FACTORIZING = ("newton", "saddle_free_newton", "critical_point_newton")  # LAPACK: ≥ float32


def refused(name: str, dtype: str) -> bool:
  """For a real-only optimizer and a complex dtype, or a factorizing one and a half-precision
  dtype: checks that an update refuses the parameters by name, while tracing (`jax.eval_shape`,
  so before compiling), and returns True (nothing else to test); False otherwise."""
  complex_ = jnp.issubdtype(jnp.dtype(dtype), jnp.complexfloating)
  if CASES[name].real_only and complex_:
    message = r"params has dtype complex64.*floating point"
  elif name in FACTORIZING and not complex_ and jnp.finfo(dtype).bits < 32:
    message = rf"{name}: the parameters are {dtype} .* needs float32 or float64"
  else:
    return False
  initial, _, objective = parabola(jnp.dtype(dtype))
  tx = make(name)
  grads = optax.tree.conj(jax.grad(objective)(initial))
  with pytest.raises(TypeError, match=message):
    jax.eval_shape(lambda: update(name, tx, grads, tx.init(initial), initial, objective))
  return True


# ------------------------------------------------------------------------------------- targets


def parabola(dtype):
  """Optax's `_setup_parabola`: Σ |θ − θ*|² from (−1, 10, 1); θ* = (1, −1, 1) (times 1 + i)."""
  initial = jnp.asarray([-1.0, 10.0, 1.0], dtype)
  final = jnp.asarray([1.0, -1.0, 1.0], dtype)
  if jnp.iscomplexobj(initial):
    final = final * (1 + 1j)

  def objective(params):
    return jnp.sum(jnp.real(jnp.conj(params - final) * (params - final)))

  return initial, final, objective


def rosenbrock(dtype):
  """Optax's `_setup_rosenbrock`: |a − x|² + 100 |y − x²|² from 0; minimum (a, a²), a = 1 (+ i)."""
  a = 1.0 + 1.0j if jnp.iscomplexobj(jnp.zeros((), dtype)) else 1.0

  def abs_sq(z):
    return jnp.real(jnp.conj(z) * z)

  def objective(params):
    return abs_sq(a - params[0]) + 100.0 * abs_sq(params[1] - params[0] ** 2)

  return jnp.zeros(2, dtype), jnp.asarray([a, a**2], dtype), objective


def run(name, tx, params, objective, steps, tol):
  """Optax's `_run_opt`: update with conj(∇f) until ‖∇f‖ < tol or `steps` updates, jitted once."""

  def keep_going(carry):
    _, _, count, grad = carry
    return (optax.tree.norm(grad) >= tol) & (count < steps)

  def step(carry):
    params, state, count, _ = carry
    grad = optax.tree.conj(jax.grad(objective)(params))
    updates, state = update(name, tx, grad, state, params, objective)
    return optax.apply_updates(params, updates), state, count + 1, grad

  start = (params, tx.init(params), jnp.zeros([], jnp.int32), jax.grad(objective)(params))
  final, state, count, _ = jax.jit(lambda c: jax.lax.while_loop(keep_going, step, c))(start)
  return final, state, int(count)


# ---------------------------------------------------------------------------------- convergence


def convergence_cases() -> list:
  """Every name × target × dtype; in the fast tier the float32 runs of the first-order ones and
  their complex64 parabola, and the float32 parabola of the ones that take the loss."""
  cases = []
  for name in NAMES:
    for dtype in ("float32", "float64", "complex64"):
      for target in (parabola, rosenbrock):
        if CASES[name].needs_loss:
          fast = dtype == "float32" and target is parabola
        else:
          fast = dtype == "float32" or (dtype == "complex64" and target is parabola)
        marks = () if fast else pytest.mark.slow
        cases.append(
          pytest.param(name, target, dtype, marks=marks, id=f"{name}-{dtype}-{target.__name__}")
        )
  return cases


@pytest.mark.parametrize(("name", "target", "dtype"), convergence_cases())
def test_converges_on_optax_targets(name, target, dtype):
  """alias_test.test_optimization: within 3e-2 of the minimizer, in float32, float64, complex64."""
  with jax.enable_x64(dtype == "float64"):
    initial, final, objective = target(jnp.dtype(dtype))
    tol = 1e-6 if dtype == "float64" else 1e-4
    if refused(name, dtype):
      return
    params, state, _ = run(name, make(name), initial, objective, CASES[name].steps, tol)
    assert params.dtype == initial.dtype
    chex.assert_trees_all_close(params, final, rtol=3e-2, atol=3e-2)
    if name == "polyak_average":  # the averaged iterates converge too
      chex.assert_trees_all_close(optim.averaged_params(state, params), final, rtol=3e-2, atol=3e-2)


# ----------------------------------------------------------------- the protocol, on a pytree

TARGET = {"a": jnp.asarray([1.0, -2.0]), "b": jnp.asarray([[0.5, 3.0, -1.0], [2.0, 0.0, 1.5]])}


def tree_objective(params):
  """½ Σ c_i (θ_i − θ*_i)² on a two-leaf pytree, curvatures c from 1 to 3."""
  total = 0.0
  for key, weight in (("a", 1.0), ("b", 3.0)):
    total = total + 0.5 * weight * jnp.sum(
      (params[key] - TARGET[key].astype(params[key].dtype)) ** 2
    )
  return total


def tree_params(dtype=jnp.float32):
  return {"a": jnp.zeros(2, dtype), "b": jnp.ones((2, 3), dtype)}


def steps(name, tx, params, count, **extra):
  """`count` jitted updates with ∇ of `tree_objective`: (params, state, last updates)."""

  @jax.jit
  def step(params, state):
    grads = jax.grad(tree_objective)(params)
    updates, state = update(name, tx, grads, state, params, tree_objective, **extra)
    return optax.apply_updates(params, updates), state, updates

  state = tx.init(params)
  updates = None
  for _ in range(count):
    params, state, updates = step(params, state)
  return params, state, updates


@pytest.mark.parametrize("name", names())
def test_accepts_extra_args_it_does_not_use(name):
  """alias_test.test_optimizers_accept_extra_args: the same steps with an unexpected argument."""
  tx = CASES[name].factory(**CASES[name].kwargs)  # not wrapped in with_extra_args_support
  params = tree_params()
  expected, _, _ = steps(name, tx, params, 2)
  got, _, _ = steps(name, tx, params, 2, unexpected_extra_args_your_optimizer_doesnt_expect=1)
  chex.assert_trees_all_equal(got, expected)
  assert tree_objective(got) < tree_objective(params)


@pytest.mark.parametrize("name", names())
def test_does_not_recompile_on_the_second_update(name):
  """alias_test: 'the optimizer doesn't recompile on 2nd call to update'."""
  tx = make(name)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state):
    grads = jax.grad(tree_objective)(params)
    updates, state = update(name, tx, grads, state, params, tree_objective)
    return optax.apply_updates(params, updates), state

  params, state = tree_params(), tx.init(tree_params())
  for _ in range(3):
    params, state = step(params, state)


def test_coordinate_descent_map_params_needs_the_blocks_as_a_pytree():
  """Ours differs from Optax's expectation: with blocks=None the number of blocks (and so the
  state's structure) comes from the params' leaves, which tree.map_params's placeholder lacks."""
  params = tree_params()
  tx = optim.coordinate_descent(optim.adam(0.1))
  with pytest.raises(ValueError, match="pass blocks as a pytree"):
    optax.tree.map_params(tx, lambda v: v, tx.init(params))
  tx = optim.coordinate_descent(optim.adam(0.1), blocks={"a": 1, "b": 0})
  state = tx.init(params)
  shapes = optax.tree.map_params(tx, lambda v: v.shape, state, transform_non_params=lambda _: None)
  block_b, block_a = shapes.inner_states
  assert optax.tree.get(block_a, "mu") == {"a": (2,), "b": optax.MaskedNode()}
  assert optax.tree.get(block_b, "nu") == {"a": optax.MaskedNode(), "b": (2, 3)}
  assert shapes.count is None and optax.tree.get(block_a, "count") is None


def map_params_ready(name):
  """The optimizer, built so that tree.map_params applies (see the test above)."""
  if name == "coordinate_descent":
    return optim.coordinate_descent(optim.adam(0.1), blocks={"a": 0, "b": 1})
  return make(name)


@pytest.mark.parametrize("name", NAMES)
def test_tree_map_params(name):
  """alias_test / lookahead_test: tree.map_params finds the params' copies in the state."""
  tx = map_params_ready(name)
  state = tx.init(tree_params())
  chex.assert_trees_all_equal(optax.tree.map_params(tx, lambda v: v, state), state)
  negated = optax.tree.map_params(tx, lambda v: -v, state, transform_non_params=lambda v: v)
  chex.assert_trees_all_equal_structs(negated, state)
  copies = optax.tree.map_params(
    tx, lambda v: "param", state, transform_non_params=lambda _: "other"
  )
  labels = jax.tree.leaves(copies)
  for label, leaf, mapped in zip(
    labels, jax.tree.leaves(state), jax.tree.leaves(negated), strict=True
  ):
    expected = -leaf if label == "param" else leaf
    chex.assert_trees_all_equal(mapped, expected)


@pytest.mark.parametrize("name", NAMES)
def test_init_on_abstract_params(name):
  """sharding_test.test_init_with_abstract_input: init on jax.ShapeDtypeStruct leaves."""
  tx = make(name)
  abstract = jax.ShapeDtypeStruct((2, 4, 8), jnp.float32)
  state = tx.init(abstract)
  expected = jax.eval_shape(tx.init, abstract)
  shapes = jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), state)
  chex.assert_trees_all_equal(shapes, jax.tree.map(lambda x: (x.shape, x.dtype), expected))


def injectable(name, dtype):
  """The case's hyperparameters as `dtype` arrays, except those inject_hyperparams keeps static."""
  case = CASES[name]
  return {
    key: value if key in case.static else jnp.asarray(value, dtype)
    for key, value in case.kwargs.items()
  }


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", names())
def test_inject_hyperparams(name, dtype):
  """alias_test.test_optimizers_can_be_wrapped_in_inject_hyperparams, with float32 and bfloat16
  hyperparameters: the same updates and state as the optimizer built with the same values."""
  case = CASES[name]
  hyperparams = injectable(name, jnp.dtype(dtype))
  plain = optax.with_extra_args_support(case.factory(**hyperparams))
  injected = optax.inject_hyperparams(case.factory, static_args=case.static)(**hyperparams)
  params = [jnp.negative(jnp.ones((2, 3))), jnp.ones((2, 5, 2))]

  def objective(p):
    return 0.5 * optax.tree.norm(p, squared=True)

  def one_update(tx):
    grads = jax.grad(objective)(params)
    return update(name, tx, grads, tx.init(params), params, objective)

  updates, state = jax.jit(lambda: one_update(plain))()
  updates_injected, state_injected = jax.jit(lambda: one_update(injected))()
  chex.assert_trees_all_close(updates_injected, updates, rtol=1e-5)
  chex.assert_trees_all_close(state_injected.inner_state, state, rtol=1e-5, atol=1e-6)
  assert optax.tree.norm(updates) > 0


# Params and gradients of float16, bfloat16 and float32, every params dtype meeting every other
# gradient dtype once (Optax's test_multi_steps_mixed_precision loops over the 9 pairs).
MIXED = (jnp.float16, jnp.bfloat16, jnp.float32)


@pytest.mark.parametrize(
  "shift", [pytest.param(0, marks=pytest.mark.slow), 1, pytest.param(2, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize(
  "name",
  names(lambda name: name not in ("adam", "coordinate_descent")),  # 3 s each to compile
)
def test_multi_steps_in_mixed_precision(name, shift):
  """_accumulation_test.test_multi_steps_mixed_precision and alias_test.test_gradient_accumulation:
  under MultiSteps the updates have the dtypes they have without it, the params keep theirs, and
  the first k − 1 updates are exactly zero."""
  params = {f"p{i}": jnp.asarray([1.0, -2.0, 0.5], dtype) for i, dtype in enumerate(MIXED)}
  grad_dtypes = {f"p{i}": MIXED[(i + shift) % 3] for i in range(3)}
  tx = make(name)
  multi = optax.MultiSteps(tx, every_k_schedule=2)

  def objective(p):
    return sum(jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree.leaves(p))

  @jax.jit
  def three_steps(params):  # the updates of tx and of MultiSteps(tx), at the same params
    state, multi_state, history = tx.init(params), multi.init(params), []
    for _ in range(3):
      grads = jax.grad(objective)(params)
      grads = {key: g.astype(grad_dtypes[key]) for key, g in grads.items()}
      updates, state = update(name, tx, grads, state, params, objective)
      multi_updates, multi_state = update(name, multi, grads, multi_state, params, objective)
      history.append((updates, multi_updates, params))
      params = optax.apply_updates(params, multi_updates)
    return history, params

  history, params = three_steps(params)
  for k, (updates, multi_updates, before) in enumerate(history):
    chex.assert_trees_all_equal_dtypes(multi_updates, updates)
    chex.assert_trees_all_equal_dtypes(optax.apply_updates(before, multi_updates), before)
    if k == 0:
      chex.assert_trees_all_equal(multi_updates, optax.tree.zeros_like(multi_updates))
  assert objective(params) < 3 * 5.25


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_masked(name):
  """_masking_test.test_masked: masked leaves get the optimizer's updates (as if it saw only
  them), the others pass through unchanged; tree.map_params sees through the mask. Optimizers
  that take the loss do not apply: their value_fn takes all the params, the mask hides some."""
  mask = {"a": True, "b": False}
  tx, alone = map_params_ready(name), map_params_ready(name)
  if name == "coordinate_descent":  # blocks given as a pytree must match what it sees
    tx = optim.coordinate_descent(optim.adam(0.1), blocks={"a": 0, "b": optax.MaskedNode()})
    alone = optim.coordinate_descent(optim.adam(0.1), blocks={"a": 0})
  masked = optax.masked(tx, mask)
  params = tree_params()
  state, alone_state = masked.init(params), alone.init({"a": params["a"]})
  chex.assert_trees_all_equal(optax.tree.map_params(masked, lambda v: v, state), state)
  for _ in range(3):
    grads = jax.grad(tree_objective)(params)
    updates, state = jax.jit(masked.update)(grads, state, params)
    expected, alone_state = alone.update({"a": grads["a"]}, alone_state, {"a": params["a"]})
    chex.assert_trees_all_close(updates["a"], expected["a"], rtol=1e-6)
    chex.assert_trees_all_equal(updates["b"], grads["b"])
    params = {"a": params["a"] + updates["a"], "b": params["b"]}


@pytest.mark.parametrize("name", names())
def test_apply_if_finite(name):
  """_conditionality_test.test_apply_if_finite: non-finite gradients give no step and leave the
  state alone; the next finite step is the one the optimizer would have taken without them."""
  tx = make(name)
  guarded = optax.apply_if_finite(tx, max_consecutive_errors=2)
  params = tree_params()
  expected, _, _ = steps(name, tx, params, 2)

  @jax.jit
  def step(params, state, poison):
    grads = jax.grad(tree_objective)(params)
    grads = jax.tree.map(lambda g: g * poison, grads)
    updates, state = update(name, guarded, grads, state, params, tree_objective)
    return optax.apply_updates(params, updates), state

  state = guarded.init(params)
  params, state = step(params, state, 1.0)
  for count in (1, 2):
    before = params
    params, state = step(params, state, jnp.nan)
    chex.assert_trees_all_equal(params, before)
    assert not bool(state.last_finite) and int(state.notfinite_count) == count
  params, state = step(params, state, 1.0)
  chex.assert_trees_all_close(params, expected, rtol=1e-6, atol=1e-6)
  assert bool(state.last_finite) and int(state.total_notfinite) == 2


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_lookahead_with_reset(name):
  """lookahead_test: lookahead(reset_state=True) converges on the parabola and the fast state is
  fresh after each sync. Optimizers that take the loss do not apply: lookahead passes no extra
  arguments to its fast optimizer."""
  tx = map_params_ready(name)
  sync_period = 5
  look = optax.lookahead(tx, sync_period=sync_period, slow_step_size=0.5, reset_state=True)
  params = optax.LookaheadParams.init_synced(tree_params())

  @jax.jit
  def step(params, state):
    grads = jax.grad(tree_objective)(params.fast)
    updates, state = look.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = look.init(params)
  state = optax.tree.map_params(look, lambda v: v, state)
  for _ in range(sync_period - 1):
    params, state = step(params, state)
  synced_from, (params, state) = params, step(params, state)
  chex.assert_trees_all_close(state.fast_state, tx.init(synced_from.fast))
  start = tree_objective(params.slow)
  count = CASES[name].steps
  params, state = jax.lax.fori_loop(0, count, lambda _, carry: step(*carry), (params, state))
  assert tree_objective(params.slow) < 1e-2 * start


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "complex64"])
@pytest.mark.parametrize("name", NAMES)
def test_state_types_are_stable(name, dtype):
  """alias_test.test_state_shape_dtype_shard_stability: an update returns a state of the types
  it was given (what lax.cond and lax.scan need) and updates of the params' dtype. Traced only."""
  with jax.enable_x64(dtype == "float64"):
    initial, _, objective = parabola(jnp.dtype(dtype))
    if refused(name, dtype):
      return
    tx = make(name)
    state = tx.init(initial)

    def one_update(params, state):
      grads = optax.tree.conj(jax.grad(objective)(params))
      return update(name, tx, grads, state, params, objective)

    updates, new_state = jax.eval_shape(one_update, initial, state)
    assert updates.dtype == initial.dtype
    assert types(new_state) == types(state)


DENSE = "ravels the parameters into one vector, which explicit sharding along an axis refuses"
NOT_SHARDED = {  # where ours differs from Optax's sharding contract, and why
  "bfgs": f"BFGS's N × N inverse Hessian {DENSE}",
  "newton": f"the dense Hessian {DENSE} (and LAPACK has no float16 eigensolver)",
  "saddle_free_newton": f"the dense Hessian {DENSE} (and LAPACK has no float16 eigensolver)",
  "critical_point_newton": f"the dense Hessian {DENSE} (and LAPACK has no float16 eigensolver)",
}


@pytest.mark.parametrize("name", names())
def test_state_sharding_types(name):
  """sharding_test.test_state_sharding_type_init_match_update and ..._preserved_with_jit (JAX ≥
  0.7.2): with explicit sharding, init and update agree on the state's types, jitted or not."""
  if name in NOT_SHARDED:
    pytest.skip(NOT_SHARDED[name])
  mesh = jax.make_mesh((jax.device_count(),), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
  sharding = jax.sharding.NamedSharding(mesh, jax.P(None, "x"))
  tx = make(name)

  def objective(p):
    return jnp.sum(jnp.square(p.astype(jnp.float32)))

  with jax.set_mesh(mesh):
    params = jnp.zeros((2, 8, 4), dtype=jnp.float16, out_sharding=sharding) + 0.5

    def one_update(state):
      return update(name, tx, params, state, params, objective)

    state0 = tx.init(params)
    state1 = jax.jit(tx.init)(params)
    assert types(state1) == types(state0)
    _, state2 = one_update(state0)
    _, state3 = jax.jit(one_update)(state0)
    assert types(state2) == types(state0)
    assert types(state3) == types(state0)
