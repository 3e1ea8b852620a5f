"""§8.4 "Parameter initialization strategies" × §8.1.3 "Batch and minibatch algorithms", one sweep.

A digits MLP trained by SGD over the product of initialization scales (a factor on Glorot's
uniform initializer), minibatch sizes and learning rates, as one `jaxopt_study.sweep`: every
member is a row of `results.csv`; the heat-maps show the final training loss and held-out error
over init scale × batch size, one panel per learning rate, with diverged members marked. Batch
sizes are compared after the same number of epochs (`equal_epochs`, as Keskar et al. 2017 and
Goyal et al. 2017 compare them): the config's `steps` are the smallest batch size's, and a larger
batch runs proportionally fewer steps, rounded up to a whole step (so its epochs can exceed the
smallest's by up to one step's worth; `epochs_by_batch_size` in the summary gives each).

Claims (`summary.json`): `best_member` (lowest final held-out error) and its settings,
`diverged_members`, `best_test_error_by_batch_size`, `best_train_loss_by_init_scale`, and
`best_learning_rate_by_batch_size` (the rate with the lowest final training loss among members
that stayed finite: §8.1.3 expects larger minibatches, with less noisy gradients, to tolerate
larger rates), judged by `best_learning_rate_batch_size_log_slope` (log-log least squares;
inconclusive when `best_learning_rate_at_grid_edge`: the rate grid does not bracket a best), and
`init_scale_edge_over_interior_train_loss` (the lower best loss of the smallest and largest scale
over the best loss between them: > 1 for the U-shape of §8.4). The slope and the U-shape are
computed for each seed of the sweep's `seed` axis and judged by their means over seeds beyond
t_{0.975, dof} standard errors (`_se`, with the degrees of freedom `_dof`, seeds − 1); the tables
of best rates and losses are those of the means over seeds.
"""

from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from jaxopt_study import report, sweep
from jaxopt_study.experiment import Results, above
from jaxopt_study.lab import curves, digits_tasks, grids, verdicts
from jaxopt_study.own_problem import OwnProblem
from jaxopt_study.results import read_csv


