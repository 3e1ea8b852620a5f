"""Variance of activations and back-propagated gradients through deep MLPs at init (§8.4)."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "init_variance_propagation"
  config.seed = 0
  config.data = digits()
  config.width = 256
  config.depths = [10, 20, 30]  # hidden layers
  config.activations = ["tanh", "relu"]
  config.initializers = [
    "standard_uniform",
    "glorot_uniform",
    "he_normal",
    "lecun_normal",
    "orthogonal",
    "sparse",
    "lsuv",
  ]
  # Martens (2010) §5: 15 non-zero N(0, 1) incoming weights per unit.
  config.initializer_options = ml_collections.ConfigDict({"sparse": {"num_nonzero": 15}})
  config.num_seeds = 8  # networks averaged per setting: a deep net's variance is log-normal
  config.num_examples = 512  # training examples the variances are measured on (the last ones)
  config.num_lsuv_examples = 512  # training examples LSUV fits on (the first ones)
  config.lsuv_tol = 0.05
  # One initializer times each scale, at the deepest depth: where is the variance preserved?
  config.scale_sweep = ml_collections.ConfigDict(
    {"init": "orthogonal", "scales": [0.5, 0.7, 0.85, 1.0, 1.2, 1.41, 1.7, 2.0]}
  )
  config.lock()
  return config
