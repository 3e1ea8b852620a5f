"""Transfer learning: an MLP pretrained on digits 0-4 learns 5-9 from n examples per class."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "transfer"
  config.seed = 0  # seeds seed, seed + 1, ..., seed + num_seeds − 1
  config.num_seeds = 5
  config.data = digits()
  config.source_classes = [0, 1, 2, 3, 4]  # pretraining task
  config.target_classes = [5, 6, 7, 8, 9]  # new task, n examples per class
  config.examples_per_class = [5, 10, 20, 50]
  # Not `common.mlp`: this model block has no `batchnorm` field (the MLP's default, none, holds).
  config.model = ml_collections.ConfigDict(
    {
      "name": "mlp",
      "width": 64,
      "depth": 2,
      "activation": "relu",
      "init": "glorot_uniform",
      "init_scale": 1.0,
    }
  )
  config.optimizer = ml_collections.ConfigDict({"name": "adam"})
  config.batch_size = 32  # pretraining; the target task trains on its whole subset
  config.pretrain_steps = 1000
  config.pretrain_learning_rate = 1e-3
  config.steps = 300  # on the target task, every method
  # Fixed in advance, not tuned on the held-out set: the head alone is a convex (linear)
  # problem that takes a larger rate; fine-tuning and scratch train the whole net at Adam's usual.
  config.learning_rates = ml_collections.ConfigDict(
    {"head_only": 1e-2, "fine_tune": 1e-3, "scratch": 1e-3}
  )
  config.eval_every = 25
  config.lock()
  return config