class SweepInitBatch(OwnProblem):
  """The sweep of the config's digits MLP; the claims compare batch sizes, scales and rates."""

  NAME = "sweep_init_batch"
  TITLE = "Chapter 8.4 × 8.1.3: initialization scale × minibatch size × learning rate"
  SECTION = "8.4"
  PUBLISHED = {
    "best_learning_rate_by_batch_size": "larger for larger minibatches (§8.1.3: less noisy "
    "gradients; Goyal et al. 2017: rate ∝ batch size)",
    "best_train_loss_by_init_scale": "worst at too small and too large scales (§8.4; Glorot & "
    "Bengio 2010)",
  }
  # Larger batches, larger best rates: a positive log-log slope of the best rate against the batch
  # size. The U-shape: the best loss at either end of the scales is above the best in between.
  # Each per seed, judged by its mean beyond t_{0.975, dof} standard errors over seeds (dof =
  # seeds − 1; a mean of per-seed ratios for the U-shape, so on the linear scale); the slope
  # inconclusive when a batch size's best rate lies at the edge of the rate grid (for the means or
  # any seed); the U-shape when a scale whose lower loss could flip it has its best at the rate
  # grid's edge (a wider grid only lowers a best loss: an end scale's for a U, an interior one's
  # for none).
  CRITERIA = {
    "best_learning_rate_by_batch_size": above(
      "best_learning_rate_batch_size_log_slope",
      0.0,
      standard_error="best_learning_rate_batch_size_log_slope_se",
      unless="best_learning_rate_at_grid_edge",
    ),
    "best_train_loss_by_init_scale": above(
      "init_scale_edge_over_interior_train_loss",
      1.0,
      standard_error="init_scale_edge_over_interior_train_loss_se",
      unless="init_scale_best_rate_at_grid_edge",
    ),
  }
  DESCRIPTION = (
    "One sweep of an MLP on scikit-learn's digits, trained by SGD (Algorithm 8.1) from Glorot's "
    "uniform initialization times a scale (§8.4), with several minibatch sizes (§8.1.3), "
    "compared after the same number of epochs, and learning rates. The members of each batch "
    "size run as one compiled, vmapped program; "
    "a member whose loss or parameters become non-finite is frozen and marked 'div'. Heat-maps "
    "show the final full-batch training NLL and the held-out 0-1 error; cells average over seeds."
  )

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """The best member; per batch size and scale, the best over the other axes of the members'
    means over seeds; the rate slope and the U-shape per seed, judged by their means over seeds
    and standard errors."""
    table = results.table
    stable = [r for r in table if not r["diverged"]]
    best = min(stable, key=lambda r: (r["final_test_error"], r["final_train_loss"]), default=None)
    by_batch: dict[int, list[dict]] = defaultdict(list)
    for row in stable:
      by_batch[int(row["batch_size"])].append(row)
    rates = sorted({r["learning_rate"] for r in table})
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    means = _seed_means(table)
    best_rates, best_losses, _ = _best_by_axis(means)
    seeds = sorted({r["seed"] for r in table})
    per_seed = [_best_by_axis([r for r in table if r["seed"] == seed]) for seed in seeds]
    slope, slope_se, slope_dof = _over_seeds(
      [_rate_slope(seed_rates) for seed_rates, _, _ in per_seed]
    )
    chosen_rates = [*best_rates.values(), *(r for rs, _, _ in per_seed for r in rs.values())]
    u_shape, u_shape_se, u_shape_dof = _over_seeds(
      [_u_shape(seed_losses) for _, seed_losses, _ in per_seed]
    )
    # the scales whose best loss, if a wider rate grid lowered it, could flip the U-shape verdict
    scales = sorted(best_losses)
    could_flip = grids.could_flip(u_shape, [*scales[:1], *scales[-1:]], scales[1:-1], claim="above")
    return {
      "best_member": best["member"] if best else None,
      "best_settings": {k: best[k] for k in sweep.BASE_AXES} if best else None,
      "best_test_error": best["final_test_error"] if best else None,
      "diverged_members": sorted(r["member"] for r in table if r["diverged"]),
      "best_test_error_by_batch_size": {  # the lowest mean over seeds, every seed finite
        b: min(
          (
            r["final_test_error"]
            for r in means
            if r["batch_size"] == b and np.isfinite(r["final_test_error"])
          ),
          default=None,
        )
        for b in sorted(by_batch)
      },
      "best_train_loss_by_init_scale": best_losses,
      "best_learning_rate_by_batch_size": best_rates,
      "best_learning_rate_at_grid_edge": any(r in (rates[0], rates[-1]) for r in chosen_rates),
      "best_learning_rate_batch_size_log_slope": slope,
      "best_learning_rate_batch_size_log_slope_se": slope_se,
      "best_learning_rate_batch_size_log_slope_dof": slope_dof,
      # the epochs each batch size trained: equal with `equal_epochs` (the config's default)
      "epochs_by_batch_size": {
        b: rows[0].get("steps", config.steps) * b / num_train
        for b, rows in sorted(by_batch.items())
      },
      # the lower of the two end scales' best losses over the best loss between them, per seed
      "init_scale_edge_over_interior_train_loss": u_shape,
      "init_scale_edge_over_interior_train_loss_se": u_shape_se,
      "init_scale_edge_over_interior_train_loss_dof": u_shape_dof,
      "init_scale_best_rate_at_grid_edge": any(
        scale_rates[scale] in (rates[0], rates[-1])
        for _, _, scale_rates in per_seed
        for scale in could_flip
        if scale in scale_rates
      ),
      "seeds": seeds,
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Draws the heat-maps from the saved `results.csv`."""
    table = read_csv(out_dir / "results.csv")
    return [
      heatmaps(table, metric, out_dir / f"heatmap_{metric}.png", title=title, log=log)
      for metric, title, log in HEATMAPS
    ]


def _seed_means(table: list[dict]) -> list[dict]:
  """One row per (init scale, batch size, rate): the means over seeds of the final training loss
  and held-out error (infinite if any seed diverged, so never the best)."""
  groups: dict[tuple, list[dict]] = defaultdict(list)
  for row in table:
    groups[(row["init_scale"], row["batch_size"], row["learning_rate"])].append(row)
  return [
    {
      "init_scale": scale,
      "batch_size": size,
      "learning_rate": rate,
      **{
        metric: np.inf
        if any(r["diverged"] for r in rows)
        else float(np.mean([r[metric] for r in rows]))
        for metric in ("final_train_loss", "final_test_error")
      },
    }
    for (scale, size, rate), rows in groups.items()
  ]


def _best_by_axis(
  rows: list[dict],
) -> tuple[dict[int, float], dict[float, float], dict[float, float]]:
  """Among finite rows: per batch size the rate of the lowest final training loss, and per init
  scale that lowest loss and the rate it was reached at (each over every other axis)."""
  finite = [r for r in rows if np.isfinite(r["final_train_loss"]) and not r.get("diverged")]
  by_batch: dict[int, list[dict]] = defaultdict(list)
  by_scale: dict[float, list[dict]] = defaultdict(list)
  for row in finite:
    by_batch[int(row["batch_size"])].append(row)
    by_scale[float(row["init_scale"])].append(row)
  rates = {
    b: min(group, key=lambda r: r["final_train_loss"])["learning_rate"]
    for b, group in sorted(by_batch.items())
  }
  scale_best = {
    s: min(group, key=lambda r: r["final_train_loss"]) for s, group in sorted(by_scale.items())
  }
  losses = {s: row["final_train_loss"] for s, row in scale_best.items()}
  return rates, losses, {s: row["learning_rate"] for s, row in scale_best.items()}


def _u_shape(best_losses: dict[float, float]) -> float | None:
  """The lower best loss of the smallest and largest scale over the best loss between them."""
  losses = list(best_losses.values())
  return min(losses[0], losses[-1]) / min(losses[1:-1]) if len(losses) >= 3 else None


def _over_seeds(
  values: list[float | None],
) -> tuple[float | None, float | None, int | None]:
  """The mean over seeds, its standard error and the error's degrees of freedom, seeds − 1 (both
  None for one seed); all None when a seed has no value (too few batch sizes or scales)."""
  if not values or None in values:
    return None, None, None
  return (*verdicts.mean_and_standard_error(values), verdicts.dof(values))


def _rate_slope(best_rates: dict[int, float]) -> float | None:
  """The log-log least-squares slope of the best rate against the batch size: exactly 0 when every
  batch size has the same best rate (a fit leaves rounding of either sign, which the verdict
  against 0 would read as a trend); None for fewer than two batch sizes."""
  if len(best_rates) < 2:
    return None
  if len(set(best_rates.values())) == 1:
    return 0.0
  return curves.log_slope(list(best_rates), list(best_rates.values()))


HEATMAPS = (
  ("final_train_loss", "final training NLL (full batch)", True),
  ("final_test_error", "final held-out 0-1 error", False),
)


def heatmaps(table: list[dict], metric: str, path: Path, *, title: str, log: bool) -> Path:
  """One panel per learning rate: `metric` over init scale (x) × batch size (y), saved as PNG.

  A cell averages its members (e.g. over seeds); a cell with a diverged member is marked 'div'
  and shows the mean of the frozen, last finite values. One colour scale spans every panel.
  """
  rates = sorted({float(r["learning_rate"]) for r in table})
  scales = sorted({float(r["init_scale"]) for r in table})
  batches = sorted({int(r["batch_size"]) for r in table})
  cells: dict[tuple, list[dict]] = defaultdict(list)
  for row in table:
    key = (float(row["learning_rate"]), int(row["batch_size"]), float(row["init_scale"]))
    cells[key].append(row)
  grids = np.full((len(rates), len(batches), len(scales)), np.nan)
  for (lr, b, s), rows in cells.items():
    grids[rates.index(lr), batches.index(b), scales.index(s)] = np.mean([r[metric] for r in rows])
  with np.errstate(divide="ignore", invalid="ignore"):
    shown = np.log10(grids) if log else grids
  shown = np.where(np.isfinite(shown), shown, np.nan)  # an overflowed loss: no colour, 'div'
  finite = shown[np.isfinite(shown)]
  low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
  fig, axes = plt.subplots(
    1,
    len(rates),
    figsize=(3.4 * len(rates) + 1.2, 3.6),
    dpi=110,
    squeeze=False,
    layout="constrained",
  )
  middle = (low + high) / 2
  for k, (ax, lr) in enumerate(zip(axes[0], rates, strict=True)):
    image = ax.imshow(shown[k], origin="lower", cmap="viridis", vmin=low, vmax=high, aspect="auto")
    for i, b in enumerate(batches):
      for j, s in enumerate(scales):
        rows = cells.get((lr, b, s), [])
        diverged = any(r["diverged"] for r in rows)
        if diverged or np.isfinite(grids[k, i, j]):
          label = "div" if diverged else f"{grids[k, i, j]:.2g}"
          color = "black" if shown[k, i, j] > middle else "white"  # readable on viridis
          ax.text(j, i, label, ha="center", va="center", color=color, fontsize=7)
    ax.set_xticks(range(len(scales)), [f"{s:g}" for s in scales])
    ax.set_yticks(range(len(batches)), [str(b) for b in batches])
    ax.set(title=f"learning rate {lr:g}", xlabel="init scale", ylabel="batch size")
  fig.colorbar(image, ax=axes[0].tolist(), label=f"log10 {metric}" if log else metric)
  fig.suptitle(title)
  return report.save_figure(fig, path)
