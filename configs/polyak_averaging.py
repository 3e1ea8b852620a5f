"""Constant-step SGD on streaming noisy linear regression, last vs averaged iterate (§8.7.3)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "polyak_averaging"
  config.seed = 0
  config.dim = 10
  config.min_curvature = 0.1  # eigenvalues of H log-spaced from 1 down to this
  config.noise_std = 1.0
  config.learning_rate = 0.05
  config.batch_size = 1
  config.steps = 2**18
  config.num_seeds = 64
  config.num_checkpoints = 60
  config.fit_decades = 2.0  # fit the slopes over t in [steps / 10**fit_decades, steps]
  config.lock()
  return config
