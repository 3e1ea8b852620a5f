"""Init scale (§8.4) × minibatch size (§8.1.3) × learning rate on a digits MLP, as one sweep."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "sweep_init_batch"
  config.seed = 0
  # Batch sizes are compared after the same epochs (Keskar et al. 2017; Goyal et al. 2017):
  # `steps` and `eval_every` are the smallest batch's (2000 steps of 8: 11.9 epochs of the 1347
  # training digits), batch 512 runs ⌈2000 · 8/512⌉ = 32 steps; each batch size is one program.
  config.steps = 2000
  config.equal_epochs = True
  config.batch_size = 32
  config.learning_rate = 0.1
  config.eval_every = 50
  config.checkpoint_every = 500
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(depth=3)
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  # Glorot's scale times 0.25 ... 8: from vanishing signals to saturated tanh units; rates from
  # 0.01 to 10 so that every batch size's best rate lies inside the grid.
  config.sweep = ml_collections.ConfigDict(
    {
      "init_scale": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
      "batch_size": [8, 32, 128, 512],
      "learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
      # the slope and the U-shape per seed: their error bars. Six, because the best rates fall
      # on grid points, where every seed can agree (a standard error of 0): a verdict then
      # needs six agreeing seeds, as a sign test at 5% does
      "seed": [0, 1, 2, 3, 4, 5],
    }
  )
  config.lock()
  return config
