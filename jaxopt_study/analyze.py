"""`jaxopt-study spectrum RUN_DIR`: a finished run's Hessian spectrum and its kind of point.

A run folder (of `jaxopt-study run`, or of `sweep.run(..., out_dir=...)`) holds its config and
every member's final parameters (`params.npz`). This module rebuilds the member's `Problem` from
`config.json` (a built-in one, or the user's `problem = "file.py:make_problem"`; a problem given
in Python to `sweep.run` is passed here as `problem=`; in a run of several problems, the
member's `problems.NAME` block), takes the Hessian of its training loss
over the whole training set (§8.1.2) at those parameters, and writes into the run folder, one set
per method so that an exact and a Lanczos analysis sit side by side:

- `spectrum-<method>.csv`: the eigenvalues (all of them, or the k Lanczos Ritz values), ascending;
- `classification-<method>.json`: `hessian.classify`'s verdict (minimum, saddle and its index...);
- `spectrum-<method>.png`: the eigenvalue histogram (exact) or the Ritz values (Lanczos).

A run trained with the curvature monitor (`curvature_every`, `hessian.tracking`) also holds its
measurements in `history.csv`; `curvature_history` draws them against the steps, one panel per
metric and one line per member, into `curvature-history.png` (the rows where the monitor did not
measure are NaN and skipped). It needs only `history.csv`, so it also reads a run folder without
saved parameters (an experiment's).
"""

import json
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from jaxopt_study import hessian, report, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import build_problem
from jaxopt_study.hessian import tracking
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import load_member_state, read_csv, write_atomic, write_csv
from jaxopt_study.sweep import runner

MODES = ("train", "eval")
CURVATURE_FIGURE = "curvature-history.png"
# The monitor's metrics, in the order of the figure's panels, with their axis labels.
MONITOR_LABELS = {
  "lambda_max": "λ_max(H)",
  tracking.PRECONDITIONED_METRIC: "λ_max(P⁻¹H)",
  "hessian_trace": "tr H (Hutchinson)",
  "g_hess_g": "gᵀHg",
  "g_dot_g": "gᵀg",
}


def default_member(run_dir: Path) -> str:
  """The member the run's own report calls best (`summary.json`'s `best_member`, as a sweep of
  your own model picks it: the best value early stopping kept, else the lowest final held-out
  loss), else the one with the lowest finite final training loss in `results.csv`, among the
  members whose parameters `params.npz` holds.

  Raises:
    ValueError: `results.csv` has no member column, or no member with saved parameters and a
      finite final training loss (naming the members `params.npz` holds, if any).
  """
  table = read_csv(run_dir / "results.csv")
  if table and "member" not in table[0]:
    raise ValueError(
      f"{run_dir}/results.csv has no member column: this experiment's table is not one row per "
      "trained member, so there is no member to analyse"
    )
  saved = saved_members(run_dir)
  summary = run_dir / "summary.json"
  if summary.is_file():
    best = json.loads(summary.read_text()).get("best_member")
    if best in saved and best in {r["member"] for r in table}:
      return best
  rows = [
    r
    for r in table
    if r["member"] in saved and validate.is_finite_number(r.get("final_train_loss"))
  ]
  if not rows:
    raise ValueError(
      f"{run_dir}/results.csv has no member with saved parameters and a finite final training "
      f"loss; {_saved_text(saved)}"
    )
  return min(rows, key=lambda r: r["final_train_loss"])["member"]


def saved_members(run_dir: Path) -> list[str]:
  """The members whose parameters `params.npz` holds (its keys `MEMBER/params[...]`), sorted."""
  with np.load(run_dir / "params.npz") as arrays:
    return sorted({key.rpartition("/params")[0] for key in arrays.files if "/params" in key})


