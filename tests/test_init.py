"""Tests for jaxopt_study.init: variance scaling, orthogonal, sparse, scaled and LSUV."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_study import init, models

FAN_IN, FAN_OUT = 400, 600

# Variance of each scheme for a (fan_in, fan_out) kernel: Glorot & Bengio (2010) eq. 16 (book eq.
# 8.23 for the uniform one), He et al. (2015) eq. 10, LeCun et al. (1998).
THEORETICAL_VARIANCE = {
  "glorot_uniform": 2.0 / (FAN_IN + FAN_OUT),
  "glorot_normal": 2.0 / (FAN_IN + FAN_OUT),
  "he_normal": 2.0 / FAN_IN,
  "he_uniform": 2.0 / FAN_IN,
  "lecun_normal": 1.0 / FAN_IN,
}


@pytest.mark.parametrize("name", sorted(THEORETICAL_VARIANCE))
def test_variance_scaling_matches_theory(name):
  w = np.asarray(init.INITIALIZERS[name]()(jax.random.key(0), (FAN_IN, FAN_OUT)), np.float64)
  variance = THEORETICAL_VARIANCE[name]
  # N = 240,000 i.i.d. entries: the sample variance has relative standard error √((κ−1)/N) with
  # kurtosis κ ≤ 3 for the normal, truncated normal and uniform, i.e. ≤ 0.29%; 2% is ~7 standard
  # errors, and a wrong scheme (e.g. fan_in instead of fan_avg) is off by ≥ 20%.
  np.testing.assert_allclose(w.var(), variance, rtol=0.02)
  assert abs(w.mean()) < 5 * np.sqrt(variance / w.size)
  if name.endswith("uniform"):  # U(−a, a) with a² / 3 = variance
    assert np.abs(w).max() <= np.sqrt(3 * variance) * (1 + 1e-6)


@pytest.mark.parametrize("shape", [(32, 32), (48, 20), (20, 48)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
  w = np.asarray(init.orthogonal(gain)(jax.random.key(1), shape), np.float64)
  fan_in, fan_out = shape
  gram = w.T @ w if fan_in >= fan_out else w @ w.T  # orthonormal columns, or rows if wide
  np.testing.assert_allclose(gram, gain**2 * np.eye(min(shape)), atol=1e-5 * gain**2)


def test_sparse_has_k_nonzeros_per_column():
  k, scale = 15, 0.5
  w = np.asarray(init.sparse(k, scale)(jax.random.key(2), (FAN_IN // 8, FAN_OUT // 3)))
  nonzero = w != 0
  np.testing.assert_array_equal(nonzero.sum(axis=0), k)
  # The non-zero rows are random: with 200 columns each picking 15 of 50 rows, a row is never
  # picked with probability (35/50)^200 ≈ 1e-31.
  assert nonzero.any(axis=1).all()
  values = w[nonzero]
  # 3000 N(0, 0.25) draws: the sample std has relative standard error 1/√6000 ≈ 1.3%; allow 6%.
  np.testing.assert_allclose(values.std(), scale, rtol=0.06)
  assert abs(values.mean()) < 5 * scale / np.sqrt(values.size)


def test_sparse_bad_arguments():
  with pytest.raises(ValueError, match="num_nonzero=16.*fan_in=15"):
    init.sparse(16)(jax.random.key(0), (15, 4))
  with pytest.raises(ValueError, match="num_nonzero"):
    init.sparse(0)
  with pytest.raises(ValueError, match="fan_in, fan_out"):
    init.sparse(1)(jax.random.key(0), (3, 3, 3))


def test_scaled_is_an_exact_multiple():
  key, shape = jax.random.key(3), (FAN_IN // 8, FAN_OUT // 3)
  base = init.glorot_uniform()(key, shape)
  np.testing.assert_array_equal(init.scaled(init.glorot_uniform(), 3.0)(key, shape), 3.0 * base)


def test_get_initializer():
  key, shape = jax.random.key(4), (FAN_IN // 8, FAN_OUT // 3)
  np.testing.assert_array_equal(
    init.get_initializer("he_normal", scale=0.5)(key, shape), 0.5 * init.he_normal()(key, shape)
  )
  w = init.get_initializer("sparse", num_nonzero=3)(key, shape)
  np.testing.assert_array_equal(np.count_nonzero(np.asarray(w), axis=0), 3)
  assert init.get_initializer("orthogonal", gain=2.0)(key, shape).dtype == jnp.float32
  with pytest.raises(ValueError, match="known names.*glorot_uniform"):
    init.get_initializer("xavier")
  with pytest.raises(ValueError, match="num_nonzeros"):
    init.get_initializer("sparse", num_nonzeros=3)


def test_initializers_registry():
  expected = {"glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal"}
  assert expected | {"orthogonal", "sparse"} <= set(init.INITIALIZERS)


@pytest.fixture(scope="module")
def lsuv_batch() -> jax.Array:
  return jax.random.normal(jax.random.key(5), (256, 5))


def test_lsuv_gives_unit_preactivation_variance(lsuv_batch):
  model = models.build_model(
    "mlp", 5, 3, width=8, depth=5, activation="tanh", init="orthogonal", init_scale=4.0
  )
  before = [float(jnp.var(z)) for z in model.preactivations(lsuv_batch)]
  assert max(abs(v - 1.0) for v in before) > 5.0  # a badly scaled start
  biases = [layer.bias[...] for layer in model.linear_layers()]
  assert init.lsuv(model, lsuv_batch, tol=0.02) is model
  after = [float(jnp.var(z)) for z in model.preactivations(lsuv_batch)]
  assert len(after) == 6
  np.testing.assert_allclose(after, 1.0, atol=0.02)
  for layer, bias in zip(model.linear_layers(), biases, strict=True):
    np.testing.assert_array_equal(layer.bias[...], bias)  # only kernels are rescaled


def test_lsuv_deep_linear(lsuv_batch):
  model = models.build_model("deep_linear", 5, 3, width=8, depth=4, init_scale=0.2)
  init.lsuv(model, lsuv_batch)
  after = [float(jnp.var(z)) for z in model.preactivations(lsuv_batch)]
  np.testing.assert_allclose(after, 1.0, atol=0.05)


class _OwnNet(nnx.Module):
  """A module the toolkit has never seen: no `linear_layers()`, its output layer defined before
  the hidden one (attribute order is not forward order), a LayerNorm, a conv, an unused layer."""

  def __init__(self, rngs: nnx.Rngs):
    self.head = nnx.Linear(16, 3, rngs=rngs)
    self.conv = nnx.Conv(1, 2, (3,), kernel_init=nnx.initializers.normal(2.0), rngs=rngs)
    self.norm = nnx.LayerNorm(16, rngs=rngs)
    self.unused = nnx.Linear(2, 2, rngs=rngs)

  def __call__(self, x):
    h = self.conv(x[..., None]).reshape(x.shape[0], -1)  # (batch, 8 positions × 2 channels)
    return self.head(jnp.tanh(self.norm(h)))


def test_lsuv_rescales_every_linear_and_conv_of_a_module_of_your_own(x64):
  """Each layer's output variance, recomputed here from the kernels by hand (numpy), within the
  tolerance after LSUV; the unused layer and every bias untouched."""
  x = np.asarray(jax.random.normal(jax.random.key(1), (256, 8)), np.float64)
  model = _OwnNet(nnx.Rngs(0))
  unused = np.asarray(model.unused.kernel[...])
  biases = [np.asarray(layer.bias[...]) for layer in (model.conv, model.head)]
  init.lsuv(model, jnp.asarray(x), tol=0.01)
  for layer, bias in zip((model.conv, model.head), biases, strict=True):
    np.testing.assert_array_equal(layer.bias[...], bias)
  kernel, bias = np.asarray(model.conv.kernel[...]), np.asarray(model.conv.bias[...])  # (3, 1, 2)
  padded = np.pad(x, ((0, 0), (1, 1)))  # "SAME" padding of a width-3 window
  windows = np.stack([padded[:, i : i + 3] for i in range(8)], axis=1)  # (batch, 8, 3)
  conv = windows @ kernel[:, 0, :] + bias  # (batch, 8, 2)
  h = conv.reshape(len(x), -1)
  mean, var = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
  normed = (h - mean) / np.sqrt(var + 1e-6) * np.asarray(model.norm.scale[...])
  head = np.tanh(normed + np.asarray(model.norm.bias[...])) @ np.asarray(model.head.kernel[...])
  np.testing.assert_allclose([conv.var(), head.var()], 1.0, atol=0.01)
  np.testing.assert_array_equal(model.unused.kernel[...], unused)


def test_lsuv_gives_up_on_a_layer_no_scale_can_fix_after_one_run_of_max_iters(lsuv_batch):
  """A layer whose biases spread over units more than unit variance can never reach it: LSUV
  rescales it `max_iters` times once, and the later sequences pass it by. The other layer (defined
  after it, run before it) is still brought to unit variance."""
  forward_passes = []

  class Stuck(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
      self.out = nnx.Linear(8, 4, rngs=rngs)
      self.out.bias[...] = jnp.array([0.0, 10.0, -10.0, 5.0])  # Var over units ≈ 53
      self.first = nnx.Linear(5, 8, kernel_init=nnx.initializers.normal(3.0), rngs=rngs)

    def __call__(self, x):
      forward_passes.append(1)
      return self.out(jnp.tanh(self.first(x)))

  model = Stuck(nnx.Rngs(0))
  init.lsuv(model, lsuv_batch, tol=0.02, max_iters=10)
  assert abs(float(jnp.var(model.first(lsuv_batch))) - 1.0) <= 0.02
  assert float(jnp.var(model.out(jnp.tanh(model.first(lsuv_batch))))) > 40.0
  # One forward pass per check: 10 for the stuck layer's run, a few for the other layer and for
  # the sequence checks. Repeating the stuck layer's run in every sequence took 10 × 10 or more.
  assert len(forward_passes) <= 20


def test_lsuv_refuses_a_batch_with_nan_and_a_module_without_layers(lsuv_batch):
  model = models.build_model("mlp", 5, 3, width=8, depth=2)
  before = [np.asarray(layer.kernel[...]) for layer in model.linear_layers()]
  with pytest.raises(ValueError, match="x holds NaN"):
    init.lsuv(model, lsuv_batch.at[0, 0].set(jnp.nan))
  for layer, kernel in zip(model.linear_layers(), before, strict=True):
    np.testing.assert_array_equal(layer.kernel[...], kernel)  # nothing rescaled

  class Scale(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.ones(5))

    def __call__(self, x):
      return x * self.w

  with pytest.raises(ValueError, match="Scale has no nnx.Linear or nnx.Conv layer"):
    init.lsuv(Scale(), lsuv_batch)
