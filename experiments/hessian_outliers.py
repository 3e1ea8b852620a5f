"""The Hessian of a trained digits MLP: a bulk near zero and a few outliers (Sagun et al. 2017).

Sagun, Evci, Güney, Dauphin & Bottou (2017) and Papyan (2019) found the Hessian spectrum of a
trained classifier to split into a bulk concentrated near zero and a few outliers, about one per
class (C for C classes; Papyan traces them to the class means of the logits' gradients). Here
an MLP is trained on scikit-learn's digits (C = 10) by minibatch SGD (Algorithm 8.1), once per
seed, and the exact spectrum of its training objective, the mean NLL over the whole training set
(§8.1.2), is computed from the dense Hessian (`hessian.spectrum`).

The outliers are counted by a rule fixed before any spectrum was looked at (`hessian.outliers`):
the eigenvalues above the largest ratio λ_k / λ_{k+1} among the `outlier_search` + 1 largest.
The bulk fraction near zero is the share of eigenvalues with |λ| ≤ `near_zero_relative` · λ_max.

Claims (`summary.json`): `n_outliers` (the median count over seeds), `n_outliers_by_seed`,
`n_classes`, `bulk_fraction_near_zero` (mean over seeds), `outlier_gap_ratio`, and the largest
eigenvalues `top_eigenvalues` (first seed) to judge the rule by.
"""

import json
from pathlib import Path

import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, models, optim, report, train
from jaxopt_study.hessian import outliers
from jaxopt_study.lab import trained_mlp
from jaxopt_study.results import ExperimentResults, RunDir, history_rows, read_csv, write_csv

TITLE = "Hessian outliers: a bulk near zero and about one outlier per class"
SECTION = "8.2"
DESCRIPTION = (
  "An MLP trained by SGD on scikit-learn's digits (10 classes); the exact Hessian spectrum of "
  "the full training NLL at the end of training. Outliers: the eigenvalues above the largest "
  "ratio between consecutive eigenvalues among the largest `outlier_search` + 1, a rule fixed "
  "in advance. Sagun et al. (2017) and Papyan (2019) report about one outlier per class on "
  "larger networks and data sets; on these small digits networks the spectrum decays more "
  "gradually, and the count found, not the published one, is what summary.json reports. "
  "Measured: quick config (width 16, N = 1,482) 8 outliers, full config (width 32, N = 3,466) "
  "7 and 3 for its two seeds; the largest gap ratio is only about 1.3, so the outliers are not "
  "well separated from the bulk, and 87-95% of the eigenvalues lie within 1% of λ_max of zero."
)
PUBLISHED = {
  "n_outliers": "≈ C, one per class (Sagun et al. 2017, §3; Papyan 2019)",
  "n_classes": "C = 10 for digits",
  "bulk_fraction_near_zero": "most eigenvalues in a bulk at zero (Sagun et al. 2017)",
}


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before anything is compiled."""
  check_training(config)
  for field in ("num_seeds", "outlier_search"):
    if not isinstance(config[field], int) or config[field] < 1:
      raise ValueError(f"{field}={config[field]!r}: must be an integer ≥ 1")
  if not 0 < config.near_zero_relative < 1:
    raise ValueError(f"near_zero_relative={config.near_zero_relative!r}: must lie in (0, 1)")
  width, depth = config.model.width, config.model.depth
  num_params = 64 * width + width + (depth - 1) * (width * width + width) + 10 * width + 10
  if config.outlier_search >= num_params:
    raise ValueError(f"outlier_search={config.outlier_search}: must be < N={num_params} parameters")


def check_training(config: ml_collections.ConfigDict) -> None:
  """The fields of the digits MLP and its SGD training, as `train.train` needs them."""
  if config.data.name != "digits":
    raise ValueError(f"data.name={config.data.name!r}: this experiment runs on 'digits'")
  if config.model.name != "mlp":
    raise ValueError(f"model.name={config.model.name!r}: this experiment uses 'mlp'")
  if config.optimizer.name not in optim.OPTIMIZERS:
    raise ValueError(
      f"optimizer.name={config.optimizer.name!r}: must be one of {sorted(optim.OPTIMIZERS)}"
    )
  if not config.learning_rate > 0:
    raise ValueError(f"learning_rate={config.learning_rate!r}: must be > 0")
  models.build_model("mlp", 64, 10, seed=config.seed, **trained_mlp.model_options(config))
  data = load_data(config)
  train.check_arguments(
    data.x_train.shape[0], config.steps, config.batch_size, config.eval_every, config.sampling, None
  )


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Trains one network per seed and computes its exact spectrum; finished seeds are kept."""
  check(config)
  data = load_data(config)
  table, history, spectra = [], [], []
  seeds = range(config.seed, config.seed + config.num_seeds)
  for seed in tqdm(seeds, desc="seeds", disable=not progress):
    name = f"seed{seed}"
    record = run_dir.load_member(name) if run_dir else None
    if record is None:
      record = _one_seed(config, data, seed, name)
      if run_dir:
        run_dir.save_member(name, record)
    table.append(record["row"])
    history.extend(record["history"])
    spectra.extend(
      {"member": name, "rank": i, "eigenvalue": v} for i, v in enumerate(record["spectrum"])
    )
  if run_dir:
    write_csv(run_dir.path / "spectrum.csv", spectra)
  return ExperimentResults(table, history, _summarize(table, spectra, config))


