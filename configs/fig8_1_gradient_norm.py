"""Fig. 8.1 (§8.2.1) on digits: every minibatch gradient norm, gᵀg, gᵀHg and the held-out error
of SGD from the ordinary initialization, on noisy labels with an L2 penalty, over seeds."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "fig8_1_gradient_norm"
  config.seed = 0
  config.num_seeds = 5  # seeds seed, ..., seed + 4: initialization and minibatch order
  config.epochs = 100
  config.batch_size = 64
  config.sampling = "epoch"
  config.learning_rate = 0.1
  # A task the network cannot drive to zero gradient: a fifth of the training labels replaced by
  # another class (fixed by noise_seed, the same for every seed), and weight decay 5e-4.
  config.data = digits()
  config.data.label_noise = 0.2
  config.data.noise_seed = 0
  config.l2_penalty = 5e-4
  config.model = mlp(init_scale=1.0)  # Glorot uniform, unscaled
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  # The in-loop monitor, once per epoch on the whole training set: gᵀg, gᵀHg, λ_max, trace.
  config.curvature = ml_collections.ConfigDict({"lanczos_steps": 10, "probes": 1})
  config.lock()
  return config
