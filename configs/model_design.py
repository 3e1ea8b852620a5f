"""§8.7.5 on digits: plain, residual and batch-normalized MLPs of 2, 8 and 32 hidden layers."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "model_design"
  config.seed = 0  # kept for the common layout; the runs use `seeds`
  config.seeds = [0, 1, 2]
  config.data = digits()
  config.model = mlp(width=32, activation="tanh")  # depth and design set per run
  config.designs = ["plain", "residual", "batchnorm"]
  config.depths = [2, 8, 32]
  # SGD (Algorithm 8.1): every rate × seed for `steps` minibatch steps; the best rate per design.
  config.learning_rates = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
  config.steps = 500
  config.eval_every = 100
  config.batch_size = 64
  config.hessian_examples = 512  # the batch of the Hessian and gradients at initialization
  config.lock()
  return config
