"""Polyak averaging on a budget: fewer steps and runs (for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__, {"steps": 2**14, "num_seeds": 32, "num_checkpoints": 40, "fit_decades": 1.2}
  )
