"""Polyak averaging on a budget: fewer steps and runs (for tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("polyak_averaging.py"))
  config.unlock()
  config.steps = 2**14
  config.num_seeds = 32
  config.num_checkpoints = 40
  config.fit_decades = 1.2
  config.lock()
  return config
