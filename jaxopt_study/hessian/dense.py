"""The dense Hessian from chunked Hessian-vector products, its memory check, and its eigensolver.

`jax.hessian` (jacfwd of jacrev) differentiates against all N basis vectors at once, so its
intermediates grow like N² times the model's activations (jax issue #787). Here the rows
H eᵢ are computed a chunk of `chunk_size` basis vectors at a time (a vmapped HVP, the chunk spread
over all devices) and written into one preallocated N × N buffer: the peak memory is N² entries
plus one chunk of HVP work, and the buffer is then symmetrized in place, block by block.

Eigensolver. `jnp.linalg.eigvalsh` computes the eigenvectors and drops them (LAPACK ``syevd``
with ``jobz='V'``), so on CPU the eigenvalues alone go through
``scipy.linalg.eigh(driver="evd", eigvals_only=True)`` (``jobz='N'``), a few times faster while the
matrix fits the cache; with eigenvectors the two are the same LAPACK call. Once the matrix outgrows
the cache, the reduction to tridiagonal form, half of it matrix-vector products, becomes
memory-bound and sensitive to other jobs, the gain shrinks, and this step dominates the exact
spectrum: `method="lanczos"` is the way past it. scipy also works in place (``overwrite_a`` on a
writable Fortran-ordered buffer, which the transpose of our C-ordered symmetric matrix is), so no
second N² copy is made. On an accelerator the matrix stays on the device. With eigenvectors,
`jax.lax.linalg.eigh` (cuSOLVER's ``syevd``) solves it there. For the eigenvalues alone, which
`jax.lax.linalg.eigh` has no mode for, the same two stages as LAPACK's ``syevd`` with
``jobz='N'`` run: the reduction to tridiagonal form on the device (`jax.lax.linalg.tridiagonal`,
cuSOLVER's ``sytrd``, in the donated buffer) and the O(N²) eigenvalues of the tridiagonal matrix
on the host (``scipy.linalg.eigvalsh_tridiagonal``, LAPACK's ``sterf``, as ``syevd`` calls it), so
no eigenvectors are computed or stored.

Threads: on a machine shared with other jobs, multithreaded OpenBLAS spins at its barriers and
collapses on small matrices. Below N = 1024 (`SINGLE_THREAD_BELOW`), where one thread loses little
even on an idle machine, the solve runs on one BLAS thread (`threadpoolctl`); above, the BLAS
default is kept, and ``OPENBLAS_NUM_THREADS=1`` is the remedy on a busy machine. The timings
behind both choices are in `benchmarks/RESULTS.md` ("Choosing the eigensolver").
"""

import math
import os
import time
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import threadpoolctl
from flax import nnx

from jaxopt_study import validate
from jaxopt_study.hessian import parallel, products

DEFAULT_CHUNK_SIZE = 256
MIN_CHUNK_WORK_BYTES = 32 * 2**20
SINGLE_THREAD_BELOW = 1024
SOLVE_CALIBRATION_SIZE = 1024  # the eigensolver is timed at this size, then scaled as N³
_SYMMETRIZE_BLOCK = 512


class HessianTooLargeError(MemoryError, ValueError):
  """The dense Hessian would not fit in memory: use ``method="lanczos"`` instead."""


class HessianTooSlowError(ValueError):
  """The dense Hessian would take longer than allowed: use ``method="lanczos"``, or raise
  ``max_seconds``."""


TRACED_CHUNK_SIZE = 8  # basis vectors per HVP chunk of `traced_hessian` (see its docstring)
DEFAULT_MAX_SECONDS = 600.0  # the dense Hessian's time limit unless the caller raises it


def human_bytes(num_bytes: float) -> str:
  """1536 -> '1.5 KiB'."""
  for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
    if num_bytes < 1024 or unit == "PiB":
      return f"{num_bytes:.1f} {unit}" if unit != "B" else f"{int(num_bytes)} B"
    num_bytes /= 1024
  raise AssertionError("unreachable")


