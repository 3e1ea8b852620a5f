"""Hessian outliers against the number of classes (Sagun et al. 2017; Papyan 2019)."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "hessian_outliers"
  config.seed = 0
  config.num_seeds = 3  # seeds seed, seed + 1, ...: one trained network and spectrum per C each
  # (3: a mean over seeds decides beyond t_{0.975, 2} = 4.30 standard errors; 2 would need 12.7)
  config.classes = [2, 4, 6, 8, 10]  # the digits 0 … C − 1, one network with C outputs per C
  config.steps = 3000  # to zero training 0-1 error and a training NLL of about 1e-3 (C = 10)
  config.batch_size = 64
  config.learning_rate = 0.1
  config.eval_every = 250
  config.init_spectrum = True  # also the spectrum at initialization (largest C, first seed)
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(width=16, activation="relu")
  config.optimizer = ml_collections.ConfigDict({"name": "sgd"})
  # The outlier rule, fixed before any spectrum was looked at: the outliers are the eigenvalues
  # above the largest ratio λ_k / λ_(k+1) between consecutive eigenvalues among the largest
  # `outlier_search` + 1 (the eigengap heuristic). The bulk is "near zero" where |λ| is at most
  # `near_zero_relative` · λ_max.
  config.outlier_search = 50
  config.near_zero_relative = 0.01
  config.lock()
  return config
