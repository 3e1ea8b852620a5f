"""Wilson et al. (2017) §3.3: SGD vs AdaGrad, RMSProp and Adam on their separable construction."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "adaptive_vs_sgd"
  config.seed = 0
  config.num_seeds = 5  # draws of the data, seeds seed, seed + 1, ...: labels and held-out set
  config.num_train = 40
  config.num_test = 1000
  config.positive_share = 0.6  # p, the probability of the label +1
  config.steps = 2000  # full-batch steps
  config.eval_every = 50
  # Each optimizer over a learning-rate grid; the claims use the rate with the lowest final loss.
  config.optimizers = ml_collections.ConfigDict(
    {
      "sgd": {"learning_rate": [0.03, 0.1, 0.3]},
      "adagrad": {"learning_rate": [0.01, 0.03, 0.1], "eps": 1e-7},
      "rmsprop": {"learning_rate": [0.0003, 0.001, 0.003], "decay": 0.9, "eps": 1e-6},
      "adam": {"learning_rate": [0.001, 0.003, 0.01], "b1": 0.9, "b2": 0.999, "eps": 1e-8},
    }
  )
  config.lock()
  return config
