"""Sharp minima on a budget: one seed, 300 steps, one hidden layer."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("sharp_minima.py"))
  config.unlock()
  config.num_seeds = 1
  config.steps = 300
  config.learning_rate = 3e-3
  config.model.depth = 1
  config.lock()
  return config