def _saved_text(saved: list[str]) -> str:
  if not saved:
    return "params.npz holds no member's parameters"
  shown = ", ".join(saved[:8]) + (f", ... ({len(saved)} in all)" if len(saved) > 8 else "")
  return f"params.npz holds those of {shown} (--member NAME)"


def check_run_dir(run_dir: Path) -> None:
  """Refuses a folder that is not a finished run with saved parameters, naming what is missing."""
  if not run_dir.is_dir():
    raise ValueError(f"{run_dir}: no such folder (the --out folder of a finished run)")
  for name in ("config.json", "results.csv", "params.npz"):
    if not (run_dir / name).is_file():
      raise ValueError(f"{run_dir} is not a finished run of `jaxopt-study run`: {name} is missing")


def spectrum_of_run(
  run_dir: str | Path,
  *,
  member: str | None = None,
  method: str = "exact",
  k: int | None = None,
  mode: str | None = None,
  problem: problem_lib.Problem | None = None,
  best: bool = False,
) -> dict[str, Any]:
  """Computes and saves the spectrum and classification of one member of a finished run: of its
  final parameters, or with `best=True` of those early stopping kept (a run with
  `early_stopping`; its files are then named `...-METHOD-best.*`).

  Args:
    run_dir: the `--out` folder of a finished `jaxopt-study run`, or a `sweep.run` out_dir.
    member: which member (a `member` of `results.csv`); default: `default_member`, the run's best.
    method: "exact" (dense Hessian, every eigenvalue) or "lanczos" (k extreme Ritz values).
    k: number of Ritz values per end for "lanczos".
    mode: "train" or "eval", required for a model whose modes differ (BatchNorm, dropout):
      whether the loss is taken in training mode (batch statistics) or in inference mode.
    problem: the run's `Problem`, for a folder written by `sweep.run` on a problem built in
      Python (its config.json only describes it); default: rebuilt from config.json.
    best: analyze the parameters of the member's best evaluation (`best_step` in results.csv)
      instead of its final ones, with the final model state (BatchNorm statistics).

  The loss is the objective the run trained: the problem's loss, plus (α/2) θᵀθ where
  config.json sets `l2_penalty` α (as `train.train` adds it).

  Returns:
    The classification as a dict, with `member`, `parameters` ("final" or "best"), `method`,
    `mode` and `l2_penalty`.
  """
  run_dir = Path(run_dir)
  check_run_dir(run_dir)
  if method not in ("exact", "lanczos"):
    raise ValueError(f"method={method!r}: must be 'exact' or 'lanczos'")
  if k is not None and method == "exact":
    raise ValueError(
      f"k={k}: the number of Ritz values per end is for method='lanczos'; the exact method "
      "computes all N eigenvalues"
    )
  member = member or default_member(run_dir)
  if member not in (saved := saved_members(run_dir)):
    raise ValueError(
      f"member {member!r} has no saved parameters in {run_dir}; {_saved_text(saved)}"
    )
  config = _member_config(run_dir, json.loads((run_dir / "config.json").read_text()), member)
  problem = problem or _problem_of(run_dir, config)
  _require_trained_problem(run_dir, problem)
  pure = problem_lib.pure(problem)
  modes_differ = pure.graph_train != pure.graph_eval
  if mode is None and modes_differ:
    raise ValueError(
      f"mode={mode!r}: the model behaves differently in training and inference (BatchNorm or "
      "dropout), so choose mode 'train' or 'eval' (--mode on the command line)"
    )
  if mode is not None and mode not in MODES:
    raise ValueError(f"mode={mode!r}: must be one of {list(MODES)}")
  params, model_state = load_member_state(
    run_dir / "params.npz", member, *pure.initial(0), best=best
  )
  is_training = mode != "eval"
  alpha = float(config.get("l2_penalty") or 0.0)

  def loss_fn(p, *batch):  # the objective trained: J, plus (α/2) θᵀθ with l2_penalty α (§7.1.1)
    value = problem.loss(pure.module(p, model_state, train=is_training), batch)
    return value + 0.5 * alpha * optax.tree.norm(p, squared=True) if alpha else value

  args = problem.train_data
  spectrum = hessian.spectrum(loss_fn, params, *args, method=method, k=k, which="both")
  exact = spectrum.eigenvalues if method == "exact" else None  # H is not built twice
  verdict = hessian.classify(loss_fn, params, *args, method=method, eigenvalues=exact)
  eigenvalues = np.asarray(spectrum.eigenvalues, float)
  name = f"{method}-best" if best else method
  write_csv(
    run_dir / f"spectrum-{name}.csv",
    [{"rank": i, "eigenvalue": float(v)} for i, v in enumerate(eigenvalues)],
  )
  classification = {
    "member": member,
    "parameters": "best" if best else "final",
    "method": method,
    "mode": mode or "train",
    "l2_penalty": alpha,
    **{key: _plain(value) for key, value in verdict._asdict().items()},
  }
  text = json.dumps(classification, indent=2) + "\n"
  write_atomic(run_dir / f"classification-{name}.json", text)
  at = " at its best evaluation" if best else ""
  report.histogram_plot(
    eigenvalues,
    run_dir / f"spectrum-{name}.png",
    title=f"Hessian eigenvalues of {member}{at} ({method}, N = {spectrum.num_params})",
    xlabel="eigenvalue",
  )
  return classification


