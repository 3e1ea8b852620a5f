"""Fig. 8.2 (Goodfellow, Vinyals & Saxe 2015) on digits: the quick config's claims."""

import numpy as np
import pytest
from landscape_helpers import (
  assert_refused,
  history,
  load_experiment,
  run_config,
  run_quick,
  summary,
)

from jaxopt_study import data
from jaxopt_study.experiment import verdict
from jaxopt_study.lab import digits_tasks

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "fig8_2_interpolation"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


def _curve(finished_run, member: str) -> tuple[np.ndarray, np.ndarray]:
  curves = history(finished_run)[member]
  return np.asarray([v for _, v in curves["alpha"]]), np.asarray(
    [v for _, v in curves["train_loss"]]
  )


def test_the_loss_falls_monotonically_from_init_to_solution(finished_run):
  """The paper's finding: no bump on θ₀ → θ*; any rise is under 1% of the total decrease."""
  claims = summary(finished_run)
  assert claims["max_rise_relative"] < 0.01
  assert claims["initial_loss"] > 2.0 and max(claims["solution_losses"]) < 0.2


def test_two_solutions_are_separated_by_a_barrier(finished_run):
  """§4 of the paper: between solutions from different seeds the line rises above both ends."""
  claims = summary(finished_run)
  assert claims["barrier_between_solutions"] > max(claims["solution_losses"])


def test_verdicts_judge_both_claims_against_the_loss_decrease(finished_run):
  """Both verdicts compare with 1% of L(θ₀) − L(θ*): a rise below it, a barrier above it."""
  claims = summary(finished_run)
  assert 0 < claims["barrier_relative"] < claims["barrier_between_solutions"]  # decrease > 1
  assert claims["verdicts"] == {
    "max_rise_init_to_solution": verdict(claims["max_rise_relative"] < 0.01),
    "barrier_between_solutions": verdict(claims["barrier_relative"] > 0.01),
  }


def test_the_ends_of_the_line_are_the_initial_point_and_the_solution(finished_run):
  """L(θ(0)) is the loss of a freshly built seed-0 model; L(θ(1)) the loop's final loss."""
  config = run_config(finished_run)
  alphas, losses = _curve(finished_run, "init_to_solution/seed0")
  assert alphas[0] == pytest.approx(config.alpha_range[0])
  assert alphas[-1] == pytest.approx(config.alpha_range[1])
  digits = data.load_digits(config.data.test_fraction, config.data.split_seed)
  model = digits_tasks.mlp(config.seed, **config.model)
  initial = float(digits_tasks.nll(model)(model.params, digits.x_train, digits.y_train))
  assert losses[alphas == 0.0][0] == pytest.approx(initial, rel=1e-5)
  solution = summary(finished_run)["solution_losses"][0]
  assert losses[alphas == 1.0][0] == pytest.approx(solution, rel=1e-4)


def test_max_rise():
  experiment = load_experiment(NAME)
  assert experiment.max_rise(np.asarray([3.0, 2.0, 2.5, 1.0, 1.2])) == pytest.approx(0.5)
  assert experiment.max_rise(np.asarray([3.0, 2.0, 1.0])) == 0.0


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("num_solutions=1", "num_solutions"),
    ("alpha_range=(0.2, 1.0)", "alpha_range"),
    ("steps=0", "steps"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
