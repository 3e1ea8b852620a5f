"""Sharp minima on a budget: three seeds, 20 epochs, one hidden layer."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "num_seeds": 3,
      "epochs": 20,
      "eval_every_epochs": 2,
      "learning_rate": 3e-3,
      "model.depth": 1,
      "subspace_starts": 4,
    },
  )
