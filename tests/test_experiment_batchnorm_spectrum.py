"""The BatchNorm-spectrum experiment: its quick config through the CLI, and its claims."""

import json
from pathlib import Path

import ml_collections
import pytest

from jaxopt_study import cli, registry
from jaxopt_study.experiment import Results, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "batchnorm_spectrum_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("batchnorm_spectrum")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


def test_batchnorm_lowers_the_top_eigenvalue(finished_run):
  """Ghorbani et al. (2019, §4): without BatchNorm, larger outliers; with it, a lower λ_max."""
  summary = json.loads((finished_run / "summary.json").read_text())
  assert 0 < summary["lambda_max_ratio"] < 1
  rows = {r["member"]: r for r in read_csv(finished_run / "results.csv")}
  assert rows["batchnorm"]["num_params"] == rows["plain"]["num_params"] + 2 * 2 * 16  # γ, β


def test_batchnorm_trains_stably_at_larger_rates(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  assert summary["max_stable_lr_ratio"] > 1
  assert summary["max_stable_lr_at_grid_edge"] == []  # the grid brackets both largest rates
  assert (finished_run / "top_eigenvalues.png").is_file()


def test_bad_config_is_refused(tmp_path, capsys):
  code = cli.main(["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", "lr_sweep=[1.0]"])
  assert code == 2
  assert "lr_sweep" in capsys.readouterr().err


def test_verdicts_judge_both_ratios_against_1(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  assert summary["plain_max_stable_lr_at_grid_top"] is False  # the grid bounds the plain net
  assert summary["verdicts"] == {
    "lambda_max_ratio": verdict(summary["lambda_max_ratio"] < 1),
    "max_stable_lr_ratio": verdict(summary["max_stable_lr_ratio"] > 1),
  }


@pytest.mark.parametrize(
  "plain, normed, ratio, judged",
  [
    (0.5, 2.0, 4.0, True),
    (2.0, 2.0, 1.0, None),  # both stable at the grid's top: the plain net's own top is unknown
    (float("nan"), 1.0, 1.0 / 0.25, True),  # plain stable nowhere: below 0.25, a lower bound
    (1.0, 0.5, 0.5, False),
  ],
)
def test_the_rate_ratio_is_judged_only_where_the_grid_bounds_it(plain, normed, ratio, judged):
  """A plain net stable at the grid's top rate (ratio exactly 1 when BatchNorm is too) once read
  "not reproduced", and one stable at no rate (the strongest evidence) "inconclusive"."""
  experiment = registry.load("batchnorm_spectrum")
  config = ml_collections.ConfigDict({"lr_sweep": [0.25, 0.5, 1.0, 2.0]})
  table = [
    {"member": name, "lambda_max": 1.0, "n_outliers": 0, "max_stable_lr": rate}
    for name, rate in (("plain", plain), ("batchnorm", normed))
  ]
  summary = experiment.summarize(config, Results(table, []))
  assert summary["max_stable_lr_ratio"] == pytest.approx(ratio)
  assert experiment.CRITERIA["max_stable_lr_ratio"](summary) is judged
