"""`trained_mlp`: the returned loss is the training objective the loop recorded."""

import ml_collections
import pytest

from jaxopt_study import data as data_lib
from jaxopt_study.lab import trained_mlp


def _config(batchnorm: bool) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    {
      "steps": 20,
      "batch_size": 32,
      "learning_rate": 0.1,
      "eval_every": 10,
      "sampling": "epoch",
      "optimizer": {"name": "sgd"},
      "model": {"name": "mlp", "width": 8, "depth": 1, "batchnorm": batchnorm},
    }
  )


@pytest.mark.parametrize("batchnorm", [False, True])
def test_loss_fn_reproduces_the_recorded_final_training_loss(batchnorm):
  data = data_lib.load_digits()
  result, loss_fn = trained_mlp.train_digits_mlp(_config(False), data, 0, batchnorm=batchnorm)
  value = float(loss_fn(result.params, data.x_train, data.y_train))
  assert value == pytest.approx(float(result.history["train_loss"][-1]), rel=1e-5)
  assert value < float(result.history["train_loss"][0])


def test_check_training_counts_the_parameters_and_refuses_a_bad_batch_size():
  config = _config(False)
  config.data = {"name": "digits", "test_fraction": 0.25, "split_seed": 0}
  config.seed = 0
  width = config.model.width
  assert trained_mlp.check_training(config) == 64 * width + width + 10 * width + 10  # depth 1
  config.batch_size = 100_000
  with pytest.raises(ValueError, match="batch_size"):
    trained_mlp.check_training(config)


def test_eigenvalue_rows_put_lambda_k_at_step_k():
  rows = trained_mlp.eigenvalue_rows("m", [3.0, 2.0], "eigenvalue")
  assert [(r["step"], r["value"]) for r in rows] == [(1, 3.0), (2, 2.0)]
