"""Outliers and bulk of a Hessian spectrum (Sagun et al. 2017; Papyan 2019).

The Hessian of a trained classifier has a bulk of eigenvalues near zero and a few large outliers,
about one per class (Sagun, Evci, Güney, Dauphin & Bottou 2017, §3; Papyan 2019). Counting the
outliers needs a rule; the one here is the eigengap heuristic, fixed in advance of any
measurement: the outliers are the eigenvalues above the largest ratio λ_k / λ_{k+1} between
consecutive eigenvalues among the largest `search` + 1 (a ratio, since the outliers and the bulk
live on different scales).

`class_mean_gram` is Papyan's (2019) explanation of the outliers, to check a count against: the
C × C Gram matrix of the class means of the per-example gradients, whose eigenvalues are those of
the between-class part of the Gauss-Newton matrix.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_study.hessian import products


class Outliers(NamedTuple):
  """The outliers of a spectrum by the largest eigengap (see `count_outliers`)."""

  count: int  # k, the number of outliers
  gap_ratio: float  # λ_k / λ_{k+1}, the largest ratio found
  bulk_edge: float  # λ_{k+1}, the largest eigenvalue of the bulk


def count_outliers(eigenvalues: np.ndarray, search: int = 50) -> Outliers:
  """The outliers of `eigenvalues` by the largest ratio between consecutive eigenvalues.

  With λ₁ ≥ λ₂ ≥ … the eigenvalues in decreasing order, k = argmax_{1 ≤ k ≤ search} λ_k / λ_{k+1}:
  λ₁ … λ_k are the outliers and λ_{k+1} is the edge of the bulk.

  Args:
    eigenvalues: the spectrum, in any order.
    search: the largest number of outliers considered.

  Returns:
    `Outliers(count, gap_ratio, bulk_edge)`.

  Raises:
    ValueError: fewer than `search` + 1 positive eigenvalues (the ratios would be undefined).
  """
  if int(search) != search or search < 1:
    raise ValueError(f"search={search!r}: must be an integer ≥ 1")
  top = np.sort(np.asarray(eigenvalues, float))[::-1][: search + 1]
  if top.size < search + 1 or top[-1] <= 0:
    raise ValueError(
      f"search={search}: needs at least {search + 1} positive eigenvalues, the largest "
      f"{search + 1} are {top.tolist()}"
    )
  ratios = top[:-1] / top[1:]
  k = int(np.argmax(ratios)) + 1
  return Outliers(count=k, gap_ratio=float(ratios[k - 1]), bulk_edge=float(top[k]))


def fraction_near_zero(eigenvalues: np.ndarray, relative: float) -> float:
  """The fraction of eigenvalues with |λ| ≤ relative · max|λ| (the bulk near zero)."""
  if not 0 < relative < 1:
    raise ValueError(f"relative={relative!r}: must lie strictly between 0 and 1")
  values = np.abs(np.asarray(eigenvalues, float))
  return float(np.mean(values <= relative * values.max()))


class ClassMeanGram(NamedTuple):
  """The class means of the gradients and their Gram matrix (see `class_mean_gram`)."""

  gram: np.ndarray  # (C, C), √(w_c w_c') ⟨δ_c, δ_c'⟩
  eigenvalues: np.ndarray  # (C,), the Gram's eigenvalues in decreasing order
  weights: np.ndarray  # (C,), w_c


def class_mean_gram(
  logits_fn: Callable[..., jax.Array],
  params: Any,
  inputs: Any,
  labels: jax.Array,
  num_classes: int | None = None,
) -> ClassMeanGram:
  """The C × C Gram matrix of the class means of the logit gradients (Papyan 2019).

  For the mean cross-entropy L = (1/n) Σᵢ ℓᵢ with logits zᵢ = f(xᵢ; θ), probabilities pᵢ and
  Jacobians Jᵢ = ∂zᵢ/∂θ, the Gauss-Newton part of the Hessian is a second moment of logit
  gradients (Papyan 2019, §2): G = (1/n) Σᵢ Σ_c' p_ic' δ_ic' δ_ic'ᵀ with δ_ic' = Jᵢᵀ(e_c' − pᵢ).
  Grouping the pairs (i, c') with c' ≠ yᵢ by the class c = yᵢ gives one class mean per class,
  with the weight w_c of its group,

      w_c = (1/n) Σ_{i: yᵢ = c} (1 − p_ic),    δ_c = (1/(n w_c)) Σ_{i: yᵢ = c} p_ic ∇θ ℓᵢ

  (since Σ_c' p_ic' δ_ic' = 0, the p-weighted sum of δ_ic' over c' ≠ c is p_ic ∇θ ℓᵢ, the
  per-example gradient ∇θ ℓᵢ = Jᵢᵀ(pᵢ − e_yᵢ)). G ⪰ Σ_c w_c δ_c δ_cᵀ, a matrix of rank ≤ C whose
  nonzero eigenvalues are those of the Gram matrix √(w_c w_c') ⟨δ_c, δ_c'⟩ returned here: each is
  at most the matching eigenvalue of G (Weyl), and Papyan's claim is that these class means make
  the outliers of the spectrum. At a critical point Σ_c w_c δ_c = ∇L = 0 (the per-example
  gradients weighted by p_ic ≈ 1), so about C − 1 of them are far from zero. Computed with C
  vector-Jacobian products of the logits in one compiled program, never a Jacobian.

  For a `Problem` whose module maps inputs to logits:
  ``class_mean_gram(lambda p, x: problem.module(p, state)(x), params, x, y)``.

  Args:
    logits_fn: ``logits_fn(params, inputs) -> (n, C)`` logits.
    params: any pytree of floating arrays.
    inputs: the inputs (any pytree `logits_fn` takes), n examples.
    labels: (n,) integer class ids in [0, C).
    num_classes: C (default: the logits' width).

  Returns:
    `ClassMeanGram(gram, eigenvalues, weights)` in float64.

  Raises:
    ValueError: labels not of shape (n,) or outside [0, C), or a num_classes other than the
      logits' width.
  """
  logits = jax.eval_shape(logits_fn, params, inputs)
  labels = jnp.asarray(labels)
  if len(logits.shape) != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(
      f"labels of shape {labels.shape} for logits of shape {logits.shape}: need logits (n, C) "
      "and one label per example"
    )
  if num_classes is not None and num_classes != logits.shape[1]:
    raise ValueError(f"num_classes={num_classes!r}: the logits have {logits.shape[1]} classes")
  if not isinstance(labels, jax.core.Tracer):
    ids = np.asarray(labels)  # one copy to the host
    if not np.issubdtype(ids.dtype, np.integer) and np.any(ids != np.round(ids)):
      fraction = float(ids[ids != np.round(ids)][0])
      raise ValueError(  # one_hot of 1.5 is all zeros: the example would silently drop out
        f"labels: {fraction!r} is not a class id; give integer class ids in "
        f"0...{logits.shape[1] - 1}"
      )
    outside = ids[(ids < 0) | (ids >= logits.shape[1])]
    if outside.size:  # one_hot would give it no class: the example would silently drop out
      raise ValueError(
        f"labels: class id {int(outside[0])} is outside 0...{logits.shape[1] - 1} (the logits' "
        "classes)"
      )
  leaves = jax.tree.leaves((params, inputs))
  if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
    # keyed by what logits_fn computes: one that reads a changed global or closure compiles again
    closed = jax.make_jaxpr(lambda p, x: logits_fn(p, x))(params, inputs)
    logits_fn = products.Fingerprinted(logits_fn, products.jaxpr_fingerprint(closed))
  means, weights = _weighted_class_means(logits_fn, params, inputs, labels)
  vectors = np.asarray(means, np.float64)
  gram = vectors @ vectors.T
  return ClassMeanGram(
    gram=gram,
    eigenvalues=np.linalg.eigvalsh(gram)[::-1].copy(),
    weights=np.asarray(weights, np.float64),
  )


@functools.partial(jax.jit, static_argnums=0)
def _weighted_class_means(
  logits_fn: Callable[..., jax.Array], params: Any, inputs: Any, labels: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """(C, N) rows √w_c δ_c and the weights w_c of `class_mean_gram`, one compiled program."""
  logits, vjp = jax.vjp(lambda p: logits_fn(p, inputs), params)
  n, width = logits.shape
  probs = jax.nn.softmax(logits, axis=-1)
  onehot = jax.nn.one_hot(labels, width, dtype=probs.dtype)
  p_true = jnp.sum(probs * onehot, axis=-1)
  weights = jnp.sum(onehot * (1.0 - p_true)[:, None], axis=0) / n
  # √w_c δ_c = Σ_{i∈c} p_ic ∇ℓᵢ / √(n² w_c); an empty or perfectly fitted class has w_c = 0
  scale = jnp.where(weights > 0, 1.0 / jnp.sqrt(n * n * jnp.where(weights > 0, weights, 1.0)), 0)
  per_example = (p_true[:, None] * (probs - onehot))[None]  # (1, n, C): p_iy ∂ℓᵢ/∂zᵢ
  cotangents = onehot.T[:, :, None] * per_example * scale[:, None, None]  # (C, n, C)
  means = jax.vmap(lambda cotangent: ravel_pytree(vjp(cotangent)[0])[0])(cotangents)
  return means, weights
