"""Edge of stability on a budget: 500 examples, 400 steps, the full config's three seeds.

The squared error's η = 2/5 and 2/4 put T = 5 and 4 well above λ_max at step 0 for every seed, so
the rise to 0.9 T is larger than the dip λ_max takes in the first steps; at the full config's
T = 3, λ_max starts just below 0.9 T and the measurement before T can fall in that dip (see
benchmarks/RESULTS.md)."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "data.num_examples": 500,
      "steps": 400,
      "gd.mse": [2 / 5, 2 / 4],
      "gd.cross_entropy": [2 / 1.0],
      "adam.learning_rates": [0.01],
    },
  )
