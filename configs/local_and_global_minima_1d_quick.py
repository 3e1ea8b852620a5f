"""§8.2.2 in one dimension on a budget: fewer starts, seeds and steps (for tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"num_starts": 31, "seeds": [0, 1, 2], "steps": 3000})
