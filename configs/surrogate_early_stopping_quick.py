"""Surrogate loss and early stopping on a budget: fewer seeds and steps (tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("surrogate_early_stopping.py"))
  config.unlock()
  config.num_seeds = 4
  config.steps = 1200
  config.lock()
  return config
