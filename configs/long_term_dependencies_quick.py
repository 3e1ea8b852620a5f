"""Long-term dependencies on a budget: a smaller W, a shorter horizon, one matrix per radius."""

from common import quick


def get_config():
  return quick(__file__, {"hidden": 16, "horizon": 100, "num_seeds": 1, "radii": [0.9, 1.0, 1.1]})
