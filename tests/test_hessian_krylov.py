"""Tests of hessian/krylov.py: Lanczos, Ritz pairs, SLQ density and Hutchinson's trace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study.hessian import density, hutchinson_trace, lanczos, ritz, spectrum

OUTLIERS = np.asarray([10.0, 20.0, 30.0, 40.0, 50.0])


def outlier_matrix(size=200, seed=0):
  """Q diag(λ) Qᵀ: a bulk uniform on [0, 1] and five well-separated outliers 10 ... 50."""
  rng = np.random.default_rng(seed)
  eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, size - 5), OUTLIERS])
  basis, _ = np.linalg.qr(rng.normal(size=(size, size)))
  return (basis * eigenvalues) @ basis.T, np.sort(eigenvalues)


def quadratic(p, a):
  """½ pᵀ A p with A as data: the tests share their compiled programs."""
  return 0.5 * p @ a @ p


def test_top_ritz_values_of_separated_outliers_are_exact(x64):
  matrix, eigenvalues = outlier_matrix()
  result = lanczos(lambda v: jnp.asarray(matrix) @ v, 200, 40, jax.random.key(1))
  pairs = ritz(result, eigenvectors=True)
  np.testing.assert_allclose(pairs.values[-5:], OUTLIERS, rtol=1e-10)
  basis = np.asarray(result.basis)
  np.testing.assert_allclose(basis @ basis.T, np.eye(40), atol=1e-13)  # full reorthogonalization
  top = pairs.vectors[:, -1]
  np.testing.assert_allclose(matrix @ top, 50.0 * top, atol=1e-8)
  np.testing.assert_allclose(pairs.weights.sum(), 1.0, rtol=1e-14)
  assert eigenvalues[-1] == 50.0


def test_spectrum_lanczos_top_k_within_1e_3_of_exact_in_float32():
  matrix, _ = outlier_matrix()
  data = (jnp.ones(200, jnp.float32), jnp.asarray(matrix, jnp.float32))
  exact = spectrum(quadratic, *data).eigenvalues
  approx = spectrum(quadratic, *data, method="lanczos", k=5)
  assert approx.eigenvalues.shape == (5,)
  np.testing.assert_allclose(approx.eigenvalues, exact[-5:], rtol=1e-3)


def test_invariant_subspace_restarts_and_finds_every_eigenvalue(x64):
  """3 distinct eigenvalues in ℝ⁸: the Krylov space of any start vector is invariant after 3
  steps; the restarts let 8 steps reach all 8 eigenvalues, multiplicities included."""
  eigenvalues = np.asarray([1.0, 1.0, 1.0, 2.0, 2.0, 5.0, 5.0, 5.0])
  result = lanczos(lambda v: jnp.asarray(eigenvalues) * v, 8, 8, jax.random.key(0))
  assert np.sum(np.asarray(result.betas) == 0.0) >= 2  # at least two restarts recorded
  np.testing.assert_allclose(ritz(result).values, eigenvalues, atol=1e-12)
  basis = np.asarray(result.basis)
  np.testing.assert_allclose(basis @ basis.T, np.eye(8), atol=1e-13)


def test_lanczos_start_vector_and_errors(x64):
  start = jnp.asarray([3.0, 4.0, 0.0])
  result = lanczos(lambda v: v * jnp.asarray([1.0, 2.0, 3.0]), start, 1)
  np.testing.assert_allclose(result.basis[0], start / 5.0)
  np.testing.assert_allclose(result.alphas[0], (9.0 + 32.0) / 25.0)  # qᵀ H q
  with pytest.raises(ValueError, match=r"num_steps=4: must be an integer in \[1, N=3\]"):
    lanczos(lambda v: v, 3, 4)
  with pytest.raises(ValueError, match="keep_basis=True"):
    ritz(lanczos(lambda v: v, 3, 2, keep_basis=False), eigenvectors=True)


CURVATURES = jnp.asarray([1.0, 2.0, 3.0])  # a global that a matvec reads


def _global_matvec(v):
  return CURVATURES * v


def test_lanczos_sees_the_values_a_matvec_reads_now(x64, monkeypatch):
  """The loop is jitted with matvec static: a second call with the same function after the
  array it reads changed returned the first call's Ritz values."""
  for curvatures in ([1.0, 2.0, 3.0], [-5.0, 2.0, 7.0]):
    monkeypatch.setitem(_global_matvec.__globals__, "CURVATURES", jnp.asarray(curvatures))
    np.testing.assert_allclose(ritz(lanczos(_global_matvec, 3, 3)).values, sorted(curvatures))


def test_lanczos_inside_jit_on_a_traced_matrix(x64):
  """Inside an outer jit the matvec closes over the outer trace's values: nothing to
  fingerprint, and each outer call computes with its own."""

  @jax.jit
  def ritz_values_of(curvatures):
    return lanczos(lambda v: curvatures * v, 3, 3).alphas

  for curvatures in ([1.0, 2.0, 3.0], [-5.0, 2.0, 7.0]):
    alphas = ritz_values_of(jnp.asarray(curvatures))
    assert float(jnp.sum(alphas)) == pytest.approx(sum(curvatures))  # trace T = trace H


def test_a_matvec_of_the_wrong_size_is_refused_by_name():
  with pytest.raises(ValueError, match=r"matvec maps a vector of shape \(4,\) to \[\(5,\)\]"):
    lanczos(lambda v: jnp.ones(5), 4, 3)


