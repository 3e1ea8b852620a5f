"""Cost of one training step with `jaxopt_study.optim.adam` against `optax.adam`, side by side.

Target (issue 2): ours costs no more than 1.05x Optax's on the same model. Both steps are jitted,
compiled before timing, and timed in interleaved rounds (A, B, A, B, ...) so that the noise of a
shared machine hits both alike; the ratio of medians is reported for each model size.

    python benchmarks/adam_step.py            # prints a Markdown table for benchmarks/RESULTS.md
"""

import argparse
import platform
import statistics
import time

import jax
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim


def make_step(model: models.FunctionalModel, tx: optax.GradientTransformation):
  def objective(params, x, y):
    logits, _ = model.apply(params, model.model_state, x, True)
    return losses.softmax_cross_entropy(logits, y)

  @jax.jit
  def step(params, opt_state, x, y):
    grads = jax.grad(objective)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


def time_steps(step, params, opt_state, x, y, repeats: int) -> float:
  """Seconds per step over `repeats` consecutive steps (state threaded through, as in training)."""
  start = time.perf_counter()
  for _ in range(repeats):
    params, opt_state = step(params, opt_state, x, y)
  jax.block_until_ready(params)
  return (time.perf_counter() - start) / repeats


def benchmark(width: int, depth: int, batch_size: int, rounds: int, repeats: int | None) -> dict:
  data = data_lib.load_digits()
  x, y = data.x_train[:batch_size], data.y_train[:batch_size]
  model = models.functional(models.build_model("mlp", 64, 10, width=width, depth=depth))
  candidates = {"ours": optim.adam(1e-3), "optax": optax.adam(1e-3)}
  steps, states = {}, {}
  for name, tx in candidates.items():
    steps[name] = make_step(model, tx)
    states[name] = tx.init(model.params)
    jax.block_until_ready(steps[name](model.params, states[name], x, y))  # compile
  if repeats is None:  # about a quarter of a second per timing
    one = time_steps(steps["optax"], model.params, states["optax"], x, y, 3)
    repeats = max(3, round(0.25 / one))
  times = {name: [] for name in candidates}
  for _ in range(rounds):
    for name in candidates:
      times[name].append(time_steps(steps[name], model.params, states[name], x, y, repeats))
  ours, theirs = statistics.median(times["ours"]), statistics.median(times["optax"])
  num_params = sum(p.size for p in jax.tree.leaves(model.params))
  return {
    "width": width,
    "depth": depth,
    "params": num_params,
    "batch": batch_size,
    "ours_us": 1e6 * ours,
    "optax_us": 1e6 * theirs,
    "ratio": ours / theirs,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument(
    "--repeats", type=int, default=None, help="steps per timing (default: ~0.25 s worth)"
  )
  args = parser.parse_args()
  sizes = [(64, 2, 64), (256, 4, 128), (1024, 4, 256)]
  print(
    f"machine: {platform.processor() or platform.machine()}, {jax.devices()[0].platform}, "
    f"jax {jax.__version__}, optax {optax.__version__}"
  )
  print("| MLP width x depth | params | batch | ours (µs/step) | optax.adam (µs/step) | ratio |")
  print("|---|---|---|---|---|---|")
  for width, depth, batch in sizes:
    r = benchmark(width, depth, batch, args.rounds, args.repeats)
    print(
      f"| {width} x {depth} | {r['params']} | {r['batch']} | {r['ours_us']:.1f} | "
      f"{r['optax_us']:.1f} | {r['ratio']:.3f} |"
    )


if __name__ == "__main__":
  main()
