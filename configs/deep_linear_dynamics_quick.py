"""Deep linear dynamics on a budget: fewer modes, depths, rates and steps."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("deep_linear_dynamics.py"))
  config.unlock()
  config.dim = 8
  config.singular_values = [4.0, 3.0, 2.0, 1.5, 1.0, 0.8, 0.6, 0.5]
  config.mode_steps = 1500
  config.depths = [2, 8, 32]
  config.learning_rates = [0.003, 0.01, 0.03, 0.1, 0.3]
  config.depth_steps = 1000
  config.lock()
  return config
