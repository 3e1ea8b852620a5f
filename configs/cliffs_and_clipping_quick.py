"""Cliffs and clipping on a budget: a coarser surface (for tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"grid_size": 61})
