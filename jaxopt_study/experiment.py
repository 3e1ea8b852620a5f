"""The skeleton of every experiment, and one experiment run end to end.

Anchor: kfac-jax's `SupervisedExperiment`, where a subclass states only what differs. Here an
experiment (`experiments/NAME.py`, one `Experiment` subclass, listed in chapter order in
`registry.py`) states

* metadata: `TITLE`, `SECTION` (its place in chapter 8), `DESCRIPTION`, `PUBLISHED` (claim name ->
  the published value) and `FIELDS` (config field -> a `validate` rule);
* what to run: `run(config, members, progress) -> Results` (table rows, history rows, arrays);
  work kept with `members.get(name, compute)` is resumed by a later run in the same folder;
* how to summarize: `summarize(config, results) -> claims` (the `summary.json` the tour shows);
* how to judge: `CRITERIA` (claim name -> `Criterion`, a comparison in code: `above`, `below`,
  `all_of` for a claim of several parts),
  whose verdicts — reproduced, not reproduced, inconclusive — `summary.json` keeps under
  `verdicts` and the reports print beside the published values (STYLE rule 20);
* which figures: `plot(out_dir) -> [png paths]`, drawn from the files written.

`execute` does the rest, the same for all: check -> resume -> run -> write files -> report. Used by
`jaxopt-study run` (one config) and `jaxopt-study tour` (every quick config).
"""

import contextlib
import hashlib
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import ml_collections
import numpy as np
import scipy.stats

from jaxopt_study import report, validate
from jaxopt_study.config import apply_overrides, load_config
from jaxopt_study.results import RunDir, load_or_compute
from jaxopt_study.sweep import runner

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS_KEY = "verdicts"
TIE_RTOL = 1e-6  # a value within its margin · (1 + TIE_RTOL) of its threshold is undecided
CONFIDENCE = 0.975  # one side of a 95% two-sided interval: the margin is t_{0.975, dof} errors
MIN_DOF_WITHOUT_SPREAD = 5  # a standard error of 0 decides only when 6 values or more agree
# an error at most this fraction of its value is no spread: the same quantized outcome (a count
# out of n) from every seed, differing only in float32 rounding
SPREAD_RTOL = 1e-5

Criterion = Callable[[Mapping[str, Any]], "bool | None"]


def _lookup(summary: Mapping[str, Any], path: str) -> Any:
  value: Any = summary
  for part in path.split("."):
    if not isinstance(value, Mapping) or part not in value:
      raise KeyError(f"criterion: the summary has no {path!r} (missing {part!r})")
    value = value[part]
  return value


def _compare(
  path: str,
  threshold: float,
  *,
  sign: float,
  standard_error: str | None = None,
  dof: str | float | None = None,
  ratio: bool = False,
  unless: str | None = None,
  only: str | tuple[str, ...] | None = None,
) -> Criterion:
  if standard_error is not None:
    dof = _dof_path(standard_error) if dof is None else dof
  if ratio and not threshold > 0:
    raise ValueError(f"criterion {path!r}: ratio=True needs a threshold > 0, got {threshold!r}")

  def settings(summary: Mapping[str, Any]) -> list[tuple[Any, Any, Any, Any]]:
    """(value, error, dof, flag) of each setting judged: one per key of a dict of values (those
    starting with `only`), or the one value."""
    value = _lookup(summary, path)
    errors = _lookup(summary, standard_error) if standard_error else None
    dofs = _lookup(summary, dof) if isinstance(dof, str) else dof
    flags = _lookup(summary, unless) if unless else None
    if not isinstance(value, Mapping):
      if only is not None:
        raise TypeError(
          f"criterion {path!r}: only={only!r} picks settings of a dict of values, but the "
          f"summary's {path!r} is one value ({value!r})"
        )
      return [(value, errors, dofs, flags)]
    return [
      (v, _setting(errors, k), _setting(dofs, k), _setting(flags, k))
      for k, v in value.items()
      if only is None or k.startswith(only)
    ]

  def tests(summary: Mapping[str, Any]) -> int:
    """How many settings are tested (can decide): Bonferroni's count."""
    return sum(testable(*one) for one in settings(summary))

  def judge(summary: Mapping[str, Any], chances: int | None = None) -> bool | None:
    """All settings must hold (per η, per depth); one failing beyond the margin corrected for
    `chances` (default: this claim's tested settings) fails the claim."""
    found = settings(summary)
    if not found:
      return None
    count = max(1, sum(testable(*one) for one in found) if chances is None else chances)
    judged = [judge_one(*one, count) for one in found]
    if any(j is False for j in judged):
      return False
    return None if any(j is None for j in judged) else True

  def testable(value: Any, error: Any, dof: Any, flagged: Any) -> bool:
    if flagged or value is None or not np.isfinite(value) or (ratio and not value > 0):
      return False
    if standard_error is None:  # decided on the bare value
      return True
    if error is None or not np.isfinite(error) or dof is None or not dof >= 1:
      return False  # no error bar where one is asked for: cannot decide
    # every value agreed (a quantized outcome): a sign test needs 6 or more
    return not (no_spread(error, value) and dof < MIN_DOF_WITHOUT_SPREAD)

  def judge_one(value: Any, error: Any, dof: Any, flagged: Any, count: int) -> bool | None:
    if not testable(value, error, dof, flagged):
      return None
    distance = sign * (math.log(value / threshold) if ratio else float(value) - threshold)
    if standard_error is not None:
      # a tie at the margin stays a tie when float32 rounding moves either side (0-1 errors are
      # counts over n: a mean exactly at the margin happens)
      spread = float(error) / float(value) if ratio else float(error)
      needed = margin(dof) if distance > 0 else margin(dof, count)
      if abs(distance) <= needed * spread * (1 + TIE_RTOL):
        return None
    return distance > 0

  judge.tests = tests  # type: ignore[attr-defined]  # for `all_of`'s count
  return judge


