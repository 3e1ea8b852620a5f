"""Fig. 8.1 (§8.2.1) on digits: the quick config's claims against the book's direction and size."""

import numpy as np
import pytest
from landscape_helpers import assert_refused, history, run_config, run_quick, summary

from jaxopt_study import data, results
from jaxopt_study.lab import digits_tasks

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "fig8_1_gradient_norm"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


def test_gradient_norm_grows_while_the_error_falls(finished_run):
  """Fig. 8.1: ‖g‖ at the end exceeds ‖g‖ at the start, and the held-out error has fallen."""
  claims = summary(finished_run)
  assert claims["grad_norm_growth"] > 1.0
  assert claims["error_drop"] > 0.5  # from chance (0.9) to well below it
  assert claims["peak_grad_norm_growth"] >= claims["grad_norm_growth"]


def test_curvature_along_the_gradient_outgrows_the_gradient(finished_run):
  """§8.2.1: gᵀHg grows by more than an order of magnitude, and faster than gᵀg."""
  claims = summary(finished_run)
  assert claims["gHg_growth"] > 10.0
  assert claims["gHg_growth"] > claims["gTg_growth"]
  ratio = claims["curvature_term_ratio"]
  assert ratio["end"] > ratio["start"]


def test_two_implementations_of_the_gradient_agree(finished_run):
  """The loop's ‖g‖ (value_and_grad) squared equals the monitor's gᵀg, at every epoch."""
  curves = history(finished_run)["sgd"]
  norms = np.asarray([v for _, v in curves["grad_norm"]])
  g_dot_g = np.asarray([v for _, v in curves["g_dot_g"]])
  assert len(norms) == run_config(finished_run).epochs + 1
  np.testing.assert_allclose(norms**2, g_dot_g, rtol=1e-4)


def test_saved_parameters_give_the_last_recorded_loss(finished_run):
  config = run_config(finished_run)
  model = digits_tasks.mlp(config.seed, **config.model)
  digits = data.load_digits(config.data.test_fraction, config.data.split_seed)
  params, _ = results.load_member_state(
    finished_run / "params.npz", "sgd", model.params, model.model_state
  )
  loss = float(digits_tasks.nll(model)(params, digits.x_train, digits.y_train))
  last = history(finished_run)["sgd"]["train_loss"][-1]
  assert last[0] == config.epochs
  assert loss == pytest.approx(last[1], rel=1e-5)


@pytest.mark.parametrize(
  "override, culprit",
  [("epochs=0", "epochs"), ("learning_rate=-0.1", "learning_rate"), ("batch_size=0", "batch_size")],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
