"""Tests for jaxopt_study.losses against references written with numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study import losses

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(scale=5.0, size=(8, 4))
LABELS = RNG.integers(0, 4, size=8)
PREDICTIONS = RNG.normal(size=(8, 3))
TARGETS = RNG.normal(size=(8, 3))


def _reference_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Per-example −log softmax(z)[y] = log Σⱼ exp(zⱼ − max z) + max z − z_y."""
  shift = logits.max(axis=1, keepdims=True)
  log_softmax = logits - shift - np.log(np.exp(logits - shift).sum(axis=1, keepdims=True))
  return -log_softmax[np.arange(len(labels)), labels]


def test_cross_entropy_matches_log_softmax_reference(x64):
  loss = losses.softmax_cross_entropy(jnp.asarray(LOGITS), jnp.asarray(LABELS))
  np.testing.assert_allclose(loss, _reference_cross_entropy(LOGITS, LABELS).mean(), rtol=1e-12)
  jitted = jax.jit(losses.softmax_cross_entropy)(jnp.asarray(LOGITS), jnp.asarray(LABELS))
  np.testing.assert_allclose(jitted, loss, rtol=1e-12)


def test_cross_entropy_is_stable_for_large_logits():
  logits = jnp.asarray([[1000.0, 0.0], [0.0, -1000.0]])
  np.testing.assert_allclose(losses.softmax_cross_entropy(logits, jnp.asarray([1, 0])), 500.0)


def test_zero_one_error():
  logits = jnp.asarray([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 0.0, -1.0]])
  labels = jnp.asarray([0, 2, 2, 1])  # right, wrong, right, wrong (a tie goes to class 0)
  np.testing.assert_allclose(losses.zero_one_error(logits, labels), 0.5)
  np.testing.assert_allclose(losses.zero_one_error(logits, jnp.asarray([0, 1, 2, 0])), 0.0)


def test_zero_one_error_of_nan_logits_is_nan_not_the_share_of_labels_other_than_zero():
  """A diverged model: argmax of a NaN row is 0, so every label 0 would count as right."""
  logits = jnp.asarray([[jnp.nan, jnp.nan], [0.0, 1.0]])
  assert np.isnan(losses.zero_one_error(logits, jnp.asarray([0, 1])))
  assert np.isnan(jax.jit(losses.zero_one_error)(logits, jnp.asarray([0, 1])))


def test_zero_one_error_refuses_labels_of_another_shape():
  """(n, 1) labels would broadcast against the (n,) predictions into an (n, n) comparison."""
  logits = jnp.asarray(LOGITS)
  with pytest.raises(ValueError, match=r"labels of shape \(8, 1\).*shape \(8,\)"):
    losses.zero_one_error(logits, jnp.asarray(LABELS)[:, None])
  with pytest.raises(ValueError, match=r"labels of shape \(7,\)"):
    losses.zero_one_error(logits, jnp.asarray(LABELS)[:7])


def test_mean_squared_error_is_half_the_squared_norm(x64):
  predictions, targets = jnp.asarray(PREDICTIONS), jnp.asarray(TARGETS)
  expected = np.mean(
    [0.5 * np.sum((p - t) ** 2) for p, t in zip(PREDICTIONS, TARGETS, strict=True)]
  )
  np.testing.assert_allclose(losses.mean_squared_error(predictions, targets), expected, rtol=1e-12)
  # The ½ makes the gradient the residual divided by the number of examples.
  gradient = jax.grad(losses.mean_squared_error)(predictions, targets)
  np.testing.assert_allclose(gradient, (PREDICTIONS - TARGETS) / 8, rtol=1e-12)
  vector = losses.mean_squared_error(predictions[:, 0], targets[:, 0])  # one output per example
  np.testing.assert_allclose(vector, 0.5 * np.mean((PREDICTIONS[:, 0] - TARGETS[:, 0]) ** 2))


CASES = [
  (losses.softmax_cross_entropy, LOGITS, LABELS),
  (losses.zero_one_error, LOGITS, LABELS),
  (losses.mean_squared_error, PREDICTIONS, TARGETS),
]


