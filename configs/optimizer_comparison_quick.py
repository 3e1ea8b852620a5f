"""The optimizer comparison on a budget (tests and the tour): logistic regression only, on a
quarter of the digits, by SGD, Adam and Newton's method, fewer steps, two selection seeds
and three evaluation seeds (the runs judged). Each optimizer compiles its own sweep program
(seconds each), so the full config alone runs every optimizer on both problems."""

from common import quick

KEPT = ("sgd", "adam", "newton")


def get_config():
  config = quick(
    __file__,
    {
      "data.test_fraction": 0.75,
      "minibatch.steps": 300,
      "minibatch.eval_every": 30,
      "full_batch.steps": 12,
      "optimizers.newton.damping": [1e-2],
      "seeds": [0, 1],
      "evaluation_seeds": [100, 101, 102],
    },
  )
  config.unlock()
  del config.problems["mlp"]
  for name in [name for name in config.optimizers if name not in KEPT]:
    del config.optimizers[name]
  config.lock()
  return config