def curvature_history(
  run_dir: str | Path, *, members: list[str] | None = None
) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
  """Draws the curvature monitor's measurements in a run folder's `history.csv` against the
  steps, one panel per metric and one line per member, into `curvature-history.png` there.

  Args:
    run_dir: a run folder holding `history.csv` (of `jaxopt-study run` or `sweep.run`).
    members: only these members (default: every member with a measurement).

  Returns:
    {metric: {member: (steps, values)}}, the measured rows drawn (NaN rows left out); empty, and
    no figure written, when the history holds no monitor metric.

  Raises:
    ValueError: `history.csv` is missing, or a member of `members` is not in it.
  """
  run_dir = Path(run_dir)
  if not (run_dir / "history.csv").is_file():
    raise ValueError(f"{run_dir} holds no history.csv: not a run folder of `jaxopt-study run`")
  rows = read_csv(run_dir / "history.csv")
  if members is not None:
    known = {row["member"] for row in rows}
    if unknown := [m for m in members if m not in known]:
      raise ValueError(f"member {', '.join(unknown)} is not in {run_dir}/history.csv")
    rows = [row for row in rows if row["member"] in members]
  curves = {}
  for metric in MONITOR_LABELS:
    measured = {}
    for member, (steps, values) in history_curves(rows, metric).items():
      finite = np.isfinite(np.asarray(values, float))
      if finite.any():
        measured[member] = (
          np.asarray(steps, float)[finite].tolist(),
          np.asarray(values, float)[finite].tolist(),
        )
    if measured:
      curves[metric] = measured
  if curves:
    _curvature_figure(curves, run_dir / CURVATURE_FIGURE, f"curvature monitor of {run_dir.name}")
  return curves


