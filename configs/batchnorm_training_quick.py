"""BatchNorm on a budget: fewer steps and a narrower net."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("batchnorm_training.py"))
  config.unlock()
  config.width = 32
  config.steps = 400
  config.eval_every = 20
  config.learning_rates = [0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
  config.lock()
  return config
