"""Momentum schedules on a budget: a faster ramp, fewer steps and rates (tests and the tour)."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("momentum_schedules.py"))
  config.unlock()
  config.steps = 1000
  config.learning_rate = [0.001, 0.003, 0.01, 0.03, 0.1]
  config.ramp_steps = 10  # μ_t reaches 0.9 at step 40 and 0.99 at step 490 (paper: 10× later)
  config.eval_every = 100
  config.lock()
  return config