def _curvature_figure(
  curves: dict[str, dict[str, tuple[list[float], list[float]]]], path: Path, title: str
) -> Path:
  """One panel per metric, three to a row, one colour per member (the same in every panel)."""
  members = list(dict.fromkeys(m for by_member in curves.values() for m in by_member))
  colors = dict(zip(members, plt.cm.viridis(np.linspace(0, 0.9, len(members))), strict=True))
  columns = min(3, len(curves))
  rows = math.ceil(len(curves) / columns)
  fig, axes = plt.subplots(
    rows, columns, figsize=(4.4 * columns, 3.6 * rows), dpi=110, squeeze=False
  )
  for ax, (metric, by_member) in zip(axes.flat, curves.items(), strict=False):  # spare axes
    for member, (steps, values) in by_member.items():
      ax.plot(steps, values, color=colors[member], marker="o" if len(steps) < 12 else None, ms=3)
    ax.set(title=MONITOR_LABELS[metric], xlabel="step")
    ax.grid(alpha=0.3)
  for ax in axes.flat[len(curves) :]:
    ax.set_visible(False)
  for member in members:
    axes[0, 0].plot([], [], color=colors[member], label=member)
  axes[0, 0].legend(fontsize=7, ncol=1 + len(members) // 12)
  fig.suptitle(title)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _member_config(run_dir: Path, config: dict[str, Any], member: str) -> dict[str, Any]:
  """The config of `member`'s problem. A run of several problems (`optimizer_comparison`) keeps
  each in config.json's `problems.NAME` (its model and l2_penalty) and names each member's in
  results.csv's `problem` column: that block, laid over the rest of the config; any other run's
  config as it is."""
  if not isinstance(config.get("problems"), dict):
    return config
  rows = {r["member"]: r for r in read_csv(run_dir / "results.csv")}
  if member not in rows:
    raise ValueError(f"member {member!r} is not in {run_dir}/results.csv")
  name = rows[member].get("problem")
  if name not in config["problems"]:
    raise ValueError(
      f"{run_dir}: member {member!r} has problem {name!r}, which is not one of config.json's "
      f"problems ({', '.join(config['problems'])})"
    )
  return {**config, **config["problems"][name]}


def _problem_of(run_dir: Path, config: dict[str, Any]) -> problem_lib.Problem:
  """The `Problem` that the run's `config.json` (`config`) names (built in, or the user's file
  or module)."""
  if isinstance(config.get("problem"), dict):
    raise ValueError(
      f"{run_dir} was written by sweep.run on a problem built in Python, which config.json only "
      "describes: call analyze.spectrum_of_run(run_dir, problem=your_problem), or name the "
      "problem in a config (problem = 'file.py:make_problem')"
    )
  try:
    return build_problem(ml_collections.ConfigDict(config))
  except (KeyError, TypeError, ValueError) as error:
    raise ValueError(
      f"{run_dir}: its config.json (experiment {config.get('experiment', 'none')!r}) does not "
      f"name one problem that spectrum can rebuild ({error}); call analyze.spectrum_of_run("
      "run_dir, member=..., problem=the_problem) with the problem it trained"
    ) from None


def _require_trained_problem(run_dir: Path, problem: problem_lib.Problem) -> None:
  """Refuses training data other than the run's, by the digest in its `inputs.json`
  (`runner.problem_identity`): a problem file edited since the run would otherwise be analyzed
  on the saved parameters. Functions (model, loss, init, metrics) recorded otherwise only warn:
  the same file imported under another module name (a problem the CLI loaded, passed here from
  the user's own import) or recorded by an older release has another identity."""
  path = run_dir / "inputs.json"
  if not path.exists():
    return
  saved = json.loads(path.read_text())
  mine = json.loads(json.dumps(runner.problem_identity(problem)))  # as read back
  if "train_data" in saved and saved["train_data"] != mine["train_data"]:
    raise ValueError(
      f"{run_dir} was trained on other training data than the problem given now has (its file "
      "or data changed since the run); analyze it with the problem it trained"
    )
  if changed := sorted(k for k in saved.keys() & runner.PROBLEM_FUNCTIONS if saved[k] != mine[k]):
    warnings.warn(
      f"{run_dir}: the problem's {', '.join(changed)} differ from the run's record (edited since "
      "the run, or the same code imported under another name): the spectrum is of the problem "
      "given now",
      stacklevel=3,
    )


def _plain(value: Any) -> Any:
  """JSON-ready: numpy and jax scalars become Python numbers; ±inf and nan become strings."""
  if isinstance(value, str | bool | int | None):
    return value
  number = float(np.asarray(value))
  return number if math.isfinite(number) else str(number)
