"""The long-term dependencies experiment (§8.2.5): its quick config through the CLI, its claims."""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxopt_study import cli, experiment
from jaxopt_study.config import load_config

CONFIGS = Path(__file__).parents[1] / "configs"
QUICK = CONFIGS / "long_term_dependencies_quick.py"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
  out = tmp_path_factory.mktemp("long_term_dependencies")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


@pytest.fixture(scope="module")
def summary(run_dir) -> dict:
  return json.loads((run_dir / "summary.json").read_text())


def test_writes_every_output(run_dir):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (run_dir / name).stat().st_size > 0
  assert len(list(run_dir.glob("*.png"))) == 4


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


@pytest.mark.parametrize(
  ("field", "value"),
  [("vanish_radius", 1.2), ("radii", [0.9, 1.1]), ("horizon", 2), ("eigenvalue_spread", 1.0)],
)
def test_check_names_the_bad_field(field, value):
  module = experiment.find_module(QUICK, load_config(QUICK))
  config = load_config(QUICK)
  config.unlock()
  config[field] = value
  with pytest.raises(ValueError, match=field):
    module.check(config)
