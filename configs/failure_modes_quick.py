"""Failure modes on a budget: shallower nets, fewer steps, the full config's six seeds (an error
of 0 decides only from six; for tests and the tour)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "symmetry.steps": 100,
      "dead_relu.learning_rates": [0.1, 1.0, 10.0, 100.0],
      "dead_relu.recover_steps": 50,
      "vanishing.depths": [2, 4, 8, 16],
      "adam.steps": 30,
    },
  )
