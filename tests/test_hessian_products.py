"""Tests of hessian/products.py: HVPs, dataset-weighted losses and NNX modules as params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from jaxopt_study import models
from jaxopt_study.hessian import hessian_matrix, hvp, products


def mlp_loss(params, x, y):
  """Mean squared error of a 3-4-2 tanh MLP: a mean over examples, as `batches=` assumes."""
  h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
  return 0.5 * jnp.mean(jnp.sum((h @ params["w2"] + params["b2"][None, :] - y) ** 2, axis=-1))


def mlp_problem(num_examples=50, seed=0):
  rng = np.random.default_rng(seed)
  params = {
    "w1": jnp.asarray(rng.normal(size=(3, 4))),
    "b1": jnp.asarray(rng.normal(size=(4,)) * 0.1),
    "w2": jnp.asarray(rng.normal(size=(4, 2))),
    "b2": jnp.zeros((2,)),
  }
  x = jnp.asarray(rng.normal(size=(num_examples, 3)))
  y = jnp.asarray(rng.normal(size=(num_examples, 2)))
  return params, x, y


def flatten(tree):
  """The leaves of a pytree concatenated on the host, in ravel_pytree order."""
  return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def reference_hessian(loss, params, *args):
  """The Hessian the plain way: jax.hessian of the loss of the raveled parameters."""
  flat, unravel = ravel_pytree(params)
  return jax.jit(jax.hessian(lambda f, *a: loss(unravel(f), *a)))(flat, *args)


def test_hvp_matches_finite_differences_of_gradients(x64):
  params, x, y = mlp_problem()
  flat, unravel = ravel_pytree(params)
  v = np.random.default_rng(1).normal(size=flat.shape)
  grad = jax.jit(jax.grad(lambda f: mlp_loss(unravel(f), x, y)))
  step = 1e-5  # central differences: O(step²) truncation, O(ε/step) rounding, both < 1e-9
  expected = (grad(flat + step * v) - grad(flat - step * v)) / (2 * step)
  product = hvp(mlp_loss, params, x, y)(unravel(jnp.asarray(v)))
  assert jax.tree.structure(product) == jax.tree.structure(params)
  np.testing.assert_allclose(flatten(product), expected, rtol=1e-7, atol=1e-9)
  exact = reference_hessian(mlp_loss, params, x, y) @ v
  np.testing.assert_allclose(flatten(product), exact, rtol=1e-12, atol=1e-13)


def test_hvp_works_inside_jit_and_on_a_plain_array(x64):
  a = jnp.asarray([[2.0, 1.0], [1.0, 3.0]])

  @jax.jit
  def product(theta, v):
    return hvp(lambda p: 0.5 * p @ a @ p + jnp.sum(p**3), theta)(v)

  theta = np.asarray([0.5, -1.0])
  expected = (np.asarray(a) + np.diag(6 * theta)) @ np.asarray([1.0, 2.0])
  np.testing.assert_allclose(product(theta, jnp.asarray([1.0, 2.0])), expected, rtol=1e-14)


def test_batches_give_the_full_data_hessian(x64):
  """Unequal batches (two of one shape, stacked and scanned), weighted by their sizes, give
  exactly the one-batch Hessian, loss and gradient; unweighted, they would not."""
  sizes = (7, 13, 30, 13)
  params, x, y = mlp_problem(num_examples=sum(sizes))
  cuts = np.cumsum(sizes)[:-1]
  batches = list(zip(np.split(x, cuts), np.split(y, cuts), strict=True))
  full = hessian_matrix(mlp_loss, params, x, y)
  np.testing.assert_allclose(
    hessian_matrix(mlp_loss, params, batches=batches), full, rtol=1e-12, atol=1e-13
  )
  problem = products.prepare(mlp_loss, params, (), batches, None, "test")
  np.testing.assert_allclose(problem.data[1].weights, [13 / 63, 13 / 63])  # the stacked pair
  loss, grad, hessian_grad = products.first_and_second_order_jit(*problem)
  np.testing.assert_allclose(loss, mlp_loss(params, x, y), rtol=1e-13)
  np.testing.assert_allclose(hessian_grad, np.asarray(full) @ np.asarray(grad), rtol=1e-11)
  _, full_grad, _ = products.first_and_second_order_jit(
    *products.prepare(mlp_loss, params, (x, y), None, None, "test")
  )
  np.testing.assert_allclose(grad, full_grad, rtol=1e-12)


def test_dict_batches_are_weighted_by_their_examples_or_refused(x64):
  """Batches given as dicts are weighted by the number of examples their arrays share (the Hessian
  of batches of 4, 16 and 30 equals the full data's); a dict with a per-class table beside the
  examples was weighted by its first key in sorted order ("class_weights": 2 for every batch) and
  is refused, naming the arrays."""
  params, x, y = mlp_problem()

  def dict_loss(p, batch):
    return mlp_loss(p, batch["image"], batch["label"])

  cuts = [(0, 4), (4, 20), (20, 50)]
  batches = [{"image": x[a:b], "label": y[a:b]} for a, b in cuts]
  ours = hessian_matrix(dict_loss, params, batches=batches)
  np.testing.assert_allclose(ours, hessian_matrix(mlp_loss, params, x, y), rtol=1e-10, atol=1e-12)
  weighted = [{"class_weights": jnp.ones(2), **batch} for batch in batches]
  with pytest.raises(ValueError, match=r"\['class_weights'\]: 2, .*\['image'\]: 4"):
    hessian_matrix(lambda p, batch: dict_loss(p, batch), params, batches=weighted)


def test_data_errors_name_the_culprit(monkeypatch):
  params, x, y = mlp_problem()
  stacked = []
  group_batches = products._group_batches
  monkeypatch.setattr(products, "_group_batches", lambda *a: stacked.append(1) or group_batches(*a))
  with pytest.raises(ValueError, match="not both"):
    hvp(mlp_loss, params, x, y, batches=[(x, y)])
  with pytest.raises(ValueError, match="non-empty sequence"):
    hvp(mlp_loss, params, batches=[])
  with pytest.raises(ValueError, match=r"batches\[0\] holds 1 argument.*is a single batch"):
    hvp(mlp_loss, params, batches=(x, y))  # a slip for batches=[(x, y)]
  assert not stacked  # refused before the data were copied into stacks
  with pytest.raises(ValueError, match=r"batches\[0\] holds 3 argument.*too many"):
    hvp(mlp_loss, params, batches=[(x, y, y)])
  with pytest.raises(
    ValueError, match=r"batches\[1\].*leading batch dimension.*scalar batches\[1\]\[0\]"
  ):
    hvp(mlp_loss, params, batches=[(x, y), (np.float32(1.0), y)])
  with pytest.raises(
    ValueError,
    match=r"its arrays' leading lengths differ \(batches\[0\]\[0\]: 10, batches\[0\]\[1\]: 9\)",
  ):
    hvp(mlp_loss, params, batches=[(x[:10], y[:9])])
  with pytest.raises(TypeError, match="floating point"):
    hvp(mlp_loss, {"w": np.arange(3)})
  with pytest.raises(ValueError, match="mode='train' applies only"):
    hvp(mlp_loss, params, x, y, mode="train")
  with pytest.raises(ValueError, match="structure"):
    hvp(mlp_loss, params, x, y)({"w1": params["w1"]})


def test_a_loss_that_is_not_a_scalar_is_refused():
  with pytest.raises(TypeError, match=r"returned shape \(3,\).*scalar"):
    hvp(lambda p: p**2, np.ones(3, np.float32))(np.ones(3, np.float32))
  with pytest.raises(TypeError, match=r"returned a tuple.*auxiliary outputs"):  # not a tracer error
    hvp(lambda p: (jnp.sum(p**2), p), np.ones(3, np.float32))(np.ones(3, np.float32))


def small_mlp(batchnorm):
  return models.MLP(
    3,
    2,
    width=4,
    depth=1,
    activation="tanh",
    batchnorm=batchnorm,
    param_dtype=jnp.float64,
    rngs=nnx.Rngs(0),
  )


def module_loss(model, x, y):
  return jnp.mean((model(x) - y) ** 2)


def test_a_module_as_params_differentiates_its_params(x64):
  _, x, y = mlp_problem()
  model = small_mlp(batchnorm=False)
  apply, params, state = models.functional(model)
  expected = reference_hessian(
    lambda p, x, y: jnp.mean((apply(p, state, x, True)[0] - y) ** 2), params, x, y
  )
  np.testing.assert_allclose(hessian_matrix(module_loss, model, x, y), expected, rtol=1e-12)
  v = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
  product = hvp(module_loss, model, x, y)(v)
  np.testing.assert_allclose(flatten(product), expected @ flatten(v), rtol=1e-12)


class NoisyNet(nnx.Module):
  """Noise injection the usual way: the module keeps its `nnx.Rngs` and draws in `__call__`."""

  def __init__(self, rngs):
    self.hidden = nnx.Linear(4, 3, rngs=rngs)
    self.rngs = rngs

  def __call__(self, x):
    h = jnp.tanh(self.hidden(x))
    return h + 0.3 * jax.random.normal(self.rngs.noise(), h.shape)


@pytest.mark.parametrize("mode", [None, "train", "eval"])
def test_a_module_that_keeps_its_rngs_is_measured_at_its_own_draw_and_left_alone(x64, mode):
  """`nnx.view` of the module drew a key from the `nnx.Rngs` it keeps (an `Rngs` answers any
  attribute with a stream): each call moved the caller's RNG count, and the Hessian was that of
  the next noise draw, three calls three answers."""
  x = jax.random.normal(jax.random.key(0), (10, 4), jnp.float64)
  model = NoisyNet(nnx.Rngs(0))

  def loss(module, x):
    return jnp.mean(module(x) ** 2)

  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  expected = reference_hessian(
    lambda p, x: loss(nnx.merge(graphdef, p, rest, copy=True), x), params, x
  )
  count = int(model.rngs.default.count[...])
  for _ in range(2):
    np.testing.assert_allclose(hessian_matrix(loss, model, x, mode=mode), expected, rtol=1e-12)
  assert int(model.rngs.default.count[...]) == count


def test_batchnorm_needs_a_mode_and_follows_it(x64):
  _, x, y = mlp_problem()
  x = 3.0 + x  # far from the initial running mean 0, so that train and eval differ
  model = small_mlp(batchnorm=True)
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  with pytest.raises(ValueError, match="pass mode='train'"):
    hessian_matrix(module_loss, model, x, y)
  apply, params, state = models.functional(model)
  got = {}
  for mode, train in (("train", True), ("eval", False)):
    expected = reference_hessian(
      lambda p, x, y, train=train: jnp.mean((apply(p, state, x, train)[0] - y) ** 2), params, x, y
    )
    got[mode] = hessian_matrix(module_loss, model, x, y, mode=mode)
    np.testing.assert_allclose(got[mode], expected, rtol=1e-11, atol=1e-12)
  assert np.abs(got["train"] - got["eval"]).max() > 1e-2
  after = nnx.state(model, nnx.BatchStat)  # running averages untouched by the train mode
  jax.tree.map(np.testing.assert_array_equal, before, after)
  assert model.norms[0].use_running_average is False  # the caller's module keeps its mode


class DropoutNet(nnx.Module):
  """tanh(W₁x) with dropout before W₂: no BatchNorm, yet its loss depends on the mode."""

  def __init__(self, rngs):
    self.hidden = nnx.Linear(3, 5, param_dtype=jnp.float64, rngs=rngs)
    self.drop = nnx.Dropout(0.5, rngs=rngs)
    self.out = nnx.Linear(5, 2, param_dtype=jnp.float64, rngs=rngs)

  def __call__(self, x):
    return self.out(self.drop(jnp.tanh(self.hidden(x))))


def test_dropout_needs_a_mode_and_eval_turns_it_off(x64):
  """mode='eval' is the module after `module.eval()` (dropout off; it was left on), compared
  with jax.hessian of the eval-mode module; with dropout on and no mode the tools refuse, and a
  module the caller put in eval mode needs none."""
  _, x, y = mlp_problem()
  model = DropoutNet(nnx.Rngs(0))
  with pytest.raises(ValueError, match="dropout that is on"):
    hessian_matrix(module_loss, model, x, y)
  eval_model = nnx.view(model, deterministic=True)
  graphdef, params, rest = nnx.split(eval_model, nnx.Param, ...)
  expected = reference_hessian(
    lambda p, x, y: module_loss(nnx.merge(graphdef, p, rest, copy=True), x, y), params, x, y
  )
  np.testing.assert_allclose(
    hessian_matrix(module_loss, model, x, y, mode="eval"), expected, rtol=1e-12, atol=1e-14
  )
  train = hessian_matrix(module_loss, model, x, y, mode="train")  # one dropout mask
  assert np.abs(train - expected).max() > 1e-2
  np.testing.assert_allclose(hessian_matrix(module_loss, eval_model, x, y), expected, rtol=1e-12)
  assert model.drop.deterministic is False  # the caller's module keeps its mode


SCALE = np.array([1.0, 2.0, 3.0])  # data a loss reads as a global, not as an argument
OFFSET = 1.0  # a Python number it reads the same way


def _global_loss(w):
  return 0.5 * jnp.sum(SCALE * w**2) * OFFSET


class _Fit:
  def __init__(self, x):
    self.x = x

  def loss(self, w):
    return jnp.mean((self.x @ w) ** 2)


def test_a_loss_that_reads_changed_data_is_traced_again(x64, monkeypatch):
  """The kernels are jitted with the loss as a static argument: a second call with the same
  function after the arrays or numbers it reads changed must see the new ones (it returned the
  first call's Hessian), as jax.hessian does."""
  from jaxopt_study import hessian

  w = jnp.ones(3)
  for scale, offset in (([1.0, 2.0, 3.0], 1.0), ([-4.0, 5.0, 6.0], 1.0), ([-4.0, 5.0, 6.0], 2.0)):
    monkeypatch.setitem(_global_loss.__globals__, "SCALE", np.array(scale))
    monkeypatch.setitem(_global_loss.__globals__, "OFFSET", offset)
    expected = np.linalg.eigvalsh(np.asarray(jax.hessian(_global_loss)(w)))
    np.testing.assert_allclose(hessian.spectrum(_global_loss, w).eigenvalues, expected)
    np.testing.assert_allclose(
      hvp(_global_loss, w)(jnp.ones(3)), np.asarray(jax.hessian(_global_loss)(w)).sum(axis=1)
    )
  assert hessian.classify(_global_loss, jnp.zeros(3)).kind == "saddle"
  fit = _Fit(jnp.eye(3))
  for x in (jnp.eye(3), 3 * jnp.eye(3)):
    fit.x = x
    expected = np.linalg.eigvalsh(np.asarray(jax.hessian(fit.loss)(w)))
    np.testing.assert_allclose(hessian.spectrum(fit.loss, w).eigenvalues, expected)
  for seed in (0, 1):  # a closed-over PRNG key, fingerprinted by its key data
    key = jax.random.key(seed)

    def random_bowl(w, key=key):
      return jnp.sum(jax.random.uniform(key, (3,)) * w**2)

    expected = np.sort(2 * np.asarray(jax.random.uniform(key, (3,))))
    np.testing.assert_allclose(hessian.spectrum(lambda w: random_bowl(w), w).eigenvalues, expected)


def test_a_second_call_with_the_same_loss_and_data_does_not_compile_again(x64):
  def loss(w, x):
    return jnp.sum(jnp.tanh(x @ w) ** 2)

  w, x = jnp.ones(4), jnp.arange(12.0).reshape(3, 4) / 10
  hvp(loss, w, x)(jnp.ones(4))
  compiled = products._tree_hvp_jit._cache_size()
  hvp(loss, 2 * w, x + 1.0)(jnp.zeros(4))  # new values of the arguments: the same program
  assert products._tree_hvp_jit._cache_size() == compiled


def test_a_vector_of_the_right_structure_but_another_shape_is_refused_by_path():
  product = hvp(lambda p: jnp.sum(p["w"] ** 2) + p["b"] ** 2, {"w": jnp.ones(2), "b": jnp.ones(())})
  with pytest.raises(ValueError, match=r"hvp: vector\['w'\] has shape \(3,\) where the parameter"):
    product({"w": jnp.ones(3), "b": jnp.ones(())})


def test_an_int_key_is_the_seed_of_jax_random_key():
  """`key=0` failed with "'int' object has no attribute 'dtype'"; now it draws what
  jax.random.key(0) draws, and a key of another kind is refused by name."""
  first = products.host_rng(0).integers(0, 2**31, size=4)
  np.testing.assert_array_equal(
    first, products.host_rng(jax.random.key(0)).integers(0, 2**31, size=4)
  )
  assert not np.array_equal(first, products.host_rng(1).integers(0, 2**31, size=4))
  with pytest.raises(TypeError, match="key='0': pass a JAX PRNG key"):
    products.host_rng("0")
  with pytest.raises(ValueError, match="key"):
    products.host_rng(-1)


def test_an_empty_parameter_array_adds_nothing_to_the_hessian(x64):
  """A model with a 0-size parameter trains; its Hessian is that of the other parameters (every
  tool refused it). Parameters with no entry at all are still refused."""
  params, x, y = mlp_problem()
  with_empty = {**params, "empty": jnp.zeros((0, 4))}

  def loss_with_empty(p, x, y):
    return mlp_loss({k: v for k, v in p.items() if k != "empty"}, x, y) + jnp.sum(p["empty"])

  np.testing.assert_allclose(
    hessian_matrix(loss_with_empty, with_empty, x, y), hessian_matrix(mlp_loss, params, x, y)
  )
  with pytest.raises(ValueError, match="params has no entries"):
    hessian_matrix(lambda p: jnp.sum(p["empty"]), {"empty": jnp.zeros((0, 4))})
