"""§8.1.1 on a budget: two seeds, fewer steps, a coarser line (for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__, {"seeds": [0, 1], "steps": 1500, "num_line_points": 41, "toy.num_points": 20001}
  )