def dense_memory_bytes(
  num_params: int, dtype: Any, chunk_size: int, eigenvectors: bool = False
) -> int:
  """Estimated peak bytes of the dense Hessian (and of its eigendecomposition).

  N² entries for the matrix, 4 · chunk_size · N for a chunk's basis vectors, tangents and rows,
  and, with eigenvectors, the 2N² workspace of LAPACK's ``syevd`` (``1 + 6N + 2N²`` entries). The
  activations of the chunk's HVPs are not counted: they depend on the model and data.
  """
  itemsize = np.dtype(dtype).itemsize
  matrix = num_params * num_params * itemsize
  chunk = 4 * chunk_size * num_params * itemsize
  solver = 2 * num_params * num_params * itemsize if eigenvectors else 0
  return matrix + chunk + solver


def memory_limit_bytes(device: jax.Device) -> tuple[int, str]:
  """(bytes, description) free now: an accelerator's `bytes_limit` less its `bytes_in_use`; on
  CPU the host's `MemAvailable` (`/proc/meminfo`), or half the host RAM where that is unknown."""
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return free, f"the {device.platform} device's free memory"
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024, "the host memory available now (MemAvailable)"
  except OSError:
    pass
  host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return host // 2, "half the host RAM"


def param_count(params: Any, where: str) -> tuple[int, np.dtype]:
  """(N, dtype of the raveled parameters) without allocating; modules count their nnx.Param."""
  if isinstance(params, nnx.Module):
    params = nnx.state(params, nnx.Param)
  products.require_params(params, where)
  leaves = jax.tree.leaves(params)
  size = sum(int(np.prod(jnp.shape(leaf))) for leaf in leaves)
  return size, np.dtype(jnp.result_type(*[jnp.result_type(leaf) for leaf in leaves]))


def least_precise_dtype(params: Any) -> np.dtype:
  """The floating dtype of largest ε among the parameters' leaves: the precision a Hessian or
  gradient over all of them has (float32 leaves beside a float64 one are rounded at float32's ε,
  though the raveled vector is float64); the default float if none is floating. Modules count
  their nnx.Param."""
  if isinstance(params, nnx.Module):
    params = nnx.state(params, nnx.Param)
  dtypes = [np.dtype(jnp.result_type(leaf)) for leaf in jax.tree.leaves(params)]
  floating = [d for d in dtypes if jnp.issubdtype(d, jnp.inexact)]
  return max(floating, key=lambda d: float(jnp.finfo(d).eps), default=jnp.result_type(float))


def rounding_tolerance(size: int, dtype: Any) -> float:
  """N ε, the relative rounding of an N × N symmetric eigenproblem (`numpy.linalg.matrix_rank`'s
  and `pinv`'s rule), ε of `dtype`; in half precision √N ε, the typical size of N roundings of
  random sign, since N ε passes 1 from N = 128 (bfloat16) or 1024 (float16), where every
  eigenvalue would be within it of zero."""
  info = np.finfo(dtype)
  return (size if info.bits > 16 else math.sqrt(size)) * float(info.eps)


