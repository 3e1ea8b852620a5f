"""BatchNorm on a budget: a narrower MNIST-shaped net only, three seeds, fewer rates and steps."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "width": 32,
      "depths": [3],
      "steps": 240,
      "eval_every": 20,
      "seeds": [0, 1, 2],
      "learning_rates": [2.0**k for k in range(0, 6)],
      "target_accuracy": 0.9,
    },
  )
