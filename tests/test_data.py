"""Tests for jaxopt_study.data: the digits split, synthetic tasks and minibatch sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.datasets
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_study import data


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
  return data.load_digits()


def test_digits_shapes_and_dtypes(digits):
  assert digits.x_train.shape == (1347, 64)  # sklearn rounds the test share up: ⌈0.25·1797⌉ = 450
  assert digits.x_test.shape == (450, 64)
  assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
  assert digits.x_train.dtype == jnp.float32 and digits.y_train.dtype == jnp.int32
  assert set(np.unique(digits.y_train)) == set(range(10))
  assert set(np.unique(digits.y_test)) == set(range(10))


def test_digits_split_is_stratified(digits):
  _, y = sklearn.datasets.load_digits(return_X_y=True)
  expected = 0.25 * np.bincount(y)
  np.testing.assert_allclose(np.bincount(digits.y_test), expected, atol=1.0)


def test_digits_standardized_with_train_statistics(digits):
  x_train = np.asarray(digits.x_train, np.float64)
  np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
  std = x_train.std(axis=0)
  constant = std < 1e-6
  # Border pixels that are always blank stay at 0 (centered, not divided by 0); the rest have std 1.
  assert 0 < constant.sum() < 10
  np.testing.assert_array_equal(x_train[:, constant], 0.0)
  np.testing.assert_allclose(std[~constant], 1.0, atol=1e-5)
  assert np.all(np.isfinite(digits.x_test))
  # Test statistics were not used: the test means are only close to 0, not equal to it.
  assert np.abs(np.asarray(digits.x_test).mean(axis=0)).max() > 1e-2


def test_digits_split_depends_on_seed_only(digits):
  again = data.load_digits(split_seed=0)
  for a, b in zip(digits, again, strict=True):
    np.testing.assert_array_equal(a, b)
  other = data.load_digits(split_seed=1)
  assert not np.array_equal(digits.y_train, other.y_train)
  assert not np.array_equal(digits.x_train, other.x_train)


def test_digits_dtype_and_fraction(x64):
  ds = data.load_digits(test_fraction=0.5, dtype=jnp.float64)
  assert ds.x_train.dtype == jnp.float64
  assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
  assert abs(ds.x_test.shape[0] - 898.5) <= 0.5


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.1, 1.5])
def test_digits_bad_fraction(test_fraction):
  with pytest.raises(ValueError, match="test_fraction"):
    data.load_digits(test_fraction=test_fraction)


def test_teacher_student_shapes_and_noise():
  key = jax.random.key(0)
  clean = data.teacher_student(key, 2000, 500, in_dim=8, hidden_dim=16, out_dim=3)
  noisy = data.teacher_student(key, 2000, 500, in_dim=8, hidden_dim=16, out_dim=3, noise_std=0.3)
  assert clean.x_train.shape == (2000, 8) and clean.y_train.shape == (2000, 3)
  assert clean.x_test.shape == (500, 8) and clean.y_test.shape == (500, 3)
  # Same key: same inputs and teacher, so the difference is the noise alone.
  np.testing.assert_array_equal(clean.x_train, noisy.x_train)
  residual = np.concatenate([noisy.y_train - clean.y_train, noisy.y_test - clean.y_test])
  # 7500 draws: the sample std has relative standard error 1/√(2·7500) ≈ 0.8%; allow 4%.
  np.testing.assert_allclose(residual.std(), 0.3, rtol=0.04)
  np.testing.assert_allclose(residual.mean(), 0.0, atol=0.02)
  # The targets are a non-trivial function of the inputs.
  assert 0.05 < float(jnp.var(clean.y_train)) < 5.0
  other = data.teacher_student(jax.random.key(1), 2000, 500, 8, 16, 3)
  assert not np.allclose(clean.y_train, other.y_train)


@pytest.mark.parametrize(
  ("kwargs", "name"),
  [
    ({"num_train": 0}, "num_train"),
    ({"hidden_dim": 0}, "hidden_dim"),
    ({"noise_std": -1.0}, "noise_std"),
  ],
)
def test_teacher_student_bad_args(kwargs, name):
  args = {"num_train": 10, "num_test": 5, "in_dim": 3, "hidden_dim": 4, "out_dim": 2, **kwargs}
  with pytest.raises(ValueError, match=name):
    data.teacher_student(jax.random.key(0), **args)


def test_whitened_linear_regression():
  num_examples, in_dim, out_dim, s = 40, 16, 12, [3.0, 1.5, 0.25]
  ds = data.whitened_linear_regression(jax.random.key(3), num_examples, in_dim, out_dim, s)
  assert ds.x_train.shape == ds.x_test.shape == (num_examples, in_dim)
  assert ds.y_train.shape == ds.y_test.shape == (num_examples, out_dim)
  for x in (ds.x_train, ds.x_test):
    np.testing.assert_allclose(x.T @ x / num_examples, np.eye(in_dim), atol=1e-5)
  correlation = np.asarray(ds.y_train.T @ ds.x_train / num_examples, np.float64)  # Σ₃₁ = W
  expected = np.zeros(min(in_dim, out_dim))
  expected[: len(s)] = s
  np.testing.assert_allclose(np.linalg.svd(correlation, compute_uv=False), expected, atol=1e-5)
  # Test set: an independent draw of inputs, mapped by the same W.
  assert not np.allclose(ds.x_train, ds.x_test)
  test_correlation = np.asarray(ds.y_test.T @ ds.x_test / num_examples)
  np.testing.assert_allclose(test_correlation, correlation, atol=1e-5)


@pytest.mark.parametrize(
  ("args", "name"),
  [
    ((5, 10, 3, [1.0]), "num_examples"),
    ((50, 10, 3, [1.0, 1.0, 1.0, 1.0]), "singular_values"),
    ((50, 10, 3, [1.0, -1.0]), "singular_values"),
    ((50, 10, 3, []), "singular_values"),
  ],
)
def test_whitened_linear_regression_bad_args(args, name):
  with pytest.raises(ValueError, match=name):
    data.whitened_linear_regression(jax.random.key(0), *args)


def _epoch(key, epoch, num_examples, batch_size):
  """All batches of an epoch, concatenated in step order."""
  steps = num_examples // batch_size
  return np.concatenate(
    [data.batch_indices(key, epoch * steps + i, num_examples, batch_size) for i in range(steps)]
  )


def test_epoch_sampling_covers_each_epoch_once():
  key = jax.random.key(7)
  first, second = _epoch(key, 0, 103, 10), _epoch(key, 1, 103, 10)
  for indices in (first, second):
    assert indices.dtype == np.int32
    assert len(indices) == 100 == len(set(indices.tolist()))  # 3 = 103 mod 10 dropped
    assert indices.min() >= 0 and indices.max() < 103
  assert not np.array_equal(first, second)  # reshuffled every epoch


# Few sizes n, as each compiles its own permutation; every batch size m in [1, n] is cheap.
@settings(max_examples=12, deadline=None)
@given(st.sampled_from([1, 23, 103]).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_epoch_sampling_property(sizes):
  num_examples, batch_size = sizes
  indices = _epoch(jax.random.key(0), 2, num_examples, batch_size)
  assert len(set(indices.tolist())) == len(indices) == num_examples - num_examples % batch_size
  assert 0 <= indices.min() and indices.max() < num_examples


def test_replacement_sampling():
  key = jax.random.key(1)
  draws = np.stack([data.batch_indices(key, step, 20, 15, "replacement") for step in range(4)])
  assert draws.dtype == np.int32 and draws.shape == (4, 15)
  assert draws.min() >= 0 and draws.max() < 20
  assert not np.array_equal(draws[0], draws[1])
  # 60 draws from 20 values: a repeat is certain (pigeonhole), unlike epoch sampling.
  assert len(set(draws.ravel().tolist())) < draws.size


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
def test_batch_indices_jit_with_traced_step(sampling):
  key = jax.random.key(2)
  traces = []

  @jax.jit
  def jitted(step):
    traces.append(step)
    return data.batch_indices(key, step, 50, 8, sampling)

  for step in [0, 5, 6, 13, 100]:
    np.testing.assert_array_equal(jitted(step), data.batch_indices(key, step, 50, 8, sampling))
  assert len(traces) == 1  # the step is traced, not baked in: one compilation for all steps


@pytest.mark.parametrize(
  ("kwargs", "name"),
  [
    ({"sampling": "stratified"}, "sampling"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 11}, "batch_size"),
  ],
)
def test_batch_indices_bad_args(kwargs, name):
  args = {"num_examples": 10, "batch_size": 2, **kwargs}
  with pytest.raises(ValueError, match=name):
    data.batch_indices(jax.random.key(0), 0, **args)


def test_datasets_registry():
  assert {
    "digits",
    "teacher_student",
    "teacher_classification",
    "whitened_linear_regression",
  } <= set(data.DATASETS)
  assert data.DATASETS["digits"] is data.load_digits