def no_spread(error: float, value: float) -> bool:
  """Whether a standard error says the values agreed: 0, or at most `SPREAD_RTOL` of their mean
  (test errors of k/n stored in float32, the same k − k' from every seed, differ by ~1e-9)."""
  return float(error) <= SPREAD_RTOL * abs(float(value))


def margin(dof: float, settings: int = 1) -> float:
  """t_{0.975, dof}: the standard errors a mean must lie from its threshold, the half-width of a
  95% interval of a mean of dof + 1 values (Student 1908): 12.7 for 2 seeds, 4.30 for 3, 2.78 for
  5, 1.96 as dof → ∞.

  With `settings` > 1, t_{1 − 0.025/settings, dof}, Bonferroni's margin: a claim of several
  settings (one value per rate, per depth) fails when any one setting fails, so that each
  failure is judged at 2.5%/settings keeps the chance of failing a true claim at 2.5%, as for one
  setting (one side of a 95% interval). A claim holds only when every setting holds, each at
  that level, which needs no correction (the intersection-union test, Berger 1982)."""
  return float(scipy.stats.t.ppf(1 - (1 - CONFIDENCE) / settings, dof))


def _dof_path(standard_error: str) -> str:
  """The summary path of a standard error's degrees of freedom: its key with `_se` replaced by
  `_dof` ("gain_se" -> "gain_dof", "gap_se.l2" -> "gap_dof.l2")."""
  key, _, rest = standard_error.partition(".")
  if not key.endswith("_se"):
    raise ValueError(
      f"criterion: standard_error={standard_error!r} does not end in _se, so its degrees of "
      "freedom cannot be found beside it: pass dof= (a summary path or a number)"
    )
  return key.removesuffix("_se") + "_dof" + (f".{rest}" if rest else "")


def _setting(values: Any, key: str) -> Any:
  """A per-setting entry of `values` (a dict like the claim's), or `values` itself for one value
  shared by every setting."""
  return values[key] if isinstance(values, Mapping) else values


