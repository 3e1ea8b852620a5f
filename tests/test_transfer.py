"""Tests for models.transfer: the copied layers, the new head, and freezing under train.train and
sweep.run against a float64 full-batch gradient-descent loop written on plain arrays."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_study import Problem, losses, models, optim, sweep, train
from jaxopt_study import init as initializers

IN, WIDTH, OLD, NEW, EXAMPLES = 5, 6, 3, 4, 12


def trained_mlp(dtype=jnp.float32, **options) -> models.MLP:
  """An MLP whose every parameter is moved off its initialization (as training would)."""
  model = models.MLP(IN, OLD, width=WIDTH, depth=2, param_dtype=dtype, rngs=nnx.Rngs(3), **options)
  params = nnx.state(model, nnx.Param)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(11), len(leaves))
  moved = [
    p + 0.3 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)
  ]
  nnx.update(model, jax.tree.unflatten(treedef, moved))
  return model


def arrays(module: nnx.Module) -> dict:
  """The module's parameters as nested dicts of numpy arrays."""
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(module, nnx.Param)))


class Classifier(nnx.Module):
  """A user's own module: a feature extractor and a classifier under other names."""

  def __init__(self, rngs: nnx.Rngs):
    self.features = nnx.Sequential(nnx.Linear(IN, WIDTH, rngs=rngs), jax.nn.tanh)
    self.classifier = nnx.Linear(WIDTH, OLD, rngs=rngs)

  def __call__(self, x):
    return self.classifier(self.features(x))


def test_the_copied_layers_are_the_trained_ones_and_the_head_is_a_fresh_draw():
  trained = trained_mlp()
  before = arrays(trained)
  t = models.transfer(trained, NEW)
  new = t.model(nnx.Rngs(7))
  after = arrays(new)
  for layer in (0, 1):
    for name in ("kernel", "bias"):
      np.testing.assert_array_equal(after["hidden"][layer][name], before["hidden"][layer][name])
  reference = nnx.Linear(WIDTH, NEW, kernel_init=initializers.glorot_uniform(), rngs=nnx.Rngs(7))
  np.testing.assert_array_equal(after["output"]["kernel"], np.asarray(reference.kernel[...]))
  np.testing.assert_array_equal(after["output"]["bias"], np.zeros(NEW))
  assert new(jnp.ones((2, IN))).shape == (2, NEW)
  assert (t.head, t.frozen) == ("output", ("hidden",))
  # the trained net is left as it was, and later changes to it do not reach the factory
  jax.tree.map(np.testing.assert_array_equal, arrays(trained), before)
  trained.hidden[0].kernel[...] = jnp.zeros((IN, WIDTH))
  np.testing.assert_array_equal(
    arrays(t.model(nnx.Rngs(7)))["hidden"][0]["kernel"], before["hidden"][0]["kernel"]
  )
  other = arrays(t.model(nnx.Rngs(8)))["output"]["kernel"]
  assert not np.allclose(other, after["output"]["kernel"])  # one head per seed


def test_batchnorm_statistics_and_dtype_are_carried_over():
  trained = trained_mlp(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32, batchnorm=True)
  trained(jax.random.normal(jax.random.key(0), (16, IN)) + 2.0, train=True)  # move the statistics
  new = models.transfer(trained, NEW).model(nnx.Rngs(0))
  for index in (0, 1):
    np.testing.assert_array_equal(new.norms[index].mean[...], trained.norms[index].mean[...])
    np.testing.assert_array_equal(new.norms[index].var[...], trained.norms[index].var[...])
  assert new.output.kernel[...].dtype == trained.output.kernel[...].dtype


def test_a_users_own_module_and_a_deep_linear_net():
  own = models.transfer(Classifier(nnx.Rngs(0)), NEW, head="classifier")
  assert own.frozen == ("features",)
  assert own.model(nnx.Rngs(1))(jnp.ones((3, IN))).shape == (3, NEW)
  deep = models.DeepLinear(IN, OLD, width=WIDTH, depth=3, rngs=nnx.Rngs(0))
  t = models.transfer(deep, NEW, head="layers/-1")
  assert (t.head, t.frozen) == ("layers/2", ("layers/0", "layers/1"))
  new = t.model(nnx.Rngs(1))
  assert new.layers[2].kernel.shape == (WIDTH, NEW) and new.layers[2].bias is None
  np.testing.assert_array_equal(new.layers[1].kernel[...], deep.layers[1].kernel[...])


