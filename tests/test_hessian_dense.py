"""Tests of hessian/dense.py: the chunked dense Hessian, its memory check and eigensolver."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_study.hessian import (
  HessianTooLargeError,
  dense,
  dense_memory_bytes,
  hessian_matrix,
  products,
)


def tanh_mlp_loss(params, x, y):
  h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
  logits = h @ params["w2"] + params["b2"][None, :]
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.sum(logits * y, axis=-1))


def tanh_mlp_problem(dtype=jnp.float64, seed=0):
  """A 5-6-3 tanh MLP with a softmax cross-entropy: N = 57 parameters in four leaves."""
  rng = np.random.default_rng(seed)
  params = {
    "w1": jnp.asarray(rng.normal(size=(5, 6)), dtype),
    "b1": jnp.asarray(rng.normal(size=(6,)), dtype),
    "w2": jnp.asarray(rng.normal(size=(6, 3)), dtype),
    "b2": jnp.asarray(rng.normal(size=(3,)), dtype),
  }
  x = jnp.asarray(rng.normal(size=(20, 5)), dtype)
  y = jnp.asarray(np.eye(3)[rng.integers(0, 3, size=20)], dtype)
  return params, x, y


def reference_hessian(params, x, y):
  """jax.hessian (jacfwd of jacrev) of the loss of the raveled parameters, jitted."""
  flat, unravel = ravel_pytree(params)
  return jax.jit(jax.hessian(lambda f, x, y: tanh_mlp_loss(unravel(f), x, y)))(flat, x, y)


@pytest.mark.parametrize("chunk_size", [None, 10])  # 10 does not divide N = 57
def test_mlp_hessian_matches_jax_hessian(x64, chunk_size):
  params, x, y = tanh_mlp_problem()
  got = hessian_matrix(tanh_mlp_loss, params, x, y, chunk_size=chunk_size)
  assert got.shape == (57, 57) and got.dtype == jnp.float64
  np.testing.assert_allclose(got, reference_hessian(params, x, y), rtol=1e-12, atol=1e-14)
  np.testing.assert_array_equal(got, got.T)


def test_device_buffer_path_gives_the_host_buffer_result(x64):
  """The accelerator path (rows written into a donated device buffer, symmetrized in place on
  the device) run on CPU: the same matrix as the host path."""
  params, x, y = tanh_mlp_problem()
  problem = products.prepare(tanh_mlp_loss, params, (x, y), None, None, "test")
  on_device = dense.dense_hessian(problem, 10, on_host=False)
  assert isinstance(on_device, jax.Array)
  on_host = dense.dense_hessian(problem, 10, on_host=True)
  np.testing.assert_allclose(on_device, on_host, rtol=1e-14, atol=1e-15)
  np.testing.assert_array_equal(on_device, on_device.T)


def test_default_chunk_shrinks_when_its_activations_exceed_the_budget(x64):
  """20 000 examples: a chunk of all 57 rows would hold ~57 × 20 000 × 6 doubles per activation,
  far above 32 MiB, so the chunk shrinks; the Hessian is the same."""
  params, _, _ = tanh_mlp_problem()
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(20_000, 5)))
  y = jnp.asarray(np.eye(3)[rng.integers(0, 3, size=20_000)])
  problem = products.prepare(tanh_mlp_loss, params, (x, y), None, None, "test")
  shared = (problem.flat_params, problem.fixed, problem.data)
  compiled, chunk = dense._compiled_rows(problem, shared, None)  # noqa: SLF001
  assert chunk < 57
  assert compiled.memory_analysis().temp_size_in_bytes <= dense.MIN_CHUNK_WORK_BYTES
  np.testing.assert_allclose(
    dense.dense_hessian(problem, None), reference_hessian(params, x, y), rtol=1e-11, atol=1e-13
  )


def test_float32_hessian_stays_float32_and_close():
  params, x, y = tanh_mlp_problem(jnp.float32)
  got = hessian_matrix(tanh_mlp_loss, params, x, y)
  assert got.dtype == jnp.float32
  with jax.enable_x64(True):
    expected = reference_hessian(*tanh_mlp_problem(jnp.float64))
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


def test_quadratic_hessian_is_its_matrix(x64):
  a = np.random.default_rng(0).normal(size=(6, 6))
  a = a + a.T
  got = hessian_matrix(lambda p: 0.5 * p["v"] @ jnp.asarray(a) @ p["v"], {"v": jnp.ones(6)})
  np.testing.assert_allclose(got, a, rtol=1e-14)


def test_oversized_request_is_refused_at_once():
  """N = 10⁶ float32 would need 3.6 TiB: refused in well under a second, nothing built."""
  params = {"w": jnp.zeros((1000, 1000), jnp.float32)}
  calls = []

  def loss(p):
    calls.append(1)
    return jnp.sum(p["w"] ** 2)

  start = time.perf_counter()
  with pytest.raises(HessianTooLargeError) as error:
    hessian_matrix(loss, params)
  assert time.perf_counter() - start < 1.0
  message = str(error.value)
  assert "N=1,000,000" in message and "3.6 TiB" in message and 'method="lanczos"' in message
  assert not calls  # the loss was never traced
  assert isinstance(error.value, MemoryError) and isinstance(error.value, ValueError)


def test_memory_estimate_counts_matrix_chunk_and_solver():
  assert dense_memory_bytes(1000, jnp.float32, 10) == 1000 * 1000 * 4 + 4 * 10 * 1000 * 4
  assert dense_memory_bytes(1000, jnp.float64, 10, eigenvectors=True) == (
    3 * 1000 * 1000 * 8 + 4 * 10 * 1000 * 8
  )
  assert dense.human_bytes(1536) == "1.5 KiB" and dense.human_bytes(12) == "12 B"


def test_in_place_symmetrization_averages_every_block():
  rng = np.random.default_rng(0)
  for size, block in ((7, 3), (12, 5), (4, 4)):
    matrix = rng.normal(size=(size, size))
    expected = 0.5 * (matrix + matrix.T)
    dense._symmetrize_numpy(matrix)  # noqa: SLF001 (the CPU path of hessian_matrix)
    np.testing.assert_allclose(matrix, expected, rtol=1e-15)
    device = dense._symmetrize_device(jnp.asarray(rng.normal(size=(size, size))), block)
    np.testing.assert_allclose(device, device.T, rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eigensolver_matches_numpy_in_both_precisions(x64, dtype):
  a = np.random.default_rng(0).normal(size=(40, 40))
  a = (a + a.T).astype(dtype)
  expected = np.linalg.eigvalsh(a.astype(np.float64))
  values, vectors = dense.symmetric_eigh(a.copy(), eigenvectors=True)
  assert values.dtype == dtype
  rtol = 1e-5 if dtype == np.float32 else 1e-12
  np.testing.assert_allclose(values, expected, rtol=rtol, atol=rtol * 10)
  np.testing.assert_allclose(a @ vectors, vectors * values, atol=rtol * 100)
  device_values, _ = dense.symmetric_eigh(jnp.asarray(a), eigenvectors=False)
  np.testing.assert_allclose(device_values, expected, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("size", [1, 2, 97])
def test_device_eigenvalues_alone_come_from_a_tridiagonal_reduction_of_the_donated_matrix(
  x64, size
):
  """The accelerator path (here on the CPU device): values without eigenvectors, the matrix's
  buffer consumed, the same spectrum as numpy and as the path with eigenvectors."""
  a = np.random.default_rng(size).normal(size=(size, size))
  a = a + a.T
  matrix = jnp.asarray(a)
  values, vectors = dense.symmetric_eigh(matrix, eigenvectors=False)
  assert vectors is None and matrix.is_deleted()
  assert values.dtype == np.float64
  np.testing.assert_allclose(values, np.linalg.eigvalsh(a), rtol=1e-12, atol=1e-12)
  values_too, vectors = dense.symmetric_eigh(jnp.asarray(a), eigenvectors=True)
  np.testing.assert_allclose(values_too, values, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(a @ vectors, vectors * values, atol=1e-11)


def test_a_dense_hessian_over_its_time_limit_is_refused_with_an_estimate():
  """The first chunk is timed; ⌈N / chunk⌉ chunks at that time over max_seconds: refused."""
  from jaxopt_study.hessian import HessianTooSlowError, hessian_matrix, spectrum

  w = jnp.linspace(-1.0, 1.0, 300)
  loss = lambda p: jnp.sum(jnp.tanh(p["w"]) ** 2)  # noqa: E731
  with pytest.raises(HessianTooSlowError, match=r"would take about .* s.*method=\"lanczos\""):
    hessian_matrix(loss, {"w": w}, chunk_size=10, max_seconds=1e-9)
  with pytest.raises(HessianTooSlowError, match="max_seconds=1e-09"):
    spectrum(loss, {"w": w}, chunk_size=10, max_seconds=1e-9)
  assert hessian_matrix(loss, {"w": w}, chunk_size=10).shape == (300, 300)


def test_an_eigensolver_over_the_time_limit_is_refused_before_any_hessian_vector_product(
  monkeypatch,
):
  """N = 5000: the solve, timed at N = 1024 and scaled by (5000/1024)³ ≈ 116, is estimated at
  seconds; with half a second allowed the refusal comes before a single row is built."""
  from jaxopt_study.hessian import HessianTooSlowError, classify, dense, spectrum

  def no_rows(*args, **kwargs):
    raise AssertionError("a Hessian row was built")

  monkeypatch.setattr(dense, "_compiled_rows", no_rows)
  w = jnp.linspace(-1.0, 1.0, 5000)
  loss = lambda p: jnp.sum(jnp.tanh(p["w"]) ** 2)  # noqa: E731
  with pytest.raises(HessianTooSlowError, match=r"eigenvalues alone would take about .* s"):
    spectrum(loss, {"w": w}, max_seconds=0.5)
  with pytest.raises(HessianTooSlowError, match="max_seconds=0.5"):
    classify(loss, {"w": w}, max_seconds=0.5)
  assert dense.solve_seconds(2048, np.float32, True, False) == 0.0  # small: not timed


def test_the_memory_guard_uses_the_memory_available_now():
  from jaxopt_study.hessian import dense

  limit, what = dense.memory_limit_bytes(jax.devices()[0])
  with open("/proc/meminfo") as f:
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
  assert "MemAvailable" in what
  assert abs(limit - fields["MemAvailable"]) < 0.2 * fields["MemTotal"]
  assert limit <= fields["MemTotal"]
