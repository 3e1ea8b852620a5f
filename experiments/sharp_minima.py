"""Keskar et al. (2017): large minibatches reach sharper minima that generalize worse.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (2017) trained the same networks with small
minibatches and with large ones (about 10% of the training set) and found the large-batch
solutions sharper, by their ε-sharpness (§2.2.2, Table 3), and worse on held-out data (Table 2);
§8.1.3 of Goodfellow et al. (2016) discusses the minibatch size, and the noise of small batches,
as a regularizer. Here a digits MLP is trained by Adam from the same initialization with a small
and a large minibatch, once per seed, for the same number of steps; at the end we measure

* the ε-sharpness of the full training NLL (`hessian.sharpness`, ε ∈ `sharpness_eps`),
* the largest Hessian eigenvalue (`hessian.spectrum`, Lanczos),
* the held-out 0-1 error (`train.train`'s last evaluation).

Every (seed, batch size) member is trained by one `jaxopt_study.sweep` (two compiled programs:
the batch sizes are more than 4x apart), which returns each member's final parameters; the
sharpness and λ_max are then measured member by member.

Claims (`summary.json`): `sharpness_ratio_large_over_small` (mean large-batch sharpness over mean
small-batch sharpness at the first ε; Keskar et al.: > 1), `sharpness_ratio_by_eps`,
`lambda_max_ratio_large_over_small`, `test_error_gap` (large − small, mean over seeds; Keskar et
al.: > 0), and the final training losses, to show both reached a low loss.
"""

from pathlib import Path

import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, models, report, results, sweep
from jaxopt_study.lab import trained_mlp
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import ExperimentResults, RunDir

