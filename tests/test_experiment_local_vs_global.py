"""§8.2.7 on 2-D surfaces: the quick config's detours and stalls, and a float64 reference loop."""

import numpy as np
import pytest
from landscape_helpers import assert_refused, history, run_config, run_quick, summary

from jaxopt_study.lab import landscape

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "local_vs_global"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


def test_the_direct_route_climbs_and_every_optimizer_goes_around(finished_run):
  """Fig. 8.4: the straight line to the minimizer crosses the mountain; descent takes a detour."""
  claims = summary(finished_run)
  assert claims["straight_line_rise"]["mountain"] > 1.0  # the mountain is 4 high
  for optimizer, ratio in claims["path_length_over_distance"]["mountain"].items():
    assert claims["reached_minimizer"]["mountain"][optimizer], optimizer
    assert ratio > 1.2, optimizer


def test_gradient_descent_stalls_on_the_plateau_and_adam_does_not(finished_run):
  """§8.2.7: where ‖∇f‖ ≈ 2e-5, steps −ε∇f go nowhere; Adam's normalized steps walk off."""
  stalled = summary(finished_run)["stalled_on_plateau"]
  assert stalled["sgd"] and stalled["momentum"]
  assert not stalled["adam"]
  assert summary(finished_run)["reached_minimizer"]["plateau"]["adam"]
  assert summary(finished_run)["final_loss"]["plateau"]["sgd"] > 0.99


def test_verdicts_judge_the_detour_and_the_stall(finished_run):
  claims = summary(finished_run)
  assert claims["detour_to_minimizer"] == claims["path_length_over_distance"]["mountain"]
  assert claims["verdicts"] == {
    "path_length_over_distance": "reproduced",
    "stalled_on_plateau": "reproduced",
  }


def _mountain_gradient(theta: np.ndarray) -> np.ndarray:
  """∇f of `landscape.mountain`, differentiated by hand."""
  x, y = theta
  bump = 4.0 * np.exp(-((x - 0.3) ** 2 + y**2) / (2 * 1.2**2)) / 1.2**2
  return np.asarray([0.1 * x - bump * (x - 0.3), 0.1 * (y - 3.0) - bump * y])


def test_sgd_trajectory_matches_a_float64_loop_of_algorithm_8_1(finished_run):
  config = run_config(finished_run)
  curves = history(finished_run)["mountain/sgd"]
  recorded = np.stack([[v for _, v in curves["x"]], [v for _, v in curves["y"]]], axis=-1)
  assert recorded.shape == (config.steps + 1, 2)
  theta = np.asarray(landscape.SURFACES["mountain"].start, np.float64)
  expected = [theta]
  for _ in range(config.steps):
    theta = theta - config.optimizers.sgd.learning_rate * _mountain_gradient(theta)
    expected.append(theta)
  np.testing.assert_allclose(recorded, np.stack(expected), atol=2e-4)


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("surfaces=['volcano']", "volcano"),
    ("surfaces=['mountain']", "plateau"),
    ("steps=0", "steps"),
    ("optimizers.sgd.learning_rate=-1.0", "optimizers.sgd"),
    ("stall_fraction=1.5", "stall_fraction"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
