"""Tests of optim/averaging.py: Polyak averaging (§8.7.3), mean and EMA, against plain numpy."""

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from jaxopt_study import optim

STEPS = 8


def iterate(tx, steps=STEPS, average=True):
  """Runs `tx` on the bowl: (iterates θ_0 ... θ_T, averaged_params after each step), flattened.

  With `average=False` (for a `tx` without averaging) the second array is empty.
  """
  params = helpers.bowl_params()

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(helpers.bowl_loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  iterates, averages = [], []
  for t in range(steps + 1):
    if t > 0:
      params, state = step(params, state)
    iterates.append(ravel_pytree(params)[0])
    if average:
      averages.append(ravel_pytree(optim.averaged_params(state, params))[0])
  return np.stack(iterates), np.asarray(averages)


def test_mean_is_the_mean_of_the_iterates_after_each_update(x64):
  iterates, averages = iterate(optim.polyak_average(optim.momentum(0.05, 0.9), mode="mean"))
  np.testing.assert_array_equal(averages[0], iterates[0])  # before any update: θ̂_0 = θ_0
  for t in range(1, STEPS + 1):  # θ̂_t = (1/t) Σ_{i=1}^t θ_i, θ_0 excluded
    np.testing.assert_allclose(averages[t], np.mean(iterates[1 : t + 1], axis=0), rtol=1e-12)
  assert np.max(np.abs(averages[-1] - iterates[-1])) > 1e-2  # the average lags the iterates


def test_ema_follows_its_recursion(x64):
  decay = 0.7
  iterates, averages = iterate(optim.polyak_average(optim.sgd(0.05), mode="ema", decay=decay))
  expected = iterates[0]
  np.testing.assert_array_equal(averages[0], expected)
  for t in range(1, STEPS + 1):
    expected = decay * expected + (1 - decay) * iterates[t]
    np.testing.assert_allclose(averages[t], expected, rtol=1e-12)


def test_updates_are_the_inner_ones(x64):
  inner = optim.adam(optim.linear_decay(0.1, 0.01, 5))
  averaged, _ = iterate(optim.polyak_average(inner, mode="ema"))
  plain, _ = iterate(inner, average=False)
  np.testing.assert_array_equal(averaged, plain)


def test_averaged_params_found_inside_chain_and_inject_hyperparams(x64):
  chained, chained_avg = iterate(
    optax.chain(optax.clip_by_global_norm(1.0), optim.polyak_average(optim.sgd(0.05)))
  )
  np.testing.assert_allclose(chained_avg[-1], np.mean(chained[1:], axis=0), rtol=1e-12)

  injected = optax.inject_hyperparams(optim.polyak_average)(optim.sgd(0.05), "ema", decay=0.5)
  iterates, averages = iterate(injected, steps=2)  # the traced decay is used, not re-checked
  expected = 0.5 * (0.5 * iterates[0] + 0.5 * iterates[1]) + 0.5 * iterates[2]
  np.testing.assert_allclose(averages[-1], expected, rtol=1e-12)


@pytest.mark.parametrize(
  ("inner", "after"),
  [
    (optax.scale_by_adam(), optax.scale_by_learning_rate(0.1)),
    (optim.sgd(0.1), optax.apply_every(2)),
    (optim.sgd(0.1), optax.clip(0.05)),
  ],
  ids=["learning_rate", "apply_every", "clip"],
)
def test_the_average_is_of_the_points_visited_whatever_follows_it_in_a_chain(x64, inner, after):
  """A learning rate, accumulation or clipping after the averaging changes the steps; the average
  is still that of the iterates (it assumed θ + its inner update was the next point: with Adam's
  direction and a learning rate after it the average was −0.85 where the iterates' was 0.25)."""
  iterates, averages = iterate(optax.chain(optim.polyak_average(inner), after))
  for t in range(1, STEPS + 1):  # atol: a coordinate whose iterates' mean is 0 to rounding
    expected = np.mean(iterates[1 : t + 1], axis=0)
    np.testing.assert_allclose(averages[t], expected, rtol=1e-12, atol=1e-15)


def test_the_mean_follows_a_long_float32_run():
  """200 000 float32 iterates drifting by 2e-3 around 1: the uncompensated running mean stopped
  following them (its increments fell below half a rounding step; off by 8.8e-4); with Kahan
  summation it is the float64 mean of the same iterates to float32 precision."""
  steps = 200_000
  t = np.arange(1, steps + 1)
  path = (1.0 + 1e-3 * np.sin(0.37 * t) + 2e-3 * t / steps).astype(np.float32)
  follow = optax.GradientTransformation(  # moves the params to the point given as the "gradient"
    lambda p: optax.EmptyState(), lambda u, s, p=None: (jax.tree.map(jnp.subtract, u, p), s)
  )
  tx = optim.polyak_average(follow)

  def body(carry, target):
    params, state = carry
    updates, state = tx.update(target, state, params)
    return (optax.apply_updates(params, updates), state), None

  start = jnp.ones([], jnp.float32)
  params, state = jax.jit(lambda c: jax.lax.scan(body, c, jnp.asarray(path))[0])(
    (start, tx.init(start))
  )
  averaged = float(optim.averaged_params(state, params))
  assert abs(averaged - path.astype(np.float64).mean()) < 1e-6


def test_averaged_params_of_an_nnx_optimizer():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  kernel_0 = model.kernel[...]
  optimizer = nnx.Optimizer(model, optim.polyak_average(optim.sgd(0.1)), wrt=nnx.Param)
  grads = nnx.grad(lambda m: jnp.sum(m(jnp.ones((1, 2))) ** 2))(model)
  optimizer.update(model, grads)
  optimizer.update(model, nnx.grad(lambda m: jnp.sum(m(jnp.ones((1, 2))) ** 2))(model))
  avg = optim.averaged_params(optimizer.opt_state, nnx.state(model, nnx.Param))
  kernel_1 = kernel_0 - 0.1 * grads.kernel[...]
  np.testing.assert_allclose(avg["kernel"][...], (kernel_1 + model.kernel[...]) / 2, rtol=1e-6)


def test_errors():
  params = {"x": jnp.ones(2)}
  with pytest.raises(ValueError, match="found 0 PolyakState"):
    optim.averaged_params(optim.sgd(0.1).init(params), params)
  tx = optim.polyak_average(optim.sgd(0.1))
  twice = optax.chain(tx, optim.polyak_average(optax.identity()))
  with pytest.raises(ValueError, match="found 2 PolyakState"):
    optim.averaged_params(twice.init(params), params)
  with pytest.raises(ValueError, match=r"shapes of the averaged ones \[\(2,\)\]; got \[\(3,\)\]"):
    optim.averaged_params(tx.init(params), {"x": jnp.ones(3)})
  with pytest.raises(ValueError, match="needs params"):
    tx.update(params, tx.init(params))
  with pytest.raises(ValueError, match="mode='median'"):
    optim.polyak_average(optim.sgd(0.1), mode="median")
  with pytest.raises(TypeError, match="polyak_average: inner .* the function sgd, which builds"):
    optim.polyak_average(optax.sgd)
  with pytest.raises(ValueError, match=r"decay=1.0 must be in \[0, 1\)"):
    optim.polyak_average(optim.sgd(0.1), mode="ema", decay=1.0)


def test_init_on_abstract_params_describes_the_state():
  """init on jax.ShapeDtypeStruct leaves (to plan a sharded state) gives the state's shapes."""
  tx = optim.polyak_average(optim.adam(0.1), mode="ema")
  abstract = {"w": jax.ShapeDtypeStruct((2, 3), jnp.float32)}
  state = tx.init(abstract)
  expected = jax.eval_shape(tx.init, abstract)
  assert state.avg_params["w"].shape == (2, 3) and state.avg_params["w"].dtype == jnp.float32
  assert jax.tree.map(jnp.shape, state) == jax.tree.map(jnp.shape, expected)
