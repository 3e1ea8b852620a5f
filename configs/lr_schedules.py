"""Constant vs step / exponential / 1/t / linear / cosine / SGDR rates for SGD on a digits MLP."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "lr_schedules"
  config.seeds = [0, 1, 2, 3, 4, 5, 6, 7]
  config.steps = 2800
  config.eval_every = 200
  config.batch_size = 8  # noisy minibatch gradients: the noise floor of §8.3.1 within the run
  config.schedules = [
    "constant",
    "step",
    "exponential",
    "inverse_time",
    "linear",
    "cosine",
    "sgdr",
  ]
  # ε_0 grid, searched per schedule (1/t needs the largest: its rate halves within 1% of the run)
  config.learning_rates = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
  config.final_fraction = 0.01  # f: the decays end at f ε_0 (§8.3.1: about 1% for eq. 8.14)
  config.step_drops = 2  # step decay: ε_0, √f ε_0, f ε_0, in equal thirds of the run
  config.sgdr_cycles = 3  # SGDR: T_0 + 2 T_0 + 4 T_0 = steps
  config.sgdr_period_factor = 2
  # α of the weight decay (α/2)‖θ‖² (§7.1.1): the minimum of the regularized loss is not an
  # interpolating one, so the minibatch gradient stays noisy there (§8.3.1), and SGD reaches its
  # neighbourhood within the run.
  config.l2_penalty = 1e-2
  config.data = digits()
  config.model = mlp(width=64, depth=2)
  config.lock()
  return config