def resolve_chunk_size(chunk_size: int | None, num_params: int) -> int:
  """The chunk of basis vectors per HVP call: ≥ 1, ≤ N, a multiple of the device count."""
  if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
    raise ValueError(f"chunk_size={chunk_size!r}: must be an integer ≥ 1 or None")
  chunk = min(num_params, DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size))
  devices = parallel.num_devices()
  return -(-chunk // devices) * devices


def require_max_seconds(max_seconds: float, where: str) -> None:
  """Refuses a time limit that is not > 0 (NaN, a string, ...); ∞ means no limit."""
  if not (isinstance(max_seconds, (int, float)) and max_seconds == float("inf")):
    validate.require_positive("max_seconds", max_seconds, where)


# what the analysis tools advise when the dense Hessian would not fit
HESSIAN_FREE_ANALYSIS = (
  'use spectrum(..., method="lanczos") or density(...), which need only Hessian-vector products'
)


def require_dense_fits(
  params: Any,
  chunk_size: int | None,
  eigenvectors: bool,
  where: str,
  advice: str = HESSIAN_FREE_ANALYSIS,
) -> None:
  """Raises `HessianTooLargeError` at once, before any allocation, if the dense path won't fit,
  with `advice` (what to use instead; an optimizer's differs from the analysis tools'), and
  ValueError for a `chunk_size` that is not an integer ≥ 1 or None."""
  if chunk_size is not None:
    products.require_count("chunk_size", chunk_size, where)
  num_params, dtype = param_count(params, where)
  dtype = products.working_dtype(dtype)  # the matrix's: a bfloat16 model's is float32
  needed = dense_memory_bytes(
    num_params, dtype, resolve_chunk_size(chunk_size, num_params), eigenvectors
  )
  require_memory(
    needed,
    f"the dense Hessian of N={num_params:,} parameters ({np.dtype(dtype).name})",
    advice,
    where,
  )


def require_memory(needed: int, what: str, advice: str, where: str) -> None:
  """Raises `HessianTooLargeError` naming `what`, the bytes and `advice` if `needed` bytes exceed
  the memory free now on the first device, before anything is allocated."""
  limit, free = memory_limit_bytes(jax.devices()[0])
  if needed > limit:
    raise HessianTooLargeError(
      f"{where}: {what} needs about {human_bytes(needed)}, more than {free} "
      f"({human_bytes(limit)}); {advice}"
    )


def _basis_hvps(
  objective: products.Objective,
  flat: jax.Array,
  fixed: Any,
  data: tuple,
  first: jax.Array,
  chunk: int,
) -> jax.Array:
  """Rows H eᵢ for i = first, ..., first + chunk − 1 (mod N), spread over all devices."""

  def rows(local_indices, flat, fixed, data):
    basis = jax.nn.one_hot(local_indices, flat.shape[0], dtype=flat.dtype)
    return products.hvp_rows(objective, flat, fixed, data, basis)

  indices = (first + jnp.arange(chunk)) % flat.shape[0]
  return parallel.map_items(rows, indices, flat, fixed, data)


_basis_hvps_jit = jax.jit(_basis_hvps, static_argnums=(0, 5))


@jax.jit
def _set_rows(matrix: jax.Array, rows: jax.Array, start: jax.Array) -> jax.Array:
  return jax.lax.dynamic_update_slice_in_dim(matrix, rows.astype(matrix.dtype), start, axis=0)


_set_rows_in_place = jax.jit(_set_rows, donate_argnums=0)


def _aligned_empty(size: int, dtype: np.dtype) -> np.ndarray:
  """An uninitialized (size, size) host array at a 64-byte boundary, which JAX can alias."""
  num_bytes = size * size * np.dtype(dtype).itemsize
  raw = np.empty(num_bytes + 64, np.uint8)
  offset = -raw.ctypes.data % 64
  return raw[offset : offset + num_bytes].view(dtype).reshape(size, size)


def _block_starts(size: int, block: int) -> list[tuple[int, int]]:
  """(i, j) starts of the upper-triangle blocks; the last block is shifted back to fit."""
  starts = sorted({min(s, size - block) for s in range(0, size, block)})
  return [(i, j) for i in starts for j in starts if j >= i]


def _symmetrize_numpy(matrix: np.ndarray) -> None:
  """matrix ← (matrix + matrixᵀ)/2 in place, one pair of blocks at a time."""
  block = min(_SYMMETRIZE_BLOCK, matrix.shape[0])
  for i, j in _block_starts(matrix.shape[0], block):
    average = 0.5 * (matrix[i : i + block, j : j + block] + matrix[j : j + block, i : i + block].T)
    matrix[i : i + block, j : j + block] = average
    matrix[j : j + block, i : i + block] = average.T


def _symmetrize_device(matrix: jax.Array, block: int) -> jax.Array:
  """(matrix + matrixᵀ)/2 block by block in a loop XLA runs in place on a donated buffer."""
  starts = jnp.asarray(_block_starts(matrix.shape[0], block), jnp.int32)

  def body(t: jax.Array, m: jax.Array) -> jax.Array:
    i, j = starts[t, 0], starts[t, 1]
    upper = jax.lax.dynamic_slice(m, (i, j), (block, block))
    lower = jax.lax.dynamic_slice(m, (j, i), (block, block))
    average = 0.5 * (upper + lower.T)
    m = jax.lax.dynamic_update_slice(m, average, (i, j))
    return jax.lax.dynamic_update_slice(m, average.T, (j, i))

  return jax.lax.fori_loop(0, starts.shape[0], body, matrix)


_symmetrize_device_jit = jax.jit(_symmetrize_device, static_argnums=1, donate_argnums=0)


def _compiled_rows(
  problem: products.Problem, shared: tuple, chunk_size: int | None
) -> tuple[Any, int]:
  """The compiled program of one chunk of rows, ``rows_of(*shared, first)``, and its chunk size.

  With `chunk_size` given, that many rows (rounded up to the device count). Otherwise the chunk
  starts at min(N, DEFAULT_CHUNK_SIZE) and, if XLA's memory analysis of that program puts its
  temporaries (the activations of the chunk's HVPs) above max(N² · itemsize / 4, 32 MiB), it
  shrinks in proportion, at the cost of a second compilation: the chunk's work then stays within
  a quarter of the matrix (or 32 MiB for small matrices, where larger chunks run faster).
  """
  size = problem.num_params
  chunk = resolve_chunk_size(chunk_size, size)
  compiled = _basis_hvps_jit.lower(problem.objective, *shared, jnp.int32(0), chunk).compile()
  analysis = compiled.memory_analysis()
  if chunk_size is not None or analysis is None:
    return compiled, chunk
  itemsize = problem.flat_params.dtype.itemsize
  budget = max(size * size * itemsize // 4, MIN_CHUNK_WORK_BYTES)
  if analysis.temp_size_in_bytes <= budget:
    return compiled, chunk
  smaller = resolve_chunk_size(max(1, chunk * budget // analysis.temp_size_in_bytes), size)
  if smaller >= chunk:
    return compiled, chunk
  return _basis_hvps_jit.lower(problem.objective, *shared, jnp.int32(0), smaller).compile(), smaller


def dense_hessian(
  problem: products.Problem,
  chunk_size: int | None,
  on_host: bool | None = None,
  max_seconds: float = DEFAULT_MAX_SECONDS,
  eigenvectors: bool | None = None,
) -> np.ndarray | jax.Array:
  """The symmetrized N × N Hessian, built in a writable host (numpy) buffer or on the device.

  `on_host` defaults to whether the parameters live on a CPU device. The first chunk of rows is
  timed; if the chunks would take more than `max_seconds` in all, `HessianTooSlowError` is raised
  then, with the estimate, before the rest is computed. `eigenvectors` not None says that
  `symmetric_eigh(matrix, eigenvectors)` follows: its time (`solve_seconds`) counts too, and if it
  alone is over the limit the error comes before any Hessian-vector product.
  """
  size = problem.num_params
  if on_host is None:
    on_host = next(iter(problem.flat_params.devices())).platform == "cpu"
  solving = 0.0
  if eigenvectors is not None:
    solving = solve_seconds(size, problem.flat_params.dtype, on_host, eigenvectors)
    _require_fast_enough(0.0, size, 1, max_seconds, solving)
  shared = parallel.replicate((problem.flat_params, problem.fixed, problem.data))
  rows_of, chunk = _compiled_rows(problem, shared, chunk_size)
  if on_host:
    matrix = _aligned_empty(size, problem.flat_params.dtype)
  else:
    matrix = jnp.zeros((size, size), problem.flat_params.dtype)
  for start in range(0, size, chunk):
    # every call has `chunk` rows, so one compilation: when the chunk does not divide N the last
    # one is shifted back and recomputes a few rows (the same values); a chunk larger than N
    # (rounded up to the device count) wraps around and its extra rows are dropped.
    first = max(0, min(start, size - chunk))
    count = min(chunk, size)
    began = time.perf_counter()
    rows = rows_of(*shared, jnp.int32(first))
    if start == 0:
      jax.block_until_ready(rows)
      _require_fast_enough(time.perf_counter() - began, size, chunk, max_seconds, solving)
    if on_host:
      matrix[first : first + count] = np.asarray(rows)[:count]
    else:
      matrix = _set_rows_in_place(matrix, rows[:count], jnp.int32(first))
  if on_host:
    _symmetrize_numpy(matrix)
    return matrix
  return _symmetrize_device_jit(matrix, min(_SYMMETRIZE_BLOCK, size))


def traced_hessian(problem: products.Problem) -> jax.Array:
  """The dense symmetric (N, N) Hessian of a problem, traceable: rows H eᵢ, chunk by chunk.

  `jax.lax.map` over chunks of `TRACED_CHUNK_SIZE` basis vectors, each chunk one call of
  `hessian.products.hvp_rows` on its one-hot block (the chunk's tangents vmapped), so the memory
  of the HVPs is that of one chunk; the result is symmetrized, H ← (H + Hᵀ)/2, as
  `hessian_matrix` does. Inside a compiled loop, XLA on CPU runs large vmapped chunks
  slowly (a chunk of 256 rows took 5× the time of 8 on a small CNN, `benchmarks/newton_step.py`),
  so the chunk is small: the loop's overhead per chunk is small next to an HVP.
  """
  objective, flat = problem.objective, problem.flat_params
  size = problem.num_params
  chunk = min(size, TRACED_CHUNK_SIZE)
  num_chunks = -(-size // chunk)

  def rows(first: jax.Array) -> jax.Array:
    # indices past N wrap around (as in `hessian.dense`): their rows are recomputed and dropped
    basis = jax.nn.one_hot((first + jnp.arange(chunk)) % size, size, dtype=flat.dtype)
    return products.hvp_rows(objective, flat, problem.fixed, problem.data, basis)

  blocks = jax.lax.map(rows, chunk * jnp.arange(num_chunks, dtype=jnp.int32))
  matrix = blocks.reshape(num_chunks * chunk, size)[:size]
  return 0.5 * (matrix + matrix.T)


def solve_seconds(size: int, dtype: np.dtype, on_host: bool, eigenvectors: bool) -> float:
  """The eigensolver's time at N = `size`, estimated before the matrix exists: `symmetric_eigh`
  timed on a random symmetric matrix of `SOLVE_CALIBRATION_SIZE` (same dtype, place and
  eigenvector flag), times (N / that size)³, the divide-and-conquer solver's cost (Golub & Van Loan
  2013, §8.3-8.4); 0 for N up to twice that size, whose solve takes about a second at most. The
  small matrix stays in cache where the large one streams from memory, and other jobs change
  either timing, so the estimate is good to a few times either way: enough to refuse a solve of
  hours at once."""
  calibration = SOLVE_CALIBRATION_SIZE
  if size <= 2 * calibration:
    return 0.0
  a = np.random.default_rng(0).standard_normal((calibration, calibration)).astype(dtype)
  a = a + a.T
  if not on_host:  # the first device call compiles: time the second
    symmetric_eigh(jnp.asarray(a), eigenvectors)
  began = time.perf_counter()
  symmetric_eigh(a if on_host else jnp.asarray(a), eigenvectors)
  return (time.perf_counter() - began) * (size / calibration) ** 3


def _require_fast_enough(
  first_seconds: float, size: int, chunk: int, max_seconds: float, solving: float = 0.0
) -> None:
  """Raises `HessianTooSlowError` if ⌈N / chunk⌉ chunks at the first one's time, plus the
  eigensolver's estimated `solving` seconds, exceed the limit."""
  building = first_seconds * -(-size // chunk)
  if building + solving <= max_seconds:
    return
  if first_seconds == 0.0:
    parts = f"its eigenvalues alone would take about {solving:,.0f} s (`dense.solve_seconds`)"
  else:
    parts = (
      f"it would take about {building + solving:,.0f} s: {building:,.0f} s of Hessian-vector "
      f"products (its first {chunk} rows took {first_seconds:.2f} s)"
      + (f" and {solving:,.0f} s for its eigenvalues" if solving else "")
    )
  raise HessianTooSlowError(
    f"the dense Hessian of N={size:,} parameters: {parts}, over max_seconds={max_seconds:g}; "
    'use method="lanczos" (or density(...)), which needs only a few hundred Hessian-vector '
    "products, or pass a larger max_seconds"
  )


def symmetric_eigh(
  matrix: np.ndarray | jax.Array, eigenvectors: bool
) -> tuple[np.ndarray, np.ndarray | None]:
  """Eigenvalues ascending (and eigenvector columns) of a symmetric matrix from `dense_hessian`.

  A writable numpy matrix is overwritten (scipy ``evd`` in place, see the module docstring). A
  device matrix goes, with eigenvectors, to `jax.lax.linalg.eigh` without its symmetrizing copy
  (the matrix is symmetric already); for the eigenvalues alone it is donated to its reduction to
  tridiagonal form (consumed), whose eigenvalues the host computes. Precision follows the
  matrix's dtype.
  """
  if isinstance(matrix, np.ndarray):
    # below SINGLE_THREAD_BELOW the BLAS runs on one thread (see the module docstring)
    threads = 1 if matrix.shape[0] < SINGLE_THREAD_BELOW else None
    with threadpoolctl.threadpool_limits(threads, user_api="blas"):
      # matrix.T is Fortran-ordered and equal to matrix: LAPACK works on our buffer, no copy.
      result = scipy.linalg.eigh(
        matrix.T, eigvals_only=not eigenvectors, driver="evd", overwrite_a=True, check_finite=False
      )
    return (result[0], result[1]) if eigenvectors else (result, None)
  if not eigenvectors:
    _, diagonal, off_diagonal = _tridiagonal_in_place(matrix)
    values = scipy.linalg.eigvalsh_tridiagonal(
      np.asarray(diagonal), np.asarray(off_diagonal), lapack_driver="sterf", check_finite=False
    )
    return values, None
  vectors, values = jax.lax.linalg.eigh(matrix, symmetrize_input=False)
  return np.asarray(values), np.asarray(vectors)


def _tridiagonal(matrix: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(the reduced matrix, its diagonal, its off-diagonal) of `jax.lax.linalg.tridiagonal`; the
  reduced matrix is returned so that it can take the donated input's buffer."""
  reduced, diagonal, off_diagonal, _ = jax.lax.linalg.tridiagonal(matrix)
  return reduced, diagonal, off_diagonal


_tridiagonal_in_place = jax.jit(_tridiagonal, donate_argnums=0)


def hessian_matrix(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  chunk_size: int | None = None,
  batches: Any = None,
  mode: str | None = None,
  max_seconds: float = DEFAULT_MAX_SECONDS,
) -> chex.Array:
  """The dense Hessian ∇²L(θ) as an (N, N) array, rows in `ravel_pytree(params)` order.

  Built from Hessian-vector products H eᵢ, `chunk_size` basis vectors at a time (a vmapped HVP
  per chunk, the chunk spread over all devices), written into one preallocated buffer and
  symmetrized in place, H ← (H + Hᵀ)/2: peak memory ≈ N² entries plus one chunk of HVP work,
  where `jax.hessian` would hold all N tangents at once (jax issue #787).

  Before anything is allocated, the bytes needed (`dense_memory_bytes`) are compared with the
  memory free now (an accelerator's limit less what is in use; on CPU the host's `MemAvailable`);
  if they do not fit, `HessianTooLargeError` (a `MemoryError` and a `ValueError`) is raised at
  once, naming N and the bytes. The first chunk of rows is timed: if all of them would take more
  than `max_seconds`, `HessianTooSlowError` is raised with the estimate.

  Args:
    loss_fn: ``loss_fn(params, *args) -> scalar``.
    params: a pytree of floating arrays or an `nnx.Module` (its `nnx.Param` state); see `hvp`.
    *args: the data of one batch.
    chunk_size: basis vectors per HVP call, rounded up to a multiple of the device count; by
      default min(N, 256), reduced if XLA's memory analysis of the chunk's program finds that
      its HVPs' activations exceed max(N² · itemsize / 4, 32 MiB) (see `_compiled_rows`).
    batches: instead of `*args`, a sequence of argument tuples: the full-data Hessian
      Σ_b n_b H_b / Σ_b n_b.
    mode: "train" or "eval", required for a module with BatchNorm statistics or dropout that
      is on; see `hvp`.
    max_seconds: the time allowed (default 600 s), estimated from the first chunk.

  Returns:
    The symmetric (N, N) Hessian in the parameters' dtype.
  """
  require_dense_fits(params, chunk_size, False, "hessian_matrix")
  require_max_seconds(max_seconds, "hessian_matrix")
  problem = products.prepare(loss_fn, params, args, batches, mode, "hessian_matrix", evaluate=True)
  matrix = dense_hessian(problem, chunk_size, max_seconds=max_seconds)
  if isinstance(matrix, np.ndarray):  # the CPU array takes over the aligned host buffer: no copy
    return jax.device_put(matrix, may_alias=True)
  return matrix