@pytest.mark.parametrize(("loss_fn", "outputs", "targets"), CASES)
def test_zero_weights_drop_examples(x64, loss_fn, outputs, targets):
  keep = np.array([1, 0, 1, 1, 0, 0, 1, 1], bool)
  weighted = loss_fn(jnp.asarray(outputs), jnp.asarray(targets), jnp.asarray(keep, jnp.float64))
  subset = loss_fn(jnp.asarray(outputs[keep]), jnp.asarray(targets[keep]))
  np.testing.assert_allclose(weighted, subset, rtol=1e-12)


@pytest.mark.parametrize(("loss_fn", "outputs", "targets"), CASES)
def test_weighted_mean(x64, loss_fn, outputs, targets):
  weights = np.linspace(0.5, 2.0, 8)
  per_example = [
    loss_fn(jnp.asarray(o[None]), jnp.asarray(t[None]))
    for o, t in zip(outputs, targets, strict=True)
  ]
  expected = np.sum(weights * np.asarray(per_example)) / np.sum(weights)
  actual = loss_fn(jnp.asarray(outputs), jnp.asarray(targets), jnp.asarray(weights))
  np.testing.assert_allclose(actual, expected, rtol=1e-12)
  # Only ratios of weights matter.
  doubled = loss_fn(jnp.asarray(outputs), jnp.asarray(targets), jnp.asarray(2.0 * weights))
  np.testing.assert_allclose(doubled, actual, rtol=1e-12)


def test_all_zero_weights_give_zero_not_nan():
  loss = losses.mean_squared_error(jnp.ones((3, 2)), jnp.zeros((3, 2)), jnp.zeros(3))
  assert loss == 0.0


def test_bad_shapes():
  with pytest.raises(ValueError, match="weights"):
    losses.softmax_cross_entropy(jnp.zeros((3, 2)), jnp.zeros(3, jnp.int32), jnp.ones(4))
  with pytest.raises(ValueError, match="targets"):
    losses.mean_squared_error(jnp.zeros((3, 2)), jnp.zeros((3, 1)))


def test_registries():
  assert losses.LOSSES == {
    "cross_entropy": losses.softmax_cross_entropy,
    "mse": losses.mean_squared_error,
  }
  assert losses.ERRORS == {"zero_one": losses.zero_one_error}


@pytest.mark.parametrize("bad", [-1, 4])
@pytest.mark.parametrize("loss", [losses.softmax_cross_entropy, losses.zero_one_error])
def test_a_label_that_is_not_a_class_id_makes_the_loss_nan(loss, bad):
  """A label −1 would read the last class (−log softmax(z)[3]) and 4 of 4 classes has no unit:
  both are NaN, jitted or not, so the run reads as diverged; the other examples keep their value,
  and a weight of 0 does not hide it."""
  labels = LABELS.copy()
  labels[2] = bad
  for fn in (loss, jax.jit(loss)):
    assert np.isnan(fn(jnp.asarray(LOGITS), jnp.asarray(labels)))
    assert np.isnan(fn(jnp.asarray(LOGITS), jnp.asarray(labels), jnp.ones(8).at[2].set(0.0)))
    keep = np.arange(8) != 2
    np.testing.assert_allclose(
      fn(jnp.asarray(LOGITS[keep]), jnp.asarray(labels[keep])),
      loss(jnp.asarray(LOGITS[keep]), jnp.asarray(LABELS[keep])),
    )


def test_a_negative_weight_makes_the_mean_nan():
  """A negative weight would reward a larger loss (Σ wᵢ ℓᵢ / Σ wᵢ with w = (2, −1): 2ℓ₁ − ℓ₂):
  NaN, jitted or not, so a run trained on it reads as diverged."""
  per_example = jnp.asarray([1.0, 3.0])
  weights = jnp.asarray([2.0, -1.0])
  assert np.isnan(losses.weighted_mean(per_example, weights))
  assert np.isnan(jax.jit(losses.weighted_mean)(per_example, weights))
  assert losses.weighted_mean(per_example, jnp.asarray([2.0, 1.0])) == pytest.approx(5.0 / 3.0)
