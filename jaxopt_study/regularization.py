"""Regularization for any `Problem` (Goodfellow et al. 2016, ch. 7): noise layers and penalties.

* `Dropout`: inverted dropout (Srivastava et al. 2014): keep each unit with probability 1 − rate
  and scale kept units by 1/(1 − rate) in train mode, the identity in eval mode (§7.12).
* `DropConnect`: a `nnx.Linear` whose weight entries are dropped, one mask per example (Wan et
  al. 2013, §3), scaled by 1/(1 − rate); the plain layer, the masks' expectation, in eval mode.
* `StochasticDepth`: residual block l of L kept with probability p_l = 1 − (l/L)(1 − p_L) in
  train mode, its branch scaled by p_l in eval mode (Huang et al. 2016, eq. 4 and §3).
* `Augment`: label-preserving augmentation of small images (random shifts of up to `max_shift`
  pixels, rotations of up to `max_rotation` degrees, §7.4), the identity in eval mode.
* `penalty`, `penalize`: L1 and L2 penalties α‖w‖₁ + (β/2)‖w‖² on chosen parameters (§7.1,
  eqs. 7.1, 7.2 and 7.19) added to any `Problem`'s loss.

The modules follow NNX's mode switch: ``model.train()`` / ``model.eval()`` set their
`deterministic` attribute (as for `nnx.Dropout`), and ``deterministic=`` at call time overrides it.
Their randomness comes from the model's own streams (``rngs["dropout"]``, NNX's fallback to the
default stream when there is none), forked at construction: the key and its counter live in the
model state, which the training loop carries, so a sweep member is exactly its run alone.

Every strength (drop rate, final survival probability, augmentation rate, penalty weight) is an
array held in a `Strength` variable of the model state, not a Python constant: one compiled
program trains members with different strengths, each member's state set by `set_strengths`.
`Dropout` computes what `nnx.Dropout` computes, bit for bit for the same key (tested); it is ours
because `nnx.Dropout` keeps its rate as a Python float, fixed at compilation.
"""

import dataclasses
import functools
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import sklearn.datasets
import sklearn.model_selection
from flax import nnx
from jax.scipy import ndimage

from jaxopt_study import validate

Path = tuple[Any, ...]
Where = Callable[[Path, jax.Array], bool]


class Strength(nnx.Variable):
  """A regularization strength: a scalar of the model state, not trained (not an `nnx.Param`)."""


class DropoutRate(Strength):
  """The probability that `Dropout` drops a unit."""


class DropConnectRate(Strength):
  """The probability that `DropConnect` drops a weight."""


class FinalSurvival(Strength):
  """p_L, the survival probability of the last block under `StochasticDepth`."""


class AugmentRate(Strength):
  """The probability that `Augment` transforms an example."""


class L1Weight(Strength):
  """α of the L1 penalty α‖w‖₁ of a `penalize`d problem."""


class L2Weight(Strength):
  """β of the L2 penalty (β/2)‖w‖² of a `penalize`d problem."""


# `set_strengths` keyword -> the variable type it sets
STRENGTHS: dict[str, type[Strength]] = {
  "dropout": DropoutRate,
  "dropconnect": DropConnectRate,
  "stochastic_depth": FinalSurvival,
  "augment": AugmentRate,
  "l1": L1Weight,
  "l2": L2Weight,
}


# `set_strengths` keyword -> the check its constructor makes too: `Dropout`, `DropConnect` [0, 1)
# (a rate of 1 would divide by zero), `StochasticDepth` (0, 1], `Augment` [0, 1], `penalize` ≥ 0
_STRENGTH_CHECKS: dict[str, Callable[[str, Any, str], None]] = {
  "dropout": validate.require_unit_interval,
  "dropconnect": validate.require_unit_interval,
  "stochastic_depth": functools.partial(
    validate.require_unit_interval, include_zero=False, include_one=True
  ),
  "augment": functools.partial(validate.require_unit_interval, include_one=True),
  "l1": validate.require_non_negative,
  "l2": validate.require_non_negative,
}


def _strength(kind: type[Strength], value: float) -> Strength:
  return kind(jnp.asarray(value, jnp.result_type(float)))


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


