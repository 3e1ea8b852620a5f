"""The Hessian outliers on a budget: one seed, a narrower net (N = 1,482 parameters)."""

from common import quick


def get_config():
  return quick(__file__, {"num_seeds": 1, "steps": 200, "model.width": 16})
