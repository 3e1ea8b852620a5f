"""One sigmoid recurrent unit iterated 50 steps: its cliff, and SGD with and without clipping."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "cliffs_and_clipping"
  config.seed = 0  # builds the network; every parameter is then set: nothing is drawn
  config.sequence_length = 50  # T, the number of times the unit is iterated
  config.target = 0.5  # y, the target of h_T
  # The surface: a grid_size × grid_size grid over w_range × b_range.
  config.grid_size = 121
  config.w_range = [0.0, 12.0]
  config.b_range = [-12.0, 2.0]
  config.slice_w = 6.0  # a fine slice across the wall along b at this w
  config.slice_points = 20001
  # Training: SGD from every (start_w, start_b) pair, unclipped and clipped.
  config.start_w = [4.5, 5.0, 5.5, 6.0, 6.5]
  config.start_b = [-5.0, -4.0, -3.0]
  config.learning_rate = 1.0
  config.steps = 600
  config.clip_norm = 0.5
  config.clip_value = 0.35
  config.loss_tolerance = 1e-4
  config.lock()
  return config