def test_labels_follow_paths_on_any_pytree_of_the_parameters():
  t = models.transfer(trained_mlp(), NEW, freeze=["hidden/-2"])
  assert t.frozen == ("hidden/0",)
  params = nnx.state(t.model(nnx.Rngs(0)), nnx.Param)
  expected = {
    "hidden": {
      0: {"bias": models.FROZEN, "kernel": models.FROZEN},
      1: {"bias": models.TRAINED, "kernel": models.TRAINED},
    },
    "output": {"bias": models.TRAINED, "kernel": models.TRAINED},
  }
  assert t.labels(nnx.to_pure_dict(params)) == expected
  stacked = jax.tree.map(lambda leaf: jnp.stack([leaf, leaf]), params)  # a sweep's members
  assert nnx.to_pure_dict(t.labels(stacked)) == expected
  assert nnx.to_pure_dict(models.transfer(trained_mlp(), NEW, freeze=False).labels(params)) == {
    "hidden": {i: {"bias": models.TRAINED, "kernel": models.TRAINED} for i in (0, 1)},
    "output": {"bias": models.TRAINED, "kernel": models.TRAINED},
  }


def reference_descent(
  params: dict, x, y, frozen, learning_rate: float, steps: int, rates: dict | None = None
) -> dict:
  """Full-batch gradient descent (Algorithm 8.1 with m = all examples) on the tanh MLP's mean
  cross-entropy, written on plain arrays; leaves whose path starts with a `frozen` prefix stay,
  and those under a prefix of `rates` move at its rate instead of `learning_rate`."""

  def loss(p):
    h = x
    for layer in (p["hidden"][0], p["hidden"][1]):
      h = jnp.tanh(h @ layer["kernel"] + layer["bias"][None, :])
    logits = h @ p["output"]["kernel"] + p["output"]["bias"][None, :]
    log_probs = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
    return -jnp.mean(log_probs[jnp.arange(len(y)), y])

  def rate(path) -> float:
    keys = tuple(str(getattr(k, "key", k)) for k in path)
    if any(keys[: len(f)] == f for f in frozen):
      return 0.0
    return next((r for p, r in (rates or {}).items() if keys[: len(p)] == p), learning_rate)

  gradient = jax.grad(loss)
  for _ in range(steps):
    params = jax.tree_util.tree_map_with_path(
      lambda path, p, g: p - rate(path) * g, params, gradient(params)
    )
  return params


def new_task(t: models.Transfer) -> Problem:
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(EXAMPLES, IN)))
  y = jnp.asarray(rng.integers(0, NEW, size=EXAMPLES), jnp.int32)

  def loss(module, batch):
    return losses.softmax_cross_entropy(module(batch[0]), batch[1])

  return Problem(model=t.model, loss=loss, train_data=(x, y))


@pytest.mark.parametrize(
  ("freeze", "frozen"),
  [(True, [("hidden",)]), (False, []), (["hidden/0"], [("hidden", "0")])],
)
def test_train_moves_exactly_what_is_not_frozen_like_a_float64_loop(x64, freeze, frozen):
  trained = trained_mlp(jnp.float64, activation="tanh")
  t = models.transfer(trained, NEW, freeze=freeze)
  problem = new_task(t)
  steps, learning_rate = 6, 0.5
  result = train.train(
    problem, t.optimizer(optim.sgd(learning_rate)), steps=steps, batch_size=EXAMPLES, seed=2
  )
  start = arrays(t.model(nnx.Rngs(2)))
  final = jax.tree.map(np.asarray, nnx.to_pure_dict(result.params))
  expected = reference_descent(start, *problem.train_data, frozen, learning_rate, steps)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-10, atol=1e-12)
  jax.tree.map(close, final, expected)
  for index in (0, 1):
    moved = not np.array_equal(final["hidden"][index]["kernel"], start["hidden"][index]["kernel"])
    assert moved == (not any(("hidden", str(index))[: len(f)] == f for f in frozen))
  assert not np.array_equal(final["output"]["kernel"], start["output"]["kernel"])


