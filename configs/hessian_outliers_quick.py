"""The Hessian outliers on a budget: one seed, a narrower net (N = 1,482 parameters)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("hessian_outliers.py"))
  config.unlock()
  config.num_seeds = 1
  config.steps = 200
  config.model.width = 16
  config.lock()
  return config
