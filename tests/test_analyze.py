"""`jaxopt-study spectrum RUN_DIR` on a finished run, against an independently built Hessian."""

import csv
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_study import analyze, cli, data, losses, models, results

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

QUICK = str(Path(__file__).parents[1] / "configs" / "optimizers_quick.py")
SMALL = ["--set", "steps=40", "--set", "eval_every=20", "--set", "model.width=8", "--no-progress"]


SGD_ONLY = f"""
from jaxopt_study.config import load_config


def get_config():
  config = load_config({QUICK!r})
  config.unlock()
  for name in list(config.optimizers.keys()):
    if name != "sgd":
      del config.optimizers[name]
  config.lock()
  return config
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
  """A finished run of the quick comparison, SGD only (its 5 learning rates), width 8."""
  folder = tmp_path_factory.mktemp("spectrum")
  (folder / "experiments").symlink_to(Path(__file__).parents[1] / "experiments")
  (folder / "sgd_only.py").write_text(SGD_ONLY)
  out = folder / "run"
  assert cli.main(["run", str(folder / "sgd_only.py"), "--out", str(out), *SMALL]) == 0
  return out


def test_spectrum_of_a_run_matches_an_independent_hessian(run_dir):
  assert cli.main(["spectrum", str(run_dir), "--member", "sgd@0.3"]) == 0
  with open(run_dir / "spectrum-exact.csv") as f:
    ours = np.asarray([float(row["eigenvalue"]) for row in csv.DictReader(f)])
  verdict = json.loads((run_dir / "classification-exact.json").read_text())
  assert (run_dir / "spectrum-exact.png").stat().st_size > 0

  config = json.loads((run_dir / "config.json").read_text())
  options = {k: v for k, v in config["model"].items() if k != "name"}
  model = models.functional(models.build_model("mlp", 64, 10, seed=0, **options))
  params, state = results.load_member_state(
    run_dir / "params.npz", "sgd@0.3", model.params, model.model_state
  )
  digits = data.load_digits()
  flat, unravel = ravel_pytree(params)

  def loss(v):
    logits, _ = model.apply(unravel(v), state, digits.x_train, True)
    return losses.softmax_cross_entropy(logits, digits.y_train)

  reference = np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(flat), np.float64))
  assert ours.shape == (flat.size,)
  scale = np.abs(reference).max()
  np.testing.assert_allclose(ours, reference, atol=1e-4 * scale)
  assert verdict["member"] == "sgd@0.3"
  assert verdict["lambda_max"] == pytest.approx(reference[-1], rel=1e-3)
  assert verdict["kind"] in {"minimum", "saddle", "degenerate", "not_critical", "plateau"}


def test_default_member_is_the_lowest_final_loss(run_dir):
  rows = results.read_csv(run_dir / "results.csv")
  assert analyze.default_member(run_dir) == min(rows, key=lambda r: r["final_train_loss"])["member"]


def test_a_folder_without_a_finished_run_is_refused(tmp_path, capsys):
  assert cli.main(["spectrum", str(tmp_path)]) == 2
  assert "config.json" in capsys.readouterr().err
