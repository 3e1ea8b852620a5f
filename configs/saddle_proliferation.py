"""Bray & Dean (2007), Dauphin et al. (2014): how rarely a GOE matrix is positive definite (a),
and the critical points of small tanh MLPs on digits, found by Newton's method for ∇f = 0 (b)."""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "saddle_proliferation"
  config.seed = 0
  # (a) the GOE
  config.sizes = [1, 2, 3, 4, 5, 6, 7]  # N of the N × N GOE matrices
  config.samples = 2**23  # Monte Carlo matrices per N
  config.batch = 2**16  # matrices drawn and tested at once
  config.min_hits = 30  # an N enters the fit only if at least this many matrices were PD
  # (b) critical points of x -> W₂ tanh(W₁x + b₁) + b₂ (N = (input_dims + 11) width + 10) on
  # digits, squared error on one-hot targets plus ½ weight_decay ‖θ‖², all in float64
  config.data = digits()
  config.data.num_examples = 300  # the first training examples (a stratified split: all classes)
  config.data.input_dims = 4  # leading principal components of those examples, whitened
  config.model = ml_collections.ConfigDict(
    {"name": "mlp", "depth": 1, "activation": "tanh", "init": "glorot_uniform", "init_scale": 1.0}
  )
  config.widths = [1, 2, 3, 4, 6, 8]
  config.weight_decay = 1e-2
  # Newton starts from points along full-batch gradient descent on f from each seed's init
  config.descent = ml_collections.ConfigDict(
    {
      "learning_rate": 0.5,
      "seeds": [0, 1, 2, 3, 4, 5],
      "start_steps": [0, 10, 30, 100, 300, 1000, 3000],
    }
  )
  config.newton = ml_collections.ConfigDict({"steps": 150, "damping": 1.0})
  config.lock()
  return config
