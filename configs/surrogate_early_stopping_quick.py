"""Surrogate loss and early stopping on a budget: fewer seeds, steps and evaluations."""

from common import quick


def get_config():
  return quick(__file__, {"num_seeds": 4, "steps": 1200, "eval_every": 100})