def set_strengths(model_state: Any, **values: Any) -> Any:
  """`model_state` with every `Strength` of the named kinds set to the given value.

  Example: ``set_strengths(state, dropout=0.5, l2=1e-3)`` on the state of
  ``pure(problem).initial(seed)`` or of `nnx.split`; values may be traced (a vmapped sweep).

  Args:
    model_state: an `nnx.State` (or a pytree of NNX variables) holding strengths.
    **values: a key of `STRENGTHS` -> its new value (one for every variable of that kind).

  Raises:
    ValueError: a name that is not a kind of strength, a kind the state does not hold, or a value
      its constructor would refuse (a rate outside [0, 1), a negative penalty, not one number);
      a traced value is checked for its shape only.
  """
  if unknown := sorted(set(values) - set(STRENGTHS)):
    raise ValueError(f"set_strengths: unknown {unknown}: the strengths are {sorted(STRENGTHS)}")
  for name, value in values.items():
    if np.ndim(value) != 0:
      raise ValueError(
        f"set_strengths: {name} has shape {np.shape(value)}: give one number for each kind"
      )
    _STRENGTH_CHECKS[name](name, value, "set_strengths")
  leaves = jax.tree.leaves(model_state, is_leaf=_is_variable)
  for name in values:
    if not any(type(leaf) is STRENGTHS[name] for leaf in leaves):
      raise ValueError(
        f"set_strengths: {name}={values[name]!r}, but the model has no {name}: build it with "
        f"that option (e.g. {name}=0.0) so that its state holds the strength"
      )
  kinds = {kind: name for name, kind in STRENGTHS.items()}

  def replace(leaf: Any) -> Any:
    name = kinds.get(type(leaf)) if _is_variable(leaf) else None
    if name is None or name not in values:
      return leaf
    return leaf.replace(jnp.asarray(values[name], leaf[...].dtype))

  return jax.tree.map(replace, model_state, is_leaf=_is_variable)


class _Stochastic(nnx.Module):
  """A module that draws random numbers in train mode only: its `deterministic` flag (set by
  `module.train()` / `module.eval()`, overridden per call) and its own fork of the `dropout`
  stream."""

  def _stochastic(self, deterministic: bool, rngs: nnx.Rngs) -> None:
    self.deterministic = deterministic
    self.rngs = rngs["dropout"].fork()

  def _is_deterministic(self, called: bool | None) -> bool:
    return self.deterministic if called is None else called


class Dropout(_Stochastic):
  """Inverted dropout (Srivastava et al. 2014; Goodfellow et al. 2016, §7.12).

  Train mode: h̃ = m ⊙ h / (1 − rate), mᵢ ~ Bernoulli(1 − rate) independently per entry, so that
  E[h̃] = h (the weight scaling rule applied at training time); eval mode: h̃ = h.
  """

  def __init__(self, rate: float, *, deterministic: bool = False, rngs: nnx.Rngs):
    _STRENGTH_CHECKS["dropout"]("rate", rate, "Dropout")
    self.rate = _strength(DropoutRate, rate)
    self._stochastic(deterministic, rngs)

  def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
    if self._is_deterministic(deterministic):
      return x
    keep = 1 - self.rate[...]
    mask = jax.random.bernoulli(self.rngs(), keep, x.shape)
    return jax.lax.select(mask, x / keep.astype(x.dtype), jnp.zeros_like(x))


class DropConnect(_Stochastic):
  """DropConnect (Wan et al. 2013, §3) on a `nnx.Linear` layer: ``dropconnect(layer, x)``.

  Train mode: rₙ = xₙ (M⁽ⁿ⁾ ⊙ W) / (1 − rate) + b, a fresh mask M⁽ⁿ⁾ᵢⱼ ~ Bernoulli(1 − rate) per
  example n and weight (ij) (Wan et al. draw one per example); eval mode: r = x W + b, the
  expectation of the training-time map (Wan et al. compare this "mean" inference with a Gaussian
  moment-matching one, §3.2; we keep the mean). The 1/(1 − rate) scaling at training time, as
  in inverted dropout, makes the layer's eval map the plain layer's. The masks take
  batch × fan_in × fan_out entries.
  """

  def __init__(self, rate: float, *, deterministic: bool = False, rngs: nnx.Rngs):
    _STRENGTH_CHECKS["dropconnect"]("rate", rate, "DropConnect")
    self.rate = _strength(DropConnectRate, rate)
    self._stochastic(deterministic, rngs)

  def __call__(
    self, layer: nnx.Linear, x: jax.Array, *, deterministic: bool | None = None
  ) -> jax.Array:
    if x.ndim != 2:  # in either mode: a model that runs in eval mode runs in train mode
      raise ValueError(f"DropConnect: x has shape {x.shape}: expected (batch, in_features)")
    if self._is_deterministic(deterministic):
      return layer(x)
    kernel = layer.kernel[...]
    keep = 1 - self.rate[...]
    mask = jax.random.bernoulli(self.rngs(), keep, (x.shape[0], *kernel.shape))
    masked = jnp.where(mask, (kernel / keep.astype(kernel.dtype))[None], 0.0)
    outputs = jnp.einsum("bi,bio->bo", x, masked)
    return outputs if layer.bias is None else outputs + layer.bias[...][None]


