"""§8.7.1 batch normalization and the Hessian: BatchNorm removes the large outliers (Ghorbani 2019).

Ghorbani, Krishnan & Xiao (2019, §4) found that the Hessian of a network without batch
normalization has large isolated eigenvalues, which BatchNorm (Ioffe & Szegedy 2015;
Goodfellow et al. 2016, §8.7.1) suppresses, so that the largest eigenvalue falls and larger
learning rates train stably (gradient descent on a quadratic diverges above 2 / λ_max, §4.3).
Here the same digits MLP is trained by SGD without and with BatchNorm, from each of `num_seeds`
initializations (seeds `seed`, `seed` + 1, ...; both models of a seed share its minibatch order),
and we measure

* the exact Hessian spectrum of the training NLL at the end, BatchNorm in train mode (batch
  statistics of the whole training set, the objective the minibatches estimate), its largest
  eigenvalue and its outliers (the eigengap rule of `hessian.outliers`);
* the largest stable learning rate: one `jaxopt_study.sweep` per model over `lr_sweep` × the
  seeds, each member trained for `lr_sweep_steps` steps; a rate is stable if the run stays finite
  (the sweep's divergence flag) and ends below the training NLL of the best constant prediction
  (the entropy of the training labels, ≈ ln 10: a net that collapsed to predicting the class
  frequencies ends there, just below its start, and is not trained), and so is every smaller rate
  of the grid: the largest stable rate is the top of the stable range that starts at the grid's
  smallest rate.

Claims (`summary.json`), each a geometric mean over seeds of the per-seed ratio with the
standard error of its log (`verdicts.paired_ratio`; `_dof`, one less than the seeds), judged on
the log scale beyond t_{0.975, dof} standard errors (an error of 0, every seed's rates on the same
grid points, decides only from 6 seeds on): `lambda_max_ratio` (with / without
BatchNorm; Ghorbani et al.: < 1), `max_stable_lr_ratio` (with / without; > 1: for a seed whose
plain net is stable at no rate (`max_stable_lr_censored_seeds`), its ratio is a lower bound over
the grid's smallest rate, which can show the claim (judged on the bounds' spread) but not refute
it, so the claim is then undecided unless the ratio is above 1; undecided too when the plain net
of some seed is stable at the grid's top, `plain_max_stable_lr_at_grid_top`, where the ratio is
an upper bound: both in `max_stable_lr_ratio_undecided`); and per model the mean λ_max and
outlier count and the median largest stable rate over seeds.
"""

from pathlib import Path

import ml_collections
import numpy as np

from jaxopt_study import report, sweep, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import digits_tasks, trained_mlp, verdicts
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import history_rows

VARIANTS = {"plain": False, "batchnorm": True}


