"""The sharp-minima experiment: its quick config through the CLI, and its claims.

Keskar et al. (2017) publish large-batch minima sharper (ratio > 1) and worse on held-out data
(gap > 0). With the same number of Adam steps on digits, the large batch reaches a lower training
loss and a flatter point (ratio < 1, see the report); the checks are of what holds at this
scale: sharpness is a curvature measure that agrees with λ_max on which batch is sharper, grows
with the box, and both runs learn.
"""

import json
from pathlib import Path

import pytest

from jaxopt_study import cli
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "sharp_minima_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("sharp_minima")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


def test_sharpness_and_lambda_max_agree_on_the_sharper_batch(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  sharpness = summary["sharpness_ratio_large_over_small"]
  curvature = summary["lambda_max_ratio_large_over_small"]
  assert sharpness > 0 and curvature > 0
  assert (sharpness - 1) * (curvature - 1) > 0
  # the sharper batch also holds the higher training loss (cross-entropy flattens as it falls)
  loss = summary["final_train_loss"]
  assert (sharpness - 1) * (loss["large"] - loss["small"]) > 0


def test_sharpness_grows_with_the_box(finished_run):
  for row in read_csv(finished_run / "results.csv"):
    assert 0 < row["sharpness_eps0.0005"] < row["sharpness_eps0.001"]


def test_both_batch_sizes_learn(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  assert max(summary["test_error"].values()) < 0.1
  assert abs(summary["test_error_gap"]) < 0.05
  assert (finished_run / "test_error.png").is_file()


def test_bad_config_is_refused(tmp_path, capsys):
  code = cli.main(
    ["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", "small_batch_size=500"]
  )
  assert code == 2
  assert "small_batch_size" in capsys.readouterr().err
