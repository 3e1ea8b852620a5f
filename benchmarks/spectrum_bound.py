"""What bounds the exact spectrum of a 50k-parameter network on a CPU (issue 19).

The design claims the exact spectrum and classification of a network of N = 49,960 parameters in
under 3 minutes on a GPU (`benchmarks/gpu.sh`: the digits MLP of `benchmarks/hessian.py`,
64 → w → 10 tanh, w = 666, N = 75 w + 10, float32, ``hessian.spectrum`` then ``hessian.classify``
reusing its eigenvalues). On a CPU the whole run takes hours and a 10 GB matrix, so its stages are
measured apart, with the library's own functions:

1. The matrix at N = 49,960: one chunk of Hessian rows H eᵢ (a vmapped Hessian-vector product,
   chunk size from XLA's memory analysis) is compiled as `dense.dense_hessian` compiles it
   (`dense._compiled_rows`); a few chunks, spread over the rows, are timed and copied into the
   aligned N × N host buffer that `dense_hessian` fills (only their pages are touched). The build
   is ⌈N / chunk⌉ times the median chunk, plus the compilation, plus the symmetrization scaled
   as N² from the largest smaller matrix. FLOPs per chunk are XLA's ``cost_analysis()``.
2. The eigenvalues: at smaller widths the real Hessian is built (`dense.dense_hessian`, first
   call, compilation included), symmetrized once more to time that pass
   (`dense._symmetrize_numpy`), and its eigenvalues taken as ``spectrum`` takes them on a CPU
   (`dense.symmetric_eigh(..., eigenvectors=False)`: LAPACK ``ssyevd``, values only, in place).
   Its cost is the reduction to tridiagonal form, 4N³/3 FLOPs, half of them in symmetric
   matrix-vector products that read ≈ 2N³/3 bytes in float32; the time is extrapolated to
   N = 49,960 as c N³ with c from the largest size (each size's own extrapolation is printed,
   with the 1-minute load average just before its solve, to show the noise of a shared machine).
3. Classification beyond the eigenvalues: ``classify(..., eigenvalues=...)`` at N = 49,960 (first
   call), which computes L, ∇L and H∇L once and counts the eigenvalues; placeholder positive
   eigenvalues are passed, so the kind printed is not the network's.

Memory: the N² matrix, the chunk's XLA temporaries, and LAPACK's workspace for values only
(``ssyevd_lwork``) and with eigenvectors (`dense.dense_memory_bytes`), against the memory
available now. A streaming copy of 512 MiB measures the host's memory bandwidth, the bound of the
matrix-vector half of the reduction.

    python benchmarks/spectrum_bound.py                           # prints a Markdown table
    python benchmarks/spectrum_bound.py --widths 26 53 106 160    # up to N = 12,010: longer
    python benchmarks/spectrum_bound.py --widths 26 53 --chunks 2  # a quick look
"""

import argparse
import datetime
import os
import platform
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.linalg.lapack
import threadpoolctl

sys.path.insert(0, os.path.dirname(__file__))
import hessian as hessian_benchmark  # noqa: E402

from jaxopt_study import hessian  # noqa: E402
from jaxopt_study.hessian import dense, parallel, products  # noqa: E402

CLAIM_WIDTH = 666  # N = 75 w + 10 = 49,960, as in benchmarks/gpu.sh
CLAIM_SECONDS = 180.0


