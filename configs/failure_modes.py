"""Failure modes of activations, initialization and optimizers on the digits and a quadratic."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "failure_modes"
  config.seed = 0  # kept for the common layout; every part uses `seeds`
  # The parts that draw a net per seed (2, 3 and 4) are judged by their mean over seeds with its
  # standard error; tanh's same-sign fraction is the same 0 from every seed, an error of 0 that
  # decides only from 6 seeds (experiment.MIN_DOF_WITHOUT_SPREAD). The first seed draws the nets
  # of the one-seed parts (1 and 6), whose claims hold for any draw.
  config.seeds = [0, 1, 2, 3, 4, 5]
  config.data = digits()
  # 1. Zero, constant and random kernels, then full-batch gradient descent (tanh, 2 layers).
  config.symmetry = ml_collections.ConfigDict(
    {"width": 16, "steps": 300, "learning_rate": 0.5, "constant": 0.05}
  )
  # 2. Single-sign weight gradients above a sigmoid or a tanh layer, at initialization.
  config.zigzag = ml_collections.ConfigDict({"width": 32, "num_examples": 512, "batch_size": 32})
  # 3. Dead ReLUs after one full-batch step of each size, then steps at a moderate rate.
  config.dead_relu = ml_collections.ConfigDict(
    {
      "width": 64,
      "learning_rates": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
      "recover_learning_rate": 0.1,
      "recover_steps": 200,
    }
  )
  # 4. First-over-last gradient norm of tanh nets at initialization (Glorot normal × scale).
  config.vanishing = ml_collections.ConfigDict(
    {"width": 64, "depths": [2, 4, 8, 16, 32], "init_scales": [0.5, 1.0], "num_examples": 512}
  )
  # 5. (x² + κy²)/2 from `start`: gradient descent at rate ε (εκ = 1.9: y flips sign every step)
  # and momentum α at rate ε(1 − α).
  config.quadratic = ml_collections.ConfigDict(
    {
      "kappa": 50.0,
      "start": [-10.0, 1.0],
      "steps": 100,
      "learning_rate": 0.038,
      "momentum": 0.9,
    }
  )
  # 6. Adam with and without bias correction, full batch, from the first seed's net.
  config.adam = ml_collections.ConfigDict({"width": 64, "learning_rate": 0.01, "steps": 100})
  config.lock()
  return config
