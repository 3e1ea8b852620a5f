"""Exact Hessian spectrum of a digits MLP: ours against PyTorch and naive `jax.hessian`; Lanczos.

For one hidden tanh layer of width w (N = 75 w + 10 parameters: 64 → w → 10), the same weights
(`models.build_model("mlp", ...)`, seed 0) and the softmax cross-entropy on the 1347 training
digits, in float32, four cases:

* ours: ``hessian.spectrum(loss, model, x, y)``, the module passed as params (chunked HVPs into
  one N × N buffer, then LAPACK ``syevd`` eigenvalues only, in place);
* torch: ``torch.autograd.functional.hessian(f, θ, vectorize=True)`` + ``torch.linalg.eigvalsh``;
* naive: ``jax.jit(jax.hessian(f))`` on the raveled parameters + ``jnp.linalg.eigvalsh``;
* lanczos: ``hessian.spectrum(..., method="lanczos", k=10)``, its top 10 compared with ours.

Each case runs in a fresh subprocess: a first call (cold: compilation included for JAX), then,
after ``malloc_trim`` and a reset of the peak resident set size (``/proc/self/clear_refs``), a
second, timed call (warm) whose peak RSS above the RSS just before it is the case's working
memory. Rounds interleave the cases (ours, torch, naive, lanczos, ours, ...) so that the noise of
a shared machine hits them alike; medians are reported.

PyTorch is not a dependency of the package or of its tests; install CPU PyTorch for its columns
(without it they read "—" and the other cases still run):

    /work/venv/bin/pip install torch==2.13.0
    python benchmarks/hessian.py --widths 8 26 66 --rounds 2   # prints a Markdown table
"""

import argparse
import ctypes
import importlib.util
import json
import platform
import re
import statistics
import subprocess
import sys
import time

import numpy as np

CASES = ("ours", "torch", "naive", "lanczos")


def _memory_kib(field: str) -> int:
  for line in open("/proc/self/status"):
    if line.startswith(field + ":"):
      return int(line.split()[1])
  raise KeyError(field)


def _problem(width: int):
  """The digits training set and the MLP (an nnx module) with its weights as numpy arrays."""
  import jax.numpy as jnp

  from jaxopt_study import data, losses, models

  digits = data.load_digits()
  model = models.build_model("mlp", 64, 10, width=width, depth=1, activation="tanh", seed=0)
  weights = {
    "w1": np.asarray(model.hidden[0].kernel[...]),
    "b1": np.asarray(model.hidden[0].bias[...]),
    "w2": np.asarray(model.output.kernel[...]),
    "b2": np.asarray(model.output.bias[...]),
  }

  def loss(module, x, y):
    return losses.softmax_cross_entropy(module(x), y)

  return model, loss, weights, jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)


def _ours(model, loss, x, y, method: dict):
  """spectrum(...) and, for the exact method, its two stages timed apart."""
  from jaxopt_study import hessian
  from jaxopt_study.hessian import dense, products

  def compute():
    return hessian.spectrum(loss, model, x, y, **method).eigenvalues

  def stages() -> dict:
    problem = products.prepare(loss, model, (x, y), None, None, "benchmark")
    start = time.perf_counter()
    matrix = dense.dense_hessian(problem, None)
    middle = time.perf_counter()
    dense.symmetric_eigh(matrix, eigenvectors=False)
    return {"hessian": middle - start, "eigh": time.perf_counter() - middle}

  return compute, (None if method else stages)


def _naive(weights, x, y):
  """jax.hessian of the raveled parameters, then jnp.linalg.eigvalsh, in one jit."""
  import jax
  import jax.numpy as jnp
  from jax.flatten_util import ravel_pytree

  flat, unravel = ravel_pytree({k: jnp.asarray(v) for k, v in weights.items()})

  def flat_loss(theta, x, y):
    p = unravel(theta)
    logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    picked = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)

  full = jax.jit(lambda theta, x, y: jnp.linalg.eigvalsh(jax.hessian(flat_loss)(theta, x, y)))
  return (lambda: np.asarray(full(flat, x, y))), None


def _torch(weights, x, y):
  """torch.autograd.functional.hessian(vectorize=True), then torch.linalg.eigvalsh."""
  import torch

  tensors = [torch.tensor(weights[k]) for k in ("w1", "b1", "w2", "b2")]
  shapes = [t.shape for t in tensors]
  theta = torch.cat([t.reshape(-1) for t in tensors])
  inputs, labels = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y), dtype=torch.long)

  def flat_loss(t):
    pieces, start = [], 0
    for shape in shapes:
      size = int(np.prod(shape))
      pieces.append(t[start : start + size].reshape(shape))
      start += size
    w1, b1, w2, b2 = pieces
    return torch.nn.functional.cross_entropy(torch.tanh(inputs @ w1 + b1) @ w2 + b2, labels)

  def compute():
    matrix = torch.autograd.functional.hessian(flat_loss, theta, vectorize=True)
    return torch.linalg.eigvalsh(matrix).numpy()

  def stages() -> dict:
    start = time.perf_counter()
    matrix = torch.autograd.functional.hessian(flat_loss, theta, vectorize=True)
    middle = time.perf_counter()
    torch.linalg.eigvalsh(matrix)
    return {"hessian": middle - start, "eigh": time.perf_counter() - middle}

  return compute, stages


