"""Running an experiment's quick config through the CLI, for the §8.2 experiment tests."""

import json
import sys
from pathlib import Path
from types import ModuleType

import ml_collections

from jaxopt_study import cli, registry
from jaxopt_study.results import read_csv

ROOT = Path(__file__).parents[1]
PROMISED = {"config.json", "env.json", "results.csv", "history.csv", "summary.json", "report.html"}


def quick_config(name: str) -> str:
  return str(ROOT / "configs" / f"{name}_quick.py")


def run_quick(name: str, out: Path) -> Path:
  """`jaxopt-study run configs/NAME_quick.py --out OUT`; checks the promised files exist."""
  assert cli.main(["run", quick_config(name), "--out", str(out), "--no-progress"]) == 0
  names = {p.name for p in out.iterdir()}
  assert PROMISED <= names, PROMISED - names
  pngs = [n for n in names if n.endswith(".png")]
  assert pngs, "at least one figure"
  assert (out / "report.html").read_text().count("data:image/png;base64,") == len(pngs)
  return out


def summary(out: Path) -> dict:
  return json.loads((out / "summary.json").read_text())


def run_config(out: Path) -> ml_collections.ConfigDict:
  """The resolved config the run wrote to config.json."""
  return ml_collections.ConfigDict(json.loads((out / "config.json").read_text()))


def history(out: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
  """history.csv as member -> metric -> [(step, value), ...]."""
  curves: dict = {}
  for row in read_csv(out / "history.csv"):
    curves.setdefault(row["member"], {}).setdefault(row["metric"], []).append(
      (row["step"], row["value"])
    )
  return curves


def assert_refused(name: str, override: str, culprit: str, tmp_path: Path, capsys) -> None:
  """A bad `--set` value exits with 2, names the field, and writes nothing."""
  out = tmp_path / "refused"
  code = cli.main(["run", quick_config(name), "--out", str(out), "--set", override])
  assert code == 2
  assert culprit in capsys.readouterr().err
  assert not out.exists(), "nothing is written for a refused config"


def load_experiment(name: str) -> ModuleType:
  """The module of experiments/NAME.py, found by the registry as the CLI finds it (for tests of
  the experiment's own functions; `registry.load(name)` is the experiment itself)."""
  return sys.modules[type(registry.load(name)).__module__]
