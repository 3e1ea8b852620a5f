"""Wilson et al.'s construction on a budget: fewer draws, held-out points and steps (tests, the
tour)."""

from common import quick


def get_config():
  return quick(__file__, {"num_seeds": 3, "num_test": 400, "steps": 1000})
