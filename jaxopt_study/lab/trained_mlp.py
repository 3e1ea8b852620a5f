"""A digits MLP trained from an experiment config, with its training objective as a loss function.

The Hessian experiments (`hessian_outliers`, `batchnorm_spectrum`, `sharp_minima`) train the
config's MLP with `train.train` and then analyze the full-batch training NLL at the end (§8.1.2):
`train_digits_mlp` does both steps the same way for each of them.
"""

from collections.abc import Callable

import jax
import ml_collections

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, train
from jaxopt_study import problem as problem_lib


def model_options(config: ml_collections.ConfigDict) -> dict:
  """`config.model` without its name: the keyword arguments of `models.build_model`."""
  options = config.model.to_dict()
  del options["name"]
  return options


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
    `(result, loss_fn)`: the `train.TrainResult`, and ``loss_fn(params, x, y)``, the mean NLL in
    training mode (BatchNorm on the statistics of (x, y), the objective the minibatches estimate,
    §8.7.1) with the final model state.
  """
  options = model_options(config)
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

  def loss_fn(params, x, y):
    logits, _ = model.apply(params, result.model_state, x, True)
    return losses.softmax_cross_entropy(logits, y)

  return result, loss_fn
