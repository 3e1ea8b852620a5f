"""The Hessian outliers on a budget: three seeds (the fewest whose error decides a claim at the
largest C, or the mean of the seeds' slopes, with t_{0.975, 2} = 4.30), two class counts, a
smaller net (one hidden layer of 8, N ≤ 610), no spectrum at initialization. The seeds share one
vmapped training program per C; another C would compile another."""

from common import quick


def get_config():
  changes = {"num_seeds": 3, "classes": [2, 10], "init_spectrum": False}
  return quick(__file__, changes | {"model.width": 8, "model.depth": 1})
