"""Your own model (issue 13): a user CNN's 24-member sweep against its members one at a time, and
the peak memory of `hessian.hutchinson_trace` at 10 and 1000 probes.

The problem is README's "Your own model": a CNN on the 8×8 digits images (conv 3×3 1 → 4, ReLU,
linear 256 → 10; N = 2610), a label-smoothed cross-entropy, and a clipped Adam chain.

* sweep: `sweep.run` over learning rate × clip norm × init scale × batch size (2 × 2 × 3 × 2 =
  24 members, 200 steps, evaluations every 50) against the same 24 members trained one after the
  other with `train.train` (what a user would write without the sweep), wall time of each, the
  largest relative difference of their final training losses.
* hutchinson: peak resident memory of a fresh process computing `hutchinson_trace` of the CNN's
  training loss over the 1347 training images with 10 and with 1000 probes (each in its own
  subprocess; the peak above the process's resident size just before the call).

    python benchmarks/own_model.py            # prints two Markdown tables
"""

import json
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxopt_study import Problem, data, hessian, optim, sweep, train


class CNN(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
    self.out = nnx.Linear(4 * 8 * 8, 10, rngs=rngs)

  def __call__(self, x):
    h = jax.nn.relu(self.conv(x.reshape(-1, 8, 8, 1)))
    return self.out(h.reshape(h.shape[0], -1))


def smoothed_nll(model, batch):
  x, y = batch
  targets = optax.smooth_labels(jax.nn.one_hot(y, 10), 0.1)
  return optax.softmax_cross_entropy(model(x), targets).mean()


def error(model, batch):
  return jnp.mean(jnp.argmax(model(batch[0]), -1) != batch[1])


def make_problem() -> Problem:
  digits = data.load_digits()
  return Problem(
    model=CNN,
    loss=smoothed_nll,
    train_data=(digits.x_train, digits.y_train),
    heldout_data=(digits.x_test, digits.y_test),
    metrics={"error": error},
  )


def chain(learning_rate, max_norm):
  return optax.chain(optax.clip_by_global_norm(max_norm), optim.adam(learning_rate))


AXES = {
  "learning_rate": [1e-3, 3e-3],
  "max_norm": [1.0, 10.0],
  "init_scale": [0.5, 1.0, 2.0],
  "batch_size": [16, 64],
}


def sweep_row() -> dict:
  problem = make_problem()
  began = time.perf_counter()
  result = sweep.run(problem, chain, AXES, steps=200, eval_every=50)
  swept = time.perf_counter() - began
  began = time.perf_counter()
  alone = [
    train.train(
      problem,
      chain(row["learning_rate"], row["max_norm"]),
      steps=200,
      eval_every=50,
      batch_size=row["batch_size"],
      init_scale=row["init_scale"],
    ).history["train_loss"][-1]
    for row in result.table
  ]
  one_at_a_time = time.perf_counter() - began
  ours = np.asarray([row["final_train_loss"] for row in result.table])
  return {
    "members": len(result.table),
    "sweep_s": swept,
    "compile_s": result.stats.compile_seconds,
    "alone_s": one_at_a_time,
    "max_rel_diff": float(np.max(np.abs(ours - np.asarray(alone)) / np.abs(alone))),
  }


def hutchinson_peak(num_probes: int) -> dict:
  """In this (fresh) process: peak RSS growth of one hutchinson_trace call."""
  problem = make_problem()
  params, _ = nnx.split(CNN(nnx.Rngs(0)), nnx.Param, ...)[1:]
  loss_fn = problem.params_loss()
  hessian.hutchinson_trace(loss_fn, params, *problem.train_data, num_probes=2)  # compile
  before = _rss_kib("VmRSS")
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
  began = time.perf_counter()
  estimate = hessian.hutchinson_trace(loss_fn, params, *problem.train_data, num_probes=num_probes)
  return {
    "probes": num_probes,
    "peak_mib": (_rss_kib("VmHWM") - before) / 1024,
    "seconds": time.perf_counter() - began,
    "trace": estimate.trace,
    "se": estimate.standard_error,
  }


def _rss_kib(field: str) -> int:
  for line in open("/proc/self/status"):
    if line.startswith(field + ":"):
      return int(line.split()[1])
  raise RuntimeError(field)


def main() -> None:
  if len(sys.argv) == 3 and sys.argv[1] == "--hutchinson":
    print(json.dumps(hutchinson_peak(int(sys.argv[2]))))
    return
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {jax.device_count()} device(s)")
  row = sweep_row()
  print(
    "| members | sweep (s) | of which compile (s) | one at a time (s) | speed-up | max rel. diff |"
  )
  print("|---|---|---|---|---|---|")
  print(
    f"| {row['members']} | {row['sweep_s']:.1f} | {row['compile_s']:.1f} | "
    f"{row['alone_s']:.1f} | {row['alone_s'] / row['sweep_s']:.1f}x | {row['max_rel_diff']:.1e} |"
  )
  print()
  print("| probes | peak memory above start (MiB) | time (s) | trace ± s.e. |")
  print("|---|---|---|---|")
  for probes in (10, 1000):
    output = subprocess.run(
      [sys.executable, __file__, "--hutchinson", str(probes)],
      capture_output=True,
      text=True,
      check=True,
    ).stdout
    peak = json.loads(output.strip().splitlines()[-1])
    print(
      f"| {peak['probes']} | {peak['peak_mib']:.0f} | {peak['seconds']:.1f} | "
      f"{peak['trace']:.3f} ± {peak['se']:.3f} |"
    )


if __name__ == "__main__":
  main()