def _one_seed(config, data: data_lib.Dataset, seed: int, name: str) -> dict:
  result, loss_fn = trained_mlp.train_digits_mlp(config, data, seed)
  spectrum = hessian.spectrum(loss_fn, result.params, data.x_train, data.y_train)
  values = np.asarray(spectrum.eigenvalues, float)[::-1]  # decreasing
  found = outliers.count_outliers(values, config.outlier_search)
  row = {
    "member": name,
    "seed": seed,
    "num_params": spectrum.num_params,
    "final_train_loss": float(result.history["train_loss"][-1]),
    "final_test_error": float(result.history["test_error"][-1]),
    "grad_norm": spectrum.grad_norm,
    "lambda_max": float(values[0]),
    "lambda_min": float(values[-1]),
    "n_outliers": found.count,
    "outlier_gap_ratio": found.gap_ratio,
    "bulk_edge": found.bulk_edge,
    "bulk_fraction_near_zero": outliers.fraction_near_zero(values, config.near_zero_relative),
  }
  return {
    "row": row,
    "history": history_rows(name, result.history),
    "spectrum": values.tolist(),
  }


def _summarize(table: list[dict], spectra: list[dict], config) -> dict:
  first = table[0]["member"]
  top = [r["eigenvalue"] for r in spectra if r["member"] == first][: 2 * 10 + 1]
  return {
    "n_outliers": int(np.median([r["n_outliers"] for r in table])),
    "n_outliers_by_seed": {r["member"]: r["n_outliers"] for r in table},
    "n_classes": 10,
    "bulk_fraction_near_zero": float(np.mean([r["bulk_fraction_near_zero"] for r in table])),
    "near_zero_relative": config.near_zero_relative,
    "outlier_gap_ratio": float(np.median([r["outlier_gap_ratio"] for r in table])),
    "top_eigenvalues": top,
    "num_params": table[0]["num_params"],
  }


def plot(out_dir: Path) -> list[Path]:
  """The sorted largest eigenvalues with the bulk edge marked, and the eigenvalue histogram."""
  table = read_csv(out_dir / "results.csv")
  spectra: dict[str, list[float]] = {}
  for row in read_csv(out_dir / "spectrum.csv"):
    spectra.setdefault(row["member"], []).append(row["eigenvalue"])
  search = int(json_config(out_dir)["outlier_search"])
  series = {
    f"{r['member']} ({int(r['n_outliers'])} outliers)": (
      np.arange(1, search + 2),
      spectra[r["member"]][: search + 1],
    )
    for r in table
  }
  first = table[0]["member"]
  return [
    report.line_plot(
      series,
      out_dir / "top_eigenvalues.png",
      title="largest Hessian eigenvalues, decreasing",
      xlabel="rank k",
      ylabel="λ_k",
      logy=True,
    ),
    report.histogram_plot(
      spectra[first],
      out_dir / "spectrum_histogram.png",
      title=f"Hessian eigenvalues of {first}",
      xlabel="eigenvalue",
    ),
  ]


def json_config(out_dir: Path) -> dict:
  """The resolved config a finished run saved."""
  return json.loads((out_dir / "config.json").read_text())


def load_data(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  return data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
