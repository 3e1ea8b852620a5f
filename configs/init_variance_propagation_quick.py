"""Variance propagation on a budget: narrower nets, two depths, fewer seeds and scales."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "width": 64,
      "depths": [10, 20],
      "num_seeds": 3,
      "num_examples": 256,
      "num_lsuv_examples": 128,
      "scale_sweep.scales": [0.7, 1.2, 1.7],
    },
  )
