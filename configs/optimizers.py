"""Every first-order optimizer of chapter 8 on one digits MLP, each over an lr grid (§8.5.4)."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "optimizers"
  # Each seed: the initialization and the minibatch order, the same for every optimizer.
  config.seeds = [0, 1, 2]
  # The two family winners trained again from these (never seen by the selection), and judged.
  config.evaluation_seeds = [100, 101, 102]
  config.steps = 1500
  config.batch_size = 64
  config.eval_every = 50
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp()
  # One entry per optimizer: `learning_rate` is the grid searched, the rest its hyperparameters by
  # their Optax names. Each grid spans a factor of 1000 from the optimizer's usual rates upward,
  # so that the best rate (lowest final training loss, near the stability limit) lies inside it.
  config.optimizers = ml_collections.ConfigDict(
    {
      "sgd": {"learning_rate": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]},
      "momentum": {"learning_rate": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0], "momentum": 0.9},
      "nesterov": {"learning_rate": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0], "momentum": 0.9},
      "adagrad": {"learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0], "eps": 1e-7},
      "rmsprop": {
        "learning_rate": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
        "decay": 0.9,
        "eps": 1e-6,
      },
      "rmsprop_nesterov": {
        "learning_rate": [0.0001, 0.0003, 0.001, 0.003, 0.01],
        "decay": 0.9,
        "momentum": 0.9,
        "eps": 1e-8,
      },
      "adam": {
        "learning_rate": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
      },
      "adadelta": {
        "learning_rate": [0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0],
        "decay": 0.95,
        "eps": 1e-6,
      },
      "delta_bar_delta": {
        "learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
        "kappa": 0.0005,
        "phi": 0.1,
        "theta": 0.7,
      },
    }
  )
  config.lock()
  return config
