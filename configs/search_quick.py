"""Search on a budget: one budget of 16 trials, three searches, 100 steps, a narrower net."""

from common import quick


def get_config():
  return quick(
    __file__,
    {"num_searches": 3, "steps": 100, "eval_every": 100, "budgets": [16], "model.width": 16},
  )
