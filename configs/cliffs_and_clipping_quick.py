"""Cliffs and clipping on a budget: a coarser surface and fewer steps (tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("cliffs_and_clipping.py"))
  config.unlock()
  config.grid_size = 61
  config.lock()
  return config
