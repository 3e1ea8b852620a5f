"""Fig. 8.1 on a budget: three seeds, fewer epochs and a narrower net (for tests and the tour)."""

from common import quick


def get_config():
  return quick(__file__, {"num_seeds": 3, "epochs": 20, "model.width": 32})
