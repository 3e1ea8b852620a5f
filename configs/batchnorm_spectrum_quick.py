"""BatchNorm and the spectrum on a budget: a narrower net, fewer steps."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("batchnorm_spectrum.py"))
  config.unlock()
  config.steps = 200
  config.model.width = 16
  config.lr_sweep_steps = 60
  config.eval_every = 20
  config.lock()
  return config