def above(
  path: str,
  threshold: float,
  *,
  standard_error: str | None = None,
  dof: str | float | None = None,
  ratio: bool = False,
  unless: str | None = None,
  only: str | tuple[str, ...] | None = None,
) -> Criterion:
  """The claim holds when the summary's value at `path` ("key" or "key.sub") is > `threshold`
  (every value, for a dict of values; with `only`, every value whose setting's key starts with
  it, or with one of a tuple of prefixes: a claim about some of the settings; a config without
  such settings leaves it inconclusive, and `only` on a single value is a TypeError).

  With `standard_error` (the summary's path of the value's standard error) it is inconclusive
  within `margin(dof)` standard errors of the threshold, a 95% interval that widens as seeds get
  fewer (12.7 errors for 2 seeds, not 2), and when the error or `dof` is missing or not finite,
  `dof` < 1, or the error is 0 (`no_spread`: up to float32 rounding) with `dof` <
  `MIN_DOF_WITHOUT_SPREAD` (every seed gave the same quantized value, which a sign test could
  not tell from chance). `dof` is the summary's path of the degrees of freedom (default: beside
  the error, "x_se" -> "x_dof") or a number.
  `ratio=True` judges a ratio of positive quantities on the log scale, as its delta-method error
  (ratio · the error of the log ratio, `verdicts.paired_ratio`) was made: |log(value/threshold)|
  against margin · error / value. A dict of values (one per setting) fails when one fails
  beyond `margin(dof, k)` errors, the margin corrected for its k settings that can decide (not
  flagged, with a value and an error; with `all_of`, those of every part).

  Also inconclusive: a value that is not finite, an empty dict, or a true flag at `unless` (e.g.
  a best learning rate at its grid's edge: the measurement does not bracket its optimum; a dict
  of flags goes with a dict of values, setting by setting)."""
  return _compare(
    path,
    threshold,
    sign=1.0,
    standard_error=standard_error,
    dof=dof,
    ratio=ratio,
    unless=unless,
    only=only,
  )


def below(path: str, threshold: float, **options: Any) -> Criterion:
  """As `above`, with the same options, for a value < `threshold`."""
  return _compare(path, threshold, sign=-1.0, **options)


def all_of(*criteria: Criterion) -> Criterion:
  """A criterion for a claim of several parts (e.g. "≪ 1 and falling with depth"): it holds when
  every part holds, fails when any part fails, and cannot decide otherwise (the rule of `above`
  for a dict of per-setting values, with Bonferroni's count over the settings of every part)."""
  if not criteria or not all(callable(c) for c in criteria):
    raise TypeError(f"all_of: criteria must be one or more criteria, got {criteria!r}")

  def tests(summary: Mapping[str, Any]) -> int:
    return sum(c.tests(summary) if hasattr(c, "tests") else 1 for c in criteria)

  def judge(summary: Mapping[str, Any], chances: int | None = None) -> bool | None:
    count = tests(summary) if chances is None else chances
    judged = [c(summary, count) if hasattr(c, "tests") else c(summary) for c in criteria]
    if any(j is not None and not j for j in judged):
      return False
    return None if any(j is None for j in judged) else True

  judge.tests = tests  # type: ignore[attr-defined]
  return judge


def verdict(holds: bool | None) -> str:
  """The verdict of a criterion that holds (True), fails (False) or cannot decide (None)."""
  if holds is None:
    return INCONCLUSIVE
  return REPRODUCED if bool(holds) else NOT_REPRODUCED


class Results(NamedTuple):
  """What `Experiment.run` returns: `results.csv` rows, `history.csv` rows (member, step, metric,
  value) and arrays for `params.npz` (none when empty)."""

  table: list[dict[str, Any]]
  history: list[dict[str, Any]]
  arrays: dict[str, np.ndarray] = {}


class Members:
  """Resumable units of work: `get(name, compute)` returns the (record, arrays) an earlier run in
  the same folder saved, or computes them with `compute()` and saves them. Without a folder
  (`run_dir=None`: a test, a notebook) it only computes."""

  def __init__(self, run_dir: RunDir | None):
    self.run_dir = run_dir

  @property
  def path(self) -> Path | None:
    """The run folder, for work that resumes by itself (a sweep's checkpoints)."""
    return None if self.run_dir is None else self.run_dir.path

  def get(
    self, name: str, compute: Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]]
  ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return load_or_compute(self.run_dir, name, compute)


