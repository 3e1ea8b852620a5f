"""Deep linear network dynamics on whitened data (Saxe, McClelland & Ganguli 2013)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "deep_linear_dynamics"
  config.seed = 0
  config.dim = 16  # input, hidden and output width of part (a)
  config.num_examples = 64
  # A full-rank target: with zero singular values, a deep net would spend most of its time
  # shrinking the initial map's extra directions, not learning the modes.
  config.singular_values = [
    4.0,
    3.5,
    3.0,
    2.6,
    2.3,
    2.0,
    1.8,
    1.6,
    1.4,
    1.2,
    1.0,
    0.9,
    0.8,
    0.7,
    0.6,
    0.5,
  ]
  # (a) modes: a two-layer net from a small random init, full-batch gradient descent.
  config.mode_learning_rate = 0.01  # τ = 100 steps
  config.mode_init_scale = 0.05  # factor on Glorot's normal init
  config.mode_steps = 3000
  # (b) depth: each seed's steps to loss ≤ loss_threshold × the zero network's loss, at each
  # depth's learning rate with the fewest median steps over the other seeds (ε·depth over
  # rate_times_depth, 8 per decade), for orthogonal and LeCun-normal (scaled Gaussian) init.
  # The task's singular values (their number is the nets' input and output width) and the hidden
  # width, ≫ that width as in Saxe et al.'s depth comparison.
  config.depth_singular_values = [4.0, 3.0, 2.0, 1.5, 1.0, 0.8, 0.6, 0.5]
  config.width = 128
  config.depths = [2, 4, 8, 16, 32]
  config.seeds = [0, 1, 2, 3, 4]  # each seed's rate is picked on the other four
  config.rate_times_depth = [0.01, 0.75]
  config.rates_per_decade = 8
  config.loss_threshold = 0.01
  config.depth_steps = 100
  config.eval_every = 1
  config.lock()
  return config