def test_frozen_scale_fine_tunes_the_transferred_layers_at_a_fraction_of_the_rate(x64):
  trained = trained_mlp(jnp.float64, activation="tanh")
  t = models.transfer(trained, NEW)
  problem = new_task(t)
  steps, learning_rate, scale = 5, 0.5, 0.25
  tx = t.optimizer(optim.sgd(learning_rate), frozen_scale=scale)
  result = train.train(problem, tx, steps=steps, batch_size=EXAMPLES, seed=1)
  start = arrays(t.model(nnx.Rngs(1)))
  final = jax.tree.map(np.asarray, nnx.to_pure_dict(result.params))
  expected = reference_descent(
    start, *problem.train_data, [], learning_rate, steps, rates={("hidden",): scale * learning_rate}
  )
  close = functools.partial(np.testing.assert_allclose, rtol=1e-10, atol=1e-12)
  jax.tree.map(close, final, expected)


def test_a_sweep_freezes_or_fine_tunes_its_members_by_a_traced_frozen_scale(x64):
  """Over seeds and `frozen_scale` ∈ {0, 1}: each seed's own head on the trained layers, which
  stay bit for bit where frozen, and every member equal to the float64 loop of its own."""
  trained = trained_mlp(jnp.float64, activation="tanh")
  t = models.transfer(trained, NEW)
  problem = new_task(t)
  steps, learning_rate = 4, 0.5
  result = sweep.run(
    problem,
    lambda learning_rate, frozen_scale: t.optimizer(
      optim.sgd(learning_rate), frozen_scale=frozen_scale
    ),
    {"seed": [0, 1], "frozen_scale": [0.0, 1.0]},
    steps=steps,
    eval_every=steps,
    batch_size=EXAMPLES,
    learning_rate=learning_rate,
  )
  heads = []
  for row in result.table:
    params, _ = sweep.member_state(problem, result, row["member"])
    final = jax.tree.map(np.asarray, nnx.to_pure_dict(params))
    start = arrays(t.model(nnx.Rngs(row["seed"])))
    frozen = [("hidden",)] if row["frozen_scale"] == 0.0 else []
    expected = reference_descent(start, *problem.train_data, frozen, learning_rate, steps)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-9, atol=1e-12)
    jax.tree.map(close, final, expected)
    if frozen:
      jax.tree.map(np.testing.assert_array_equal, final["hidden"], arrays(trained)["hidden"])
      heads.append(start["output"]["kernel"])
  assert not np.allclose(*heads)  # one head per seed


@pytest.mark.parametrize(
  ("arguments", "error", "match"),
  [
    ({"new_head_classes": 0}, ValueError, "new_head_classes=0"),
    ({"new_head_classes": -2}, ValueError, "new_head_classes=-2"),
    ({"new_head_classes": 2.5}, ValueError, "new_head_classes=2.5"),
    ({"new_head_classes": True}, ValueError, "new_head_classes=True"),
    ({"head": "classifier"}, ValueError, "no layer 'classifier' in MLP"),
    ({"head": "hidden"}, TypeError, "not an nnx.Linear"),
    ({"head": ""}, ValueError, "must name a layer"),
    ({"freeze": ["hidden/2"]}, ValueError, "index 2 is out of range"),
    ({"freeze": ["encoder"]}, ValueError, "no layer 'encoder'"),
    ({"freeze": ["output"]}, ValueError, "overlaps the head"),
    ({"freeze": ["norms"]}, ValueError, "holds no parameters"),
    ({"freeze": 3}, ValueError, "freeze=3"),
  ],
)
def test_bad_arguments_are_refused_by_name(arguments, error, match):
  arguments = {"new_head_classes": NEW, **arguments}
  with pytest.raises(error, match=match):
    models.transfer(trained_mlp(), **arguments)


def test_a_negative_frozen_scale_is_refused():
  t = models.transfer(trained_mlp(), NEW)
  with pytest.raises(ValueError, match="frozen_scale=-0.5"):
    t.optimizer(optim.sgd(0.1), frozen_scale=-0.5)


def test_trained_must_be_a_module():
  with pytest.raises(TypeError, match="trained is a dict"):
    models.transfer({"output": None}, NEW)