class StochasticDepth(_Stochastic):
  """Stochastic depth for L residual blocks (Huang et al. 2016, §3): ``gate(branch, l)``.

  Block l ∈ {1, …, L} survives with p_l = 1 − (l/L)(1 − p_L) (the linear decay rule, eq. 4).
  Train mode: h_l = h_{l−1} + b_l f_l(h_{l−1}), b_l ~ Bernoulli(p_l), one draw per call (per
  minibatch, as Huang et al.); eval mode: h_l = h_{l−1} + p_l f_l(h_{l−1}) (their eq. 5). The
  module returns b_l f_l or p_l f_l, the caller adds the identity.
  """

  def __init__(
    self, num_blocks: int, final_survival: float, *, deterministic: bool = False, rngs: nnx.Rngs
  ):
    validate.require_positive_int("num_blocks", num_blocks, "StochasticDepth")
    _STRENGTH_CHECKS["stochastic_depth"]("final_survival", final_survival, "StochasticDepth")
    self.num_blocks = int(num_blocks)
    self.final_survival = _strength(FinalSurvival, final_survival)
    self._stochastic(deterministic, rngs)

  def survival(self, block: int) -> jax.Array:
    """p_l = 1 − (l/L)(1 − p_L) for block l = `block` (1-based)."""
    if not 1 <= block <= self.num_blocks:
      raise ValueError(f"StochasticDepth: block={block}: must be in [1, {self.num_blocks}]")
    return 1 - block / self.num_blocks * (1 - self.final_survival[...])

  def __call__(
    self, branch: jax.Array, block: int, *, deterministic: bool | None = None
  ) -> jax.Array:
    survival = self.survival(block).astype(branch.dtype)
    if self._is_deterministic(deterministic):
      return survival * branch
    kept = jax.random.bernoulli(self.rngs(), survival)
    return jnp.where(kept, branch, jnp.zeros_like(branch))


def shift_and_rotate(image: jax.Array, shift: jax.Array, degrees: jax.Array) -> jax.Array:
  """`image` (H, W) rotated by `degrees` about its centre, then shifted by `shift` = (rows,
  columns) pixels; bilinear interpolation, zero outside the image (traceable).

  The output pixel p takes the input at R(−θ)(p − c − shift) + c, c the centre; an integer shift
  without rotation moves pixels exactly (interpolation weights 0 and 1).
  """
  height, width = image.shape
  centre = jnp.asarray([(height - 1) / 2, (width - 1) / 2], image.dtype)
  rows, cols = jnp.meshgrid(
    jnp.arange(height, dtype=image.dtype), jnp.arange(width, dtype=image.dtype), indexing="ij"
  )
  radians = jnp.deg2rad(jnp.asarray(degrees, image.dtype))
  cos, sin = jnp.cos(radians), jnp.sin(radians)
  shift = jnp.asarray(shift, image.dtype)
  dr, dc = rows - centre[0] - shift[0], cols - centre[1] - shift[1]
  source = jnp.stack([cos * dr + sin * dc + centre[0], -sin * dr + cos * dc + centre[1]])
  return ndimage.map_coordinates(image, list(source), order=1, mode="constant", cval=0.0)


