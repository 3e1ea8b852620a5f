"""A run's output folder: resolved config, environment, result tables, and resumable progress.

`jaxopt-study run CONFIG --out DIR` writes `config.json`, `env.json`, `results.csv` (one row per
member), `history.csv` (long format: member, step, metric, value), the plots and `report.html`.
Every file is written atomically (a temporary file renamed into place), so an interrupted run never
leaves a half-written file. Finished work units ("members") are kept in `DIR/.members/`; a run
started again with the same DIR and the same config skips them and ends with the same numbers.
"""

import csv
import io
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np


def write_atomic(path: Path, text: str) -> None:
  """Writes `text` to `path` through a temporary file in the same folder and a rename."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", newline="") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
  """Writes dict rows as CSV (columns in first-seen order), atomically."""
  columns: list[str] = []
  for row in rows:
    columns.extend(k for k in row if k not in columns)
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
  writer.writeheader()
  writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
  write_atomic(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, Any]]:
  """Reads a CSV written by `write_csv`; numeric cells come back as floats."""
  with open(path, newline="") as f:
    return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def history_rows(member: str, history: dict[str, np.ndarray]) -> list[dict[str, Any]]:
  """Long-format rows (member, step, metric, value) of one member's `TrainResult.history`."""
  steps = np.asarray(history["step"])
  return [
    {"member": member, "step": int(step), "metric": name, "value": float(value)}
    for name, values in history.items()
    if name != "step"
    for step, value in zip(steps, np.asarray(values), strict=True)
  ]


def environment() -> dict[str, Any]:
  """Versions of the numerical stack, the devices, and the git commit of the checkout."""
  import flax
  import optax

  try:
    commit = subprocess.run(
      ["git", "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      check=True,
      cwd=Path(__file__).parent,
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = None
  return {
    "python": platform.python_version(),
    "jax": jax.__version__,
    "optax": optax.__version__,
    "flax": flax.__version__,
    "numpy": np.__version__,
    "devices": [str(d) for d in jax.devices()],
    "platform": platform.platform(),
    "git_commit": commit,
  }


class RunDir:
  """The output folder of one run, with its per-member progress for resuming."""

  def __init__(self, path: str | Path, config: dict[str, Any]):
    self.path = Path(path)
    self.config = json.loads(json.dumps(config))  # tuples become lists, as read back
    self._members = self.path / ".members"

  def open(self) -> int:
    """Creates the folder or checks that it holds this same config; returns members already done.

    Raises:
      ValueError: DIR holds a run of a different config (resuming it would mix two runs).
    """
    config_file = self.path / "config.json"
    if config_file.exists():
      previous = json.loads(config_file.read_text())
      if previous != self.config:
        changed = sorted(_differences(previous, self.config))
        raise ValueError(
          f"{self.path} holds a run of a different config (fields {', '.join(changed)} "
          "differ): choose another --out, or delete the folder to start again"
        )
    else:
      self.path.mkdir(parents=True, exist_ok=True)
      write_atomic(config_file, json.dumps(self.config, indent=2, sort_keys=True) + "\n")
    write_atomic(self.path / "env.json", json.dumps(environment(), indent=2) + "\n")
    return len(list(self._members.glob("*.json"))) if self._members.exists() else 0

  def load_member(self, name: str) -> dict[str, Any] | None:
    """The saved result of member `name`, or None if it has not finished."""
    path = self._members / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None

  def save_member(self, name: str, result: dict[str, Any]) -> None:
    """Saves a finished member's JSON-serializable result."""
    write_atomic(self._members / f"{name}.json", json.dumps(result))

  def write_tables(
    self, table: Sequence[dict[str, Any]], history: Iterable[dict[str, Any]]
  ) -> None:
    write_csv(self.path / "results.csv", table)
    write_csv(self.path / "history.csv", list(history))

  def write_summary(self, summary: dict[str, Any]) -> None:
    write_atomic(self.path / "summary.json", json.dumps(summary, indent=2) + "\n")


def _differences(a: dict, b: dict, prefix: str = "") -> Iterable[str]:
  for key in set(a) | set(b):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      yield from _differences(va, vb, f"{prefix}{key}.")
    elif va != vb:
      yield f"{prefix}{key}"


def _csv_cell(value: Any) -> Any:
  """Floats in full precision (`repr`), so a table read back equals the numbers computed."""
  return repr(float(value)) if isinstance(value, float | np.floating) else value


def _parse_cell(text: str) -> Any:
  try:
    return float(text)
  except ValueError:
    return text


class ExperimentResults(NamedTuple):
  """What an experiment's `run(config)` returns: rows, long-format history, named claims."""

  table: list[dict[str, Any]]
  history: list[dict[str, Any]]
  summary: dict[str, Any]
