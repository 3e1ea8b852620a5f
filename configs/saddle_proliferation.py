"""Bray & Dean (2007), Dauphin et al. (2014): how rarely a GOE matrix is positive definite."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "saddle_proliferation"
  config.seed = 0
  config.sizes = [1, 2, 3, 4, 5, 6, 7]  # N of the N × N GOE matrices
  config.samples = 2**23  # Monte Carlo matrices per N
  config.batch = 2**16  # matrices drawn and tested at once
  config.min_hits = 30  # an N enters the fit only if at least this many matrices were PD
  config.lock()
  return config
