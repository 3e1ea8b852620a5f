"""Hessian spectrum of a trained digits MLP: bulk near zero, few outliers (Sagun et al. 2017)."""

import ml_collections


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
  config.data = ml_collections.ConfigDict(
    {"name": "digits", "test_fraction": 0.25, "split_seed": 0}
  )
  config.model = ml_collections.ConfigDict(
    {
      "name": "mlp",
      "width": 32,
      "depth": 2,
      "activation": "relu",
      "batchnorm": False,
      "init": "glorot_uniform",
      "init_scale": 1.0,
    }
  )
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  # The outlier rule, fixed before any spectrum was looked at: the outliers are the eigenvalues
  # above the largest ratio λ_k / λ_(k+1) between consecutive eigenvalues among the largest
  # `outlier_search` + 1 (the eigengap heuristic). The bulk is "near zero" where |λ| is at most
  # `near_zero_relative` · λ_max.
  config.outlier_search = 50
  config.near_zero_relative = 0.01
  config.lock()
  return config