def memory_bandwidth(num_bytes: int = 512 * 2**20, repeats: int = 5) -> float:
  """Bytes/s of a streaming copy (read + write counted), best of `repeats`."""
  source = np.ones(num_bytes // 4, np.float32)
  target = np.empty_like(source)
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    np.copyto(target, source)
    best = min(best, time.perf_counter() - start)
  return 2 * num_bytes / best


def build_chunks(width: int, num_chunks: int) -> dict:
  """Compiles one chunk of rows at this width and times `num_chunks` of them into the buffer."""
  model, loss, _, x, y = hessian_benchmark._problem(width)
  problem = products.prepare(loss, model, (x, y), None, None, "spectrum_bound")
  size = problem.num_params
  shared = parallel.replicate((problem.flat_params, problem.fixed, problem.data))
  start = time.perf_counter()
  rows_of, chunk = dense._compiled_rows(problem, shared, None)
  compile_seconds = time.perf_counter() - start
  cost = rows_of.cost_analysis()
  flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
  matrix = dense._aligned_empty(size, problem.flat_params.dtype)
  times = []
  for first in np.linspace(0, size - chunk, num_chunks).astype(int):
    start = time.perf_counter()
    matrix[first : first + chunk] = np.asarray(rows_of(*shared, jnp.int32(first)))
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  return {
    "num_params": size,
    "chunk": chunk,
    "compile": compile_seconds,
    "chunk_seconds": seconds,
    "chunks": -(-size // chunk),
    "gflops": flops / seconds / 1e9,
    "temp_bytes": rows_of.memory_analysis().temp_size_in_bytes,
    "model_loss_data": (model, loss, x, y),
  }


def exact_stages(width: int) -> dict:
  """The real Hessian at this width: build, symmetrization pass and eigenvalues, timed apart."""
  model, loss, _, x, y = hessian_benchmark._problem(width)
  problem = products.prepare(loss, model, (x, y), None, None, "spectrum_bound")
  start = time.perf_counter()
  matrix = dense.dense_hessian(problem, None, max_seconds=float("inf"))
  built = time.perf_counter()
  dense._symmetrize_numpy(matrix)
  load = os.getloadavg()[0]
  symmetrized = time.perf_counter()
  dense.symmetric_eigh(matrix, eigenvectors=False)
  solved = time.perf_counter()
  return {
    "num_params": problem.num_params,
    "build": built - start,
    "symmetrize": symmetrized - built,
    "eigh": solved - symmetrized,
    "load": load,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--widths", type=int, nargs="+", default=[26, 53, 106])
  parser.add_argument("--chunks", type=int, default=5, help="chunks timed at N = 49,960")
  args = parser.parse_args()
  if min(args.widths) < 1 or args.chunks < 1:
    raise ValueError(f"--widths {args.widths} and --chunks {args.chunks}: must be ≥ 1")
  began = time.perf_counter()
  load_before = os.getloadavg()
  bandwidth = memory_bandwidth()

  big = build_chunks(CLAIM_WIDTH, args.chunks)
  size = big["num_params"]
  model, loss, x, y = big.pop("model_loss_data")
  start = time.perf_counter()
  hessian.classify(loss, model, x, y, eigenvalues=np.ones(size, np.float32))
  classify_seconds = time.perf_counter() - start

  stages = [exact_stages(width) for width in sorted(args.widths)]
  largest = stages[-1]
  eigh_at_claim = largest["eigh"] * (size / largest["num_params"]) ** 3
  symmetrize_at_claim = largest["symmetrize"] * (size / largest["num_params"]) ** 2
  build_at_claim = big["compile"] + big["chunks"] * big["chunk_seconds"] + symmetrize_at_claim
  total = build_at_claim + eigh_at_claim + classify_seconds

  blas = threadpoolctl.threadpool_info()
  blas_name = ", ".join(
    f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)"
    for b in blas
    if b["user_api"] == "blas"
  )
  print(
    f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
    f"jax {jax.__version__} ({jax.devices()[0].platform}), scipy {scipy.__version__}, {blas_name}"
  )
  print(f"date: {datetime.datetime.now().isoformat(timespec='minutes')}")
  print(f"memory bandwidth (streaming copy, read + write): {bandwidth / 1e9:.1f} GB/s")
  print()
  print(
    "| N | build (s) | symmetrize (s) | eigenvalues (s) | eigenvalues GFLOP/s (4N³/3) "
    f"| eigenvalues × ({size:,}/N)³ (s) | load | classify, reusing them (s) | total (s) |"
  )
  print("|---|---|---|---|---|---|---|---|---|")
  for s in stages:
    n = s["num_params"]
    print(
      f"| {n:,} | {s['build']:.1f} | {s['symmetrize']:.2f} | {s['eigh']:.1f} "
      f"| {4 * n**3 / 3 / s['eigh'] / 1e9:.1f} | {s['eigh'] * (size / n) ** 3:,.0f} "
      f"| {s['load']:.1f} | | |"
    )
  print(
    f"| {size:,} | {build_at_claim:,.0f} ({1e3 * big['chunk_seconds'] / big['chunk']:.1f} ms "
    f"per row, {big['gflops']:.1f} GFLOP/s) | {symmetrize_at_claim:.0f} (× N²) "
    f"| {eigh_at_claim:,.0f} (× N³) | | | | {classify_seconds:.1f} "
    f"| {total:,.0f} ({total / 3600:.1f} h; claim < {CLAIM_SECONDS:.0f}) |"
  )
  print()
  print(
    f"Build at N = {size:,}: {args.chunks} chunks of {big['chunk']} rows timed, median "
    f"{big['chunk_seconds']:.2f} s, × {big['chunks']} chunks, + {big['compile']:.1f} s compiling; "
    f"at smaller N, `dense_hessian`'s first call (compilation included)."
  )
  print(
    f"Eigenvalues: if the 2N³/3 bytes that the matrix-vector half of the reduction reads "
    f"streamed at the copy's bandwidth, that half alone would take "
    f"{2 * size**3 / 3 / bandwidth:,.0f} s at N = {size:,}."
  )
  itemsize = 4
  matrix_bytes = size * size * itemsize
  work_values = int(scipy.linalg.lapack.ssyevd_lwork(size, compute_v=0)[0]) * itemsize
  with_vectors = dense.dense_memory_bytes(size, np.float32, big["chunk"], eigenvectors=True)
  available, what = dense.memory_limit_bytes(jax.devices()[0])
  print(
    f"Memory at N = {size:,}: matrix {dense.human_bytes(matrix_bytes)}, chunk temporaries "
    f"{dense.human_bytes(big['temp_bytes'])}, ssyevd workspace (values only) "
    f"{dense.human_bytes(work_values)}: peak ≈ "
    f"{dense.human_bytes(matrix_bytes + big['temp_bytes'] + work_values)}; with eigenvectors "
    f"{dense.human_bytes(with_vectors)}; {what}: {dense.human_bytes(available)}. Peak RSS of "
    f"this run: {dense.human_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}."
  )
  load_after = os.getloadavg()
  print(
    f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
    f"wall {time.perf_counter() - began:.0f} s."
  )


if __name__ == "__main__":
  main()
