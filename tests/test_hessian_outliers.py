"""`hessian.outliers`: eigengap counts on spectra whose outliers are known."""

import numpy as np
import pytest

from jaxopt_study.hessian import outliers


def test_planted_outliers_are_counted():
  rng = np.random.default_rng(0)
  bulk = rng.uniform(0.001, 0.01, size=500)
  planted = np.asarray([5.0, 3.0, 2.5, 1.0, 0.8, 0.5])
  found = outliers.count_outliers(rng.permutation(np.concatenate([bulk, planted])), search=50)
  assert found.count == planted.size
  assert found.bulk_edge == pytest.approx(bulk.max())
  assert found.gap_ratio == pytest.approx(0.5 / bulk.max())


def test_the_largest_ratio_wins_not_the_largest_difference():
  # differences: 90 between 100 and 10, ratios: 10 (100/10) < 50 (10/0.2)
  found = outliers.count_outliers(np.asarray([100.0, 10.0, 0.2, 0.19, 0.18]), search=3)
  assert (found.count, found.gap_ratio) == (2, pytest.approx(50.0))


def test_fraction_near_zero():
  values = np.asarray([-0.005, 0.0, 0.009, 0.5, 1.0])
  assert outliers.fraction_near_zero(values, 0.01) == pytest.approx(3 / 5)
  assert outliers.fraction_near_zero(-values, 0.6) == pytest.approx(4 / 5)  # |λ| counts


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="search=3"):
    outliers.count_outliers(np.asarray([1.0, 0.5, -0.1, 0.2]), search=3)
  with pytest.raises(ValueError, match="search=0"):
    outliers.count_outliers(np.ones(4), search=0)
  with pytest.raises(ValueError, match="relative=1"):
    outliers.fraction_near_zero(np.ones(3), 1)


def _softmax_regression(seed: int, n: int = 40, d: int = 3, c: int = 4):
  """Logits x W + b with random weights on random data, as numpy float64 arrays."""
  rng = np.random.default_rng(seed)
  x, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
  params = {"w": rng.normal(size=(d, c)), "b": rng.normal(size=c)}
  return params, x, y


def _numpy_class_means(params, x, y):
  """Per-example gradients written out for softmax regression, grouped by class as in Papyan
  (2019): √w_c δ_c = Σ_{i∈c} p_ic ∇ℓᵢ / (n √w_c), w_c = Σ_{i∈c} (1 − p_ic) / n, flattened."""
  n, c = x.shape[0], params["b"].size
  z = x @ params["w"] + params["b"]
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  rows = []
  for k in range(c):
    mean = np.zeros(params["w"].size + c)
    weight = 0.0
    for i in np.flatnonzero(y == k):
      residual = p[i] - np.eye(c)[k]  # ∂ℓᵢ/∂zᵢ
      gradient = np.concatenate([np.outer(x[i], residual).ravel(), residual])
      mean += p[i, k] * gradient
      weight += (1 - p[i, k]) / n
    rows.append(mean / (n * np.sqrt(weight)))
  return np.asarray(rows), p


def _logits(params, x):
  return x @ params["w"] + params["b"][None, :]


@pytest.mark.usefixtures("x64")
def test_class_mean_gram_matches_numpy_softmax_regression():
  params, x, y = _softmax_regression(0)
  found = outliers.class_mean_gram(_logits, params, x, y)
  rows, p = _numpy_class_means(params, x, y)
  np.testing.assert_allclose(found.gram, rows @ rows.T, rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(found.eigenvalues, np.sort(np.linalg.eigvalsh(rows @ rows.T))[::-1])
  weights = [np.sum(1 - p[y == k, k]) / y.size for k in range(4)]
  np.testing.assert_allclose(found.weights, weights, rtol=1e-12)


@pytest.mark.usefixtures("x64")
def test_class_means_are_a_part_of_the_gauss_newton_matrix():
  """G − Σ_c w_c δ_c δ_cᵀ is positive semidefinite, so each Gram eigenvalue is at most G's."""
  params, x, y = _softmax_regression(1)
  rows, p = _numpy_class_means(params, x, y)
  n, d = x.shape
  gauss_newton = np.zeros((rows.shape[1],) * 2)
  for i in range(n):
    jacobian = np.concatenate([np.kron(x[i][:, None], np.eye(4)), np.eye(4)]).T  # ∂zᵢ/∂θ
    gauss_newton += jacobian.T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ jacobian / n
  assert np.linalg.eigvalsh(gauss_newton - rows.T @ rows).min() > -1e-12
  found = outliers.class_mean_gram(_logits, params, x, y).eigenvalues
  top = np.sort(np.linalg.eigvalsh(gauss_newton))[::-1][: found.size]
  assert np.all(found <= top + 1e-12)


def test_class_mean_gram_refuses_mismatched_labels():
  params, x, y = _softmax_regression(2)
  with pytest.raises(ValueError, match="labels of shape"):
    outliers.class_mean_gram(_logits, params, x, y[:-1])
  with pytest.raises(ValueError, match="num_classes=3"):
    outliers.class_mean_gram(_logits, params, x, y, num_classes=3)
  with pytest.raises(ValueError, match=r"class id 4 is outside 0\.\.\.3"):
    outliers.class_mean_gram(_logits, params, x, np.where(np.arange(y.size) == 0, 4, y))
  with pytest.raises(ValueError, match=r"labels: 0.5 is not a class id"):  # gave a Gram of zeros
    outliers.class_mean_gram(_logits, params, x, y + 0.5)


@pytest.mark.usefixtures("x64")
def test_class_mean_gram_follows_a_changed_global():
  """A logits function that reads a global (a temperature) gives the Gram matrix of the global's
  current value: it returned the first call's compiled values."""
  params, x, y = _softmax_regression(3)
  temperature = {"T": 1.0}

  def tempered(p, inputs):
    return _logits(p, inputs) / temperature["T"]

  first = outliers.class_mean_gram(tempered, params, x, y).gram
  temperature["T"] = 0.2
  again = outliers.class_mean_gram(tempered, params, x, y).gram
  fresh = outliers.class_mean_gram(lambda p, inputs: _logits(p, inputs) / 0.2, params, x, y).gram
  np.testing.assert_allclose(again, fresh, rtol=1e-12)
  assert not np.allclose(again, first)
