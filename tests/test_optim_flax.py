"""Every optimizer in `flax.nnx.Optimizer`, by the README's pattern, equals a plain Optax loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxopt_study import optim

X = jax.random.normal(jax.random.key(0), (32, 4))
Y = jax.random.randint(jax.random.key(1), (32,), 0, 3)

HYPERPARAMETERS = {
  "sgd": {"learning_rate": 0.1},
  "momentum": {"learning_rate": 0.1},
  "nesterov": {"learning_rate": 0.1},
  "adagrad": {"learning_rate": 0.1},
  "rmsprop": {"learning_rate": 0.01},
  "rmsprop_nesterov": {"learning_rate": 0.01},
  "adam": {"learning_rate": 0.01},
  "adadelta": {},
  "delta_bar_delta": {"learning_rate": 0.1, "kappa": 0.01, "phi": 0.1, "theta": 0.7},
  "newton": {"damping": 0.1},
  "saddle_free_newton": {"damping": 0.1},
  "conjugate_gradient": {},
  "bfgs": {},
  "lbfgs": {},
}


class Net(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(4, 6, rngs=rngs)
    self.out = nnx.Linear(6, 3, rngs=rngs)

  def __call__(self, x):
    return self.out(jnp.tanh(self.hidden(x)))


def loss(model: nnx.Module) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(model(X), Y).mean()


def flax_steps(tx: optax.GradientTransformation, steps: int) -> nnx.State:
  """The README's pattern: nnx.Optimizer, grads from nnx.value_and_grad, the loss as value_fn."""
  model = Net(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)

  def value_fn(params):
    return loss(nnx.merge(graphdef, params, rest))

  @nnx.jit
  def step(model, optimizer):
    value, grads = nnx.value_and_grad(loss)(model)
    optimizer.update(model, grads, value=value, grad=grads, value_fn=value_fn)

  for _ in range(steps):
    step(model, optimizer)
  return nnx.state(model, nnx.Param)


def optax_steps(tx: optax.GradientTransformation, steps: int) -> nnx.State:
  """The same steps by a plain Optax loop on the pure parameter arrays."""
  graphdef, params, rest = nnx.split(Net(nnx.Rngs(0)), nnx.Param, ...)
  params = nnx.as_pure(params)

  def value_fn(p):
    return loss(nnx.merge(graphdef, p, rest))

  @jax.jit
  def step(params, state):
    value, grads = jax.value_and_grad(value_fn)(params)
    updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=value_fn)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params


LINE_SEARCHES = ("bfgs", "conjugate_gradient", "lbfgs")  # 10-15 s each to compile, twice


@pytest.mark.parametrize(
  "name",
  [
    pytest.param(name, marks=pytest.mark.slow) if name in LINE_SEARCHES else name
    for name in sorted(HYPERPARAMETERS)
  ],
)
def test_every_optimizer_in_nnx_optimizer_equals_the_plain_optax_loop(name):
  assert set(HYPERPARAMETERS) == set(optim.OPTIMIZERS)
  tx = optim.OPTIMIZERS[name](**HYPERPARAMETERS[name])
  ours, theirs = flax_steps(tx, 3), optax_steps(tx, 3)
  start = nnx.as_pure(nnx.state(Net(nnx.Rngs(0)), nnx.Param))
  moved = max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(nnx.as_pure(ours)), jax.tree.leaves(start), strict=True)
  )
  assert moved > 1e-4
  for a, b in zip(jax.tree.leaves(nnx.as_pure(ours)), jax.tree.leaves(theirs), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["newton", "saddle_free_newton", "bfgs", "lbfgs"])
def test_pure_array_grads_in_nnx_optimizer_are_refused_saying_what_to_pass(name):
  """nnx.Optimizer keeps only the nnx.Param entries of the grads: pure arrays arrive empty."""
  model = Net(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optim.OPTIMIZERS[name](**HYPERPARAMETERS[name]), wrt=nnx.Param)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  value_fn = lambda p: loss(nnx.merge(graphdef, p, rest))  # noqa: E731
  value, grads = jax.value_and_grad(value_fn)(nnx.as_pure(params))
  with pytest.raises(ValueError, match="grads has 0 arrays where params has 4.*nnx.grad"):
    optimizer.update(model, grads, value=value, grad=grads, value_fn=value_fn)


def test_nesterov_params_reads_an_nnx_optimizers_state():
  """The velocity inside nnx.Optimizer is wrapped in OptVariables, the params in Params: the
  pairing once failed with "pytree structure error: different types"."""
  model = Net(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optim.nesterov(0.1, momentum=0.9), wrt=nnx.Param)
  for _ in range(3):
    optimizer.update(model, nnx.grad(loss)(model))
  lookahead = nnx.state(model, nnx.Param)
  theta = optim.nesterov_params(lookahead, optimizer.opt_state, 0.9)
  plain = optim.nesterov_params(nnx.to_pure_dict(lookahead), optimizer.opt_state, 0.9)
  assert isinstance(theta, nnx.State)  # the form it was given
  for ours, reference in zip(jax.tree.leaves(theta), jax.tree.leaves(plain), strict=True):
    np.testing.assert_array_equal(ours, reference)
  assert optax.tree.norm(optax.tree.sub(plain, nnx.to_pure_dict(lookahead))) > 0


def test_nesterov_params_recovers_the_books_theta(x64):
  """Alg. 8.3 in float64 numpy on a quadratic: the held θ̃ minus α v is the book's θ."""
  a = np.diag([1.0, 10.0])
  theta = np.array([1.0, -1.0])
  velocity = np.zeros(2)
  lr, alpha = 0.05, 0.9
  tx = optim.nesterov(lr, momentum=alpha)
  lookahead = {"w": jnp.asarray(theta)}
  state = tx.init(lookahead)
  for _ in range(7):
    g = a @ (theta + alpha * velocity)
    velocity = alpha * velocity - lr * g
    theta = theta + velocity
    grads = {"w": jnp.asarray(a) @ lookahead["w"]}
    updates, state = tx.update(grads, state, lookahead)
    lookahead = optax.apply_updates(lookahead, updates)
  np.testing.assert_allclose(lookahead["w"], theta + alpha * velocity, rtol=1e-12)
  recovered = optim.nesterov_params(lookahead, state, momentum=alpha)
  np.testing.assert_allclose(recovered["w"], theta, rtol=1e-12)
  chained = optax.chain(optax.clip_by_global_norm(1e9), tx)
  with pytest.raises(ValueError, match="0 momentum states"):
    optim.nesterov_params(lookahead, optim.adam(0.1).init(lookahead))
  assert chained.init(lookahead) is not None
