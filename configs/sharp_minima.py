"""Keskar et al. (2017): small vs large minibatches on digits, sharpness of the minima reached."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "sharp_minima"
  config.seed = 0
  config.num_seeds = 3  # seeds seed, seed + 1, ...: one small- and one large-batch run each
  config.steps = 3000
  config.small_batch_size = 16
  config.large_batch_size = 135  # ≈ 10% of the 1,347 training examples (Keskar et al. §2.2)
  config.learning_rate = 1e-3
  config.eval_every = 100
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(width=32)
  config.optimizer = ml_collections.ConfigDict({"name": "adam"})  # as Keskar et al. (2017)
  config.sharpness_eps = [1e-3, 5e-4]  # ε of the box C_ε (Keskar et al. Table 3)
  config.sharpness_steps = 20
  config.lock()
  return config
