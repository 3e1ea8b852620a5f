"""A sweep of K members as one `sweep.run` against the same members one at a time, on this machine.

Target (issue 5): at K = 12 the sweep is at least 3x faster than its members run one by one.
Both sides go through the same API: `sweep.run` with the K-member grid, and K calls of `sweep.run`
with a one-member config (a grid of one is a plain training run). The members are a digits MLP
over init scale × learning rate × seed. Everything is compiled before timing (programs are cached
on their shapes), and the two sides are timed in interleaved rounds (sweep, alone, sweep, ...)
so that the noise of a shared machine hits both; medians are reported.

FLOPs come from XLA's `cost_analysis()` of one vmapped training step and one vmapped evaluation of
the same loop (`train.make_train_loop`), times the steps and evaluations run: the estimate of the
whole program cannot be used, since XLA counts a while loop's body once. The peak is the machine's
nominal float32 rate (cores × clock × FLOP per cycle, given on the command line) and, as a
reachable reference, the rate of a large matmul measured here.

    python benchmarks/sweep.py   # prints a Markdown table for benchmarks/RESULTS.md
"""

import argparse
import itertools
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, sweep, train

SCALES = [0.5, 1.0, 2.0]
RATES = [0.03, 0.1, 0.3, 1.0]


def make_config(
  members: int, steps: int, eval_every: int, width: int, batch_size: int
) -> ml_collections.ConfigDict:
  """A sweep of `members` = 12 × seeds: init scale × learning rate × seed."""
  return ml_collections.ConfigDict(
    {
      "seed": 0,
      "steps": steps,
      "batch_size": batch_size,
      "learning_rate": 0.1,
      "eval_every": eval_every,
      "checkpoint_every": steps,
      "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
      "model": {
        "name": "mlp",
        "width": width,
        "depth": 2,
        "activation": "tanh",
        "batchnorm": False,
        "init": "glorot_uniform",
        "init_scale": 1.0,
      },
      "optimizer": {"name": "sgd"},
      "sweep": {
        "init_scale": SCALES,
        "learning_rate": RATES,
        "seed": list(range(members // (len(SCALES) * len(RATES)))),
      },
    }
  )


def alone_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """One config per member of `config.sweep`, with no sweep: the member as a plain run."""
  configs = []
  for scale, rate, seed in itertools.product(*config.sweep.values()):
    member = ml_collections.ConfigDict(config.to_dict())
    member.sweep = {}
    member.model.init_scale, member.learning_rate, member.seed = scale, rate, seed
    configs.append(member)
  return configs


def flops_per_member(config: ml_collections.ConfigDict, members: int) -> float:
  """XLA's FLOP estimate of one member's whole run: steps × step + evaluations × evaluation."""
  data = data_lib.load_digits()
  model = models.functional(models.build_model("mlp", 64, 10, width=config.model.width, depth=2))
  loop = train.make_train_loop(model, optim.sgd(0.1), batch_size=config.batch_size)
  state = loop.init(model.params, model.model_state)
  stacked = jax.tree.map(lambda x: jnp.stack([x] * members), state)
  keys = jax.random.split(jax.random.key(0), members)
  step = jax.vmap(lambda s, k: loop.step(s, data, k, None))
  evaluate = jax.vmap(lambda s: loop.evaluate(s.params, s.model_state, data))
  step_flops = jax.jit(step).lower(stacked, keys).compile().cost_analysis()["flops"]
  eval_flops = jax.jit(evaluate).lower(stacked).compile().cost_analysis()["flops"]
  evaluations = len(train.eval_steps(config.steps, config.eval_every))
  return (config.steps * step_flops + evaluations * eval_flops) / members


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of a float32 size × size matmul, the reachable peak of this machine under XLA."""
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(a))
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a)
  jax.block_until_ready(out)
  return 2 * size**3 * repeats / (time.perf_counter() - start)


def timed(function) -> float:
  start = time.perf_counter()
  function()
  return time.perf_counter() - start


def benchmark(
  members: int, steps: int, eval_every: int, rounds: int, width: int, batch_size: int
) -> dict:
  config = make_config(members, steps, eval_every, width, batch_size)
  singles = alone_configs(config)
  assert len(singles) == members

  def run_sweep():
    return sweep.run_config(config)

  def run_alone():
    return [sweep.run_config(single) for single in singles]

  result, alone = run_sweep(), run_alone()  # compiles both sides' programs
  ours = np.asarray([r["final_train_loss"] for r in result.table])
  theirs = np.asarray([r.table[0]["final_train_loss"] for r in alone])
  stable = np.asarray([r["learning_rate"] < 1.0 for r in result.table])
  deviation = np.abs(ours - theirs) / np.abs(theirs)  # float32 rounding, grown over the steps
  times: dict[str, list[float]] = {"sweep": [], "alone": []}
  for _ in range(rounds):
    times["sweep"].append(timed(run_sweep))
    times["alone"].append(timed(run_alone))
  sweep_s, alone_s = statistics.median(times["sweep"]), statistics.median(times["alone"])
  flops = members * flops_per_member(config, members)
  return {
    "model": f"{width}x2, batch {batch_size}",
    "members": members,
    "steps": steps,
    "sweep_s": sweep_s,
    "alone_s": alone_s,
    "speedup": alone_s / sweep_s,
    "sweep_gflops": flops / sweep_s / 1e9,
    "alone_gflops": flops / alone_s / 1e9,
    "deviation": float(deviation[stable].max()),
    "deviation_lr1": float(deviation[~stable].max()),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--members", type=int, nargs="+", default=[12, 48, 192])
  parser.add_argument("--steps", type=int, nargs="+", default=[500, 500, 200])
  parser.add_argument("--eval-every", type=int, default=100)
  parser.add_argument("--width", type=int, default=32, help="hidden units of the 2 layers")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--rounds", type=int, nargs="+", default=[5, 3, 1])
  parser.add_argument("--ghz", type=float, default=2.0, help="nominal clock of a core")
  parser.add_argument(
    "--flop-per-cycle", type=int, default=32, help="float32 FLOP per cycle per core (AVX2: 2 FMA)"
  )
  args = parser.parse_args()
  cores = os.cpu_count()
  nominal = cores * args.ghz * 1e9 * args.flop_per_cycle
  reachable = matmul_rate()
  print(
    f"{platform.processor() or platform.machine()}, {cores} cores, jax {jax.__version__}, "
    f"devices {jax.devices()}; nominal peak {nominal / 1e9:.0f} GFLOP/s, "
    f"2048² matmul {reachable / 1e9:.1f} GFLOP/s"
  )
  print(
    "\n| MLP | members | steps | sweep (s) | one at a time (s) | speedup | sweep GFLOP/s "
    "(% nominal, % matmul) | one at a time GFLOP/s | max rel. diff of final loss, lr < 1 (lr = 1) |"
  )
  print("|---|---|---|---|---|---|---|---|---|")
  for members, steps, rounds in zip(args.members, args.steps, args.rounds, strict=True):
    row = benchmark(members, steps, args.eval_every, rounds, args.width, args.batch_size)
    print(
      f"| {row['model']} | {row['members']} | {row['steps']} | {row['sweep_s']:.2f} | "
      f"{row['alone_s']:.2f} | {row['speedup']:.1f}x | {row['sweep_gflops']:.1f} "
      f"({100e9 * row['sweep_gflops'] / nominal:.0f}%, "
      f"{100e9 * row['sweep_gflops'] / reachable:.0f}%) | {row['alone_gflops']:.1f} | "
      f"{row['deviation']:.1e} ({row['deviation_lr1']:.1e}) |",
      flush=True,
    )


if __name__ == "__main__":
  main()
