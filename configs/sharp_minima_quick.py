"""Sharp minima on a budget: one seed, 300 steps, one hidden layer."""

from common import quick


def get_config():
  return quick(__file__, {"num_seeds": 1, "steps": 300, "learning_rate": 3e-3, "model.depth": 1})
