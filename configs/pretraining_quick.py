"""Greedy supervised pretraining on a budget: a shallower net, shorter stages, fewer seeds."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "model.depth": 4,
      "learning_rates": [1.0, 3.0, 10.0],
      "stage_steps": 100,
      "finetune_steps": 100,
      "num_seeds": 3,
      "eval_every": 20,
    },
  )
