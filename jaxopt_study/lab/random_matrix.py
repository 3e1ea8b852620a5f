"""The probability that a GOE matrix is positive definite: Monte Carlo and exact values.

Bray & Dean (2007) and Dean & Majumdar (2006, 2008) show that an N × N matrix of the Gaussian
orthogonal ensemble (GOE) has all its eigenvalues positive with probability

.. math:: P_N = \\exp(−θ N² + O(N)),  θ = \\ln 3 / 4 ≈ 0.2747,

which is why Dauphin et al. (2014, §2) expect the critical points of a high-dimensional random
function to be saddles far more often than minima (Goodfellow et al. 2016, §8.2.3).

* `count_positive_definite`: Monte Carlo; GOE matrices A = (G + Gᵀ)/√2, G with i.i.d. N(0, 1)
  entries, tested for positive definiteness by Gaussian elimination (Sylvester's criterion: A is
  positive definite iff every pivot is positive), vectorized over a batch of matrices.
* `positive_definite_probability`: the exact P_N from de Bruijn's (1955) Pfaffian formula for the
  GOE eigenvalue density ∝ |Δ(λ)| Π exp(−λᵢ²/2) (P_N does not depend on the scale), with the
  one-dimensional integrals by Simpson's rule in float64: P_N = Pf(A⁺) / Pf(A), where
  A_jk = ∫∫ sign(y − x) x^j y^k w(x) w(y) dx dy over the half line x, y > 0 for A⁺ and over the
  line for A (bordered by the moments ∫ x^j w for odd N).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate

from jaxopt_study import validate

GOE_THETA = float(np.log(3.0) / 4.0)  # Dean & Majumdar (2006): −log P_N / N² → ln 3 / 4


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _count(key: jax.Array, size: int, batch: int, num_batches: int) -> jax.Array:
  def one_batch(index, count):
    g = jax.random.normal(jax.random.fold_in(key, index), (size, size, batch))
    a = (g + jnp.swapaxes(g, 0, 1)) / jnp.sqrt(2.0)  # the batch on the last axis
    positive = jnp.ones((batch,), bool)
    for k in range(size):  # elimination without pivoting: the k-th pivot is det A_k / det A_{k-1}
      pivot = a[k, k]
      positive = positive & (pivot > 0)
      safe = jnp.where(pivot != 0, pivot, 1.0)  # a zero pivot already marks the matrix as not PD
      a = a - a[:, k][:, None] * a[k, :][None, :] / safe[None, None]
    return count + jnp.sum(positive, dtype=jnp.int32)

  return jax.lax.fori_loop(0, num_batches, one_batch, jnp.zeros((), jnp.int32))


def count_positive_definite(key: jax.Array, size: int, samples: int, batch: int = 2**16) -> int:
  """How many of `samples` random `size` × `size` GOE matrices are positive definite.

  Args:
    key: PRNG key of the matrices.
    size: N ≥ 1.
    samples: number of matrices, a multiple of `batch` (or less than one batch).
    batch: matrices drawn and tested at once.

  Returns:
    The count, an int.
  """
  validate.require_positive_int("size", size, "count_positive_definite")
  validate.require_positive_int("samples", samples, "count_positive_definite")
  batch = min(batch, samples)
  if samples % batch:
    raise ValueError(
      f"count_positive_definite: samples={samples!r} must be a multiple of batch={batch}"
    )
  return int(_count(key, size, batch, samples // batch))


def _pfaffian_squared(size: int, lower: float, upper: float = 14.0, points: int = 40001) -> float:
  """det A = Pf(A)² of de Bruijn's antisymmetric matrix on [lower, upper] (see the module)."""
  x = np.linspace(lower, upper, points)
  f = np.stack([x**j * np.exp(-(x**2) / 2) for j in range(size)])  # x^j w(x)
  cumulative = scipy.integrate.cumulative_simpson(f, x=x, axis=1, initial=0)
  total = cumulative[:, -1]
  # ∫∫ sign(y − x) f_j(x) f_k(y) = ∫ f_k(y) (F_j(y) − (F_j(∞) − F_j(y))) dy
  matrix = scipy.integrate.simpson(f[None, :, :] * (2 * cumulative - total[:, None])[:, None], x=x)
  if size % 2:
    matrix = np.block([[matrix, total[:, None]], [-total[None, :], np.zeros((1, 1))]])
  return float(np.linalg.det(matrix))


def positive_definite_probability(size: int) -> float:
  """The exact probability that a `size` × `size` GOE matrix is positive definite.

  From de Bruijn's Pfaffian (see the module docstring); the Gaussian weight is cut at |λ| = 14,
  where it is below 1e-42, and the integrals are accurate to about 1e-10 relative for N ≤ 10.
  """
  validate.require_int("size", size, "positive_definite_probability", low=1, high=10)
  return float(np.sqrt(_pfaffian_squared(size, 0.0) / _pfaffian_squared(size, -14.0)))
