"""The saddle-proliferation experiment: its quick config through the CLI, and its claims."""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxopt_study import cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "saddle_proliferation_quick.py"
THEORY = -np.log(3) / 4


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
  out = tmp_path_factory.mktemp("saddle_proliferation")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  for name in ("results.csv", "history.csv", "report.html", "goe_log_probability.png"):
    assert (out / name).is_file(), name
  return json.loads((out / "summary.json").read_text())


def test_goe_slope_is_within_20_percent_of_minus_ln3_over_4(summary):
  """Bray & Dean (2007): log P_N ≈ −(ln 3 / 4) N²; the issue asks for 20%."""
  assert summary["goe_slope"] == pytest.approx(THEORY, rel=0.2)
  assert summary["goe_slope_exact"] == pytest.approx(THEORY, rel=0.02)


def test_monte_carlo_matches_the_exact_probabilities(summary):
  assert summary["goe_max_abs_z"] < 4.0
  exact = summary["exact_probability_by_N"]
  assert exact["2"] == pytest.approx((2 - np.sqrt(2)) / 4)
  assert all(exact[str(n)] > exact[str(n + 1)] for n in range(1, 4))


def test_a_fit_against_n_squared_alone_is_steeper(summary):
  """The O(N) term at small N: the N²-only slope overshoots θ (see the experiment docstring)."""
  assert summary["goe_slope_n2_only"] < summary["goe_slope"] < 0


def test_bad_config_is_refused(tmp_path, capsys):
  code = cli.main(["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", "sizes=[1, 2]"])
  assert code == 2
  assert "sizes" in capsys.readouterr().err
