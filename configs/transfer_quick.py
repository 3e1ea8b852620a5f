"""Transfer learning on a budget: two target sizes, three seeds, shorter runs."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "num_seeds": 3,
      "examples_per_class": [5, 50],
      "pretrain_steps": 300,
      "steps": 150,
      "eval_every": 50,
    },
  )