class Augment(_Stochastic):
  """Label-preserving augmentation of flattened images (Goodfellow et al. 2016, §7.4).

  Train mode: each example is, with probability `rate`, rotated by θ ~ U(−max_rotation,
  max_rotation) degrees and shifted by (Δr, Δc), each uniform on {−max_shift, …, max_shift}
  (`shift_and_rotate`, zero background), the others left exactly as they are; eval mode: the
  identity. Put it first in a model (the built-in MLPs take ``augment={...}``).

  Inputs standardized per pixel, x = (r − mean) / std (as `data.load_digits` does), are mapped
  back to pixels r, transformed and standardized again: give `standardization=(mean, std)`, e.g.
  `digits_standardization()`. Without it the inputs are the pixels themselves.
  """

  def __init__(
    self,
    rate: float = 1.0,
    *,
    image_shape: Sequence[int] = (8, 8),
    max_shift: int = 1,
    max_rotation: float = 10.0,
    standardization: tuple[Sequence[float], Sequence[float]] | None = None,
    deterministic: bool = False,
    rngs: nnx.Rngs,
  ):
    where = "Augment"
    _STRENGTH_CHECKS["augment"]("rate", rate, where)
    validate.require_int("max_shift", max_shift, where, low=0)
    validate.require_non_negative("max_rotation", max_rotation, where)
    if len(image_shape) != 2:
      raise ValueError(f"{where}: image_shape={tuple(image_shape)!r} must be (height, width)")
    for size in image_shape:
      validate.require_positive_int("image_shape", size, where)
    self.image_shape = tuple(int(s) for s in image_shape)
    pixels = math.prod(self.image_shape)
    if standardization is not None:
      mean, std = (tuple(float(v) for v in np.ravel(a)) for a in standardization)
      if len(mean) != pixels or len(std) != pixels or min(std) <= 0:
        raise ValueError(
          f"{where}: standardization must be (mean, std), {pixels} values each, std > 0"
        )
      standardization = (mean, std)
    self.standardization = standardization
    self.max_shift = int(max_shift)
    self.max_rotation = float(max_rotation)
    self.rate = _strength(AugmentRate, rate)
    self._stochastic(deterministic, rngs)

  def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
    pixels = math.prod(self.image_shape)
    if x.ndim != 2 or x.shape[1] != pixels:  # in either mode, as DropConnect
      raise ValueError(f"Augment: x has shape {x.shape}: expected (batch, {pixels})")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(
        f"Augment: x has dtype {x.dtype}: give floating-point pixels (e.g. x / 255.0); shifted "
        "and rotated pixels are interpolated"
      )
    if self._is_deterministic(deterministic):
      return x
    batch = x.shape[0]
    apply_key, shift_key, angle_key = jax.random.split(self.rngs(), 3)
    applied = jax.random.bernoulli(apply_key, self.rate[...], (batch,))
    shifts = jax.random.randint(shift_key, (batch, 2), -self.max_shift, self.max_shift + 1)
    angles = jax.random.uniform(angle_key, (batch,), x.dtype, -self.max_rotation, self.max_rotation)
    images = self._pixels(x).reshape(batch, *self.image_shape)
    moved = jax.vmap(shift_and_rotate)(images, shifts, angles).reshape(batch, pixels)
    return jnp.where(applied[:, None], self._standardized(moved), x)

  def _pixels(self, x: jax.Array) -> jax.Array:
    if self.standardization is None:
      return x
    mean, std = (jnp.asarray(a, x.dtype)[None] for a in self.standardization)
    return x * std + mean

  def _standardized(self, pixels: jax.Array) -> jax.Array:
    if self.standardization is None:
      return pixels
    mean, std = (jnp.asarray(a, pixels.dtype)[None] for a in self.standardization)
    return (pixels - mean) / std


def digits_standardization(
  test_fraction: float = 0.25, split_seed: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) per pixel of `data.load_digits(test_fraction, split_seed)`'s standardization,
  the training split's statistics (std 1 for a constant pixel), for `Augment(standardization=...)`.
  """
  x, y = sklearn.datasets.load_digits(return_X_y=True)
  x_train, _, _, _ = sklearn.model_selection.train_test_split(
    x, y, test_size=test_fraction, random_state=split_seed, stratify=y
  )
  std = x_train.std(axis=0)
  std = np.where(std > 0.0, std, 1.0)
  return tuple(x_train.mean(axis=0).tolist()), tuple(std.tolist())


NOT_KERNELS = ("bias", "scale")  # Flax's names of biases and of normalization scales


def is_kernel(path: Path, array: jax.Array) -> bool:
  """The default `where` of the penalties: arrays of ndim ≥ 2 (kernels, filters, embeddings);
  biases and normalization scales are not penalized (Goodfellow et al. 2016, §7.1), nor are
  they when layers stacked by `nnx.vmap` / `nnx.scan` give them a leading layer axis (ndim 2):
  a parameter named `bias` or `scale` (`NOT_KERNELS`) is not a kernel. `path`: plain keys
  (``("hidden", 0, "kernel")``) or JAX's (`DictKey`, ...)."""
  names = [name for name in (getattr(key, "key", key) for key in path) if isinstance(name, str)]
  return np.ndim(array) >= 2 and not (names and names[-1] in NOT_KERNELS)


