"""The GOE on a budget (N = 1 ... 4, 2^18 matrices each), and critical points of widths 2 and 4
on 100 digits, from 3 seeds × 4 starting points, 60 Newton steps each."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("saddle_proliferation.py"))
  config.unlock()
  config.sizes = [1, 2, 3, 4]
  config.samples = 2**18
  config.data.num_examples = 100
  config.widths = [2, 4]
  config.descent.seeds = [0, 1, 2]
  config.descent.start_steps = [0, 30, 300, 3000]
  config.newton.steps = 60
  config.lock()
  return config
