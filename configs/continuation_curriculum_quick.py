"""Continuation and curriculum on a budget: fewer starts, steps and seeds (tests, the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("continuation_curriculum.py"))
  config.unlock()
  config.continuation.num_starts = 256
  config.continuation.steps_per_stage = 200
  config.continuation.mc_samples = 2048
  config.curriculum.steps = 800
  config.curriculum.num_seeds = 4
  config.lock()
  return config