def penalty(params: Any, l1: Any = 0.0, l2: Any = 0.0, where: Where = is_kernel) -> jax.Array:
  """Ω(θ) = α Σ |wᵢ| + (β/2) Σ wᵢ² over the arrays w of `params` that `where` picks (eqs. 7.2
  and 7.19 of Goodfellow et al. 2016 weighted by α = `l1` and β = `l2`; traceable). Its gradient
  is α sign(w) + β w (eqs. 7.5 and 7.20), sign(0) = 0.

  Args:
    params: an `nnx.State` of parameters, an `nnx.Module` (its `nnx.Param`s) or any pytree.
    l1, l2: α, β ≥ 0 (may be traced).
    where: `(path, array) -> bool`, the path a tuple of keys (e.g. ``("hidden", 0, "kernel")``).
  """
  if isinstance(params, nnx.Module):
    params = nnx.state(params, nnx.Param)
  flat = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_variable)[0]
  arrays = [
    (tuple(_key(k) for k in path), leaf[...] if _is_variable(leaf) else jnp.asarray(leaf))
    for path, leaf in flat
  ]
  chosen = [array for path, array in arrays if where(path, array)]
  if not chosen:
    return jnp.zeros([], jnp.result_type(float))
  # Σ w sign(w) = Σ |w|, with the gradient sign(w): 0 at w = 0, the subgradient of least norm
  # (jnp.abs has the gradient 1 there)
  absolute = sum(jnp.sum(w * jax.lax.stop_gradient(jnp.sign(w))) for w in chosen)
  squared = sum(jnp.sum(w**2) for w in chosen)
  return l1 * absolute + 0.5 * l2 * squared


def _key(entry: Any) -> Any:
  """A path entry of `jax.tree_util` as the plain key it names."""
  for field in ("key", "idx", "name"):
    if hasattr(entry, field):
      return getattr(entry, field)
  return entry


PENALTY_ATTRIBUTE = "penalty_weights"  # the module attribute `penalize` adds
_PENALIZED: "weakref.WeakSet[Callable]" = weakref.WeakSet()  # the losses `penalize` returned


class PenaltyWeights(nnx.Module):
  """α and β of a `penalize`d problem's penalty, in the model state (`set_strengths` sets them)."""

  def __init__(self, l1: float, l2: float):
    self.l1 = _strength(L1Weight, l1)
    self.l2 = _strength(L2Weight, l2)


def penalize(problem: Any, l1: float = 0.0, l2: float = 0.0, where: Where = is_kernel) -> Any:
  """`problem` with the L1 and L2 penalties added to its loss: J̃ = J + α‖w‖₁ + (β/2)‖w‖².

  The weight decay of §7.1.1 (β) and the sparsifying L1 penalty of §7.1.2 (α), on the
  parameters `where(path, array)` picks (default `is_kernel`: weights, not biases). The
  returned problem's model is the original with an attribute `penalty_weights` holding α and β as
  `Strength`s (so a sweep can vary them, `set_strengths(state, l1=..., l2=...)`); its loss is
  J̃ wherever the loss is reported (`train_loss` and `test_loss`), its metrics are unchanged.
  A model with state no longer takes several batch sizes in one sweep program (`Pure.loss`).

  Raises:
    ValueError: l1 or l2 negative or not finite, or a problem `penalize` already returned (here);
      a model of your own that already has the attribute, when it is built.
  """
  from jaxopt_study import problem as problem_lib  # problem imports models, which import us

  if not isinstance(problem, problem_lib.Problem):
    raise TypeError(f"penalize: expected a Problem, got {type(problem).__name__}")
  _STRENGTH_CHECKS["l1"]("l1", l1, "penalize")
  _STRENGTH_CHECKS["l2"]("l2", l2, "penalize")
  if not callable(where):
    raise TypeError(f"penalize: where={where!r} must be a function (path, array) -> bool")
  make, loss = problem.model, problem.loss
  if loss in _PENALIZED:
    raise ValueError(
      "penalize: the problem is already penalized; give both penalties in one call, "
      "penalize(problem, l1=..., l2=...)"
    )

  def model(rngs: nnx.Rngs) -> nnx.Module:
    module = make(rngs)
    if hasattr(module, PENALTY_ATTRIBUTE):
      raise ValueError(
        f"penalize: the model already has an attribute {PENALTY_ATTRIBUTE!r} (penalized twice?)"
      )
    setattr(module, PENALTY_ATTRIBUTE, PenaltyWeights(l1, l2))
    return module

  def penalized(module: nnx.Module, batch: tuple) -> jax.Array:
    weights = getattr(module, PENALTY_ATTRIBUTE)
    return loss(module, batch) + penalty(module, weights.l1[...], weights.l2[...], where)

  _PENALIZED.add(penalized)
  return dataclasses.replace(problem, model=model, loss=penalized)