TITLE = "Sharp minima: small vs large minibatches (Keskar et al. 2017)"
SECTION = "8.1.3"
DESCRIPTION = (
  "A digits MLP trained by Adam with a small minibatch and with a large one (about 10% of the "
  "training set), same initialization and number of steps; at the end, the ε-sharpness of the "
  "full training NLL (Keskar et al. 2017, maximized by projected sign-gradient ascent in the "
  "box, a lower bound of their metric), the largest Hessian eigenvalue and the held-out error. "
  "At this scale the published effect does not reproduce: with the same number of steps the "
  "large batch (more epochs) reaches a lower training NLL and a flatter point, sharpness and "
  "λ_max ratios below 1, and the held-out errors differ by a few test examples only. Full "
  "config (3 seeds, 3,000 steps): sharpness ratio 0.21 (ε = 1e-3) and 0.22 (ε = 5e-4), λ_max "
  "ratio 0.28, held-out error gap +0.0007 (about one test example in three seeds)."
)
PUBLISHED = {
  "sharpness_ratio_large_over_small": "> 1: large-batch minima are sharper (Keskar et al. "
  "2017, Table 3: ratios of about 2 to 50)",
  "test_error_gap": "> 0: large batches generalize worse (Keskar et al. 2017, Table 2)",
}
BATCHES = ("small", "large")


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before anything is compiled."""
  if config.data.name != "digits":
    raise ValueError(f"data.name={config.data.name!r}: this experiment runs on 'digits'")
  if not isinstance(config.num_seeds, int) or config.num_seeds < 1:
    raise ValueError(f"num_seeds={config.num_seeds!r}: must be an integer ≥ 1")
  if not config.small_batch_size < config.large_batch_size:
    raise ValueError(
      f"small_batch_size={config.small_batch_size}, large_batch_size={config.large_batch_size}: "
      "the small batch must be smaller"
    )
  eps = list(config.sharpness_eps)
  if not eps or any(not isinstance(e, float) or not e > 0 for e in eps):
    raise ValueError(f"sharpness_eps={eps!r}: must be a non-empty list of positive floats")
  if not isinstance(config.sharpness_steps, int) or config.sharpness_steps < 1:
    raise ValueError(f"sharpness_steps={config.sharpness_steps!r}: must be an integer ≥ 1")
  sweep.check_config(_sweep_config(config))


def _sweep_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Every (seed, batch size) member as one `jaxopt_study.sweep` config."""
  sweep_config = ml_collections.ConfigDict(
    {
      key: config[key]
      for key in ("seed", "steps", "learning_rate", "eval_every", "sampling", "data", "model")
    }
  )
  sweep_config.optimizer = config.optimizer
  sweep_config.batch_size = config.small_batch_size
  sweep_config.sweep = ml_collections.ConfigDict(
    {
      "seed": list(range(config.seed, config.seed + config.num_seeds)),
      "batch_size": [config.small_batch_size, config.large_batch_size],
    }
  )
  return sweep_config


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Trains every member in one sweep (resumable in `run_dir`), then measures each one; measured
  members are kept in `run_dir`."""
  check(config)
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
  folder = run_dir.path / "training_sweep" if run_dir else None
  trained = sweep.run_config(_sweep_config(config), folder, progress=progress)
  sweep_history: dict[str, list[dict]] = {}
  for row in trained.history:
    sweep_history.setdefault(row["member"], []).append(row)
  table, history = [], []
  for member in tqdm(trained.table, desc="sharpness", disable=not progress):
    batch = "small" if member["batch_size"] == config.small_batch_size else "large"
    name = f"{batch}@seed{member['seed']}"
    record = run_dir.load_member(name) if run_dir else None
    if record is None:
      record = {
        "row": _measure(config, data, trained.arrays, member, name, batch),
        "history": [{**r, "member": name} for r in sweep_history[member["member"]]],
      }
      if run_dir:
        run_dir.save_member(name, record)
    table.append(record["row"])
    history.extend(record["history"])
  return ExperimentResults(table, history, _summarize(table, config))


def _measure(config, data: data_lib.Dataset, arrays, member: dict, name: str, batch: str) -> dict:
  """The sweep member's final training NLL, sharpness at each ε and λ_max."""
  model = models.functional(
    models.build_model(
      config.model.name, 64, 10, seed=member["seed"], **trained_mlp.model_options(config)
    )
  )
  params, model_state = results.member_state(
    arrays, member["member"], model.params, model.model_state
  )

  def loss_fn(params, x, y):
    logits, _ = model.apply(params, model_state, x, True)
    return losses.softmax_cross_entropy(logits, y)

  args = (params, data.x_train, data.y_train)
  top = hessian.spectrum(loss_fn, *args, method="lanczos", k=1)
  row = {
    "member": name,
    "seed": member["seed"],
    "batch": batch,
    "batch_size": member["batch_size"],
    "final_train_loss": member["final_train_loss"],
    "final_train_error": member["final_train_error"],
    "final_test_error": member["final_test_error"],
    "lambda_max": float(top.eigenvalues[-1]),
  }
  for eps in config.sharpness_eps:
    row[f"sharpness_eps{eps:g}"] = hessian.sharpness(
      loss_fn, *args, eps=eps, steps=config.sharpness_steps
    )
  return row


def _mean(table: list[dict], batch: str, column: str) -> float:
  return float(np.mean([r[column] for r in table if r["batch"] == batch]))


def _summarize(table: list[dict], config) -> dict:
  def ratio(column: str) -> float:
    return _mean(table, "large", column) / _mean(table, "small", column)

  columns = [f"sharpness_eps{eps:g}" for eps in config.sharpness_eps]
  return {
    "sharpness_ratio_large_over_small": ratio(columns[0]),
    "sharpness_ratio_by_eps": {c.removeprefix("sharpness_eps"): ratio(c) for c in columns},
    "lambda_max_ratio_large_over_small": ratio("lambda_max"),
    "test_error_gap": _mean(table, "large", "final_test_error")
    - _mean(table, "small", "final_test_error"),
    "test_error": {b: _mean(table, b, "final_test_error") for b in BATCHES},
    "final_train_loss": {b: _mean(table, b, "final_train_loss") for b in BATCHES},
    "sharpness": {b: _mean(table, b, columns[0]) for b in BATCHES},
  }


def plot(out_dir: Path) -> list[Path]:
  """Training loss and held-out error of every member over the steps."""
  history = out_dir / "history.csv"
  return [
    report.line_plot(
      read_curves(history, metric),
      out_dir / f"{metric}.png",
      title=f"{metric}: small vs large minibatches",
      xlabel="step",
      ylabel=label,
      logy=logy,
    )
    for metric, label, logy in (
      ("train_loss", "training NLL (full batch)", True),
      ("test_error", "held-out 0-1 error", False),
    )
  ]
