"""§8.2.2 "Local minima" in one dimension: x·cos(πx), escaping by gradient noise, and x³.

Goodfellow et al. (2016), §8.2.2: a local minimum with a higher cost than the global minimum traps
gradient descent started in its basin. The picture of Zhang et al. (*Dive into Deep Learning*,
§12.1): f(x) = x·cos(πx) on [−1, 2] has a local minimum near −0.27 and the global one near 1.09,
separated by a local maximum near 0.27 (f is odd, so the two critical points near ±0.27 mirror
each other).

(a) Gradient descent (Algorithm 8.1, full gradient) from a grid of starts on [−1, 2], projected onto
the interval (`one_dim.stay_in_interval`, since f falls below its global minimum on [−1, 2] just
outside it), in three variants, all one vmapped `train.descend` over (variant, seed, start):

* `plain`: no noise; it ends in the basin it started in.
* `noisy`: Gaussian noise of variance η added to every gradient (`optax.add_noise` with γ = 0):
  the iterates hop over the lower barrier (out of the local minimum) far more often than back over
  the higher one, the escape by noise of simulated annealing and Langevin dynamics.
* `annealed`: variance η/(1 + t)^γ (Neelakantan et al. 2015, "Adding gradient noise improves
  learning for very deep networks", γ = 0.55): it escapes while the noise is large and settles
  as it decays.

Each start draws its own noise (a key per seed and start). The fraction of starts that end right
of the local maximum (in the global minimum's basin) is reported per seed and as mean ± std.

(b) f(x) = x³ at 0: f'(0) = 0 and f''(0) = 0, so the second-order test cannot decide (§4.3); it is
neither a minimum nor a maximum (f < 0 left of it). `hessian.classify` calls it "degenerate".
Gradient descent from a positive start creeps towards 0 (x_{t+1} = x_t − 3εx_t², so x_t ≈
1/(3εt)) and stalls at the saddle, from a negative start it runs downhill to the interval's edge.

Claims (`summary.json`): `fraction_global_plain`, `fraction_global_noisy`,
`fraction_global_annealed` (mean ± std over seeds), `fraction_global_by_seed`,
`median_distance_to_global_min` per variant (of the ends in the global basin), the critical points
of f on a fine grid (`local_minimizer`, `global_minimizer`, `local_maximizer`); `x_cubed_kind`,
`x_cubed_grad_at_zero`, `x_cubed_hessian_at_zero`, `x_cubed_gd_end` per start. For the verdicts:
`plain_runs_leaving_their_basin` (plain runs, over seeds and starts, that end on the other side of
the local maximum from their start), `gain_over_plain` with `gain_over_plain_se` and
`gain_over_plain_dof` (per noisy variant, its fraction minus plain descent's, paired by seed: the
mean over seeds, its standard error and its degrees of freedom, seeds − 1) and
`x_cubed_is_degenerate`.

`CRITERIA` judge them into `verdicts`: no plain run leaves its basin; each noisy variant beats
plain descent by more than t_{0.975, dof} standard errors of the seeds' paired differences; x³'s
critical point at 0 is degenerate.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from jaxopt_study import hessian, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import curves as curves_lib
from jaxopt_study.lab import one_dim, verdicts
from jaxopt_study.results import history_rows, read_csv

VARIANTS = ("plain", "noisy", "annealed")


class LocalAndGlobalMinima1d(Experiment):
  """Descent with and without gradient noise on x·cos(πx); the degenerate critical point of x³."""

  NAME = "local_and_global_minima_1d"
  TITLE = "Chapter 8.2.2: a local and a global minimum in one dimension, noise, and x³"
  SECTION = "8.2.2"
  DESCRIPTION = (
    "f(x) = x·cos(πx) on [−1, 2] (Zhang et al., Dive into Deep Learning §12.1): gradient "
    "descent from a grid of starts ends in the local minimum near −0.27 or the global one near "
    "1.09, by the basin it starts in. Gradient noise, constant or annealed as in Neelakantan et "
    "al. (2015), carries most starts over the lower barrier into the global basin. x³ at 0: the "
    "gradient and the second derivative vanish, the Hessian tools call it degenerate, not a "
    "minimum, and gradient descent from the right stalls there."
  )
  PUBLISHED = {
    "fraction_global_plain": "the share of starts in the global basin: descent stays in the "
    "basin it starts in (Goodfellow et al. 2016, §8.2.2)",
    "fraction_global_noisy": "> fraction_global_plain: noise lets descent escape a local "
    "minimum (Neelakantan et al. 2015; simulated annealing)",
    "fraction_global_annealed": "> fraction_global_plain (Neelakantan et al. 2015, annealed "
    "gradient noise, γ = 0.55)",
    "x_cubed_kind": "degenerate: ∇f = 0 and ∇²f = 0 at 0, neither a minimum nor a maximum "
    "(§4.3; Zhang et al. §12.1)",
  }
  CRITERIA = {
    "fraction_global_plain": below("plain_runs_leaving_their_basin", 0.5),
    "fraction_global_noisy": above(
      "gain_over_plain.noisy", 0.0, standard_error="gain_over_plain_se.noisy"
    ),
    "fraction_global_annealed": above(
      "gain_over_plain.annealed", 0.0, standard_error="gain_over_plain_se.annealed"
    ),
    "x_cubed_kind": above("x_cubed_is_degenerate", 0.5),
  }
  FIELDS = {
    "interval": functools.partial(validate.require_sequence, min_length=2),
    "num_starts": functools.partial(validate.require_int, low=2),
    "seeds": validate.seeds(),
    "steps": validate.require_positive_int,
    "learning_rate": validate.require_positive,
    "noisy.eta": validate.require_positive,
    "annealed.eta": validate.require_positive,
    "annealed.gamma": validate.require_positive,
    "grid_points": functools.partial(validate.require_int, low=101),
    "x_cubed.starts": functools.partial(validate.require_sequence, min_length=1),
    "x_cubed.steps": validate.require_positive_int,
    "x_cubed.learning_rate": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    low, high, *more = config.interval
    if more or not low < high:
      raise ValueError(f"{self.NAME}: interval={list(config.interval)!r} must be (low, high)")
    for start in config.x_cubed.starts:
      if not isinstance(start, int | float) or not -1.0 <= start <= 1.0:
        raise ValueError(f"{self.NAME}: x_cubed.starts: {start!r} must lie in [−1, 1]")

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every (variant, seed, start) as one vmapped descent, then x³ (seconds: nothing to
    resume)."""
    points = one_dim.grid(*config.interval, config.grid_points)
    values = one_dim.risk(points)
    starts = np.linspace(*config.interval, config.num_starts)
    ends = _descend_all(config, starts)  # (variants, seeds, starts)
    boundary = float(one_dim.interior_maxima(values, points)[0])
    table = []
    for v, variant in enumerate(VARIANTS):
      for s, seed in enumerate(config.seeds):
        table.append(
          {
            "member": f"{variant}/seed{seed}",
            "part": "x_cos_pi_x",
            "variant": variant,
            "seed": seed,
            "fraction_global": float(np.mean(ends[v, s] > boundary)),
          }
        )
    history = history_rows("f", {"step": np.arange(points.size), "x": points, "f": values})
    for v, variant in enumerate(VARIANTS):
      for s, seed in enumerate(config.seeds):
        history += history_rows(
          f"{variant}/seed{seed}",
          {"step": np.arange(starts.size), "start": starts, "end": ends[v, s]},
        )
    cubed_table, cubed_history = _x_cubed(config.x_cubed)
    arrays = {"ends": ends, "starts": starts}
    return Results(table + cubed_table, history + cubed_history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    points = one_dim.grid(*config.interval, config.grid_points)
    values = one_dim.risk(points)
    minima = one_dim.interior_minima(values, points)
    maximum = float(one_dim.interior_maxima(values, points)[0])
    global_min = float(minima[np.argmin(np.interp(minima, points, values))])
    ends = results.arrays["ends"]
    rows = [row for row in results.table if row["part"] == "x_cos_pi_x"]
    by_variant = {
      variant: [row["fraction_global"] for row in rows if row["variant"] == variant]
      for variant in VARIANTS
    }
    fractions = {variant: verdicts.mean_and_std(f) for variant, f in by_variant.items()}
    distance = {}
    for v, variant in enumerate(VARIANTS):
      inside = ends[v][ends[v] > maximum].astype(np.float64)  # the distance in float64
      distance[variant] = float(np.median(np.abs(inside - global_min))) if inside.size else None
    cubed = [row for row in results.table if row["part"] == "x_cubed"]
    at_zero = next(row for row in cubed if row["member"] == "x_cubed/classify")
    runs = [row for row in cubed if row["member"] != "x_cubed/classify"]
    starts = np.linspace(*config.interval, config.num_starts)
    return {
      "fraction_global_plain": fractions["plain"],
      "fraction_global_noisy": fractions["noisy"],
      "fraction_global_annealed": fractions["annealed"],
      "fraction_global_by_seed": {
        variant: {
          str(row["seed"]): row["fraction_global"] for row in rows if row["variant"] == variant
        }
        for variant in VARIANTS
      },
      # The share of the starts right of the local maximum: where plain descent must end.
      "fraction_of_starts_in_global_basin": float(np.mean(starts > maximum)),
      "plain_runs_leaving_their_basin": int(
        np.sum((ends[VARIANTS.index("plain")] > maximum) != (starts > maximum))
      ),
      **_gains_over_plain(by_variant),
      "median_distance_to_global_min": distance,
      "local_minimizer": float(minima[minima < maximum][0]),
      "global_minimizer": global_min,
      "local_maximizer": maximum,
      "x_cubed_kind": at_zero["kind"],
      "x_cubed_is_degenerate": at_zero["kind"] == "degenerate",
      "x_cubed_grad_at_zero": at_zero["grad_norm"],
      "x_cubed_hessian_at_zero": at_zero["lambda_max"],
      "x_cubed_gd_end": {str(row["start"]): row["end"] for row in runs},
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """f with where each variant ends; end against start; x³ with its descents."""
    curves: dict[str, dict[str, list]] = {}
    for row in read_csv(out_dir / "history.csv"):
      curves.setdefault(row["member"], {}).setdefault(row["metric"], []).append(row["value"])
    f = curves.pop("f")
    runs = {m: c for m, c in curves.items() if not m.startswith("x_cubed")}
    paths = curves_lib.read_curves(out_dir / "history.csv", "x")
    cubed = {m: c for m, c in paths.items() if m.startswith("x_cubed")}
    return [
      _ends_plot(f, runs, out_dir / "where_descent_ends.png"),
      _start_end_plot(runs, out_dir / "end_against_start.png"),
      _cubed_plot(cubed, out_dir / "x_cubed.png"),
    ]


def _descend_all(config: ml_collections.ConfigDict, starts: np.ndarray) -> np.ndarray:
  """The end point of every (variant, seed, start): projected SGD with gradient noise of variance
  η/(1 + t)^γ (η = 0 for `plain`), one key per seed and start."""
  low, high = config.interval
  etas = jnp.asarray([0.0, config.noisy.eta, config.annealed.eta])
  gammas = jnp.asarray([0.0, 0.0, config.annealed.gamma])
  seeds = jnp.asarray(list(config.seeds))

  def one(eta, gamma, seed, index, start):
    tx = optax.chain(
      optax.add_noise(eta, gamma, jax.random.fold_in(jax.random.key(seed), index)),
      optim.sgd(config.learning_rate),
      one_dim.stay_in_interval(low, high),
    )
    return train.descend(one_dim.risk, start, tx, steps=config.steps, every=config.steps).params

  over_starts = jax.vmap(one, in_axes=(None, None, None, 0, 0))
  over_seeds = jax.vmap(over_starts, in_axes=(None, None, 0, None, None))
  over_variants = jax.vmap(over_seeds, in_axes=(0, 0, None, None, None))
  ends = jax.jit(over_variants)(
    etas, gammas, seeds, jnp.arange(starts.size), jnp.asarray(starts, jnp.float32)
  )
  return np.asarray(ends)


def _cube(x: jax.Array) -> jax.Array:
  """f(x) = x³ summed over a one-element vector (the Hessian tools take arrays)."""
  return jnp.sum(x**3)


def _x_cubed(cubed: ml_collections.ConfigDict) -> tuple[list, list]:
  """`hessian.classify` at 0, and projected gradient descent on [−1, 1] from each start."""
  verdict = hessian.classify(_cube, jnp.zeros(1, jnp.float32))
  table = [
    {
      "member": "x_cubed/classify",
      "part": "x_cubed",
      "kind": verdict.kind,
      "grad_norm": verdict.grad_norm,
      "lambda_max": verdict.lambda_max,
      "lambda_min": verdict.lambda_min,
    }
  ]
  history = []
  tx = optax.chain(optim.sgd(cubed.learning_rate), one_dim.stay_in_interval(-1.0, 1.0))
  every = max(1, cubed.steps // 200)
  for start in cubed.starts:
    path = train.descend(
      _cube,
      jnp.asarray([start], jnp.float32),
      tx,
      steps=cubed.steps,
      every=every,
      record=lambda point, value: point[0],
    ).records
    path = np.asarray(path)
    member = f"x_cubed/start{start:g}"
    table.append({"member": member, "part": "x_cubed", "start": start, "end": float(path[-1])})
    history += history_rows(member, {"step": train.eval_steps(cubed.steps, every), "x": path})
  return table, history


def _gains_over_plain(by_variant: dict[str, list[float]]) -> dict[str, dict]:
  """Per noisy variant, its share of starts ending in the global basin less plain descent's,
  paired by seed (the same starts): the mean over seeds, its standard error and its degrees of
  freedom (seeds − 1)."""
  paired = {
    variant: np.subtract(by_variant[variant], by_variant["plain"])
    for variant in ("noisy", "annealed")
  }
  gains = {v: verdicts.mean_and_standard_error(d) for v, d in paired.items()}
  return {
    "gain_over_plain": {v: mean for v, (mean, _) in gains.items()},
    "gain_over_plain_se": {v: se for v, (_, se) in gains.items()},
    "gain_over_plain_dof": {v: verdicts.dof(d) for v, d in paired.items()},
  }


def _ends_plot(f: dict, runs: dict, path: Path) -> Path:
  """f on the interval, and below it a histogram of the end points of each variant."""
  fig, (top, bottom) = plt.subplots(
    2, 1, figsize=(6.4, 5.6), dpi=110, sharex=True, gridspec_kw={"height_ratios": [2, 1.3]}
  )
  top.plot(f["x"], f["f"], color="k", lw=1.6)
  top.set(title="f(x) = x·cos(πx): where gradient descent ends (§8.2.2)", ylabel="f(x)")
  top.grid(alpha=0.3)
  bins = np.linspace(min(f["x"]), max(f["x"]), 61)
  for variant, color in zip(VARIANTS, ("tab:gray", "tab:orange", "tab:blue"), strict=True):
    ends = np.concatenate([c["end"] for m, c in runs.items() if m.split("/")[0] == variant])
    bottom.hist(ends, bins=bins, histtype="step", lw=1.6, color=color, label=variant)
    top.plot(ends, np.interp(ends, f["x"], f["f"]), "o", color=color, ms=4, alpha=0.3)
  bottom.set(xlabel="x at the end", ylabel="runs")
  bottom.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _start_end_plot(runs: dict, path: Path) -> Path:
  """Each run's end against its start, per variant (every seed)."""
  fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
  for variant, color in zip(VARIANTS, ("tab:gray", "tab:orange", "tab:blue"), strict=True):
    first = True
    for member, c in runs.items():
      if member.split("/")[0] == variant:
        ax.plot(
          c["start"], c["end"], "o", ms=3, color=color, alpha=0.5, label=variant if first else None
        )
        first = False
  ax.set(title="end point against start point", xlabel="start x₀", ylabel="end x_T")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _cubed_plot(cubed: dict, path: Path) -> Path:
  """x³ with its degenerate critical point, and x_t of each descent against the step."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(8.8, 3.8), dpi=110)
  xs = np.linspace(-1.0, 1.0, 201)
  left.plot(xs, xs**3, color="k")
  left.plot([0.0], [0.0], "x", color="tab:red", ms=10, label="∇f = 0, ∇²f = 0: degenerate")
  left.set(title="f(x) = x³", xlabel="x", ylabel="f(x)")
  left.grid(alpha=0.3)
  left.legend(fontsize=8)
  for member, (steps, xs_t) in cubed.items():
    right.plot(steps, xs_t, label=member.split("/")[1].replace("start", "x₀ = "))
  right.axhline(0.0, color="tab:red", lw=0.8, ls=":")
  right.set(title="gradient descent on x³", xlabel="step", ylabel="x_t")
  right.grid(alpha=0.3)
  right.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)
