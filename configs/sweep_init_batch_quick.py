"""The init-scale × batch-size sweep on a budget: 48 members (2 seeds), 200 steps of the smaller
batch (50 of the larger: the same epochs), a narrower net."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "steps": 200,
      "eval_every": 20,
      "checkpoint_every": 100,
      "model.width": 32,
      "model.depth": 2,
      "sweep.init_scale": [0.5, 1.0, 4.0],
      "sweep.batch_size": [16, 64],
      "sweep.learning_rate": [0.3, 1.0, 3.0, 10.0],
      "sweep.seed": [0, 1],
    },
  )
