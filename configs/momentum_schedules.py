"""Deep autoencoder of the digits: Sutskever et al.'s momentum schedule, classical vs Nesterov."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "momentum_schedules"
  config.seeds = [0, 1, 2, 3]  # each member from each seed: the ratios' error bars
  config.steps = 10000
  config.batch_size = 100
  config.eval_every = 100
  config.ramp_steps = 250  # r: μ_t steps up every r steps (Sutskever et al. 2013 use 250)
  config.momentum_max = [0.0, 0.9, 0.99]
  config.learning_rate = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
  config.data = digits()
  config.model = mlp(width=16, depth=5)
  config.lock()
  return config
