"""§8.2.7 on 2-D surfaces: SGD, momentum, Adam and RMSProp around a mountain and on a plateau."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "local_vs_global"
  config.seed = 0  # the descents are deterministic; kept for the common config layout
  config.steps = 1000
  config.surfaces = ["mountain", "plateau"]
  # Definitions of the two verdicts, as fractions of the start's distance from the minimizer.
  config.stall_fraction = 0.1
  config.reach_fraction = 0.1
  config.optimizers = ml_collections.ConfigDict(
    {
      "sgd": {"learning_rate": 0.5},
      "momentum": {"learning_rate": 0.05, "momentum": 0.9},
      "adam": {"learning_rate": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-8},
      "rmsprop": {"learning_rate": 0.02, "decay": 0.9, "eps": 1e-6},
    }
  )
  config.lock()
  return config