def _run_case(case: str, width: int) -> dict:
  """Both calls of one case in this process; returns times, memory and the top eigenvalues."""
  model, loss, weights, x, y = _problem(width)
  compute, stages = {
    "ours": lambda: _ours(model, loss, x, y, {}),
    "lanczos": lambda: _ours(model, loss, x, y, {"method": "lanczos", "k": 10}),
    "naive": lambda: _naive(weights, x, y),
    "torch": lambda: _torch(weights, x, y),
  }[case]()
  start = time.perf_counter()
  compute()
  cold = time.perf_counter() - start
  ctypes.CDLL("libc.so.6").malloc_trim(0)
  with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # resets VmHWM to the current RSS
  baseline = _memory_kib("VmRSS")
  start = time.perf_counter()
  values = np.sort(compute())
  warm = time.perf_counter() - start
  peak = _memory_kib("VmHWM") - baseline
  return {
    "num_params": sum(w.size for w in weights.values()),
    "cold": cold,
    "warm": warm,
    "peak_kib": peak,
    "top": values[-10:].astype(float).tolist(),
    **(stages() if stages else {}),
  }


def _in_subprocess(case: str, width: int) -> dict:
  done = subprocess.run(
    [sys.executable, __file__, "--case", case, "--widths", str(width)],
    capture_output=True,
    text=True,
    check=False,
  )
  if done.returncode != 0:
    raise RuntimeError(f"case {case} at width {width} failed:\n{done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def available_cases() -> tuple[str, ...]:
  """`CASES`, less torch where PyTorch is not installed."""
  return tuple(c for c in CASES if c != "torch" or importlib.util.find_spec("torch") is not None)


def benchmark(width: int, rounds: int) -> dict:
  results = {case: [] for case in available_cases()}
  for _ in range(rounds):
    for case in results:
      results[case].append(_in_subprocess(case, width))
  return results


def _median(runs: list[dict], field: str) -> float:
  return statistics.median(run[field] for run in runs)


def table(all_results: dict[int, dict]) -> str:
  lines = [
    "| N | ours cold / warm (s) | torch cold / warm (s) | naive jax cold / warm (s) "
    "| torch / ours (warm) | ours peak (MiB) | N² + model (MiB) | torch peak (MiB) "
    "| naive peak (MiB) | Lanczos top-10 warm (s) | exact / Lanczos | Lanczos max rel. err. "
    "| ours H / eigh (s) | torch H / eigh (s) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for results in all_results.values():
    if "torch" not in results:  # PyTorch not installed: its cells read "—"
      results = results | {"torch": [{"cold": np.nan, "warm": np.nan, "peak_kib": np.nan}]}
      results["torch"][0] |= {"hessian": np.nan, "eigh": np.nan}
    n = results["ours"][0]["num_params"]
    timing = {c: (_median(results[c], "cold"), _median(results[c], "warm")) for c in CASES}
    peak = {c: _median(results[c], "peak_kib") / 1024 for c in CASES}
    matrix_and_model = (n * n * 4 + n * 4 + 1347 * 65 * 4) / 2**20
    exact_top = np.asarray(results["ours"][0]["top"])
    error = max(
      float(np.max(np.abs(np.asarray(run["top"]) - exact_top) / np.abs(exact_top)))
      for run in results["lanczos"]
    )
    line = (
      f"| {n} | {timing['ours'][0]:.2f} / {timing['ours'][1]:.2f} "
      f"| {timing['torch'][0]:.2f} / {timing['torch'][1]:.2f} "
      f"| {timing['naive'][0]:.2f} / {timing['naive'][1]:.2f} "
      f"| {timing['torch'][1] / timing['ours'][1]:.1f}x | {peak['ours']:.0f} "
      f"| {matrix_and_model:.0f} | {peak['torch']:.0f} | {peak['naive']:.0f} "
      f"| {timing['lanczos'][1]:.2f} | {timing['ours'][1] / timing['lanczos'][1]:.1f}x "
      f"| {error:.1e} "
      f"| {_median(results['ours'], 'hessian'):.2f} / {_median(results['ours'], 'eigh'):.2f} "
      f"| {_median(results['torch'], 'hessian'):.2f} / {_median(results['torch'], 'eigh'):.2f} |"
    )
    lines.append(re.sub(r"\bnanx?\b", "—", line))
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--widths", type=int, nargs="+", default=[8, 26, 66])
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--json", help="also write every run's numbers to this file")
  parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one subprocess's case
  args = parser.parse_args()
  if args.case:
    print(json.dumps(_run_case(args.case, args.widths[0])))
    return
  all_results = {}
  for width in args.widths:
    all_results[width] = benchmark(width, args.rounds)
    print(f"width {width} done", file=sys.stderr)
  if args.json:
    with open(args.json, "w") as file:
      json.dump(all_results, file, indent=1)
  print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
  print(
    f"command: python benchmarks/hessian.py --widths {' '.join(map(str, args.widths))} "
    f"--rounds {args.rounds}"
  )
  print(table(all_results))


if __name__ == "__main__":
  main()
