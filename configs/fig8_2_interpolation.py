"""Fig. 8.2 (Goodfellow, Vinyals & Saxe 2015) on digits: the loss along θ₀ → θ* and θ*_a → θ*_b."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "fig8_2_interpolation"
  config.seed = 0
  config.num_solutions = 3  # seeds 0, 1, 2: each its own θ₀ and minibatch order
  config.steps = 3000
  config.batch_size = 64
  config.sampling = "epoch"
  config.learning_rate = 0.1
  config.alpha_range = (-0.5, 1.5)
  config.num_alphas = 81
  config.data = digits()
  config.model = mlp()
  config.lock()
  return config
