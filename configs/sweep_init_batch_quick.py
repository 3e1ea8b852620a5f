"""The init-scale × batch-size sweep on a budget: 12 members, 200 steps, a narrower net."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("sweep_init_batch.py"))
  config.unlock()
  config.steps = 200
  config.eval_every = 20
  config.checkpoint_every = 100
  config.model.width = 32
  config.model.depth = 2
  config.sweep.init_scale = [0.5, 1.0, 4.0]
  config.sweep.batch_size = [16, 64]
  config.sweep.learning_rate = [0.1, 1.0]
  config.lock()
  return config
