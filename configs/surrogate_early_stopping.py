"""MLPs trained long past zero training 0-1 error on a teacher's labels, with and without early
stopping (chosen on a validation split, judged on a separate test split)."""

import ml_collections
from common import mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "surrogate_early_stopping"
  config.seed = 0  # the data's key, the first network's seed and the minibatch orders
  config.num_seeds = 8
  config.steps = 4000
  config.batch_size = 64
  config.learning_rate = 0.3
  config.eval_every = 50
  config.sampling = "epoch"
  config.patience = 10  # evaluations without a lower validation 0-1 error before stopping
  # A random teacher network's labels (`data.teacher_classification`): 1,000 training examples
  # and 22,000 held out, the first `num_validation` of them the validation split and the other
  # 20,000 the test split.
  config.data = ml_collections.ConfigDict(
    {
      "name": "teacher_classification",
      "num_train": 1000,
      "num_test": 22000,
      "in_dim": 20,
      "hidden_dim": 20,
      "num_classes": 4,
    }
  )
  config.num_validation = 2000
  config.model = mlp()
  config.lock()
  return config
