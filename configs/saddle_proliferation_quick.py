"""The GOE positive-definite probability on a budget: N = 1 ... 4, 2^18 matrices each."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("saddle_proliferation.py"))
  config.unlock()
  config.sizes = [1, 2, 3, 4]
  config.samples = 2**18
  config.lock()
  return config
