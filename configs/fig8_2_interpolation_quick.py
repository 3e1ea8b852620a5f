"""Fig. 8.2 on a budget: two solutions, fewer steps, a narrower net (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("fig8_2_interpolation.py"))
  config.unlock()
  config.num_solutions = 2
  config.steps = 600
  config.num_alphas = 41
  config.model.width = 32
  config.lock()
  return config
