"""§8.2.7 on a budget: fewer steps (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("local_vs_global.py"))
  config.unlock()
  config.steps = 400
  config.lock()
  return config
