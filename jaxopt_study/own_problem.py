"""The experiment of a config without an `experiment` field: a sweep of the config's problem.

`jaxopt-study run my_config.py` on a config that names a problem (`problem = "file.py:make"`, or
built-in `data` and `model`), an optimizer and sweep axes trains every member as one vmapped
program (`sweep.run_config`) and reports the table, the curves of every reported metric, and
which member did best. Nothing here assumes a metric the problem does not report.
"""

from pathlib import Path

import ml_collections

from jaxopt_study import report, sweep, validate
from jaxopt_study.config import build_problem
from jaxopt_study.experiment import Experiment, Members, Results
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import read_csv
from jaxopt_study.sweep import configured
from jaxopt_study.sweep.configured import FIELDS as SWEEP_FIELDS


class OwnProblem(Experiment):
  """A sweep of the config's problem; experiments that are one sweep subclass it and state their
  own claims (`summarize`) and figures (`plot`)."""

  NAME = "own_problem"
  TITLE = "A sweep of your problem"
  SECTION = "8.1.3"
  DESCRIPTION = (
    "Every member of the config's sweep (the product of its axes) trained as one compiled, "
    "vmapped program on the config's problem. The table has each member's axis values, its final "
    "metrics and whether it diverged (loss non-finite, or above divergence_factor times its "
    "initial loss); the figures show every reported metric over training, one line per member."
  )

  # every field of a sweep config, and any optimizer hyperparameter (the sweep's check refuses
  # one its optimizer has not)
  OPTIONAL_FIELDS = (*(f for f in SWEEP_FIELDS if f != "experiment"), "optimizer.*")

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    sweep.check_config(config)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Runs the sweep (resuming from its checkpoints in the run folder)."""
    result = sweep.run_config(config, members.path, progress=progress)
    return Results(result.table, result.history, result.arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """The best member among those that did not diverge and have a finite value: by its
    early-stopping metric's best value where the sweep stops early (`configured.early_stopping`:
    the value early stopping kept; its highest for a metric the problem maximizes), else by the
    lowest final held-out loss (else training loss), which also breaks ties (a 0-1 error is a
    count); and the diverged members."""
    table = results.table
    loss = "final_test_loss" if "final_test_loss" in table[0] else "final_train_loss"
    key, sign = loss, 1.0
    if stopping := configured.early_stopping(config):
      key = f"best_{stopping}"
      sign = -1.0 if stopping in build_problem(config).maximized_metrics() else 1.0
    stable = [
      row
      for row in table
      if not row["diverged"] and all(validate.is_finite_number(row.get(k)) for k in (key, loss))
    ]
    best = min(stable, key=lambda row: (sign * row[key], row[loss]), default=None)
    return {
      "selected_by": key,
      "best_member": best["member"] if best else None,
      key if key.startswith("best_") else f"best_{key}": best[key] if best else None,
      "diverged_members": [row["member"] for row in table if row["diverged"]],
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """One figure per reported metric: its value over the steps, one line per member."""
    rows = read_csv(out_dir / "history.csv")
    metrics = sorted({row["metric"] for row in rows})
    return [
      report.line_plot(
        history_curves(rows, metric),
        out_dir / f"{metric}.png",
        title=metric.replace("_", " "),
        xlabel="step",
        ylabel=metric,
        logy=metric in ("train_loss", "test_loss", "grad_norm"),
      )
      for metric in metrics
    ]
