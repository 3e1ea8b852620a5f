"""The in-loop curvature monitor on a 12-member sweep against the usual out-of-loop measurement.

Target (issue 16): training a 12-member sweep with λ_max measured every 10 steps is at least 5x
faster end to end with the monitor inside the compiled program (`sweep.run(...,
curvature_every=10)`) than the way public code measures it: each member trained alone by a
jitted step in a Python loop, and every 10 steps a jitted Hessian-vector product handed to
`scipy.sparse.linalg.eigsh` (k = 1, which="LA", warm-started from the previous eigenvector).
Both sides train the same members (a digits MLP, SGD over learning rate × seed) on the same
minibatches (`train.make_train_loop`'s step) and measure the same objective (the training loss on
a fixed subset of `--examples` examples). The monitor's other metrics (Hutchinson's trace with one
probe, gᵀHg) come with it. Both stop on the same rule, a Ritz residual ‖H y − θ y‖ ≤ tol |θ|
(`--tol`: eigsh's `tol`, the monitor's `CurvatureOptions.tolerance`, at most 20 Lanczos steps,
eigsh's default basis size), and the largest difference of their λ_max is printed.
End to end means compile included: what a user waits for. The monitor's overhead is the same
sweep without the monitor. Timed in interleaved rounds; medians.

    python benchmarks/curvature_monitor.py   # prints a Markdown table for benchmarks/RESULTS.md
"""

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse.linalg
from jax.flatten_util import ravel_pytree

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, optim, sweep, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.sweep import program

RATES = [0.03, 0.1, 0.3, 1.0]
SEEDS = [0, 1, 2]


def _problem(width: int) -> problem_lib.Problem:
  return problem_lib.builtin(
    "mlp", data_lib.load_digits(), width=width, depth=2, activation="tanh", init="glorot_uniform"
  )


def _clear_caches() -> None:
  """Forget every compiled program, the sweep's own caches too: each side compiles afresh."""
  jax.clear_caches()
  for cached in (program.member_functions, program.compiled_start, program.compiled_segment):
    cached.cache_clear()


def _sweep(problem, args, monitor: bool) -> tuple[float, sweep.SweepResult]:
  _clear_caches()
  began = time.perf_counter()
  result = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": RATES, "seed": SEEDS},
    steps=args.steps,
    eval_every=args.every,
    batch_size=args.batch_size,
    curvature_every=args.every if monitor else None,
    curvature=hessian.CurvatureOptions(
      lanczos_steps=20, probes=1, examples=args.examples, tolerance=args.tol
    )
    if monitor
    else None,
  )
  return time.perf_counter() - began, result


def _out_of_loop(problem, args) -> tuple[float, dict]:
  """Each member alone: a jitted step in a Python loop, eigsh on jitted HVPs every `every`.

  One step function and one HVP function serve every member (the learning rate is injected into
  the optimizer state), so this side compiles once, as a careful script would.
  """
  _clear_caches()
  began = time.perf_counter()
  pure = problem_lib.pure(problem)
  data = problem_lib.as_data(problem)
  subset = tuple(a[: args.examples] for a in data.train)
  tx = optax.inject_hyperparams(optim.sgd)(learning_rate=RATES[0])
  loop = train.make_train_loop(problem, tx, batch_size=args.batch_size)
  step = jax.jit(lambda state, key: loop.step(state, data, key, None))
  _, unravel = ravel_pytree(pure.initial(0)[0])

  @jax.jit
  def hvp(params, model_state, v):
    def flat_loss(x):
      return pure.loss(unravel(x), model_state, subset)[0]

    x = ravel_pytree(params)[0]
    return jax.jvp(jax.grad(flat_loss), (x,), (v,))[1]

  top = {}
  for rate in RATES:
    for seed in SEEDS:
      state = loop.init(*pure.initial(seed))
      state.opt_state.hyperparams["learning_rate"] = jnp.asarray(rate, jnp.float32)
      key = jax.random.key(seed)
      vector, values = None, []
      for t in range(args.steps + 1):
        if t % args.every == 0:
          size = ravel_pytree(state.params)[0].size
          operator = scipy.sparse.linalg.LinearOperator(
            (size, size),
            matvec=lambda v, s=state: np.asarray(
              hvp(s.params, s.model_state, jnp.asarray(v, jnp.float32))
            ),
            dtype=np.float32,
          )
          value, vectors = scipy.sparse.linalg.eigsh(
            operator, k=1, which="LA", v0=vector, tol=args.tol
          )
          vector = vectors[:, 0]
          values.append(float(value[0]))
        if t < args.steps:
          state = step(state, key)
      top[(rate, seed)] = values
  return time.perf_counter() - began, top


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--every", type=int, default=10)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--width", type=int, default=32)
  parser.add_argument("--examples", type=int, default=512)
  parser.add_argument("--tol", type=float, default=1e-4)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  problem = _problem(args.width)
  times = {"monitor": [], "plain": [], "eigsh": []}
  compile_seconds = {"monitor": [], "plain": []}
  for _ in range(args.rounds):
    seconds, watched = _sweep(problem, args, monitor=True)
    times["monitor"].append(seconds)
    compile_seconds["monitor"].append(watched.stats.compile_seconds)
    seconds, plain = _sweep(problem, args, monitor=False)
    times["plain"].append(seconds)
    compile_seconds["plain"].append(plain.stats.compile_seconds)
    seconds, top = _out_of_loop(problem, args)
    times["eigsh"].append(seconds)
  ours = {
    (row["learning_rate"], row["seed"]): [
      r["value"]
      for r in watched.history
      if r["member"] == row["member"] and r["metric"] == "lambda_max"
    ]
    for row in watched.table
  }
  worst = max(
    float(np.max(np.abs(np.asarray(ours[k]) - np.asarray(v)) / np.abs(np.asarray(v))))
    for k, v in top.items()
  )
  median = {k: statistics.median(v) for k, v in times.items()}
  compiling = {k: statistics.median(v) for k, v in compile_seconds.items()}
  members = len(RATES) * len(SEEDS)
  params = sum(x.size for x in jax.tree.leaves(problem_lib.pure(problem).params_shape))
  print(
    f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
    f"{jax.devices()[0].device_kind}; {members} members, {params} parameters, {args.steps} "
    f"steps of batch {args.batch_size}, λ_max every {args.every} steps on {args.examples} "
    f"examples; medians of {args.rounds} rounds, compile included\n"
  )
  print("| | seconds | of which compiling | vs in-loop monitor |")
  print("|---|---|---|---|")
  print(
    f"| sweep, monitor in the compiled loop | {median['monitor']:.1f} | "
    f"{compiling['monitor']:.1f} | 1.0x |"
  )
  print(
    f"| members alone, jitted step + eigsh on jitted HVPs | {median['eigsh']:.1f} | | "
    f"{median['eigsh'] / median['monitor']:.1f}x |"
  )
  print(
    f"| sweep without a monitor | {median['plain']:.1f} | {compiling['plain']:.1f} | "
    f"overhead of the monitor: {median['monitor'] / median['plain']:.2f}x end to end, "
    f"{(median['monitor'] - compiling['monitor']) / (median['plain'] - compiling['plain']):.2f}x"
    " after compiling |"
  )
  print(f"\nlargest relative difference of λ_max between the two measurements: {worst:.1e}")


if __name__ == "__main__":
  main()
