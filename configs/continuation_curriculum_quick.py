"""Continuation and curriculum on a budget: fewer starts, steps and seeds (tests, the tour)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "continuation.num_starts": 256,
      "continuation.steps_per_stage": 200,
      "continuation.mc_samples": 2048,
      "curriculum.steps": 800,
      "curriculum.num_seeds": 4,
    },
  )
