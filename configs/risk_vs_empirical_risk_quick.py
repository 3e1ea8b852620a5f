"""§8.1.1 on a budget: three seeds (the held-out excess is judged by its standard error over
them), fewer steps, a coarser line (for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__, {"seeds": [0, 1, 2], "steps": 1500, "num_line_points": 41, "toy.num_points": 20001}
  )
