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

from jaxopt_study import hessian, report, results, sweep, validate
from jaxopt_study.experiment import Experiment, Members, Results
from jaxopt_study.lab import digits_tasks, trained_mlp
from jaxopt_study.lab.curves import read_curves

BATCHES = ("small", "large")


class SharpMinima(Experiment):
  """Small- and large-batch Adam from the same start; sharpness, λ_max and held-out error."""

  NAME = "sharp_minima"
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
  FIELDS = {
    **trained_mlp.FIELDS,
    "num_seeds": validate.require_positive_int,
    "sharpness_eps": validate.each(validate.require_positive),
    "sharpness_steps": validate.require_positive_int,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    if not config.small_batch_size < config.large_batch_size:
      raise ValueError(
        f"{self.NAME}: small_batch_size={config.small_batch_size} must be smaller than "
        f"large_batch_size={config.large_batch_size}"
      )
    sweep.check_config(sweep_config(config))

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains every member in one sweep (resumable in the run folder), then measures each one;
    measured members are kept."""
    data = digits_tasks.load(config.data)
    folder = members.path / "training_sweep" if members.path else None
    trained = sweep.run_config(sweep_config(config), folder, progress=progress)
    table, history = [], []
    for member in tqdm(trained.table, desc="sharpness", disable=not progress):
      batch = "small" if member["batch_size"] == config.small_batch_size else "large"
      name = f"{batch}@seed{member['seed']}"

      def measured(member=member, name=name, batch=batch):
        row = measure(config, data, trained.arrays, member, name, batch)
        curves = [{**r, "member": name} for r in trained.history if r["member"] == member["member"]]
        return {"row": row, "history": curves}, {}

      record, _ = members.get(name, measured)
      table.append(record["row"])
      history.extend(record["history"])
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    def mean(batch: str, column: str) -> float:
      return float(np.mean([r[column] for r in results.table if r["batch"] == batch]))

    def ratio(column: str) -> float:
      return mean("large", column) / mean("small", column)

    columns = [f"sharpness_eps{eps:g}" for eps in config.sharpness_eps]
    return {
      "sharpness_ratio_large_over_small": ratio(columns[0]),
      "sharpness_ratio_by_eps": {c.removeprefix("sharpness_eps"): ratio(c) for c in columns},
      "lambda_max_ratio_large_over_small": ratio("lambda_max"),
      "test_error_gap": mean("large", "final_test_error") - mean("small", "final_test_error"),
      "test_error": {b: mean(b, "final_test_error") for b in BATCHES},
      "final_train_loss": {b: mean(b, "final_train_loss") for b in BATCHES},
      "sharpness": {b: mean(b, columns[0]) for b in BATCHES},
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Training loss and held-out error of every member over the steps."""
    return [
      report.line_plot(
        read_curves(out_dir / "history.csv", metric),
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


def sweep_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Every (seed, batch size) member as one `jaxopt_study.sweep` config."""
  keys = ("seed", "steps", "learning_rate", "eval_every", "sampling", "data", "model", "optimizer")
  return ml_collections.ConfigDict(
    {
      **{key: config[key] for key in keys},
      "batch_size": config.small_batch_size,
      "sweep": {
        "seed": list(range(config.seed, config.seed + config.num_seeds)),
        "batch_size": [config.small_batch_size, config.large_batch_size],
      },
    }
  )


def measure(config, data, arrays, member: dict, name: str, batch: str) -> dict:
  """The sweep member's final training NLL, sharpness at each ε and λ_max."""
  model = digits_tasks.mlp(member["seed"], **config.model)
  params, model_state = results.member_state(
    arrays, member["member"], model.params, model.model_state
  )
  loss_fn = digits_tasks.nll(model, model_state)
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
