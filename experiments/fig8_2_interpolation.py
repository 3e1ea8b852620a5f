"""§8.2.3, Fig. 8.2: the loss along the straight line from the initial point to the solution.

Goodfellow, Vinyals & Saxe (2015), "Qualitatively characterizing neural network optimization
problems", evaluate J(θ(α)) with θ(α) = (1 − α) θ₀ + α θ* (their eq. 1), θ₀ the initialization
and θ* the parameters SGD reached from it, for α beyond [0, 1] too. For the feedforward nets they
study, the loss falls monotonically from θ₀ to θ*, with no bump (Goodfellow et al. 2016, Fig. 8.2:
"no significant local minima or saddle" on the line); between two solutions reached from
different initializations the line rises in between (their §4, a barrier).

Here an MLP on digits is trained by SGD (`landscape.train_from_seeds`: one sweep over the seeds, one
compiled program) from `num_solutions` initializations (seeds `seed`, `seed` + 1, …; each seed
also fixes the minibatch order); the full-batch training and held-out losses are evaluated
along α ∈ `alpha_range` for each θ₀ → θ*, and between the first two solutions θ*_a → θ*_b.

Claims (`summary.json`): `max_rise_init_to_solution` (max over α_i ≤ α_j in [0, 1] of
L(α_j) − L(α_i), the largest increase met walking from θ₀ to θ*; 0 for a monotone decrease; the
largest over seeds) with `max_rise_relative` (over L(θ₀) − L(θ*)), and
`barrier_between_solutions` (max over α ∈ [0, 1] of L(θ(α)) − [(1 − α) L(θ*_a) + α L(θ*_b)], the
height above the chord) with `barrier_relative` (over the mean of L(θ₀) − L(θ*) over seeds).
"""

import functools
from pathlib import Path

import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import report, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import digits_tasks, landscape
from jaxopt_study.results import history_rows, member_arrays, read_csv