class Experiment:
  """One experiment of the tour; see the module docstring for what a subclass states."""

  NAME: ClassVar[str] = ""
  TITLE: ClassVar[str] = ""
  SECTION: ClassVar[str] = ""
  DESCRIPTION: ClassVar[str] = ""
  PUBLISHED: ClassVar[Mapping[str, str]] = {}
  CRITERIA: ClassVar[Mapping[str, Criterion]] = {}
  FIELDS: ClassVar[Mapping[str, validate.Rule]] = {}
  # fields a config may leave out and `--set` may then add (`config.apply_overrides`)
  OPTIONAL_FIELDS: ClassVar[tuple[str, ...]] = ()

  def check(self, config: ml_collections.ConfigDict) -> None:
    """Refuses a config that cannot run, naming the field, before data is loaded or anything
    compiles: every `FIELDS` rule, then `check_more`."""
    validate.require_fields(config, self.NAME, self.FIELDS)
    self.check_more(config)

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """What `FIELDS` cannot say (a relation between fields, a model that must build)."""

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    raise NotImplementedError

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict[str, Any]:
    raise NotImplementedError

  def plot(self, out_dir: Path) -> list[Path]:
    raise NotImplementedError

  def verdicts(self, summary: Mapping[str, Any]) -> dict[str, str]:
    """claim -> reproduced / not reproduced / inconclusive, by `CRITERIA` on the summary."""
    return {claim: verdict(criterion(summary)) for claim, criterion in self.CRITERIA.items()}

  def results(
    self, config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = False
  ) -> tuple[Results, dict[str, Any]]:
    """Checks, runs and summarizes without writing tables, figures or a report: (results,
    claims)."""
    self.check(config)
    return self._run_and_summarize(config, run_dir, progress)

  def _run_and_summarize(
    self, config: ml_collections.ConfigDict, run_dir: RunDir | None, progress: bool
  ) -> tuple[Results, dict[str, Any]]:
    results = self.run(config, Members(run_dir), progress)
    summary = self.summarize(config, results)
    if self.CRITERIA:
      summary[VERDICTS_KEY] = self.verdicts(summary)
    return results, summary


class Prepared(NamedTuple):
  """A checked config and its experiment, before anything has run."""

  config: ml_collections.ConfigDict
  experiment: Experiment


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
  from jaxopt_study import registry  # the registry loads experiments, which import this module

  config = load_config(config_path)
  optional = registry.for_config(config, Path(config_path)).OPTIONAL_FIELDS
  config = apply_overrides(config, list(overrides), optional)
  found = registry.for_config(config, Path(config_path))
  found.check(config)
  return Prepared(config, found)


def source_identity(found: Experiment) -> str:
  """What a run folder records of the experiment's code, to refuse resuming its kept members
  with edited code (results.csv would mix the two): a digest of the file that defines its class
  (`experiments/NAME.py`: the run, its helpers and its constants), or, for a class with no file
  (a notebook's), `callable_identity`'s digest of its methods and what they read. Edits to the
  package it calls are not seen: `env.json` records the commit of each run that wrote there."""
  try:
    source = Path(inspect.getfile(type(found))).read_bytes()
  except (TypeError, OSError):
    return runner.callable_identity(type(found))
  return f"{type(found).__qualname__} {hashlib.blake2b(source, digest_size=8).hexdigest()}"


def execute(
  prepared: Prepared, out: Path, *, progress: bool = True, write: bool = True
) -> Finished:
  """Runs the experiment in `out` (resuming what a previous run of it finished) and writes
  results.csv, history.csv, summary.json, params.npz (when the experiment returns arrays), its
  plots and report.html. With `write=False` (processes other than 0 of a `jax.distributed` run)
  it computes and writes nothing.

  Raises:
    ValueError: `out` holds a run of a different config, or another process is writing into it
      (`results.RunDirBusyError`), before anything runs.
  """
  config, found = prepared
  run_dir = RunDir(out, config.to_dict(), {"experiment_source": source_identity(found)})
  opened = run_dir.writing() if write else contextlib.nullcontext(run_dir.open(write=False))
  with opened as done:
    start = time.perf_counter()
    results, summary = found._run_and_summarize(config, run_dir, progress)  # `prepare` checked
    if not write:
      return Finished(summary, [], len(results.table), time.perf_counter() - start, done)
    run_dir.write_tables(results.table, results.history)
    run_dir.write_summary(summary)
    if results.arrays:
      run_dir.write_params(results.arrays)
    figures = found.plot(out)
    report.write_report(
      out / "report.html",
      title=found.TITLE,
      description=found.DESCRIPTION,
      config=config.to_dict(),
      summary=summary,
      published=found.PUBLISHED,
      table=results.table,
      figures=figures,
    )
  return Finished(summary, figures, len(results.table), time.perf_counter() - start, done)
