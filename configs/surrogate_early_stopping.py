"""Digits MLPs trained long past zero training 0-1 error, with and without early stopping."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "surrogate_early_stopping"
  config.seed = 0
  config.num_seeds = 8
  config.steps = 4000
  config.batch_size = 64
  config.learning_rate = 0.3
  config.eval_every = 50
  config.sampling = "epoch"
  config.patience = 10  # evaluations without a lower held-out 0-1 error before stopping
  config.data = digits()
  config.model = mlp()
  config.lock()
  return config
