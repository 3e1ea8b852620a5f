"""Greedy supervised pretraining on a budget: a shallower net, shorter stages, fewer seeds."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("pretraining.py"))
  config.unlock()
  config.model.depth = 4
  config.learning_rates = [1.0, 3.0]
  config.stage_steps = 100
  config.finetune_steps = 100
  config.num_seeds = 3
  config.eval_every = 20
  config.lock()
  return config
