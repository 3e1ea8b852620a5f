"""One experiment run end to end: config -> `experiments/NAME.py` -> files in its run folder.

Shared by `jaxopt-study run` (one config) and `jaxopt-study tour` (every quick config). An
experiment module exposes `TITLE`, `DESCRIPTION`, `check(config)`, `run(config, run_dir,
progress) -> ExperimentResults` and `plot(out_dir) -> [png paths]`; the tour also reads `SECTION`
(its place in chapter 8) and `PUBLISHED` (claim name -> the published value) when present.
"""

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import ml_collections

from jaxopt_study import own_problem, report
from jaxopt_study.config import ConfigError, apply_overrides, load_config
from jaxopt_study.results import RunDir


class Prepared(NamedTuple):
  """A checked config and its experiment module, before anything has run."""

  config: ml_collections.ConfigDict
  module: ModuleType


class Finished(NamedTuple):
  """What an experiment wrote: its claims, its figures and how long it took."""

  summary: dict[str, Any]
  figures: list[Path]
  num_rows: int
  seconds: float
  resumed_members: int


def prepare(config_path: Path, overrides: Sequence[str] = ()) -> Prepared:
  """Loads the config, applies `--set` overrides, finds its experiment and checks the config.

  Raises:
    ConfigError, ValueError: naming the field that cannot run, before anything compiles.
  """
  config = apply_overrides(load_config(config_path), list(overrides))
  module = find_module(config_path, config)
  module.check(config)
  return Prepared(config, module)


def execute(
  prepared: Prepared, out: Path, *, progress: bool = True, write: bool = True
) -> Finished:
  """Runs the experiment in `out` (resuming what a previous run of it finished) and writes
  results.csv, history.csv, summary.json, params.npz (when the experiment returns arrays), its
  plots and report.html. With `write=False` (processes other than 0 of a `jax.distributed` run)
  it computes and writes nothing.

  Raises:
    ValueError: `out` holds a run of a different config.
  """
  config, module = prepared
  run_dir = RunDir(out, config.to_dict())
  done = run_dir.open(write=write)
  start = time.perf_counter()
  results = module.run(config, run_dir, progress=progress)
  if not write:
    return Finished(results.summary, [], len(results.table), time.perf_counter() - start, done)
  run_dir.write_tables(results.table, results.history)
  run_dir.write_summary(results.summary)
  if results.arrays:
    run_dir.write_params(results.arrays)
  figures = module.plot(out)
  report.write_report(
    out / "report.html",
    title=module.TITLE,
    description=module.DESCRIPTION,
    config=config.to_dict(),
    summary=results.summary,
    table=results.table,
    figures=figures,
  )
  return Finished(results.summary, figures, len(results.table), time.perf_counter() - start, done)


def find_module(config_path: Path, config: ml_collections.ConfigDict) -> ModuleType:
  """Loads `experiments/NAME.py` (NAME = config.experiment); without an `experiment` field, the
  sweep of the config's own problem (`own_problem`).

  It is looked for beside the config's folder and its ancestors (the repository that holds the
  config), then in the working directory, then in the checkout this package runs from, so a
  config copied anywhere runs.
  """
  if "experiment" not in config:
    return own_problem
  file_name = f"{config.experiment}.py"
  checkout = Path(__file__).resolve().parents[1]
  folders = [*Path(config_path).resolve().parents, Path.cwd(), checkout]
  for folder in folders:
    path = folder / "experiments" / file_name
    if path.is_file():
      spec = importlib.util.spec_from_file_location(f"jaxopt_study_experiment_{path.stem}", path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      return module
  raise ConfigError(
    f"experiment={config.experiment!r}: no experiments/{file_name} above {config_path}, "
    f"in {Path.cwd()} or in {checkout}"
  )
