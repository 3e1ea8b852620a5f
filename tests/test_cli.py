"""`jaxopt-study run` end to end on the quick optimizer comparison: files, claims, resume."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxopt_study import cli
from jaxopt_study.config import load_config
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

ROOT = Path(__file__).parents[1]
QUICK = str(ROOT / "configs" / "optimizers_quick.py")
SMALL = ["--set", "steps=30", "--set", "eval_every=10", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
  """The quick config as shipped (the one the tour runs)."""
  out = tmp_path_factory.mktemp("run") / "optimizers"
  assert cli.main(["run", QUICK, "--out", str(out), "--no-progress"]) == 0
  return out


def test_run_writes_every_promised_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {
    "config.json",
    "env.json",
    "results.csv",
    "history.csv",
    "summary.json",
    "report.html",
  } <= names
  assert len([n for n in names if n.endswith(".png")]) == 4
  html = (finished_run / "report.html").read_text()
  assert html.count("data:image/png;base64,") == 4
  assert json.loads((finished_run / "config.json").read_text())["steps"] == 200


def test_every_optimizer_reduces_the_loss(finished_run):
  """A real claim at this scale: each optimizer's best run ends below half the initial loss."""
  table = read_csv(finished_run / "results.csv")
  history = read_csv(finished_run / "history.csv")
  config = load_config(QUICK)
  grid = [r for r in table if r["phase"] == "selection"]
  seeds = {r["member"]: r["seed"] for r in grid}
  every_point = sum(len(grid.learning_rate) for grid in config.optimizers.values())
  assert len(grid) == every_point * len(config.seeds)  # every grid point, every seed
  assert len(table) - len(grid) == 2 * len(config.evaluation_seeds)  # the two winners again
  assert len({r["optimizer"] for r in table}) == 9
  initial = {}  # seed -> the initial losses of its members
  for r in history:
    if r["metric"] == "train_loss" and r["step"] == 0 and r["member"] in seeds:
      initial.setdefault(seeds[r["member"]], set()).add(r["value"])
  assert all(len(values) == 1 for values in initial.values()), "one initialization per seed"
  assert len({values.pop() for values in initial.values()}) == len(config.seeds)
  summary = json.loads((finished_run / "summary.json").read_text())
  start = max(r["value"] for r in history if r["metric"] == "train_loss" and r["step"] == 0)
  for name, loss in summary["final_loss_by_optimizer"].items():
    assert loss < 0.5 * start, name
  assert summary["best_optimizer"] in summary["final_loss_by_optimizer"]


THREE_OPTIMIZERS = f"""
from jaxopt_study.config import load_config


def get_config():
  config = load_config({QUICK!r})
  config.unlock()
  for name in list(config.optimizers.keys())[3:]:
    del config.optimizers[name]
  config.lock()
  return config
"""


def test_resume_after_an_interruption_gives_the_same_numbers(tmp_path, monkeypatch):
  """A config kept outside the repository finds experiments/ through the working directory."""
  monkeypatch.chdir(ROOT)
  config = tmp_path / "three.py"
  config.write_text(THREE_OPTIMIZERS)
  out = tmp_path / "resumed"
  assert cli.main(["run", str(config), "--out", str(out), *SMALL]) == 0
  reference = read_csv(out / "results.csv")
  loaded = load_config(config)
  grids = loaded.optimizers.values()
  every_point = sum(len(grid.learning_rate) for grid in grids)
  grid = [r for r in reference if r["phase"] == "selection"]
  assert len(grid) == every_point * len(loaded.seeds) > len(grids)
  # sgd, momentum and nesterov: no adaptive-rate method, so one winner runs again
  assert len(reference) - len(grid) == len(loaded.evaluation_seeds)
  members = sorted((out / ".members").glob("*.json"))
  for member in members[1:]:  # as if the run had been stopped after the first optimizer
    member.unlink()
  (out / "results.csv").unlink()
  assert cli.main(["run", str(config), "--out", str(out), *SMALL]) == 0
  ours = read_csv(out / "results.csv")
  assert [r["member"] for r in ours] == [r["member"] for r in reference]
  np.testing.assert_allclose(
    [r["final_train_loss"] for r in ours], [r["final_train_loss"] for r in reference], rtol=1e-6
  )


def test_a_different_config_in_the_same_folder_is_refused(finished_run, capsys):
  code = cli.main(["run", QUICK, "--out", str(finished_run), "--set", "steps=61", "--no-progress"])
  assert code == 2
  assert "steps" in capsys.readouterr().err


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("model.widht=3", "model.widht"),
    ("optimizers.adam.learning_rate=[-1.0]", "learning_rate"),
    ("batch_size=0", "batch_size"),
    ("model.activation='swishy'", "swishy"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  code = cli.main(["run", QUICK, "--out", str(tmp_path / "x"), "--set", override])
  assert code == 2
  assert culprit in capsys.readouterr().err
  assert not (tmp_path / "x").exists(), "nothing is written for a refused config"


def test_help_lists_the_commands():
  help_text = subprocess.run(
    [sys.executable, "-m", "jaxopt_study.cli", "--help"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  assert "run" in help_text


def test_saved_parameters_reproduce_the_recorded_final_loss(finished_run):
  from jaxopt_study import data, losses, models, results

  config = json.loads((finished_run / "config.json").read_text())
  options = {k: v for k, v in config["model"].items() if k != "name"}
  model = models.functional(models.build_model("mlp", 64, 10, seed=0, **options))  # the shapes
  digits = data.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  for row in read_csv(finished_run / "results.csv")[::7]:
    params, state = results.load_member_state(
      finished_run / "params.npz", row["member"], model.params, model.model_state
    )
    logits, _ = model.apply(params, state, digits.x_train, True)
    loss = float(losses.softmax_cross_entropy(logits, digits.y_train))
    assert loss == pytest.approx(row["final_train_loss"], rel=1e-5), row["member"]
