"""Ensembles on a budget: fewer steps, members and repeats (tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"steps": 600, "members": 3, "repeats": 3, "cycles": 3})
