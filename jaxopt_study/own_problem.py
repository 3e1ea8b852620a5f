"""The experiment of a config without an `experiment` field: a sweep of the config's problem.

`jaxopt-study run my_config.py` on a config that names a problem (`problem = "file.py:make"`, or
built-in `data` and `model`), an optimizer and sweep axes trains every member as one vmapped
program (`sweep.run_config`) and reports the table, the curves of every reported metric, and
which member did best. Nothing here assumes a metric the problem does not report.
"""

from collections.abc import Callable
from pathlib import Path

import ml_collections

from jaxopt_study import curves, report, sweep
from jaxopt_study.results import ExperimentResults, RunDir, read_csv

TITLE = "A sweep of your problem"
SECTION = "8.1.3"
DESCRIPTION = (
  "Every member of the config's sweep (the product of its axes) trained as one compiled, "
  "vmapped program on the config's problem. The table has each member's axis values, its final "
  "metrics and whether it diverged (loss non-finite, or above divergence_factor times its "
  "initial loss); the figures show every reported metric over training, one line per member."
)


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field or axis, before compiling."""
  sweep.check_config(config)


def run(
  config: ml_collections.ConfigDict,
  run_dir: RunDir | None = None,
  progress: bool = True,
  summary: Callable[[list[dict]], dict] | None = None,
) -> ExperimentResults:
  """Runs the sweep (resuming in `run_dir`); its claims are `summary(table)` (default:
  `summarize`, the best member), so sweep experiments differ only in their claims."""
  result = sweep.run_config(config, run_dir.path if run_dir else None, progress=progress)
  claims = (summary or summarize)(result.table)
  return ExperimentResults(result.table, result.history, claims, result.arrays)


def summarize(table: list[dict]) -> dict:
  """The member with the lowest final held-out loss (else training loss) among those that did
  not diverge, and the diverged members."""
  key = "final_test_loss" if "final_test_loss" in table[0] else "final_train_loss"
  stable = [row for row in table if not row["diverged"]]
  best = min(stable, key=lambda row: row[key], default=None)
  return {
    "selected_by": key,
    "best_member": best["member"] if best else None,
    f"best_{key}": best[key] if best else None,
    "diverged_members": [row["member"] for row in table if row["diverged"]],
  }


def plot(out_dir: Path) -> list[Path]:
  """One figure per reported metric: its value over the steps, one line per member."""
  rows = read_csv(out_dir / "history.csv")
  metrics = sorted({row["metric"] for row in rows})
  return [
    report.line_plot(
      curves.history_curves(rows, metric),
      out_dir / f"{metric}.png",
      title=metric.replace("_", " "),
      xlabel="step",
      ylabel=metric,
      logy=metric in ("train_loss", "test_loss", "grad_norm"),
    )
    for metric in metrics
  ]
