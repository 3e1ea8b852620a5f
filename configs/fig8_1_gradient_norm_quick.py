"""Fig. 8.1 on a budget: fewer epochs and a narrower net (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("fig8_1_gradient_norm.py"))
  config.unlock()
  config.epochs = 20
  config.model.width = 32
  config.lock()
  return config
