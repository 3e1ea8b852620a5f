"""BatchNorm and the spectrum on a budget: a narrower net, fewer steps, two seeds."""

from common import quick


def get_config():
  return quick(
    __file__,
    {"steps": 200, "model.width": 16, "lr_sweep_steps": 60, "eval_every": 20, "num_seeds": 2},
  )
