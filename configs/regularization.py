"""Lecture notes on regularization: seven methods on an over-parameterized net, 200 digits."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "regularization"
  config.seed = 0  # kept for the common layout; the runs use `seeds`
  config.seeds = [0, 1, 2, 3, 4]
  config.data = digits()
  config.num_train = 200  # the first 200 of the 1,347 training digits; held out: all 450
  # 3 residual blocks of width 64: 17,290 parameters, 86 per training example
  config.model = ml_collections.ConfigDict(
    {"name": "residual_mlp", "width": 64, "depth": 4, "activation": "relu"}
  )
  config.methods = ["none", "l2", "l1", "dropout", "dropconnect", "augment", "stochastic_depth"]
  # Strengths: each method's best of a pilot scan on validation digits (training digits 200-1346,
  # not the held-out split; seeds 100 and 101, this config otherwise), its validation errors in
  # benchmarks/RESULTS.md (regularization): L2 {1e-4, 1e-3, 1e-2}, L1 {1e-5, 1e-4, 1e-3} (both best
  # at the grid's largest), dropout and DropConnect {0.2, 0.5} (0.5 the published default,
  # Srivastava et al. 2014, Wan et al. 2013), augmentation {0.25, 0.5, 1} (every example shifted
  # and rotated is too much for an MLP on 200 digits), p_L {0.5, 0.8} (0.5, Huang et al. 2016).
  config.strengths = ml_collections.ConfigDict(
    {
      "l2": 1e-2,
      "l1": 1e-3,
      "dropout": 0.5,
      "dropconnect": 0.5,
      "augment": 0.25,
      "stochastic_depth": 0.5,
    }
  )
  config.augment_max_shift = 1  # pixels
  config.augment_max_rotation = 10.0  # degrees
  # Adam (Algorithm 8.7), minibatches of 32: 200 epochs of the 200 digits
  config.learning_rate = 1e-3
  config.batch_size = 32
  config.steps = 1200
  config.eval_every = 100
  config.lanczos_steps = 40  # top Hessian eigenvalue at the end, in eval mode
  config.lock()
  return config