class Fig82Interpolation(Experiment):
  """Solutions from several seeds; the loss along θ₀ → θ* and between two solutions."""

  NAME = "fig8_2_interpolation"
  TITLE = "Chapter 8.2, Fig. 8.2: the loss along the line from the initialization to the solution"
  SECTION = "8.2.3"
  DESCRIPTION = (
    "An MLP on scikit-learn's digits trained by SGD from several initializations; the full-batch "
    "training and held-out NLL along θ(α) = (1 − α) θ₀ + α θ*, α from −0.5 to 1.5, and along the "
    "line between two solutions. Goodfellow, Vinyals & Saxe (2015) find the training loss falling "
    "monotonically from θ₀ to θ* and the line between two solutions rising above the chord. "
    "Past θ* (α > 1) the loss can keep falling where SGD has not converged on separable data: "
    "scaling θ* − θ₀ up sharpens the softmax further (loss_beyond_solution_ratio < 1)."
  )
  PUBLISHED = {
    "max_rise_init_to_solution": "≈ 0: the loss decreases monotonically from θ₀ to θ* "
    "(Goodfellow, Vinyals & Saxe 2015, Fig. 2; Goodfellow et al. 2016, Fig. 8.2)",
    "barrier_between_solutions": "> 0: a bump between solutions from different initializations "
    "(Goodfellow, Vinyals & Saxe 2015, §4)",
  }
  # Both against the loss that training removed, L(θ₀) − L(θ*): no bump is a rise under 1% of
  # it; a barrier is a height above the chord over 1% of it.
  CRITERIA = {
    "max_rise_init_to_solution": below("max_rise_relative", 0.01),
    "barrier_between_solutions": above("barrier_relative", 0.01),
  }
  FIELDS = {
    "steps": validate.require_positive_int,
    "num_alphas": validate.require_positive_int,
    "num_solutions": functools.partial(validate.require_int, low=2),
    "learning_rate": validate.require_positive,
    "alpha_range": functools.partial(validate.require_sequence, min_length=2),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    low, high, *more = config.alpha_range
    if more or not (low <= 0.0 and high >= 1.0):
      raise ValueError(
        f"{self.NAME}: alpha_range={list(config.alpha_range)!r} must be (low, high) containing "
        "[0, 1]"
      )
    landscape.check_digits_config(config, self.NAME)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains one solution per seed, then evaluates the losses along the lines."""
    solution_seeds = seeds(config)
    data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
    model = digits_tasks.mlp(solution_seeds[0], **config.model)
    loss_fn = digits_tasks.nll(model)
    initial, final, final_loss = landscape.train_from_seeds(config, solution_seeds, progress)
    grid = alphas(config)
    lines = {
      f"init_to_solution/seed{seed}": (landscape.select(initial, i), landscape.select(final, i))
      for i, seed in enumerate(solution_seeds)
    }
    lines[f"solution_to_solution/seed{solution_seeds[0]}_seed{solution_seeds[1]}"] = (
      landscape.select(final, 0),
      landscape.select(final, 1),
    )
    trained = {
      f"init_to_solution/seed{seed}": float(loss)
      for seed, loss in zip(solution_seeds, final_loss, strict=True)
    }
    table, history = [], []
    for member, (start, end) in lines.items():
      train_curve = landscape.loss_along_line(loss_fn, start, end, grid, data.x_train, data.y_train)
      test_curve = landscape.loss_along_line(loss_fn, start, end, grid, data.x_test, data.y_test)
      curves = {"alpha": grid, "train_loss": train_curve, "test_loss": test_curve}
      history += history_rows(member, {"step": np.arange(grid.size)} | curves)
      inside = (grid >= 0.0) & (grid <= 1.0)
      table.append(
        {
          "member": member,
          "loss_at_start": float(train_curve[grid == 0.0][0]),
          "loss_at_end": float(train_curve[grid == 1.0][0]),
          "loss_at_alpha_max": float(train_curve[-1]),
          "max_rise_on_0_1": max_rise(train_curve[inside]),
          "height_above_chord": height_above_chord(grid[inside], train_curve[inside]),
          "parameter_distance": landscape.parameter_distance(start, end),
          "final_train_loss": trained.get(member),  # the training loop's at θ*; None between θ*s
        }
      )
    arrays = {}
    for i, seed in enumerate(solution_seeds):
      arrays.update(member_arrays(f"seed{seed}", landscape.select(final, i), model.model_state))
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    to_solution = [r for r in results.table if r["member"].startswith("init_to_solution/")]
    between = next(r for r in results.table if r["member"].startswith("solution_to_solution/"))
    worst = max(to_solution, key=lambda row: row["max_rise_on_0_1"])
    return {
      "max_rise_init_to_solution": worst["max_rise_on_0_1"],
      "max_rise_relative": worst["max_rise_on_0_1"]
      / (worst["loss_at_start"] - worst["loss_at_end"]),
      "max_rise_by_seed": {row["member"]: row["max_rise_on_0_1"] for row in to_solution},
      "barrier_between_solutions": between["height_above_chord"],
      "barrier_relative": between["height_above_chord"]
      / float(np.mean([row["loss_at_start"] - row["final_train_loss"] for row in to_solution])),
      # Past θ* (α = max of alpha_range) over at θ*: < 1 means the loss still falls beyond θ*.
      "loss_beyond_solution_ratio": {
        row["member"]: row["loss_at_alpha_max"] / row["loss_at_end"] for row in to_solution
      },
      "solution_losses": [row["final_train_loss"] for row in to_solution],
      "initial_loss": worst["loss_at_start"],
      "distance_between_solutions": between["parameter_distance"],
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The training and held-out loss along each line (Fig. 8.2), from `history.csv`."""
    curves: dict[str, dict[str, list]] = {}
    for row in read_csv(out_dir / "history.csv"):
      curves.setdefault(row["member"], {}).setdefault(row["metric"], []).append(row["value"])
    figures = []
    for kind, title in (
      ("init_to_solution", "θ(α) = (1 − α) θ₀ + α θ* (Fig. 8.2)"),
      ("solution_to_solution", "between two solutions: (1 − α) θ*_a + α θ*_b"),
    ):
      series = {}
      for member, c in curves.items():
        if member.startswith(kind + "/"):
          label = member.split("/", 1)[1]
          series[f"{label} train"] = (c["alpha"], c["train_loss"])
          series[f"{label} held-out"] = (c["alpha"], c["test_loss"])
      figures.append(
        report.line_plot(
          series,
          out_dir / f"{kind}.png",
          title=title,
          xlabel="α",
          ylabel="NLL (full batch)",
          logy=True,
        )
      )
    return figures


def seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds of the solutions: `seed`, `seed` + 1, …; each draws θ₀ and the minibatch order."""
  return [config.seed + i for i in range(config.num_solutions)]


def alphas(config: ml_collections.ConfigDict) -> np.ndarray:
  """The α grid: `num_alphas` points over `alpha_range`, with 0 and 1 always on it."""
  low, high = config.alpha_range
  return np.unique(np.concatenate([np.linspace(low, high, config.num_alphas), [0.0, 1.0]]))


def max_rise(values: np.ndarray) -> float:
  """max over i ≤ j of values[j] − values[i]: the largest increase met along the sequence."""
  return float(np.max(values - np.minimum.accumulate(values)))


def height_above_chord(grid: np.ndarray, values: np.ndarray) -> float:
  """max over α ∈ [0, 1] of L(α) − [(1 − α) L(0) + α L(1)] on the grid."""
  chord = (1 - grid) * values[0] + grid * values[-1]
  return float(np.max(values - chord))
