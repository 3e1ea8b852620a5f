"""Tests for jaxopt_study.models: shapes, hand-written references, BatchNorm, functional API."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_study import models

BATCH, IN, OUT = 6, 5, 3


@pytest.fixture(scope="module")
def x() -> jax.Array:
  return jax.random.normal(jax.random.key(0), (BATCH, IN))


def _kernel(layer: nnx.Linear) -> np.ndarray:
  return np.asarray(layer.kernel[...], np.float64)


@pytest.mark.parametrize(
  ("name", "options", "input_shape"),
  [
    ("mlp", {"width": 8, "depth": 2}, (BATCH, IN)),
    ("mlp", {"width": 8, "depth": 0}, (BATCH, IN)),
    ("mlp", {"width": 8, "depth": 3, "batchnorm": True, "activation": "gelu"}, (BATCH, IN)),
    ("deep_linear", {"width": 8, "depth": 3}, (BATCH, IN)),
    ("rnn", {"hidden": 8}, (BATCH, 4, IN)),
  ],
)
def test_output_shapes(name, options, input_shape):
  model = models.build_model(name, IN, OUT, **options)
  inputs = jnp.ones(input_shape)
  for train in (True, False):
    chex.assert_shape(model(inputs, train=train), (BATCH, OUT))


def test_mlp_matches_hand_written_forward_pass(x):
  model = models.build_model("mlp", IN, OUT, width=7, depth=2, activation="tanh")
  for layer in model.linear_layers():  # non-zero biases, so that they are checked too
    layer.bias[...] = jnp.linspace(-1.0, 1.0, layer.bias.shape[0])
  (w1, w2, w3), (b1, b2, b3) = zip(
    *[(_kernel(la), np.asarray(la.bias[...], np.float64)) for la in model.linear_layers()],
    strict=True,
  )
  h = np.asarray(x, np.float64)
  expected = np.tanh(np.tanh(h @ w1 + b1) @ w2 + b2) @ w3 + b3
  np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-5)
  preactivations = model.preactivations(x)
  assert len(preactivations) == 3
  np.testing.assert_allclose(preactivations[0], h @ w1 + b1, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(preactivations[-1], model(x))


def test_residual_mlp_matches_hand_written_forward_pass(x):
  """h₁ = tanh(W₁x + b₁), h₂ = h₁ + tanh(W₂h₁ + b₂), h₃ = h₂ + tanh(W₃h₂ + b₃), out = W₄h₃ + b₄;
  the same parameter shapes as the plain MLP of the same width and depth."""
  model = models.build_model("residual_mlp", IN, OUT, width=7, depth=3, activation="tanh")
  for layer in model.linear_layers():
    layer.bias[...] = jnp.linspace(-1.0, 1.0, layer.bias.shape[0])
  kernels = [_kernel(layer) for layer in model.linear_layers()]
  biases = [np.asarray(layer.bias[...], np.float64) for layer in model.linear_layers()]
  h = np.tanh(np.asarray(x, np.float64) @ kernels[0] + biases[0])
  for w, b in zip(kernels[1:-1], biases[1:-1], strict=True):
    h = h + np.tanh(h @ w + b)
  np.testing.assert_allclose(model(x), h @ kernels[-1] + biases[-1], rtol=1e-5, atol=1e-5)
  plain = models.build_model("mlp", IN, OUT, width=7, depth=3)
  shapes = [jax.tree.map(jnp.shape, nnx.state(m, nnx.Param)) for m in (model, plain)]
  assert jax.tree.leaves(shapes[0]) == jax.tree.leaves(shapes[1])
  with pytest.raises(ValueError, match="depth"):
    models.build_model("residual_mlp", IN, OUT, depth=0)


def test_deep_linear_is_the_product_of_its_kernels(x64):
  model = models.DeepLinear(
    IN, OUT, width=4, depth=3, param_dtype=jnp.float64, rngs=nnx.Rngs(params=1)
  )
  w1, w2, w3 = (_kernel(layer) for layer in model.linear_layers())
  assert w1.shape == (IN, 4) and w2.shape == (4, 4) and w3.shape == (4, OUT)
  x = np.random.default_rng(0).normal(size=(BATCH, IN))
  end_to_end = np.zeros((IN, OUT))  # W₁W₂W₃ written out entry by entry
  for i in range(IN):
    for j in range(OUT):
      end_to_end[i, j] = sum(w1[i, a] * w2[a, b] * w3[b, j] for a in range(4) for b in range(4))
  np.testing.assert_allclose(model(jnp.asarray(x)), x @ end_to_end, rtol=1e-12)
  np.testing.assert_allclose(model.preactivations(jnp.asarray(x))[0], x @ w1, rtol=1e-12)


def test_rnn_matches_python_loop():
  model = models.RNN(IN, OUT, hidden=4, activation="tanh", rngs=nnx.Rngs(params=2))
  w_x, w_h, w_out = _kernel(model.input), _kernel(model.recurrent), _kernel(model.output)
  b, b_out = np.asarray(model.input.bias[...]), np.asarray(model.output.bias[...])
  np.testing.assert_allclose(w_h.T @ w_h, np.eye(4), atol=1e-6)  # orthogonal by default
  xs = np.random.default_rng(1).normal(size=(BATCH, 9, IN))
  expected = np.zeros((BATCH, OUT))
  for n in range(BATCH):
    h = np.zeros(4)
    for t in range(9):
      h = np.tanh(xs[n, t] @ w_x + h @ w_h + b)
    expected[n] = h @ w_out + b_out
  # float32 model against a float64 loop: 9 steps of O(1) values, rounding errors ~1e-7 each.
  np.testing.assert_allclose(model(jnp.asarray(xs, jnp.float32)), expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_statistics_update_only_in_train_mode(x):
  model = models.build_model("mlp", IN, OUT, width=8, depth=2, batchnorm=True)
  apply, params, state = models.functional(model)
  assert len(jax.tree.leaves(state)) == 4  # running mean and variance of two BatchNorm layers
  _, state_eval = apply(params, state, x, False)
  chex.assert_trees_all_equal(state_eval, state)
  _, state_train = apply(params, state, 3.0 + x, True)
  for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(state_train), strict=True):
    assert not np.allclose(old, new)
  # Running mean of the first layer: momentum 0.99 towards the batch mean of W₁x + b.
  batch_mean = jnp.mean(model.linear_layers()[0](3.0 + x), axis=0)
  np.testing.assert_allclose(state_train["norms"][0]["mean"][...], 0.01 * batch_mean, rtol=1e-5)


def test_batchnorm_eval_mode_uses_running_averages(x):
  model = models.build_model("mlp", IN, OUT, width=8, depth=1, batchnorm=True)
  model.norms[0].mean[...] = jnp.full((8,), 0.5)
  model.norms[0].var[...] = jnp.full((8,), 4.0)
  z = model.linear_layers()[0](x)
  h = jax.nn.relu((z - 0.5) / jnp.sqrt(4.0 + 1e-5))  # BatchNorm scale 1 and bias 0 at init
  np.testing.assert_allclose(model(x, train=False), model.output(h), rtol=1e-5, atol=1e-6)
  assert not np.allclose(model(x, train=True), model.output(h), atol=1e-3)


def test_float64_batchnorm_keeps_float64_running_averages(x64):
  model = models.MLP(
    IN, OUT, width=8, depth=1, batchnorm=True, param_dtype=jnp.float64, rngs=nnx.Rngs(0)
  )
  x = jnp.linspace(0.0, 1.0, 5 * IN, dtype=jnp.float64).reshape(5, IN) + 1 / 3
  model(x, train=True)
  mean = model.norms[0].mean[...]
  assert mean.dtype == jnp.float64 and model.norms[0].var[...].dtype == jnp.float64
  batch_mean = jnp.mean(model.linear_layers()[0](x), axis=0)
  np.testing.assert_allclose(mean, 0.01 * batch_mean, rtol=1e-13)


@pytest.mark.parametrize("train", [True, False])
def test_functional_apply_equals_module_call(x, train):
  model = models.build_model("mlp", IN, OUT, width=8, depth=2, batchnorm=True)
  apply, params, state = models.functional(model)
  outputs, new_state = jax.jit(apply, static_argnames="train")(params, state, x, train=train)
  expected = model(x, train=train)  # mutates the module's running averages in train mode
  np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)
  _, _, module_state = nnx.split(model, nnx.Param, ...)
  chex.assert_trees_all_close(new_state, module_state, rtol=1e-6)


def test_functional_model_without_state(x):
  apply, params, state = models.functional(
    models.build_model("deep_linear", IN, OUT, width=4, depth=2)
  )
  assert jax.tree.leaves(state) == []
  outputs, new_state = apply(params, state, x, True)
  chex.assert_shape(outputs, (BATCH, OUT))
  assert jax.tree.leaves(new_state) == []


def _stack(trees):
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def test_vmap_over_two_parameter_sets(x):
  members = [
    models.functional(models.build_model("mlp", IN, OUT, width=8, depth=1, batchnorm=True, seed=s))
    for s in (0, 1)
  ]
  apply = members[0].apply
  params = _stack([m.params for m in members])
  state = _stack([m.model_state for m in members])
  batched = jax.jit(jax.vmap(functools.partial(apply, train=True), in_axes=(0, 0, None)))
  outputs, new_states = batched(params, state, x)
  chex.assert_shape(outputs, (2, BATCH, OUT))
  assert not np.allclose(outputs[0], outputs[1])
  for i, member in enumerate(members):
    expected, expected_state = member.apply(member.params, member.model_state, x, True)
    np.testing.assert_allclose(outputs[i], expected, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(
      jax.tree.map(lambda a, i=i: a[i], new_states), expected_state, rtol=1e-5
    )


def test_build_model_scales_every_kernel():
  base = models.build_model("rnn", IN, OUT, hidden=4, seed=3, init="orthogonal")
  scaled = models.build_model("rnn", IN, OUT, hidden=4, seed=3, init="orthogonal", init_scale=0.5)
  for name in ("input", "recurrent", "output"):
    np.testing.assert_array_equal(
      getattr(scaled, name).kernel[...], 0.5 * getattr(base, name).kernel[...]
    )
  np.testing.assert_array_equal(scaled.input.bias[...], 0.0)
  other_seed = models.build_model("rnn", IN, OUT, hidden=4, seed=4, init="orthogonal")
  assert not np.allclose(other_seed.input.kernel[...], base.input.kernel[...])


@pytest.mark.parametrize(
  ("name", "options", "match"),
  [
    ("cnn", {}, "unknown model 'cnn'"),
    ("mlp", {"widht": 8}, "widht"),
    ("deep_linear", {"depth": 2}, "width"),
    ("mlp", {"init": "xavier"}, "xavier"),
    ("mlp", {"kernel_init": None}, "kernel_init"),
    ("mlp", {"activation": "swish"}, "activation='swish'"),
    ("mlp", {"depth": -1}, "depth"),
    ("rnn", {"hidden": 0}, "hidden"),
  ],
)
def test_build_model_errors(name, options, match):
  with pytest.raises(ValueError, match=match):
    models.build_model(name, IN, OUT, **options)


def test_registries():
  assert set(models.MODELS) == {"mlp", "residual_mlp", "deep_linear", "rnn"}
  assert {"relu", "tanh", "sigmoid", "linear", "gelu", "softplus"} <= set(models.ACTIVATIONS)
  z = jnp.linspace(-2.0, 2.0, 5)
  np.testing.assert_array_equal(models.ACTIVATIONS["linear"](z), z)


def _mlp_arrays(depth: int, seed: int, width: int = 8):
  return models.functional(
    models.build_model("mlp", IN, OUT, width=width, depth=depth, batchnorm=True, seed=seed)
  )


def test_inherit_lower_layers_keeps_the_shallow_features_and_the_deep_top(x):
  """§8.7.4: the grown net computes the shallow net's hidden layer, under its own top layers."""
  shallow = models.build_model("mlp", IN, OUT, width=8, depth=1, batchnorm=True, seed=0)
  shallow.hidden[0].bias[...] = jnp.linspace(-1.0, 1.0, 8)
  shallow(x, train=True)  # moves the running averages away from their initial 0 and 1
  _, shallow_params, shallow_state = nnx.split(shallow, nnx.Param, ...)
  deep = _mlp_arrays(3, seed=1)
  before = jax.tree.map(np.array, deep.params)
  params = models.inherit_lower_layers(deep.params, shallow_params)
  state = models.inherit_lower_layers(deep.model_state, shallow_state)
  grown = nnx.merge(
    nnx.graphdef(models.build_model("mlp", IN, OUT, width=8, depth=3, batchnorm=True)),
    params,
    state,
  )
  np.testing.assert_array_equal(grown.preactivations(x)[0], shallow.preactivations(x)[0])
  np.testing.assert_array_equal(grown.norms[0].mean[...], shallow.norms[0].mean[...])
  assert not np.allclose(shallow.norms[0].mean[...], 0.0)
  for name in ("hidden", "norms"):
    for i in (1, 2):
      chex.assert_trees_all_equal(params[name][i], deep.params[name][i])
  chex.assert_trees_all_equal(params["output"], deep.params["output"])
  chex.assert_trees_all_equal(deep.params, before)  # the arguments are left as they were


def test_inherit_lower_layers_on_stacked_members():
  shallow = _stack([_mlp_arrays(2, seed=s).params for s in (0, 1)])
  deep = _stack([_mlp_arrays(4, seed=s).params for s in (2, 3)])
  grown = models.inherit_lower_layers(deep, shallow)
  for i in (0, 1):
    chex.assert_trees_all_equal(grown["hidden"][i], shallow["hidden"][i])
  for i in (2, 3):
    chex.assert_trees_all_equal(grown["hidden"][i], deep["hidden"][i])


@pytest.mark.parametrize(
  ("shallow", "deep", "match"),
  [
    ((3, 8), (2, 8), "at least as many hidden layers"),
    ((1, 8), (2, 6), "same input size and width"),
  ],
)
def test_inherit_lower_layers_errors(shallow, deep, match):
  shallow_params = _mlp_arrays(shallow[0], seed=0, width=shallow[1]).params
  deep_params = _mlp_arrays(deep[0], seed=0, width=deep[1]).params
  with pytest.raises(ValueError, match=match):
    models.inherit_lower_layers(deep_params, shallow_params)
