"""Parameter initialization (Goodfellow et al. 2016, §8.4), with the jax.nn.initializers signature.

An initializer is ``init(key, shape, dtype) -> array``. The classical variance-scaling schemes are
jax's own; this module adds the ones the chapter discusses that jax lacks:

* `glorot_uniform`, `glorot_normal` (Glorot & Bengio 2010; book eq. 8.23), `he_normal`,
  `he_uniform` (He et al. 2015), `lecun_normal`: re-exported from `jax.nn.initializers`.
* `orthogonal(gain)`: random orthogonal matrices (Saxe, McClelland & Ganguli 2013).
* `sparse(num_nonzero)`: k non-zero incoming weights per unit (Martens 2010, §5).
* `scaled(initializer, scale)`: the initialization scale as a sweep axis (§8.4).
* `lsuv(model, x)`: data-dependent rescaling to unit pre-activation variance (Mishkin & Matas 2016).

Kernels are (fan_in, fan_out), as in `flax.nnx.Linear`: column j holds unit j's incoming weights.
"""

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.nn.initializers import (
  Initializer,
  glorot_normal,
  glorot_uniform,
  he_normal,
  he_uniform,
  lecun_normal,
)
from jax.typing import DTypeLike

__all__ = [
  "INITIALIZERS",
  "Initializer",
  "get_initializer",
  "glorot_normal",
  "glorot_uniform",
  "he_normal",
  "he_uniform",
  "lecun_normal",
  "lsuv",
  "orthogonal",
  "scaled",
  "sparse",
]


def orthogonal(gain: float = 1.0) -> Initializer:
  """Random orthogonal kernels times `gain` (Saxe, McClelland & Ganguli 2013, §3).

  For a (fan_in, fan_out) kernel W with fan_in ≥ fan_out, WᵀW = gain² I (orthonormal columns);
  for fan_in < fan_out, W Wᵀ = gain² I. Every singular value equals `gain`, so products of such
  layers neither shrink nor amplify any direction: the dynamical isometry the paper shows makes
  the learning time of deep linear networks independent of depth. A thin wrapper on
  `jax.nn.initializers.orthogonal`, with the paper's name for the scale.
  """
  return jax.nn.initializers.orthogonal(scale=gain)


def sparse(num_nonzero: int, scale: float = 1.0) -> Initializer:
  """Sparse initialization of Martens (2010), §5: k non-zero incoming weights per unit.

  Each column of the (fan_in, fan_out) kernel, i.e. each unit's incoming weights, has exactly
  k = `num_nonzero` entries at uniformly random rows drawn from N(0, scale²); the others are 0.
  Martens uses k = 15 and unit scale: units get large, diverse weights without their total
  input growing with fan_in, unlike dense schemes that shrink every weight as 1/√fan_in.

  Args:
    num_nonzero: k ≥ 1; must not exceed the fan_in of the kernel it initializes.
    scale: standard deviation of the non-zero weights.

  Returns:
    An initializer for 2-D (fan_in, fan_out) kernels.
  """
  if int(num_nonzero) != num_nonzero or num_nonzero < 1:
    raise ValueError(f"num_nonzero={num_nonzero!r}: must be an integer ≥ 1")

  def init(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike | None = None) -> jax.Array:
    if len(shape) != 2:
      raise ValueError(f"sparse initializes (fan_in, fan_out) kernels; got shape {shape}")
    fan_in, fan_out = shape
    if num_nonzero > fan_in:
      raise ValueError(f"num_nonzero={num_nonzero} exceeds fan_in={fan_in} of kernel {shape}")
    key_rows, key_values = jax.random.split(key)

    def column_mask(column_key: jax.Array) -> jax.Array:
      # A random permutation of 0..fan_in-1 has exactly k entries below k, at uniform positions.
      return jax.random.permutation(column_key, fan_in) < num_nonzero

    mask = jax.vmap(column_mask)(jax.random.split(key_rows, fan_out)).T
    values = scale * jax.random.normal(key_values, shape, dtype)  # dtype None: default float
    return jnp.where(mask, values, jnp.zeros((), values.dtype))

  return init


def scaled(initializer: Initializer, scale: float) -> Initializer:
  """`initializer` with its output multiplied by `scale`: the init scale as a sweep axis (§8.4)."""

  def init(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike | None = None) -> jax.Array:
    weights = initializer(key, shape, dtype)
    return jnp.asarray(scale, weights.dtype) * weights

  return init


INITIALIZERS: dict[str, Callable[..., Initializer]] = {
  "glorot_uniform": glorot_uniform,
  "glorot_normal": glorot_normal,
  "he_normal": he_normal,
  "he_uniform": he_uniform,
  "lecun_normal": lecun_normal,
  "orthogonal": orthogonal,
  "sparse": sparse,
}


def get_initializer(name: str, scale: float = 1.0, **options: Any) -> Initializer:
  """The initializer `INITIALIZERS[name](**options)`, its output multiplied by `scale`.

  Example: ``get_initializer("sparse", scale=0.5, num_nonzero=15)``.
  """
  if name not in INITIALIZERS:
    raise ValueError(f"unknown initializer {name!r}: known names are {sorted(INITIALIZERS)}")
  factory = INITIALIZERS[name]
  try:
    inspect.signature(factory).bind(**options)
  except TypeError as error:
    raise ValueError(f"initializer {name!r} got bad options {sorted(options)}: {error}") from None
  return scaled(factory(**options), scale)


def lsuv(model: nnx.Module, x: jax.Array, *, tol: float = 0.05, max_iters: int = 10) -> nnx.Module:
  """Layer-sequential unit-variance initialization (Mishkin & Matas 2016, Algorithm 1).

  For each linear layer in order (``model.linear_layers()``), its kernel is divided by √Var(z),
  where z is that layer's pre-activation output on the batch `x` (``model.preactivations(x)``,
  variance over all examples and units), until |Var(z) − 1| ≤ `tol` or `max_iters` rescalings.
  Biases are left as they are; with zero biases one rescaling is exact for that layer, and the
  later layers are rescaled after the earlier ones have been fixed. A layer still outside the
  tolerance after `max_iters` rescalings (e.g. a dead ReLU layer with zero variance) is left as is.

  The paper first initializes kernels orthogonally; that is the caller's choice here, e.g.
  ``build_model(..., init="orthogonal")`` then `lsuv`.

  Args:
    model: an NNX model exposing ``linear_layers()`` and ``preactivations(x)``; mutated in place.
    x: a batch of inputs, large enough for the variance to be meaningful.
    tol: tolerance on the variance.
    max_iters: most rescalings per layer.

  Returns:
    `model`, with rescaled kernels.
  """
  for index, layer in enumerate(model.linear_layers()):
    for _ in range(max_iters):
      variance = float(jnp.var(model.preactivations(x)[index]))
      if abs(variance - 1.0) <= tol or variance == 0.0:  # 0: dead layer, no scale can fix it
        break
      layer.kernel[...] = layer.kernel[...] / jnp.sqrt(jnp.asarray(variance, layer.kernel.dtype))
  return model
