"""The init-scale × batch-size × learning-rate sweep (§8.4 × §8.1.3): quick config, its verdicts."""

import numpy as np
import pytest
from quick_runs import quick_run_fixtures

from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, TIE_RTOL, margin, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "sweep_init_batch"
finished_run, summary = quick_run_fixtures(NAME)


def test_verdicts_judge_the_rate_slope_and_the_u_shape_over_seeds(finished_run, summary):
  """Per seed, from results.csv: each batch size's best rate (lowest final training loss of the
  members that stayed finite) and its log-log slope, each scale's best loss and the U-shape
  ratio; the summary's are their means over seeds, judged beyond t_{0.975, dof} standard errors,
  dof = seeds − 1 (1 at the quick config: t = 12.7; an error of 0, every seed alike, decides
  nothing with fewer than 6 seeds)."""
  table = read_csv(finished_run / "results.csv")
  seeds = sorted({r["seed"] for r in table})
  assert summary["seeds"] == seeds and len(seeds) >= 2
  slopes, u_shapes, chosen, scale_rates = [], [], [], []
  for seed in seeds:
    rows = [r for r in table if r["seed"] == seed and not r["diverged"]]
    sizes = sorted({r["batch_size"] for r in rows})
    rates = [
      min((r for r in rows if r["batch_size"] == b), key=lambda r: r["final_train_loss"])[
        "learning_rate"
      ]
      for b in sizes
    ]
    chosen += rates
    slope = 0.0 if len(set(rates)) == 1 else np.polyfit(np.log(sizes), np.log(rates), 1)[0]
    slopes.append(slope)
    scales = sorted({r["init_scale"] for r in rows})
    best = [
      min((r for r in rows if r["init_scale"] == s), key=lambda r: r["final_train_loss"])
      for s in scales
    ]
    losses = [r["final_train_loss"] for r in best]
    u_shapes.append(min(losses[0], losses[-1]) / min(losses[1:-1]))
    scale_rates.append([r["learning_rate"] for r in best])
  slope, slope_se = np.mean(slopes), np.std(slopes, ddof=1) / np.sqrt(len(seeds))
  u_shape, u_shape_se = np.mean(u_shapes), np.std(u_shapes, ddof=1) / np.sqrt(len(seeds))
  assert summary["best_learning_rate_batch_size_log_slope"] == pytest.approx(slope)
  assert summary["best_learning_rate_batch_size_log_slope_se"] == pytest.approx(slope_se)
  assert summary["init_scale_edge_over_interior_train_loss"] == pytest.approx(u_shape)
  assert summary["init_scale_edge_over_interior_train_loss_se"] == pytest.approx(u_shape_se)
  dof = len(seeds) - 1
  assert summary["best_learning_rate_batch_size_log_slope_dof"] == dof
  assert summary["init_scale_edge_over_interior_train_loss_dof"] == dof
  grid = sorted({r["learning_rate"] for r in table})
  chosen += list(summary["best_learning_rate_by_batch_size"].values())
  at_edge = any(r in (grid[0], grid[-1]) for r in chosen)
  assert summary["best_learning_rate_at_grid_edge"] == at_edge
  # a wider grid only lowers a best loss: a U (ratio > 1) could be undone only by an end scale
  # whose best sits at a rate edge, a missing U made only by an interior one
  flips = (
    (lambda i: i in (0, len(scales) - 1)) if u_shape > 1 else (lambda i: 0 < i < len(scales) - 1)
  )
  scale_edge = any(
    rate in (grid[0], grid[-1]) for rs in scale_rates for i, rate in enumerate(rs) if flips(i)
  )
  assert summary["init_scale_best_rate_at_grid_edge"] == scale_edge

  def judged(value, error):
    if error <= 1e-5 * abs(value) and dof < MIN_DOF_WITHOUT_SPREAD:  # 0, up to float rounding
      return None
    return None if abs(value) <= margin(dof) * error * (1 + TIE_RTOL) else bool(value > 0)

  assert summary["verdicts"] == {
    "best_learning_rate_by_batch_size": verdict(None if at_edge else judged(slope, slope_se)),
    "best_train_loss_by_init_scale": verdict(
      None if scale_edge else judged(u_shape - 1, u_shape_se)
    ),
  }


def test_the_best_held_out_error_per_batch_size_is_over_seed_means(finished_run, summary):
  """Per batch size, the lowest held-out error among the settings' means over seeds (every seed
  finite), as the summary's docstring says; it was the lowest single member."""
  table = read_csv(finished_run / "results.csv")
  settings = {(r["init_scale"], r["batch_size"], r["learning_rate"]) for r in table}
  expected = {}
  for scale, size, rate in settings:
    runs = [
      r
      for r in table
      if (r["init_scale"], r["batch_size"], r["learning_rate"]) == (scale, size, rate)
    ]
    if not any(r["diverged"] for r in runs):
      mean = np.mean([r["final_test_error"] for r in runs])
      expected[str(int(size))] = min(expected.get(str(int(size)), np.inf), mean)
  assert summary["best_test_error_by_batch_size"] == pytest.approx(expected)


def test_batch_sizes_are_compared_at_equal_epochs_over_a_bracketing_rate_grid(
  finished_run, summary
):
  """Every batch size trains the same epochs (200 steps of 16 = 50 steps of 64 examples), and
  the flag says whether a batch size's best rate sits at an end of the rate grid."""
  table = read_csv(finished_run / "results.csv")
  steps = {int(r["batch_size"]): int(r["steps"]) for r in table}
  assert steps == {16: 200, 64: 50}
  epochs = summary["epochs_by_batch_size"]
  assert epochs["16"] == pytest.approx(epochs["64"]) == pytest.approx(200 * 16 / 1347)
  history = read_csv(finished_run / "history.csv")
  last = {}
  for row in history:
    last[row["member"]] = max(last.get(row["member"], 0), row["step"])
  assert {last[r["member"]] for r in table if r["batch_size"] == 64} == {50}
  rates = sorted({r["learning_rate"] for r in table})
  best = summary["best_learning_rate_by_batch_size"].values()
  if any(r in (rates[0], rates[-1]) for r in best):  # a seed's best at the edge flags it too
    assert summary["best_learning_rate_at_grid_edge"]
