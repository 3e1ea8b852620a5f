"""Fig. 8.1 (§8.2.1) on digits: ‖g‖, gᵀg, gᵀHg and the held-out error per epoch of SGD."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "fig8_1_gradient_norm"
  config.seed = 0
  config.epochs = 100
  config.batch_size = 64
  config.sampling = "epoch"
  config.learning_rate = 0.1
  config.data = digits()
  # Small initial weights (§8.4) start SGD near the saddle at the origin, where ‖g‖ is small.
  config.model = mlp(init_scale=0.1)
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  config.lock()
  return config
