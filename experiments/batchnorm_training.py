"""§8.7.1 "Batch normalization" (Ioffe & Szegedy 2015): steadier unit inputs, larger learning rates.

A 3-hidden-layer sigmoid MLP on digits, with and without BatchNorm between each linear map and
its sigmoid (`models.MLP(batchnorm=...)`), trained by SGD (Algorithm 8.1).

* Drift. With one learning rate, the input of one sigmoid unit of the last hidden layer (W h + b
  without BatchNorm; the normalized γ ẑ + β with it, with the held-out batch's statistics) is
  recorded on the held-out digits every `eval_every` steps as its 15th, 50th and 85th
  percentiles, as in Ioffe & Szegedy's Fig. 1(b, c). The drift of a percentile is its range over
  training, in units of the final 15-85 spread (so that the two networks' input scales do not
  matter); the claim `percentile_drift_ratio` is the mean relative drift without BatchNorm over
  the mean relative drift with it.
* Learning rates. A sweep (`jaxopt_study.sweep`) over a learning-rate grid for each network; a
  rate is trainable when the run stays finite and its final training NLL is below
  `trainable_loss`. The claim `max_lr_ratio` is the largest trainable rate with BatchNorm over
  the largest without.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, report, sweep, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import read_csv

PERCENTILES = (15, 50, 85)


class BatchnormTraining(Experiment):
  """The sigmoid MLP without and with BatchNorm: input drift of one unit, trainable rates."""

  NAME = "batchnorm_training"
  TITLE = "Chapter 8.7.1: batch normalization, input drift and trainable learning rates"
  SECTION = "8.7.1"
  DESCRIPTION = (
    "A 3-hidden-layer sigmoid MLP on digits with and without BatchNorm, trained by SGD. The 15th, "
    "50th and 85th percentiles of one last-layer sigmoid unit's input on held-out digits are "
    "followed through training (Ioffe & Szegedy 2015, Fig. 1): their drift is their range over "
    "training, relative to the final 15-85 spread. A learning-rate sweep finds the largest rate "
    "at which each network still trains (finite, final training NLL below a threshold). Ioffe & "
    "Szegedy's 5-30× larger rates come from ImageNet networks; a small sigmoid MLP may already "
    "train at large rates without BatchNorm, which the verdict on max_lr_ratio tells."
  )
  PUBLISHED = {
    "percentile_drift_ratio": "> 1: BN keeps the distribution stable (Ioffe & Szegedy 2015, "
    "Fig. 1)",
    "max_lr_ratio": "> 1: BN trains at much higher rates (Ioffe & Szegedy 2015, §4.2: 5× and 30×)",
  }
  CRITERIA = {
    "percentile_drift_ratio": above("percentile_drift_ratio", 1.0),
    "max_lr_ratio": above("max_lr_ratio", 1.0),
  }
  FIELDS = {
    **dict.fromkeys(
      ("steps", "eval_every", "batch_size", "width", "depth"), validate.require_positive_int
    ),
    "unit": functools.partial(validate.require_int, low=0),
    "drift_learning_rate": validate.require_positive,
    "learning_rates": validate.each(validate.require_positive),
    "trainable_loss": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    rates = list(config.learning_rates)
    if config.unit >= config.width:
      raise ValueError(f"{self.NAME}: unit={config.unit} must be below width={config.width}")
    if len(rates) < 2 or rates != sorted(rates):
      raise ValueError(f"{self.NAME}: learning_rates={rates} must list ≥ 2 increasing rates")
    if config.steps % config.eval_every:
      raise ValueError(
        f"{self.NAME}: eval_every={config.eval_every} must divide steps={config.steps}"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Percentile drift with and without BatchNorm, then each network's learning-rate sweep
    (four short programs: nothing worth resuming)."""
    data = digits_tasks.load(config.data)
    table, history = [], []
    steps = np.arange(0, config.steps + 1, config.eval_every)
    for batchnorm in tqdm((False, True), desc="networks", disable=not progress):
      name = "batchnorm" if batchnorm else "plain"
      path = percentile_paths(config, data, batchnorm)
      drift = (path.max(axis=0) - path.min(axis=0)) / (path[-1, -1] - path[-1, 0])
      for rank, p in enumerate(PERCENTILES):
        history += [
          {"member": f"{name} p{p}", "step": int(t), "metric": "unit_input_percentile", "value": v}
          for t, v in zip(steps, path[:, rank].tolist(), strict=True)
        ]
      rows = sweep.run_config(sweep_config(config, batchnorm)).table
      trainable = [
        r["learning_rate"]
        for r in rows
        if not r["diverged"] and r["final_train_loss"] < config.trainable_loss
      ]
      table.append(
        {
          "member": name,
          "batchnorm": batchnorm,
          "mean_percentile_drift": float(drift.mean()),
          **{f"drift_p{p}": float(d) for p, d in zip(PERCENTILES, drift, strict=True)},
          "max_trainable_learning_rate": max(trainable) if trainable else None,
          **{f"final_loss_at_lr_{r['learning_rate']:g}": r["final_train_loss"] for r in rows},
        }
      )
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    plain, normed = results.table
    rates = (plain["max_trainable_learning_rate"], normed["max_trainable_learning_rate"])
    return {
      "percentile_drift_ratio": plain["mean_percentile_drift"] / normed["mean_percentile_drift"],
      "percentile_drift": {
        "plain": plain["mean_percentile_drift"],
        "batchnorm": normed["mean_percentile_drift"],
      },
      "max_lr_ratio": rates[1] / rates[0] if None not in rates else None,
      "max_trainable_learning_rate": {"plain": rates[0], "batchnorm": rates[1]},
      "max_lr_at_grid_edge": rates[1] == max(config.learning_rates),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The unit's input percentiles through training, and final loss vs learning rate."""
    losses = {}
    for row in read_csv(out_dir / "results.csv"):
      keys = [k for k in row if k.startswith("final_loss_at_lr_")]
      losses[row["member"]] = (
        [float(k.removeprefix("final_loss_at_lr_")) for k in keys],
        [row[k] for k in keys],
      )
    return [
      report.line_plot(
        read_curves(out_dir / "history.csv", "unit_input_percentile"),
        out_dir / "unit_input_percentiles.png",
        title="15/50/85th percentiles of a last-layer sigmoid's input (held-out)",
        xlabel="step",
        ylabel="input of the sigmoid",
      ),
      report.line_plot(
        losses,
        out_dir / "final_loss_vs_learning_rate.png",
        title="final training NLL vs learning rate",
        xlabel="learning rate",
        ylabel="final training NLL",
        logx=True,
        logy=True,
      ),
    ]


def model_config(config: ml_collections.ConfigDict, batchnorm: bool) -> dict:
  """The sigmoid MLP of the config, without or with BatchNorm."""
  return {
    "name": "mlp",
    "width": config.width,
    "depth": config.depth,
    "activation": "sigmoid",
    "batchnorm": batchnorm,
  }


def unit_input(module: models.MLP, x: jax.Array, unit: int) -> jax.Array:
  """The input of sigmoid unit `unit` of the last hidden layer on the batch x, in training mode.

  Without BatchNorm: z = W h + b; with it: γ (z − μ_B)/√(σ_B² + ε) + β with the statistics of
  the batch x, i.e. what the sigmoid sees during training. `MLP.preactivations` is inference
  mode (running averages, which lag the weights early in training), hence the layer loop here;
  the running averages it updates belong to a copy and are dropped.
  """
  h = x
  for index, layer in enumerate(module.hidden):
    z = layer(h)
    if module.norms:
      z = module.norms[index](z, use_running_average=False)
    h = module.activation(z)
  return z[:, unit]


def percentile_paths(config: ml_collections.ConfigDict, data: data_lib.Dataset, batchnorm: bool):
  """Percentiles (evaluations, 3) of the unit's held-out input, every `eval_every` steps.

  SGD runs in blocks of `eval_every` minibatch steps of `train.make_train_loop` (one minibatch
  order across blocks); the percentiles are taken between blocks, at the parameters reached.
  """
  options = model_config(config, batchnorm)
  module = models.build_model(in_features=64, out_features=10, seed=config.seed, **options)
  model, graphdef = models.functional(module), nnx.graphdef(module)
  loop = train.make_train_loop(
    model, optim.sgd(config.drift_learning_rate), batch_size=config.batch_size
  )
  key = jax.random.key(config.seed)

  @jax.jit
  def block(state):
    return jax.lax.fori_loop(
      0, config.eval_every, lambda _, s: loop.step(s, data, key, None), state
    )

  @jax.jit
  def percentiles(state):
    module = nnx.merge(graphdef, state.params, state.model_state, copy=True)
    return jnp.percentile(unit_input(module, data.x_test, config.unit), jnp.asarray(PERCENTILES))

  state = loop.init(model.params, model.model_state)
  path = [percentiles(state)]
  for _ in range(config.steps // config.eval_every):
    state = block(state)
    path.append(percentiles(state))
  return np.asarray(path, np.float64)


def sweep_config(config: ml_collections.ConfigDict, batchnorm: bool) -> ml_collections.ConfigDict:
  """The sweep of `learning_rates` for one network, as a `jaxopt_study.sweep` config."""
  return ml_collections.ConfigDict(
    {
      **{key: config[key] for key in ("seed", "steps", "eval_every", "batch_size")},
      "learning_rate": config.learning_rates[0],
      "data": config.data.to_dict(),
      "model": model_config(config, batchnorm),
      "optimizer": {"name": "sgd"},
      "sweep": {"learning_rate": list(config.learning_rates)},
    }
  )
