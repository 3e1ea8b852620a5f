"""Minibatch noise on a budget: fewer draws and runs (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("minibatch_noise.py"))
  config.unlock()
  config.model.width = 32
  config.batch_sizes = [1, 4, 16, 64, 256]
  config.num_draws = 200
  config.num_seeds = 16
  config.lock()
  return config
