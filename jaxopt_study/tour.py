"""`jaxopt-study tour`: every experiment of the repository in one run and one report.

The tour runs the experiments of `registry.CHAPTER_ORDER` (then any other `NAME_quick.py` the
configs folder holds) with their configs (`configs/NAME_quick.py`, or `configs/NAME.py` with
`full=True`), each in its own folder `OUT/NAME` with `experiment.execute` (so a tour
started again with the same `--out` resumes), classifies the Hessian of the best network of the
optimizer comparison, and writes `OUT/report.html`: chapter 8's sections in the book's order, each
experiment with its plots and its claims beside the published values. An experiment that fails
does not stop the tour: its section shows the error, and the tour reports the failure at the end.
"""

import re
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from jaxopt_study import experiment, registry, report, results
from jaxopt_study.config import ConfigError

# Chapter 8 of Goodfellow, Bengio & Courville, Deep Learning (2016), in the book's order.
CHAPTER = (
  ("8.1", "How learning differs from pure optimization"),
  ("8.2", "Challenges in neural network optimization"),
  ("8.3", "Basic algorithms"),
  ("8.4", "Parameter initialization strategies"),
  ("8.5", "Algorithms with adaptive learning rates"),
  ("8.6", "Approximate second-order methods"),
  ("8.7", "Optimization strategies and meta-algorithms"),
)
UNPLACED = ("lectures", "Beyond the chapter")

# The run whose best network the tour classifies (a digits MLP, saved in params.npz).
CLASSIFIED = "optimizers"


class Outcome(NamedTuple):
  """One experiment of the tour: what ran, where, what it claimed or how it failed."""

  name: str
  config_path: Path
  out: Path
  title: str
  section: str
  description: str
  published: dict[str, str]
  summary: dict[str, Any]
  figures: list[Path]
  seconds: float
  error: str | None


class Tour(NamedTuple):
  report: Path
  outcomes: list[Outcome]
  seconds: float

  @property
  def failed(self) -> list[str]:
    return [o.name for o in self.outcomes if o.error is not None]


def default_configs() -> Path:
  """The repository's `configs/` (`registry.folder`: where it is looked for, in which order)."""
  return registry.folder("configs")


def find_configs(configs: Path, *, full: bool = False, only: Sequence[str] | None = None) -> dict:
  """Experiment name -> its config: every `NAME_quick.py` in `configs`, or `NAME.py` if `full`.

  Raises:
    ConfigError: `configs` holds no quick config, or `only` names an experiment it lacks.
  """
  found = {p.name.removesuffix("_quick.py"): p for p in sorted(Path(configs).glob("*_quick.py"))}
  order = [n for n in registry.CHAPTER_ORDER if n in found] + sorted(
    set(found).difference(registry.CHAPTER_ORDER)
  )
  quick = {name: found[name] for name in order}
  if not quick:
    raise ConfigError(f"{configs}: no *_quick.py configs to tour")
  if only:
    unknown = [name for name in only if name not in quick]
    if unknown:
      raise ConfigError(
        f"--only {','.join(unknown)}: no such experiment; known: {', '.join(quick)}"
      )
    quick = {name: quick[name] for name in only}
  if not full:
    return quick
  chosen = {name: path.with_name(f"{name}.py") for name, path in quick.items()}
  missing = [str(path) for path in chosen.values() if not path.is_file()]
  if missing:
    raise ConfigError(f"--full: missing full configs {', '.join(missing)}")
  return chosen


def section_key(section: str) -> tuple:
  """Sort key of a section label such as "8.2.1"; labels that are not numbers come last."""
  if re.fullmatch(r"\d+(\.\d+)*", section):
    return (0, *map(int, section.split(".")))
  return (1, section)


