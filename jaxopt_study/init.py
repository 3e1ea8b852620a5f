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

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
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

  For each linear layer in order, its kernel is divided by √Var(z), where z is that layer's
  output on the batch `x` (variance over all examples and units), until |Var(z) − 1| ≤ `tol` or
  `max_iters` rescalings. Biases are left as they are; with zero biases one rescaling is exact for
  that layer, and the later layers are rescaled after the earlier ones have been fixed. A layer
  still outside the tolerance after `max_iters` rescalings (e.g. a dead ReLU layer with zero
  variance) is left as is.

  The layers: a model exposing ``linear_layers()`` and ``preactivations(x)`` (the built-in MLPs:
  in forward order, run in eval mode) uses them. Any other module (yours) has every `nnx.Linear`
  and `nnx.Conv` rescaled, their outputs read with `nnx.capture` as the model runs in its
  current mode (call ``model.eval()`` first for BatchNorm's running statistics or to switch off
  dropout); they are taken in the module's attribute order, and since that need not be the order
  of the forward pass, one forward pass after each sequence finds the layers a later rescaling
  moved out of the tolerance, and the sequence is repeated over those (at most `max_iters`
  sequences). A layer that `max_iters` rescalings in a row leave outside the tolerance is not
  taken up again. A layer called several times is measured over all its calls.

  The paper first initializes kernels orthogonally; that is the caller's choice here, e.g.
  ``build_model(..., init="orthogonal")`` then `lsuv`.

  Args:
    model: an NNX model; mutated in place.
    x: a batch of inputs, large enough for the variance to be meaningful.
    tol: tolerance on the variance.
    max_iters: most rescalings of a layer in a row (and, for a module of your own, sequences).

  Returns:
    `model`, with rescaled kernels.

  Raises:
    ValueError: `x` holds a NaN or an infinity (every kernel would become NaN), a layer's output
      is not finite, or the model has no `nnx.Linear` or `nnx.Conv` layer.
  """
  if not bool(jnp.all(jnp.isfinite(jnp.asarray(x)))):
    raise ValueError("lsuv: x holds NaN or infinite values; LSUV needs a finite batch")
  if hasattr(model, "linear_layers") and hasattr(model, "preactivations"):
    layers = list(enumerate(model.linear_layers()))

    def outputs(batch: jax.Array) -> dict[int, jax.Array]:
      return dict(enumerate(model.preactivations(batch)))

    for key, layer in layers:  # forward order: one sequence fixes every layer
      _rescale(layer, key, outputs, x, tol, max_iters)
    return model
  layers = [(path, node) for path, node in nnx.iter_graph(model) if _is_rescalable(node)]
  if not layers:
    raise ValueError(f"lsuv: {type(model).__name__} has no nnx.Linear or nnx.Conv layer")
  outputs = functools.partial(_layer_outputs, model)
  stuck: set[tuple] = set()
  for _ in range(max_iters):
    measured = outputs(x)  # one forward pass: the layers an earlier pass's rescaling moved
    todo = [
      (key, layer)
      for key, layer in layers
      if key in measured and key not in stuck and not _settled(_variance(measured[key], key), tol)
    ]
    if not todo:
      break
    for key, layer in todo:
      if not _rescale(layer, key, outputs, x, tol, max_iters):
        stuck.add(key)  # given its max_iters rescalings: left as is, as the docstring says
  return model


def _variance(output: jax.Array, key: Any) -> float:
  variance = float(jnp.var(output))
  if not np.isfinite(variance):
    raise ValueError(f"lsuv: the output of layer {key!r} is not finite on x")
  return variance


def _settled(variance: float, tol: float) -> bool:
  """Within the tolerance, or 0: a dead layer, which no scale can fix."""
  return abs(variance - 1.0) <= tol or variance == 0.0


def _rescale(
  layer: Any, key: Any, outputs: Callable, x: jax.Array, tol: float, max_iters: int
) -> bool:
  """Algorithm 1's inner loop for one layer, one forward pass per check; False if `max_iters`
  rescalings did not settle it (a layer the forward pass does not call has nothing to measure)."""
  for _ in range(max_iters):
    output = outputs(x).get(key)
    if output is None:
      return True
    variance = _variance(output, key)
    if _settled(variance, tol):
      return True
    layer.kernel[...] = layer.kernel[...] / jnp.sqrt(jnp.asarray(variance, layer.kernel.dtype))
  return False


def _is_rescalable(node: Any) -> bool:
  return isinstance(node, nnx.Linear | nnx.Conv)


def _layer_outputs(model: nnx.Module, x: jax.Array) -> dict[tuple, jax.Array]:
  """Every output of every `nnx.Linear` / `nnx.Conv` of `model` on x, flattened per layer path
  (all the layer's calls, concatenated), read with `nnx.capture`'s method outputs."""
  _, captured = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
  found: dict[tuple, jax.Array] = {}
  for path, node in nnx.iter_graph(model):
    if not _is_rescalable(node):
      continue
    calls = captured
    for part in (*path, "__call__"):
      calls = calls[part] if part in calls else None
      if calls is None:
        break
    if calls is not None:  # a layer not called on x is left out
      found[path] = jnp.concatenate([jnp.ravel(z) for z in calls.get_value()])
  return found
