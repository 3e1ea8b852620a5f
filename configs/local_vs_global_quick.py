"""§8.2.7 on a budget: fewer steps (for tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"steps": 400})
