"""Surrogate losses and the 0-1 error (Goodfellow et al. 2016, §8.1.2).

The 0-1 loss is what we care about but has zero gradient almost everywhere, so training minimizes
a surrogate, the negative log-likelihood, and reports the 0-1 error alongside (§8.1.2; training
often keeps lowering the surrogate after the 0-1 error on the training set has reached zero).

Every function maps ``(outputs, targets, weights=None)`` to a scalar: the mean over examples of a
per-example loss ℓᵢ, or with per-example weights wᵢ ≥ 0 the weighted mean Σ wᵢ ℓᵢ / Σ wᵢ. Weights
of 0 and 1 mask examples out, e.g. the padding of a batch smaller than the sweep's largest.

* `LOSSES`: name -> surrogate loss to train on, {"cross_entropy", "mse"}.
* `ERRORS`: name -> error rate to report, {"zero_one"}.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def weighted_mean(per_example: jax.Array, weights: jax.Array | None) -> jax.Array:
  """Σ wᵢ ℓᵢ / Σ wᵢ, or the plain mean of ℓ when `weights` is None.

  A negative weight has no meaning as a share of examples (it would reward a larger loss): the
  result is then NaN, which training reports as a diverged run (inside a compiled loop the weights
  cannot be checked and raise)."""
  if weights is None:
    return jnp.mean(per_example)
  if weights.shape != per_example.shape:
    raise ValueError(
      f"weights of shape {weights.shape}: need one weight per example, shape {per_example.shape}"
    )
  weights = weights.astype(per_example.dtype)
  total = jnp.sum(weights)
  safe_total = jnp.where(total > 0, total, 1.0)  # all examples masked: loss 0 rather than 0/0
  mean = jnp.sum(weights * per_example) / safe_total
  return jnp.where(jnp.all(weights >= 0), mean, jnp.nan)


def softmax_cross_entropy(
  logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
  """Mean negative log-likelihood −log softmax(logits)[label] (§5.5, §6.2.2.3).

  An example whose label is not a class id (below 0 or ≥ classes) has no likelihood: its loss is
  NaN, which training reports as a diverged run, where indexing would read a label −1 as the last
  class. (Inside a compiled loop the labels cannot be checked and raise; `problem.builtin` checks
  its labels when it is built.)

  Args:
    logits: (n, classes).
    labels: (n,) integer class ids.
    weights: optional (n,) nonnegative per-example weights.
  """
  per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return weighted_mean(_nan_unless_class(per_example, labels, logits.shape[-1]), weights)


def zero_one_error(
  logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
  """Fraction of examples whose arg-max logit is not the label: the 0-1 loss of §8.1.2.

  An example whose logits hold a NaN (a diverged model) has no arg-max: the error is then NaN, as
  the loss is, not the share of labels that `jnp.argmax`'s index 0 happens to miss; so is one
  whose label is not a class id (below 0 or ≥ classes), as in `softmax_cross_entropy`.

  Args:
    logits: (n, classes); ties go to the lowest class id, as in `jnp.argmax`.
    labels: (n,) integer class ids.
    weights: optional (n,) nonnegative per-example weights.

  Raises:
    ValueError: labels not of shape (n,) (a column (n, 1) would broadcast against the
      predictions into an (n, n) comparison).
  """
  if jnp.shape(labels) != jnp.shape(logits)[:-1]:
    raise ValueError(
      f"zero_one_error: labels of shape {jnp.shape(labels)} for logits of shape "
      f"{jnp.shape(logits)}: give one class id per example, shape {jnp.shape(logits)[:-1]}"
    )
  wrong = (jnp.argmax(logits, axis=-1) != labels).astype(logits.dtype)
  per_example = jnp.where(jnp.isnan(logits).any(axis=-1), jnp.nan, wrong)
  return weighted_mean(_nan_unless_class(per_example, labels, logits.shape[-1]), weights)


def _nan_unless_class(per_example: jax.Array, labels: jax.Array, classes: int) -> jax.Array:
  """`per_example` with NaN where the label is not a class id in [0, classes)."""
  return jnp.where((labels >= 0) & (labels < classes), per_example, jnp.nan)


def mean_squared_error(
  predictions: jax.Array, targets: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
  """Mean over examples of ½‖f(x) − y‖², the Gaussian negative log-likelihood up to constants.

  The maximum-likelihood loss of a unit-variance Gaussian output (§5.5.1). The ½ makes the
  gradient the plain residual f(x) − y, as in the deep linear analysis of Saxe et al. (2013).
  With predictions of shape (n, out_dim) the norm sums over out_dim.

  Args:
    predictions: (n, ...) network outputs.
    targets: the same shape as `predictions`.
    weights: optional (n,) nonnegative per-example weights.
  """
  if predictions.shape != targets.shape:
    raise ValueError(f"predictions {predictions.shape} and targets {targets.shape} differ in shape")
  squared = jnp.square(predictions - targets).reshape(predictions.shape[0], -1)
  return weighted_mean(0.5 * jnp.sum(squared, axis=-1), weights)


LOSSES: dict[str, Callable[..., jax.Array]] = {
  "cross_entropy": softmax_cross_entropy,
  "mse": mean_squared_error,
}

ERRORS: dict[str, Callable[..., jax.Array]] = {"zero_one": zero_one_error}
