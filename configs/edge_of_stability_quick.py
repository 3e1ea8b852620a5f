"""Edge of stability on a budget: 500 examples, 400 steps, two η per sweep."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "data.num_examples": 500,
      "steps": 400,
      "gd.mse": [2 / 5, 2 / 3],
      "gd.cross_entropy": [2 / 1.0],
      "adam.learning_rates": [0.01],
    },
  )
