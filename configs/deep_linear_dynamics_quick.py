"""Deep linear dynamics on a budget: fewer modes, depths, rates and steps."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "dim": 8,
      "singular_values": [4.0, 3.0, 2.0, 1.5, 1.0, 0.8, 0.6, 0.5],
      "mode_steps": 1500,
      "depths": [2, 8, 32],
      "learning_rates": [0.003, 0.01, 0.03, 0.1, 0.3],
      "depth_steps": 1000,
    },
  )