def test_density_integrates_to_one_and_its_mean_is_hutchinson(x64):
  matrix, eigenvalues = outlier_matrix()
  data = (jnp.ones(200), jnp.asarray(matrix))
  key = jax.random.key(3)
  result = density(quadratic, *data, num_probes=6, num_steps=30, key=key)
  mass = np.trapezoid(result.density, result.grid)
  np.testing.assert_allclose(mass, 1.0, rtol=1e-6)
  mean = np.trapezoid(result.grid * result.density, result.grid)
  trace = hutchinson_trace(quadratic, *data, num_probes=6, key=key)
  np.testing.assert_allclose(mean, trace.trace / 200, rtol=1e-6)  # the same probes
  assert result.grid[0] < eigenvalues[0] and result.grid[-1] > eigenvalues[-1]
  # the five outliers carry 5/200 of the mass: the density above 5 holds about that much
  upper = result.grid > 5.0
  np.testing.assert_allclose(
    np.trapezoid(result.density[upper], result.grid[upper]), 0.025, atol=0.015
  )


@pytest.mark.parametrize("size", [10, 50])
def test_the_density_of_an_isotropic_hessian_is_one_peak_of_mass_one(x64, size):
  """H = 2I: Ritz values apart by rounding only once passed for a spread, σ ≈ 1e-17 on a grid
  8e-15 wide, a density integrating to 1.34; the one-point σ = 1e-3 max(1, |θ|) applies."""
  result = density(lambda p: jnp.sum(p**2), jnp.ones(size), num_probes=3, num_steps=5)
  np.testing.assert_allclose(np.trapezoid(result.density, result.grid), 1.0, rtol=1e-6)
  sigma = 2e-3
  np.testing.assert_allclose(result.grid[[0, -1]], [2 - 6 * sigma, 2 + 6 * sigma], rtol=1e-9)
  np.testing.assert_allclose(result.density.max(), 1 / (sigma * np.sqrt(2 * np.pi)), rtol=1e-4)


def test_the_density_of_an_isotropic_hessian_of_mixed_precision_is_one_peak(x64):
  """A float32 leaf beside a float64 one: the Ritz values are apart by float32 rounding, which
  the raveled (float64) dtype's ε took for a spread."""
  params = {"a": jnp.ones(40, jnp.float32), "b": jnp.ones(1)}
  loss = lambda p: jnp.sum(p["a"] ** 2) + jnp.sum(p["b"] ** 2)  # noqa: E731
  result = density(loss, params, num_probes=3, num_steps=5)
  np.testing.assert_allclose(np.trapezoid(result.density, result.grid), 1.0, rtol=1e-6)
  np.testing.assert_allclose(result.grid[[0, -1]], [2 - 12e-3, 2 + 12e-3], rtol=1e-6)


def test_density_on_a_given_grid_with_a_given_sigma(x64):
  data = (jnp.ones(2), jnp.diag(jnp.asarray([1.0, 3.0])))
  grid = np.linspace(-2.0, 6.0, 4001)
  result = density(quadratic, *data, num_probes=2, num_steps=2, grid=grid, sigma=0.1)
  np.testing.assert_array_equal(result.grid, grid)
  # exact quadrature with 2 nodes: every probe gives nodes 1 and 3 with weights ½, ½
  expected = 0.5 * (np.exp(-0.5 * ((grid - 1) / 0.1) ** 2) + np.exp(-0.5 * ((grid - 3) / 0.1) ** 2))
  np.testing.assert_allclose(result.density, expected / (0.1 * np.sqrt(2 * np.pi)), atol=1e-10)
  with pytest.raises(ValueError, match="num_steps=3"):
    density(quadratic, *data, num_steps=3)
  # the default, min(N, 80) steps: N = 2 once failed with "num_steps=80: must be ... in [1, N=2]"
  default = density(quadratic, *data, num_probes=2, grid=grid, sigma=0.1)
  np.testing.assert_allclose(default.density, result.density, atol=1e-10)


def test_hutchinson_is_exact_on_a_diagonal_and_unbiased_otherwise(x64):
  diagonal = np.diag(np.linspace(0.0, 1.0, 200))
  exact = hutchinson_trace(quadratic, jnp.ones(200), jnp.asarray(diagonal), num_probes=200)
  assert exact.trace == pytest.approx(100.0, rel=1e-13) and exact.standard_error < 1e-12
  matrix, eigenvalues = outlier_matrix()
  estimate = hutchinson_trace(quadratic, jnp.ones(200), jnp.asarray(matrix), num_probes=200)
  off_diagonal = matrix - np.diag(np.diag(matrix))
  expected_error = np.sqrt(2 * np.sum(off_diagonal**2) / 200)  # Var vᵀHv = 2 Σ_{i≠j} H_ij²
  assert 0.8 * expected_error < estimate.standard_error < 1.2 * expected_error
  assert abs(estimate.trace - eigenvalues.sum()) < 4 * estimate.standard_error


def test_probes_run_in_chunks_with_the_numbers_of_one_call(x64, monkeypatch):
  """`parallel.in_chunks`: 1000 probes, 16 at a time, against the same probes in one call (the
  chunk size then exceeds their number), and a density whose probes do not fill the last chunk."""
  from jaxopt_study.hessian import parallel

  matrix, _ = outlier_matrix()
  data = (jnp.ones(200), jnp.asarray(matrix))
  chunked = hutchinson_trace(quadratic, *data, num_probes=1000)
  smooth = density(quadratic, *data, num_probes=19, num_steps=20)
  monkeypatch.setattr(parallel, "ITEMS_PER_CALL", 4096)
  whole = hutchinson_trace(quadratic, *data, num_probes=1000)
  assert chunked.trace == pytest.approx(whole.trace, rel=1e-12)
  assert chunked.standard_error == pytest.approx(whole.standard_error, rel=1e-9)
  np.testing.assert_allclose(
    smooth.density, density(quadratic, *data, num_probes=19, num_steps=20).density, rtol=1e-9
  )
