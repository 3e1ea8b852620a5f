"""The optimizer comparison on a budget: fewer steps and a narrower net (for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "steps": 200,
      "eval_every": 20,
      "model.width": 32,
      "seeds": [0, 1],
      "evaluation_seeds": [100, 101, 102],
    },
  )
