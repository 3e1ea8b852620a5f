"""A 3-layer sigmoid MLP on digits with and without BatchNorm (§8.7.1; Ioffe & Szegedy 2015)."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "batchnorm_training"
  config.seed = 0
  config.data = digits()
  config.width = 64
  config.depth = 3  # sigmoid hidden layers, as in Ioffe & Szegedy's MNIST network
  config.batch_size = 64
  config.steps = 2000
  config.eval_every = 50
  config.unit = 0  # the last hidden layer's unit whose input is followed
  config.drift_learning_rate = 0.5
  config.learning_rates = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]
  config.trainable_loss = 0.5  # final training NLL below this: the rate trains (chance: ln 10)
  config.lock()
  return config
