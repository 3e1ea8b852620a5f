"""Variance propagation on a budget: narrower nets, two depths, fewer seeds and scales."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("init_variance_propagation.py"))
  config.unlock()
  config.width = 64
  config.depths = [10, 20]
  config.num_seeds = 2
  config.num_examples = 256
  config.num_lsuv_examples = 128
  config.scale_sweep.scales = [0.7, 1.2, 1.7]
  config.lock()
  return config
