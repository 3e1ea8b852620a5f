"""The Polyak-averaging experiment (§8.7.3): its quick config through the CLI, its claims."""

import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study.experiment import verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "polyak_averaging"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html", "excess_risk.png"} <= names


def test_averaged_iterate_converges_at_rate_one_over_t(summary):
  """Polyak & Juditsky (1992): slope −1, and the least-squares constant σ²d/(2t)."""
  assert summary["averaged_log_slope"] == pytest.approx(-1.0, abs=0.1)
  assert summary["averaged_excess_over_theory"] == pytest.approx(1.0, abs=0.2)


def test_last_iterate_stalls_at_the_stationary_noise_floor(summary):
  """Constant-step SGD: a flat excess risk at the height the stationary covariance predicts."""
  assert abs(summary["last_iterate_log_slope"]) < 0.05
  assert summary["last_iterate_plateau"] == pytest.approx(
    summary["last_iterate_plateau_theory"], rel=0.15
  )
  assert summary["final_excess_last"] > 20 * summary["final_excess_averaged"]


def test_verdicts_judge_distances_from_theory(summary):
  assert summary["averaged_log_slope_error"] == pytest.approx(
    abs(summary["averaged_log_slope"] + 1)
  )
  assert summary["last_iterate_plateau_rel_error"] == pytest.approx(
    abs(summary["last_iterate_plateau"] / summary["last_iterate_plateau_theory"] - 1)
  )
  assert summary["verdicts"] == {
    "averaged_log_slope": verdict(summary["averaged_log_slope_error"] < 0.1),
    "averaged_excess_over_theory": verdict(summary["averaged_excess_rel_error"] < 0.1),
    "last_iterate_plateau": verdict(summary["last_iterate_plateau_rel_error"] < 0.1),
    "last_iterate_log_slope": verdict(abs(summary["last_iterate_log_slope"]) < 0.1),
  }


def test_both_iterates_start_at_the_same_point(finished_run):
  """θ̂_1 = θ_1: after one step the mean of the iterates is the iterate."""
  first = read_csv(finished_run / "results.csv")[0]
  assert first["step"] == 1
  np.testing.assert_allclose(first["excess_averaged"], first["excess_last"], rtol=1e-6)


@pytest.mark.parametrize(
  ("field", "value"),
  [("learning_rate", "5.0"), ("min_curvature", "0.0"), ("fit_decades", "9.0"), ("dim", "0")],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)
