"""Greedy layer-wise supervised pretraining vs end-to-end training, deep sigmoid MLP (§8.7.4)."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "pretraining"
  config.seed = 0  # seeds seed, seed + 1, ..., seed + num_seeds − 1
  config.data = digits()
  # Not `common.mlp`: this model block has no `batchnorm` field (the MLP's default, none, holds).
  config.model = ml_collections.ConfigDict(
    {
      "name": "mlp",
      "width": 32,
      "depth": 5,  # L: hidden layers of the final net, one greedy stage each
      "activation": "sigmoid",
      "init": "glorot_uniform",
      "init_scale": 1.0,
    }
  )
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  config.learning_rates = [0.3, 1.0, 3.0, 10.0]  # each method is reported at its best
  config.batch_size = 32
  config.stage_steps = 300  # per greedy stage
  config.finetune_steps = 300  # joint fine-tuning after the last stage (0: none)
  config.freeze_lower_layers = True  # Bengio et al. (2007): lower layers fixed while a stage trains
  config.num_seeds = 5
  config.eval_every = 25
  config.lock()
  return config
