"""Saddles and Newton on a budget: a 16-4-16 autoencoder of pooled digits, fewer steps and seeds."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "seeds": [0, 1, 2],
      "data.num_examples": 200,
      "data.pool": 2,
      "model.width": 4,
      "optimizers.sgd.steps": 300,
      "optimizers.sgd.eval_every": 100,
      "optimizers.newton.steps": 20,
      "optimizers.newton.eval_every": 10,
      "optimizers.saddle_free_newton.steps": 20,
      "optimizers.saddle_free_newton.eval_every": 10,
    },
  )
