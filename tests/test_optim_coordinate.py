"""Tests of optim/coordinate.py: block coordinate descent (§8.7.2), one block per step, cyclic."""

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_study import optim

LAYERS = {"b1": 0, "w1": 0, "b2": 1, "w2": 1}  # two blocks: the first layer, then the second


def mlp():
  return helpers.tiny_mlp_problem()


def trajectory(tx, steps):
  """[(params, grads, updates, state)] before and at each step on the tiny MLP, jitted once."""
  params, loss = mlp()
  traces = []

  @jax.jit
  def step(params, state):
    traces.append(None)  # runs only while tracing
    grads = jax.grad(loss)(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, grads, updates

  state = tx.init(params)
  path = []
  for _ in range(steps):
    new_params, state, grads, updates = step(params, state)
    path.append((params, grads, updates, state))
    params = new_params
  path.append((params, None, None, state))
  assert len(traces) == 1  # the switch on the block index does not recompile
  return path


def test_every_leaf_its_own_block_in_leaf_order(x64):
  path = trajectory(optim.coordinate_descent(optim.sgd(0.1)), steps=8)
  names = ["b1", "b2", "w1", "w2"]  # jax.tree leaf order of the dict: sorted keys
  for t in range(8):
    params, grads, updates, _ = path[t]
    new_params = path[t + 1][0]
    active = names[t % 4]
    for name in names:
      if name == active:  # Alg. 8.1 on the active leaf, at the gradient of the full params
        np.testing.assert_allclose(updates[name], -0.1 * grads[name], rtol=1e-15)
        assert np.max(np.abs(new_params[name] - params[name])) > 1e-6
      else:
        np.testing.assert_array_equal(updates[name], np.zeros_like(updates[name]))
        np.testing.assert_array_equal(new_params[name], params[name])


def test_blocks_as_pytree_and_as_callable(x64):
  by_tree = trajectory(optim.coordinate_descent(optim.sgd(0.1), LAYERS), steps=4)
  for t in range(4):
    moved = {name for name, u in by_tree[t][2].items() if np.any(u != 0)}
    assert moved == ({"b1", "w1"} if t % 2 == 0 else {"b2", "w2"})

  def by_layer(params):
    return {name: int(name[-1]) - 1 for name in params}

  by_callable = trajectory(optim.coordinate_descent(optim.sgd(0.1), by_layer), steps=4)
  for (p_tree, *_), (p_callable, *_) in zip(by_tree, by_callable, strict=True):
    jax.tree.map(np.testing.assert_array_equal, p_tree, p_callable)


def test_steps_per_block_gives_each_block_k_consecutive_steps(x64):
  """Step t moves block ⌊t / k⌋ mod n; k = 1 is the default cycling."""
  path = trajectory(optim.coordinate_descent(optim.sgd(0.1), LAYERS, steps_per_block=3), steps=9)
  for t in range(9):
    moved = {name for name, u in path[t][2].items() if np.any(u != 0)}
    assert moved == ({"b1", "w1"} if (t // 3) % 2 == 0 else {"b2", "w2"})
  default = trajectory(optim.coordinate_descent(optim.sgd(0.1), LAYERS), steps=4)
  one = trajectory(optim.coordinate_descent(optim.sgd(0.1), LAYERS, steps_per_block=1), steps=4)
  for (p_default, *_), (p_one, *_) in zip(default, one, strict=True):
    jax.tree.map(np.testing.assert_array_equal, p_default, p_one)


@pytest.mark.slow  # 45 s of block descent
def test_many_steps_per_block_minimize_a_quadratic_block(x64):
  """k exact steps on a separable block reach its minimizer before the other block moves."""
  curvature = {"a": jnp.asarray([1.0, 2.0]), "b": jnp.asarray([4.0])}

  def loss(p):  # ½ Σ c θ², plus a coupling that moves b's minimizer with a
    return 0.5 * sum(jnp.sum(curvature[k] * p[k] ** 2) for k in p) + p["a"][0] * p["b"][0]

  tx = optim.coordinate_descent(optim.sgd(0.2), {"a": 0, "b": 1}, steps_per_block=200)
  params = {"a": jnp.asarray([1.0, -1.0]), "b": jnp.asarray([3.0])}
  state = tx.init(params)
  for _ in range(400):  # one visit to a, then one to b
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  # a minimized with b = 3 held: a₀ = −b/1, a₁ = 0; then b minimized with that a: b = −a₀/4
  np.testing.assert_allclose(params["a"], [-3.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(params["b"], [0.75], atol=1e-12)


@pytest.mark.parametrize("inner", ["newton", "conjugate_gradient"])
def test_a_second_order_inner_minimizes_each_block_given_the_others(x64, inner):
  """Block Gauss-Seidel on a coupled quadratic ½ θᵀAθ − bᵀθ: Newton on a block is the exact
  block minimizer θ_B ← A_BB⁻¹ (b_B − A_B,rest θ_rest), so each step equals a float64 loop of
  that; CG (exact line search on a quadratic) reaches it within the block's size in steps.
  `grad=` and `value_fn=` reach the inner restricted to the block (they crashed: "grad has 3
  arrays where params has 1")."""
  a_matrix = np.asarray(
    [[4.0, 1.0, 0.5, 0.2], [1.0, 3.0, 0.3, 0.1], [0.5, 0.3, 2.0, 0.4], [0.2, 0.1, 0.4, 1.5]]
  )
  b_vector = np.asarray([1.0, -2.0, 0.5, 1.0])
  layout = {"u": slice(0, 2), "v": slice(2, 3), "w": slice(3, 4)}  # three blocks, leaf order

  def loss(p):
    theta = jnp.concatenate([p["u"], p["v"], p["w"]])
    return 0.5 * theta @ a_matrix @ theta - b_vector @ theta

  steps_per_block = 1 if inner == "newton" else 2
  tx = optim.coordinate_descent(getattr(optim, inner)(), steps_per_block=steps_per_block)
  params = {"u": jnp.asarray([1.0, 1.0]), "v": jnp.asarray([-1.0]), "w": jnp.asarray([2.0])}
  state = tx.init(params)
  theta = np.asarray([1.0, 1.0, -1.0, 2.0])
  for sweep in range(4):
    for name in ("u", "v", "w"):
      for _ in range(steps_per_block):
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
        params = optax.apply_updates(params, updates)
      block = layout[name]
      rest = np.ones(4, bool)
      rest[block] = False
      rhs = b_vector[block] - a_matrix[block][:, rest] @ theta[rest]
      theta[block] = np.linalg.solve(a_matrix[block][:, block], rhs)
      got = np.concatenate([params["u"], params["v"], params["w"]])
      np.testing.assert_allclose(got, theta, rtol=1e-10, atol=1e-12, err_msg=f"{sweep} {name}")


def test_each_block_keeps_its_own_adam_state(x64):
  inner = optim.adam(optim.linear_decay(0.05, 0.005, 3))  # the schedule follows each block's count
  path = trajectory(optim.coordinate_descent(inner, LAYERS), steps=6)
  final_params, _, _, final_state = path[-1]
  for block, names in enumerate([("b1", "w1"), ("b2", "w2")]):
    params = {name: path[0][0][name] for name in names}
    state = inner.init(params)
    for t in range(block, 6, 2):  # the block's own steps, with the gradients it was given there
      grads = {name: path[t][1][name] for name in names}
      updates, state = inner.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    adam_state = final_state.inner_states[block].inner_state[0]
    assert int(adam_state.count) == int(state[0].count) == 3
    for name in names:
      np.testing.assert_allclose(final_params[name], params[name], rtol=1e-12)
      np.testing.assert_allclose(adam_state.mu[name], state[0].mu[name], rtol=1e-12)
      np.testing.assert_allclose(adam_state.nu[name], state[0].nu[name], rtol=1e-12)


@pytest.mark.parametrize(
  ("blocks", "match"),
  [
    ({"b1": 0, "w1": 0, "b2": 2, "w2": 2}, "block id 1 is used by no leaf"),
    ({"b1": 0, "w1": -1, "b2": 1, "w2": 1}, "block id -1 in blocks must be a non-negative int"),
    ({"b1": 0, "w1": 0.5, "b2": 1, "w2": 1}, "block id 0.5"),
    ({"b1": True, "w1": 0, "b2": 1, "w2": 1}, "block id True"),
  ],
)
def test_bad_blocks_raise_at_construction(blocks, match):
  with pytest.raises(ValueError, match=match):
    optim.coordinate_descent(optim.sgd(0.1), blocks)


@pytest.mark.parametrize("steps_per_block", [0, -2, 1.5, True])
def test_bad_steps_per_block_raise_at_construction(steps_per_block):
  with pytest.raises(ValueError, match="steps_per_block"):
    optim.coordinate_descent(optim.sgd(0.1), steps_per_block=steps_per_block)


def test_an_inner_that_is_not_a_transformation_is_refused_at_construction():
  with pytest.raises(TypeError, match="coordinate_descent: inner must be an Optax transformation"):
    optim.coordinate_descent("sgd")
  with pytest.raises(TypeError, match="the function sgd, which builds one: call it"):
    optim.coordinate_descent(optim.sgd)


def test_blocks_of_the_wrong_structure_raise_at_init():
  tx = optim.coordinate_descent(optim.sgd(0.1), {"w1": 0, "w2": 1})
  with pytest.raises(ValueError, match="blocks has structure"):
    tx.init({"w1": jnp.ones(2), "w2": jnp.ones(2), "b": jnp.ones(1)})
  callable_blocks = optim.coordinate_descent(optim.sgd(0.1), lambda p: {k: 1 for k in p})
  with pytest.raises(ValueError, match="block id 0 is used by no leaf"):
    callable_blocks.init({"w": jnp.ones(2)})


def test_mixed_precision_gradients_under_multi_steps():
  """bfloat16 gradients on float32 params (and the reverse) change the dtype of the active
  block's update and Adam state; every branch of the switch must agree (optax.MultiSteps)."""
  params = {"a": jnp.ones(2, jnp.float32), "b": jnp.ones(3, jnp.bfloat16)}
  grads = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(3, jnp.float16)}
  tx = optim.coordinate_descent(optim.adam(0.1))
  multi = optax.MultiSteps(tx, every_k_schedule=1)
  expected, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  updates, _ = jax.jit(multi.update)(grads, multi.init(params), params)
  assert jax.tree.map(lambda u: u.dtype, updates) == {"a": jnp.float32, "b": jnp.float32}
  chex.assert_trees_all_close(updates, expected)
  # Adam's first step is −ε sign(g), up to Optax's bias correction in the gradients' bfloat16
  np.testing.assert_allclose(updates["a"], -0.1, rtol=2e-3)
  np.testing.assert_array_equal(updates["b"], 0.0)


def test_tree_map_params_with_blocks_as_a_pytree():
  params = {"a": jnp.ones(2), "b": jnp.ones(3)}
  tx = optim.coordinate_descent(optim.adam(0.1), blocks={"a": 0, "b": 1})
  state = tx.init(params)
  chex.assert_trees_all_equal(optax.tree.map_params(tx, lambda v: v, state), state)
  with pytest.raises(ValueError, match="pass blocks as a pytree"):
    default = optim.coordinate_descent(optim.adam(0.1))
    optax.tree.map_params(default, lambda v: v, default.init(params))
