"""Hessian spectrum of a trained digits MLP: bulk near zero, few outliers (Sagun et al. 2017)."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "hessian_outliers"
  config.seed = 0
  config.num_seeds = 2  # seeds seed, seed + 1, ...: one trained network and spectrum each
  config.steps = 500
  config.batch_size = 64
  config.learning_rate = 0.1
  config.eval_every = 50
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(width=32, activation="relu")
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  # The outlier rule, fixed before any spectrum was looked at: the outliers are the eigenvalues
  # above the largest ratio λ_k / λ_(k+1) between consecutive eigenvalues among the largest
  # `outlier_search` + 1 (the eigengap heuristic). The bulk is "near zero" where |λ| is at most
  # `near_zero_relative` · λ_max.
  config.outlier_search = 50
  config.near_zero_relative = 0.01
  config.lock()
  return config
