"""Block coordinate descent on a budget: fewer sparse-coding steps and rates, fewer α (tests)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("coordinate_descent.py"))
  config.unlock()
  config.sparse_coding.steps = 1000
  config.sparse_coding.learning_rate = [0.01, 0.02, 0.05]
  config.sparse_coding.steps_per_block = [1, 10, 100]
  config.quadratic.alphas = [0.01, 0.03, 0.1, 1.0]
  config.quadratic.sweeps = 800
  config.lock()
  return config
