"""A digits MLP trained from an experiment config, with its training objective as a loss function.

The Hessian experiments (`hessian_outliers`, `batchnorm_spectrum`, `sharp_minima`) train the
config's MLP with `train.train` (or a sweep of it) and then analyze the full-batch training NLL
at the end (§8.1.2): `train_digits_mlp` and `trained_spectrum` do it the same way
for each of them, `FIELDS` and `check_training` refuse what they cannot train, and
`eigenvalue_rows` keeps a spectrum in `history.csv`.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, models, optim, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.lab import digits_tasks

FIELDS = {
  "data.name": digits_tasks.DIGITS,
  "model.name": functools.partial(validate.require_choice, choices=["mlp"]),
  "optimizer.name": functools.partial(validate.require_choice, choices=sorted(optim.OPTIMIZERS)),
  "learning_rate": validate.require_positive,
}


def check_training(config: ml_collections.ConfigDict) -> int:
  """Refuses a config `train_digits_mlp` cannot train (its model, steps, batch size, sampling),
  naming the field; returns the model's number of parameters N."""
  model = digits_tasks.mlp(config.seed, **config.model)
  train.check_arguments(
    digits_tasks.load(config.data).x_train.shape[0],
    config.steps,
    config.batch_size,
    config.eval_every,
    config.sampling,
    None,
  )
  return sum(leaf.size for leaf in jax.tree.leaves(model.params))


def train_digits_mlp(
  config: ml_collections.ConfigDict,
  data: data_lib.Dataset,
  seed: int,
  *,
  batch_size: int | None = None,
  batchnorm: bool | None = None,
) -> tuple[train.TrainResult, Callable[..., jax.Array]]:
  """Trains `config`'s MLP on `data` by `train.train` and returns it with its training NLL.

  The optimizer is ``optim.OPTIMIZERS[config.optimizer.name]`` at `config.learning_rate` with the
  config's other hyperparameters; `seed` seeds the parameters and the minibatch order.

  Args:
    config: an experiment config with `model`, `optimizer`, `learning_rate`, `steps`,
      `batch_size`, `eval_every` and `sampling`.
    data: the data set.
    seed: seed of the parameters and of the minibatches.
    batch_size: overrides `config.batch_size`.
    batchnorm: overrides `config.model.batchnorm`.

  Returns:
    `(result, loss_fn)`: the `train.TrainResult`, and its `digits_tasks.nll` with the final model
    state.
  """
  options = {k: v for k, v in config.model.to_dict().items() if k != "name"}
  if batchnorm is not None:
    options["batchnorm"] = batchnorm
  init_scale = options.pop("init_scale", 1.0)
  problem = problem_lib.builtin(config.model.name, data, **options)
  model = models.functional(models.build_model(config.model.name, 64, 10, seed=seed, **options))
  hyper = {k: v for k, v in config.optimizer.to_dict().items() if k != "name"}
  optimizer = optim.OPTIMIZERS[config.optimizer.name](learning_rate=config.learning_rate, **hyper)
  result = train.train(
    problem,
    optimizer,
    init_scale=init_scale,
    steps=config.steps,
    batch_size=config.batch_size if batch_size is None else batch_size,
    eval_every=config.eval_every,
    sampling=config.sampling,
    seed=seed,
  )
  return result, digits_tasks.nll(model, result.model_state)


def trained_spectrum(
  config: ml_collections.ConfigDict,
  data: data_lib.Dataset,
  seed: int,
  *,
  batchnorm: bool | None = None,
) -> tuple[train.TrainResult, np.ndarray, dict[str, Any]]:
  """Trains by `train_digits_mlp` and computes the exact Hessian spectrum of the training NLL at
  the end (`hessian.spectrum`), with its outliers by the eigengap rule among the largest
  `config.outlier_search` + 1 (`hessian.count_outliers`).

  Returns:
    The `train.TrainResult`, the eigenvalues in decreasing order, and the table columns: N, the
    final training NLL and held-out error, ‖g‖, λ_max, λ_min, the outlier count, the gap ratio
    and the bulk edge.
  """
  result, loss_fn = train_digits_mlp(config, data, seed, batchnorm=batchnorm)
  spectrum = hessian.spectrum(loss_fn, result.params, data.x_train, data.y_train)
  values = np.asarray(spectrum.eigenvalues, float)[::-1]
  found = hessian.count_outliers(values, config.outlier_search)
  columns = {
    "num_params": spectrum.num_params,
    "final_train_loss": float(result.history["train_loss"][-1]),
    "final_test_error": float(result.history["test_error"][-1]),
    "grad_norm": spectrum.grad_norm,
    "lambda_max": float(values[0]),
    "lambda_min": float(values[-1]),
    "n_outliers": found.count,
    "outlier_gap_ratio": found.gap_ratio,
    "bulk_edge": found.bulk_edge,
  }
  return result, values, columns


def eigenvalue_rows(member: str, values: Any, metric: str) -> list[dict[str, Any]]:
  """History rows of a spectrum in decreasing order: λ_k as `metric` at step k = 1, 2, ..."""
  return [
    {"member": member, "step": k, "metric": metric, "value": float(v)}
    for k, v in enumerate(values, start=1)
  ]