class BatchnormSpectrum(Experiment):
  """The same MLP without and with BatchNorm: its spectrum and its largest stable rate."""

  NAME = "batchnorm_spectrum"
  TITLE = "BatchNorm and the Hessian: top eigenvalue, outliers and the largest stable rate"
  SECTION = "8.7.1"
  DESCRIPTION = (
    "The same MLP on scikit-learn's digits trained by SGD without and with BatchNorm, from "
    "several initializations, the two ratios paired by seed with their standard errors. The exact "
    "Hessian spectrum of the training NLL at the end (BatchNorm in train mode), its largest "
    "eigenvalue and its outliers by the largest eigengap; and the largest learning rate, on a "
    "grid, at which a short SGD run stays finite and lowers the loss (one sweep per model). "
    "The rate ratio depends on the scale of the network and of the sweep; a largest stable rate "
    "at the top of the grid is listed in max_stable_lr_at_grid_edge (a lower bound)."
  )
  PUBLISHED = {
    "lambda_max_ratio": "< 1: BatchNorm removes the large outliers (Ghorbani et al. 2019, §4)",
    "max_stable_lr_ratio": "> 1: larger stable learning rates with BatchNorm (Ghorbani et al. "
    "2019; Ioffe & Szegedy 2015)",
  }
  # The rate ratio is undecided when the plain net is stable at the grid's top rate (its own
  # largest stable rate may lie above the grid, so the ratio is only an upper bound), and when a
  # plain net stable at no rate makes it a lower bound that is not above 1.
  CRITERIA = {
    "lambda_max_ratio": below(
      "lambda_max_ratio", 1.0, standard_error="lambda_max_ratio_se", ratio=True
    ),
    "max_stable_lr_ratio": above(
      "max_stable_lr_ratio",
      1.0,
      standard_error="max_stable_lr_ratio_se",
      ratio=True,
      unless="max_stable_lr_ratio_undecided",
    ),
  }
  FIELDS = {
    **trained_mlp.FIELDS,
    "num_seeds": lambda name, value, where: validate.require_int(name, value, where, low=2),
    "lr_sweep": validate.each(validate.require_positive),
    "outlier_search": validate.require_positive_int,
    "lr_sweep_steps": validate.require_positive_int,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    grid = list(config.lr_sweep)
    if len(grid) < 2 or grid != sorted(grid):
      raise ValueError(f"{self.NAME}: lr_sweep={grid!r} must list at least two increasing rates")
    num_params = trained_mlp.check_training(config)  # without BatchNorm, the smaller
    if config.outlier_search >= num_params:
      raise ValueError(
        f"{self.NAME}: outlier_search={config.outlier_search} must be < N={num_params} parameters"
      )
    for batchnorm in VARIANTS.values():
      sweep.check_config(sweep_config(config, batchnorm))

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains and measures both models from every seed; each finished model is kept in the run
    folder."""
    data = digits_tasks.load(config.data)
    table, history = [], []
    for name, batchnorm in VARIANTS.items():
      folder = members.path / f"lr_sweep_{name}" if members.path else None
      record, _ = members.get(
        name, lambda n=name, b=batchnorm, f=folder: (one_model(config, data, n, b, f, progress), {})
      )
      table.extend(record["rows"])
      history.extend(record["history"])
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    def column(name: str, key: str) -> list:
      rows = sorted((r for r in results.table if r["model"] == name), key=lambda r: r["seed"])
      return [r[key] for r in rows]

    plain, normed = column("plain", "max_stable_lr"), column("batchnorm", "max_stable_lr")
    # a plain net stable at no rate of the grid is so below its smallest: a lower bound
    plain_bound = [min(config.lr_sweep) if np.isnan(p) else p for p in plain]
    lambda_ratio = verdicts.paired_ratio(
      column("batchnorm", "lambda_max"), column("plain", "lambda_max")
    )
    rate_ratio = verdicts.paired_ratio(normed, plain_bound)
    top = max(config.lr_sweep)
    seeds = sorted(r["seed"] for r in results.table if r["model"] == "plain")
    censored = [seed for seed, p in zip(seeds, plain, strict=True) if np.isnan(p)]
    return {
      "num_seeds": config.num_seeds,
      "lambda_max_ratio": lambda_ratio[0],
      "lambda_max_ratio_se": lambda_ratio[1],
      "lambda_max_ratio_dof": verdicts.dof(column("plain", "lambda_max")),
      "max_stable_lr_ratio": rate_ratio[0],
      "max_stable_lr_ratio_se": rate_ratio[1],
      "max_stable_lr_ratio_dof": verdicts.dof(plain_bound),
      "plain_max_stable_lr_at_grid_top": bool(top in plain),
      "max_stable_lr_censored_seeds": censored,
      "max_stable_lr_ratio_undecided": bool(
        top in plain or (censored and (rate_ratio[0] is None or not rate_ratio[0] > 1))
      ),
      **{
        f"{key}_{name}": float(np.mean(column(name, key)))
        for name in VARIANTS
        for key in ("lambda_max", "n_outliers")
      },
      **{
        f"max_stable_lr_{name}": float(np.median(column(name, "max_stable_lr")))
        for name in VARIANTS
      },
      "max_stable_lr_at_grid_edge": [
        r["member"] for r in results.table if r["max_stable_lr"] == top
      ],
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The largest eigenvalues of both models, and their training curves."""
    return [
      report.line_plot(
        read_curves(out_dir / "history.csv", metric),
        out_dir / f"{png}.png",
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        logy=True,
      )
      for metric, png, title, xlabel, ylabel in (
        (
          "top_eigenvalue",
          "top_eigenvalues",
          "largest Hessian eigenvalues, without and with BatchNorm",
          "rank k",
          "λ_k",
        ),
        ("train_loss", "train_loss", "training NLL (full batch)", "step", "NLL"),
      )
    ]


def largest_stable_rate(runs: list[dict], constant_nll: float) -> float:
  """The largest rate of `runs` (one seed's sweep rows) such that it and every smaller rate train:
  finite, not flagged diverged, and ending below `constant_nll`, the training NLL of the best
  constant prediction. NaN when the smallest rate does not train."""
  largest = float("nan")
  for row in sorted(runs, key=lambda r: r["learning_rate"]):
    trains = (
      not row["diverged"]
      and np.isfinite(row["final_train_loss"])
      and row["final_train_loss"] < constant_nll
    )
    if not trains:
      break
    largest = row["learning_rate"]
  return largest


def constant_prediction_nll(labels: np.ndarray) -> float:
  """The NLL of the best constant prediction of `labels`, their class frequencies: the labels'
  entropy (ln C for balanced classes)."""
  counts = np.bincount(np.asarray(labels))
  shares = counts[counts > 0] / counts.sum()
  return float(-(shares * np.log(shares)).sum())


def one_model(config, data, name: str, batchnorm: bool, folder: Path | None, progress: bool):
  """One model from every seed: its spectrum (training NLL in train mode, BatchNorm on the batch
  it is given) and its learning-rate sweep over the seeds (resumable in `folder`): a table row
  and history rows per seed."""
  lr_sweep = sweep.run_config(sweep_config(config, batchnorm), folder, progress=progress)
  constant_nll = constant_prediction_nll(data.y_train)
  rows, history = [], []
  for seed in seeds(config):
    member = f"{name}@seed{seed}"
    result, values, columns = trained_mlp.trained_spectrum(config, data, seed, batchnorm=batchnorm)
    runs = [r for r in lr_sweep.table if r["seed"] == seed]
    stable = largest_stable_rate(runs, constant_nll)
    rows.append(
      {
        "member": member,
        "model": name,
        "seed": seed,
        "batchnorm": batchnorm,
        **columns,
        "max_stable_lr": stable,
        "diverged_lrs": str([r["learning_rate"] for r in runs if r["diverged"]]),
      }
    )
    top = values[: config.outlier_search + 1]
    history += history_rows(member, result.history)
    history += trained_mlp.eigenvalue_rows(member, top, "top_eigenvalue")
  return {"rows": rows, "history": history}


def seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds of the initializations (and minibatch orders): `seed`, `seed` + 1, ..."""
  return list(range(config.seed, config.seed + config.num_seeds))


def sweep_config(config: ml_collections.ConfigDict, batchnorm: bool) -> ml_collections.ConfigDict:
  """The learning-rate × seed sweep of one model, as a `jaxopt_study.sweep` config."""
  keys = ("seed", "batch_size", "learning_rate", "sampling", "data", "optimizer")
  return ml_collections.ConfigDict(
    {
      **{key: config[key] for key in keys},
      "model": {**config.model.to_dict(), "batchnorm": batchnorm},
      "steps": config.lr_sweep_steps,
      "eval_every": min(config.eval_every, config.lr_sweep_steps),
      "sweep": {"learning_rate": list(config.lr_sweep), "seed": seeds(config)},
    }
  )
