"""The long-term dependencies experiment (§8.2.5): its quick config through the CLI, its claims."""

import numpy as np
import pytest
from quick_runs import CONFIGS, quick_run_fixtures, refused_field

from jaxopt_study.config import load_config
from jaxopt_study.experiment import REPRODUCED

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "long_term_dependencies"
QUICK = CONFIGS / f"{NAME}_quick.py"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 4


def test_gradient_vanishes_and_explodes_at_rate_log_radius(summary):
  """eq. 8.30: ‖∂h_t/∂h_0‖ = ‖W^t‖ ∝ ρ^t, so its log-slope in t is log ρ (within 2%)."""
  config = load_config(QUICK)
  assert summary["vanish_rate_theory"] == pytest.approx(np.log(config.vanish_radius))
  assert summary["explode_rate_theory"] == pytest.approx(np.log(config.explode_radius))
  assert summary["vanish_rate"] < 0 < summary["explode_rate"]
  assert summary["vanish_rate"] == pytest.approx(summary["vanish_rate_theory"], rel=0.02)
  assert summary["explode_rate"] == pytest.approx(summary["explode_rate_theory"], rel=0.02)
  assert abs(summary["critical_rate"]) < 2e-3
  for family, slope in summary["rate_vs_log_radius_slope"].items():
    assert slope == pytest.approx(1.0, abs=0.02), family


def test_autodiff_jacobian_matches_eigendecomposition(summary):
  """∂h_T/∂x_{T−t} by autodiff through the RNN's scan equals V diag(λ)^t V⁻¹ (float32 rounding)."""
  assert summary["eigendecomposition_max_rel_error"] < 1e-4


def test_power_method_converges_at_eigenvalue_ratio(summary):
  """The angle to the leading eigenvector shrinks as |λ₂/λ₁|^t."""
  assert summary["power_method_rate"] == pytest.approx(
    summary["power_method_rate_theory"], rel=0.02
  )


def test_verdicts_judge_every_claim(summary):
  """Eq. 8.30 holds exactly for a linear recurrence: every claim reproduces."""
  assert summary["rate_vs_log_radius_slope_error"] == {
    family: pytest.approx(abs(slope - 1))
    for family, slope in summary["rate_vs_log_radius_slope"].items()
  }
  assert summary["verdicts"] == dict.fromkeys(
    ("vanish_rate", "explode_rate", "rate_vs_log_radius_slope", "power_method_rate"), REPRODUCED
  )


@pytest.mark.parametrize(
  ("field", "value"),
  [("vanish_radius", 1.2), ("radii", [0.9, 1.1]), ("horizon", 2), ("eigenvalue_spread", 1.0)],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
