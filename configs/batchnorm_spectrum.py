"""Ghorbani et al. (2019), §8.7.1: Hessian spectrum of a digits MLP with and without BatchNorm."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "batchnorm_spectrum"
  config.seed = 0
  # seeds seed, seed + 1, ...: both models from each initialization. Six, because the largest
  # stable rates fall on grid points, where every seed can agree (a standard error of 0): a
  # verdict then needs six agreeing seeds, as a sign test at 5% does
  config.num_seeds = 6
  config.steps = 500
  config.batch_size = 64
  config.learning_rate = 0.1
  config.eval_every = 50
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(width=32, activation="relu")  # each run trains it without and with BatchNorm
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  config.outlier_search = 50  # the eigengap rule of `hessian.outliers`, as in hessian_outliers
  # The stability sweep: SGD at each rate for `lr_sweep_steps` steps, one `jaxopt_study.sweep`
  # per model. A rate is stable if the run stays finite and ends below the NLL of the best
  # constant prediction (the experiment's docstring says why).
  config.lr_sweep = [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
  config.lr_sweep_steps = 200
  config.lock()
  return config
