"""Learning-rate schedules on a budget: fewer steps, rates and seeds (tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "steps": 700,
      "eval_every": 100,
      "seeds": [0, 1, 2],
      "learning_rates": [0.1, 0.3, 1.0, 3.0],
      "model.width": 32,
    },
  )