def run(
  out: Path,
  *,
  configs: Path | None = None,
  full: bool = False,
  only: Sequence[str] | None = None,
  progress: bool = True,
  log: Callable[[str], None] = print,
) -> Tour:
  """Runs every experiment found in `configs` into `out/NAME` and writes `out/report.html`.

  One tour writes into `out` at a time (`results.writer_lock`); its experiments' folders lock
  themselves as runs do.

  Raises:
    ConfigError: see `find_configs`; `out` is a file, or a folder that holds something other
      than a tour's experiment folders and report (a run's folder, whose report the tour would
      replace); raised before anything runs.
    results.RunDirBusyError: another tour is writing into `out`.
  """
  chosen = find_configs(configs or default_configs(), full=full, only=only)
  out = Path(out)
  _check_out(out, chosen)
  with results.writer_lock(out):
    start = time.perf_counter()
    outcomes = []
    for number, (name, config_path) in enumerate(chosen.items(), 1):
      log(f"[{number}/{len(chosen)}] {name} ({config_path.name})")
      outcome = _run_one(name, config_path, out / name, progress)
      outcomes.append(outcome)
      status = "FAILED: " + outcome.error.splitlines()[-1] if outcome.error else "done"
      log(f"[{number}/{len(chosen)}] {name}: {status} in {outcome.seconds:.0f} s")
    verdict = _classify(out / CLASSIFIED, outcomes, log)
    outcomes.sort(key=lambda o: section_key(o.section))
    seconds = time.perf_counter() - start
    path = report.write_tour_report(
      out / "report.html",
      chapter=[*CHAPTER, UNPLACED],
      experiments=[_report_entry(o, out, verdict) for o in outcomes],
      seconds=seconds,
      full=full,
    )
  return Tour(path, outcomes, seconds)


def _check_out(out: Path, chosen: dict[str, Path]) -> None:
  """Refuses an `out` that is a file, or a folder holding anything but a tour's own entries (its
  experiments' folders, report.html, the lock): a run's folder lost its report.html to the tour."""
  if out.exists() and not out.is_dir():
    raise ConfigError(f"--out {out} is a file: a tour writes a folder")
  if not out.is_dir():
    return
  own = {*registry.CHAPTER_ORDER, *chosen, "report.html", ".lock"}
  if foreign := sorted(p.name for p in out.iterdir() if p.name not in own):
    raise ConfigError(
      f"--out {out} holds {results.first_names(foreign)}, which is not a tour's (a run's "
      "folder?): choose another --out, or an empty folder"
    )


def _run_one(name: str, config_path: Path, out: Path, progress: bool) -> Outcome:
  start = time.perf_counter()
  found = None
  try:
    prepared = experiment.prepare(config_path)
    found = prepared.experiment
    finished = experiment.execute(prepared, out, progress=progress)
    summary, figures, error = finished.summary, finished.figures, None
  except Exception:  # noqa: BLE001  (any failure becomes the experiment's section, not the tour's)
    summary, figures, error = {}, [], traceback.format_exc(limit=-8)
  return Outcome(
    name=name,
    config_path=config_path,
    out=out,
    title=getattr(found, "TITLE", name),
    section=str(getattr(found, "SECTION", UNPLACED[0])),
    description=getattr(found, "DESCRIPTION", ""),
    published=dict(getattr(found, "PUBLISHED", {})),
    summary=summary,
    figures=figures,
    seconds=time.perf_counter() - start,
    error=error,
  )


def _classify(run_dir: Path, outcomes: list[Outcome], log: Callable[[str], None]) -> dict | None:
  """The Hessian verdict (`analyze.spectrum_of_run`, exact) of the optimizer comparison's best
  member, if that experiment ran; None otherwise. Its failure is logged, not raised."""
  if not any(o.name == CLASSIFIED and o.error is None for o in outcomes):
    return None
  from jaxopt_study import analyze  # the Hessian code is imported only when it is needed

  try:
    verdict = analyze.spectrum_of_run(run_dir, method="exact")
  except Exception as error:  # noqa: BLE001  (the tour goes on without the classification)
    log(f"Hessian classification of {run_dir} failed: {error}")
    return {"error": f"{type(error).__name__}: {error}"}
  log(f"Hessian of the best {CLASSIFIED} network: {verdict['kind']} (index {verdict['index']})")
  return verdict


def _report_entry(outcome: Outcome, out: Path, verdict: dict | None) -> dict[str, Any]:
  figures = list(outcome.figures)
  extra = None
  if outcome.name == CLASSIFIED and verdict is not None:
    extra = {"title": "Hessian at the end of training (best member, exact spectrum)", **verdict}
    spectrum_png = outcome.out / "spectrum-exact.png"
    if spectrum_png.is_file():
      figures.append(spectrum_png)
  return {
    "name": outcome.name,
    "title": outcome.title,
    "section": outcome.section,
    "description": outcome.description,
    "config": str(outcome.config_path.relative_to(outcome.config_path.parents[1])),
    "folder": outcome.out.relative_to(out).as_posix(),
    "seconds": outcome.seconds,
    "claims": report.claim_rows(outcome.summary, outcome.published, "claim", "ours"),
    "figures": figures,
    "error": outcome.error,
    "hessian": extra,
  }
