"""Sigmoid MLPs on digits with and without BatchNorm (§8.7.1; Ioffe & Szegedy 2015)."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "batchnorm_training"
  config.seed = 0  # the minibatch order
  config.data = digits()
  # Ioffe & Szegedy's MNIST network (§4.1): 3 hidden layers of 100 sigmoid units, minibatches of
  # 60; and one deeper network.
  config.width = 100
  config.depths = [3, 6]
  config.batch_size = 60
  config.steps = 1600
  config.eval_every = 40
  # of the initial parameters; each seed is timed at the rate best on the others, which five
  # seeds pick from four (three seeds' picks from two moved with one lucky seed)
  config.seeds = [0, 1, 2, 3, 4]
  config.learning_rates = [2.0**k for k in range(-3, 8)]  # a ×2 grid, 0.125 .. 128
  config.target_accuracy = 0.95  # held-out; Ioffe & Szegedy time their nets to a fixed accuracy
  config.unit = 0  # the last hidden layer's unit whose percentiles are drawn (the drift: all units)
  config.drift_learning_rate = 0.5
  config.lock()
  return config
