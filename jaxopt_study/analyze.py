"""`jaxopt-study spectrum RUN_DIR`: a finished run's Hessian spectrum and its kind of point.

A run of `jaxopt-study run` saves its config and every member's final parameters (`params.npz`).
This module rebuilds the member's model and data from `config.json`, takes the Hessian of the
training objective (the mean NLL over the whole training set, §8.1.2) at those parameters, and
writes into the run folder:

- `spectrum.csv`: the eigenvalues (all of them, or the k Lanczos Ritz values), ascending;
- `classification.json`: `hessian.classify`'s verdict (minimum, saddle and its index, ...);
- `spectrum.png`: the eigenvalue histogram (exact) or the Ritz values (Lanczos).
"""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, models, report
from jaxopt_study.results import load_member_state, read_csv, write_atomic, write_csv

MODES = ("train", "eval")


def default_member(run_dir: Path) -> str:
  """The member with the lowest finite final training loss in `results.csv`."""
  rows = [r for r in read_csv(run_dir / "results.csv") if math.isfinite(r["final_train_loss"])]
  if not rows:
    raise ValueError(f"{run_dir}/results.csv has no member with a finite final training loss")
  return min(rows, key=lambda r: r["final_train_loss"])["member"]


def check_run_dir(run_dir: Path) -> None:
  """Refuses a folder that is not a finished run with saved parameters, naming what is missing."""
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
) -> dict[str, Any]:
  """Computes and saves the spectrum and classification of one member of a finished run.

  Args:
    run_dir: the `--out` folder of a finished `jaxopt-study run`.
    member: which member (a `member` of `results.csv`); default: lowest final training loss.
    method: "exact" (dense Hessian, every eigenvalue) or "lanczos" (k extreme Ritz values).
    k: number of Ritz values per end for "lanczos".
    mode: "train" or "eval", required for a model with BatchNorm: whether the normalization
      uses the statistics of the batch (the training objective) or the running averages.

  Returns:
    The classification as a dict, with `member`, `method` and `mode`.
  """
  run_dir = Path(run_dir)
  check_run_dir(run_dir)
  config = json.loads((run_dir / "config.json").read_text())
  member = member or default_member(run_dir)
  options = {k: v for k, v in config["model"].items() if k != "name"}
  if options.get("batchnorm") and mode not in MODES:
    raise ValueError(f"mode={mode!r}: the model has BatchNorm, so choose mode 'train' or 'eval'")
  dataset = _dataset(config["data"])
  num_classes = int(np.max(np.asarray(dataset.y_train))) + 1
  module = models.build_model(
    config["model"]["name"], dataset.x_train.shape[-1], num_classes, seed=config["seed"], **options
  )
  template = models.functional(module)
  params, model_state = load_member_state(
    run_dir / "params.npz", member, template.params, template.model_state
  )
  is_training = mode != "eval"

  def loss_fn(p, x, y):
    logits, _ = template.apply(p, model_state, x, is_training)
    return losses.softmax_cross_entropy(logits, y)

  args = (dataset.x_train, dataset.y_train)
  spectrum = hessian.spectrum(loss_fn, params, *args, method=method, k=k, which="both")
  exact = spectrum.eigenvalues if method == "exact" else None  # H is not built twice
  verdict = hessian.classify(loss_fn, params, *args, method=method, eigenvalues=exact)
  eigenvalues = np.asarray(spectrum.eigenvalues, float)
  write_csv(
    run_dir / "spectrum.csv",
    [{"rank": i, "eigenvalue": float(v)} for i, v in enumerate(eigenvalues)],
  )
  classification = {
    "member": member,
    "method": method,
    "mode": mode or "train",
    **{key: _plain(value) for key, value in verdict._asdict().items()},
  }
  write_atomic(run_dir / "classification.json", json.dumps(classification, indent=2) + "\n")
  report.histogram_plot(
    eigenvalues,
    run_dir / "spectrum.png",
    title=f"Hessian eigenvalues of {member} ({method}, N = {spectrum.num_params})",
    xlabel="eigenvalue",
  )
  return classification


def _dataset(data_config: dict[str, Any]) -> data_lib.Dataset:
  name = data_config["name"]
  if name != "digits":
    raise ValueError(f"data.name={name!r}: spectrum rebuilds runs on 'digits' only for now")
  options = {k: v for k, v in data_config.items() if k != "name"}
  return data_lib.load_digits(**options)


def _plain(value: Any) -> Any:
  """JSON-ready: numpy and jax scalars become Python numbers; ±inf and nan become strings."""
  if isinstance(value, str | bool | int | None):
    return value
  number = float(np.asarray(value))
  return number if math.isfinite(number) else str(number)
