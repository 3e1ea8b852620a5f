"""BatchNorm on a budget: fewer steps and a narrower net."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "width": 32,
      "steps": 400,
      "eval_every": 20,
      "learning_rates": [0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
    },
  )
