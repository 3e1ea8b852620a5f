"""§8.2.2 on a budget: three seeds, fewer steps, a narrower net (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("symmetry_and_local_minima.py"))
  config.unlock()
  config.num_solutions = 3
  config.steps = 600
  config.model.width = 8
  config.lock()
  return config
