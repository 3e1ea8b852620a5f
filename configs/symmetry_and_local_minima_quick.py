"""§8.2.2 on a budget: three seeds, fewer steps, a narrower net (for tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"num_solutions": 3, "steps": 600, "model.width": 8})
