"""§8.2.2 on digits: a relabelled copy of a minimum, and minima reached from several seeds."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "symmetry_and_local_minima"
  config.seed = 0
  config.num_solutions = 4  # seeds 0 … 3: each its own θ₀ and minibatch order
  config.steps = 3000
  config.batch_size = 64
  config.sampling = "epoch"
  config.learning_rate = 0.1
  config.max_params = 3000  # the exact Hessian of N parameters holds N² float64 values
  config.hessian_chunk_size = 128  # Hessian rows per vmapped HVP call (smaller compiles faster)
  config.data = digits()
  config.model = mlp(width=16)
  config.lock()
  return config
