"""Wilson et al.'s construction on a budget: fewer held-out points and steps (tests, the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("adaptive_vs_sgd.py"))
  config.unlock()
  config.num_test = 400
  config.steps = 1000
  config.lock()
  return config
