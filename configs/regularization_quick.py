"""Regularization on a budget: three seeds, 300 steps, no DropConnect (its per-example masks
dominate the compile and run time on a CPU), for tests and the tour."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "seeds": [0, 1, 2],
      "steps": 300,
      "lanczos_steps": 10,
      "methods": ["none", "l2", "l1", "dropout", "augment", "stochastic_depth"],
    },
  )
