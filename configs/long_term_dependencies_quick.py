"""Long-term dependencies on a budget: a smaller W, a shorter horizon, one matrix per radius."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("long_term_dependencies.py"))
  config.unlock()
  config.hidden = 16
  config.horizon = 100
  config.num_seeds = 1
  config.radii = [0.9, 1.0, 1.1]
  config.lock()
  return config
