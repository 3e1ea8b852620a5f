"""§8.7.5 on a budget: one depth, three seeds, fewer steps (for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "seeds": [0, 1, 2],
      "depths": [8],
      "learning_rates": [0.03, 0.3, 3.0],
      "steps": 100,
      "hessian_examples": 256,
    },
  )
