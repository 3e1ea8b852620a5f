"""The optimizer comparison on a budget: fewer steps and a narrower net (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("optimizers.py"))
  config.unlock()
  config.steps = 200
  config.eval_every = 20
  config.model.width = 32
  config.lock()
  return config
