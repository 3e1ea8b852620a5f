"""§8.2.2 on digits: a relabelled copy of a minimum, and minima reached from several seeds."""

import ml_collections


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
  config.data = ml_collections.ConfigDict(
    {"name": "digits", "test_fraction": 0.25, "split_seed": 0}
  )
  config.model = ml_collections.ConfigDict(
    {
      "name": "mlp",
      "width": 16,
      "depth": 2,
      "activation": "tanh",
      "batchnorm": False,
      "init": "glorot_uniform",
      "init_scale": 1.0,
    }
  )
  config.lock()
  return config
