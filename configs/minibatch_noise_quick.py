"""Minibatch noise on a budget: fewer draws and runs (for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {"model.width": 32, "batch_sizes": [1, 4, 16, 64, 256], "num_draws": 200, "num_seeds": 16},
  )
