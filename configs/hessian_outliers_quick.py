"""The Hessian outliers on a budget: one seed, two class counts, a smaller net (one hidden layer
of 8, N ≤ 610), no spectrum at initialization."""

from common import quick


def get_config():
  changes = {"num_seeds": 1, "classes": [2, 10], "init_spectrum": False}
  return quick(__file__, changes | {"model.width": 8, "model.depth": 1})
