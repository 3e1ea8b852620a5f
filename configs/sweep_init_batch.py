"""Init scale (§8.4) × minibatch size (§8.1.3) × learning rate on a digits MLP, as one sweep."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "sweep_init_batch"
  config.seed = 0
  config.steps = 1000
  config.batch_size = 32
  config.learning_rate = 0.1
  config.eval_every = 50
  config.checkpoint_every = 250
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(depth=3)
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  # Glorot's scale times 0.25 ... 8: from vanishing signals to saturated tanh units. Batch sizes
  # 8, 32 share one compiled program and 128, 512 another (sweep.MAX_BATCH_RATIO = 4).
  config.sweep = ml_collections.ConfigDict(
    {
      "init_scale": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
      "batch_size": [8, 32, 128, 512],
      "learning_rate": [0.01, 0.1, 1.0],
    }
  )
  config.lock()
  return config
