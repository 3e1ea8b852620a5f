"""Deep linear dynamics on a budget: fewer modes, a narrower net, two depths, fewer rates."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "dim": 4,
      "singular_values": [4.0, 2.0, 1.0, 0.5],
      "depth_singular_values": [4.0, 2.0, 1.0, 0.5],
      "width": 32,
      "mode_steps": 1500,
      "depths": [2, 8],
      "rate_times_depth": [0.03, 0.75],
      "depth_steps": 100,
    },
  )
