"""Newton is attracted to saddles, saddle-free Newton escapes, SGD crawls past (§8.2.3, §8.6.1).

Two problems: the 2-D function f(x, y) = x² + y⁴/4 − y²/2 from near its saddle (0, 0), and a
one-hidden-layer tanh autoencoder of digits (Dauphin et al. 2014, Fig. 4 in spirit) small enough
for a dense Hessian at every step.
"""

import ml_collections
from common import digits


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "saddles_newton"
  config.seeds = [0, 1, 2, 3, 4]  # the autoencoder's initializations and SGD's minibatch orders
  # f(x, y) = x² + y⁴/4 − y²/2: a saddle at (0, 0) (curvatures 2 and −1), minima at (0, ±1).
  config.toy = ml_collections.ConfigDict(
    {
      "start": [0.5, 1e-3],
      "steps": 100,
      "escape_radius": 0.5,  # a run has escaped once its distance to the saddle reaches this
      "sgd": {"learning_rate": 0.1},
      "newton": {"damping": 0.0},
      "saddle_free_newton": {"damping": 0.0},
    }
  )
  config.data = digits()
  config.data.num_examples = 500  # the first training examples (a stratified split: all classes)
  config.data.pool = 1  # average-pool the 8×8 images by this factor (2: 4×4 = 16 inputs)
  # The autoencoder x -> W₂ tanh(W₁x + b₁) + b₂, squared error; N = 2·d·width + width + d.
  config.model = ml_collections.ConfigDict(
    {
      "name": "mlp",
      "width": 8,
      "depth": 1,
      "activation": "tanh",
      "init": "glorot_uniform",
      "init_scale": 0.1,  # small weights: the start lies near the saddle at the origin
    }
  )
  # Newton and saddle-free Newton are full batch; SGD takes minibatches. `eval_every`: steps
  # between two evaluations of the loss and of the Hessian's index (exact spectrum).
  config.optimizers = ml_collections.ConfigDict(
    {
      "sgd": {"learning_rate": 0.1, "batch_size": 32, "steps": 3000, "eval_every": 150},
      "newton": {"damping": 0.1, "steps": 100, "eval_every": 5},
      # λ searched at every step, as Dauphin et al.'s Algorithm 1 does: the lowest loss
      "saddle_free_newton": {
        "damping": [1e-3, 1e-2, 0.1, 1.0, 10.0],
        "steps": 100,
        "eval_every": 5,
      },
    }
  )
  config.lock()
  return config
