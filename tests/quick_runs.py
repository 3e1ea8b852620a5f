"""Running an experiment's quick config through the CLI once per test module, and reading it."""

import json
from pathlib import Path

import pytest

from jaxopt_study import cli
from jaxopt_study.config import load_config
from jaxopt_study.results import read_csv

CONFIGS = Path(__file__).parents[1] / "configs"


def run_quick(tmp_path_factory, name: str) -> Path:
  """Runs `configs/NAME_quick.py` with `jaxopt-study run` into a fresh folder; returns it."""
  out = tmp_path_factory.mktemp(name)
  assert (
    cli.main(["run", str(CONFIGS / f"{name}_quick.py"), "--out", str(out), "--no-progress"]) == 0
  )
  return out


def read_summary(out: Path) -> dict:
  return json.loads((out / "summary.json").read_text())


def refused_field(tmp_path: Path, capsys, name: str, field: str, value: str) -> str:
  """The error of `jaxopt-study run` with `--set field=value` on the quick config (exit code 2)."""
  config = CONFIGS / f"{name}_quick.py"
  assert cli.main(["run", str(config), "--out", str(tmp_path), "--set", f"{field}={value}"]) == 2
  return capsys.readouterr().err


def quick_run_fixtures(name: str):
  """Module-scoped fixtures `finished_run` (the quick config's output folder) and `summary`.

  Use as ``finished_run, summary = quick_run_fixtures(NAME)`` at a test module's top level.
  """

  @pytest.fixture(scope="module")
  def finished_run(tmp_path_factory) -> Path:
    return run_quick(tmp_path_factory, name)

  @pytest.fixture(scope="module")
  def summary(finished_run) -> dict:
    return read_summary(finished_run)

  return finished_run, summary


def quick_config_and_table_fixtures(name: str):
  """Module-scoped fixtures `config` (the quick config, loaded) and `table` (the finished run's
  `results.csv` rows; needs `quick_run_fixtures`'s `finished_run`).

  Use as ``config, table = quick_config_and_table_fixtures(NAME)`` at a test module's top level.
  """

  @pytest.fixture(scope="module")
  def config():
    return load_config(CONFIGS / f"{name}_quick.py")

  @pytest.fixture(scope="module")
  def table(finished_run) -> list[dict]:
    return read_csv(finished_run / "results.csv")

  return config, table
