"""Saddles and Newton on a budget: a 16-4-16 autoencoder of pooled digits, fewer steps."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("saddles_newton.py"))
  config.unlock()
  config.data.num_examples = 200
  config.data.pool = 2
  config.model.width = 4
  config.optimizers.sgd.steps = 300
  config.optimizers.sgd.eval_every = 100
  for name in ("newton", "saddle_free_newton"):
    config.optimizers[name].steps = 20
    config.optimizers[name].eval_every = 10
  config.lock()
  return config
