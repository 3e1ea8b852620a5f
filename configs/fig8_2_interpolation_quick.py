"""Fig. 8.2 on a budget: two solutions, fewer steps, a narrower net (for tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"num_solutions": 2, "steps": 600, "num_alphas": 41, "model.width": 32})
