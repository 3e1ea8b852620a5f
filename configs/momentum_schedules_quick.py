"""Momentum schedules on a budget: a faster ramp, fewer steps (tests and the tour)."""

from common import quick


def get_config():
  # μ_t reaches 0.9 at step 40 and 0.99 at step 490 (paper: 10× later).
  return quick(__file__, {"steps": 1000, "ramp_steps": 10, "seeds": [0, 1, 2]})
