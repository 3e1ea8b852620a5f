"""Minibatch gradient noise σ/√n on digits and the bias of reused examples (§8.1.3, §8.2.6)."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "minibatch_noise"
  config.seed = 0
  config.data = digits(test_fraction=0.5)
  config.model = mlp(depth=1)
  # Part 1: minibatch draws per batch size, with and without replacement.
  config.batch_sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
  config.num_draws = 2000
  # Part 2: `num_seeds` runs of two epochs of SGD, run r from its own initialization (seed + r),
  # its own random split and minibatch order (keys drawn from `seed`), in one vmapped program.
  config.num_seeds = 64
  config.reuse_batch_size = 16
  config.learning_rate = 0.3
  config.lock()
  return config
