"""Block coordinate descent on a budget: fewer sparse-coding steps, block sizes and seeds, fewer α
(tests)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "seeds": [0, 1, 2],
      "sparse_coding.steps": 1000,
      "sparse_coding.steps_per_block": [1, 10, 100],
      "quadratic.alphas": [0.01, 0.03, 0.1, 1.0],
      "quadratic.sweeps": 800,
    },
  )
