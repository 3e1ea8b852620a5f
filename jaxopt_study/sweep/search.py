"""Random and coarse-to-fine hyperparameter search: sweep axes drawn at random, one point a member.

Bergstra & Bengio (2012, "Random search for hyper-parameter optimization", JMLR 13, §2 and
Fig. 1): when only a few hyperparameters matter (low effective dimensionality), a grid of B
trials over d axes tries B^(1/d) distinct values of the one that matters, while B independent
draws try B. An axis is drawn instead of listed:

* `log_uniform(low, high)`: log x uniform on [log low, log high] (a learning rate, a decay);
* `uniform(low, high)`: x uniform on [low, high];
* `choice(values)`: each of `values` with probability 1/len(values).

`sample(axes, num_samples, seed)` draws the sampled axes JOINTLY, one point per member, and
returns axes that `sweep.run` takes: the sampled names become one joint axis (`grid`: a tuple of
names -> a list of tuples, whose points the members take whole), placed first; listed axes are
kept and crossed with the points as usual (e.g. `"seed": [0, 1]` trains every point twice).
`as_grid(axes, per_axis)` is the grid search of the same space, for comparison.

Coarse-to-fine (the lecture's advice: search coarse first, then narrow where the best members
lie): `coarse_to_fine` runs rounds, each one vmapped sweep of `num_samples` draws per search, and
between rounds `narrow` shrinks every sampled axis around the `top_k` best members of the
round (the rule is in `narrow`'s docstring). Several independent searches (one per seed) run
side by side in each round's sweep, so the spread of their outcomes costs no extra compilation.

Draws come from NumPy's PCG64 generator (`np.random.default_rng(seed)`), one uniform number
u ∈ [0, 1) per member and sampled axis, taken member by member, so the first m points of
`sample(axes, n, seed)` are `sample(axes, m, seed)` (nested budgets of one random search).
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxopt_study import problem as problem_lib
from jaxopt_study import validate
from jaxopt_study.sweep import runner


@dataclasses.dataclass(frozen=True)
class LogUniform:
  """log x ~ Uniform(log low, log high), 0 < low < high: `log_uniform(low, high)`."""

  low: float
  high: float

  def from_unit(self, unit: np.ndarray) -> np.ndarray:
    """The quantile function: u ∈ [0, 1) -> low (high / low)^u."""
    log_low, log_high = math.log(self.low), math.log(self.high)
    return np.clip(np.exp(log_low + unit * (log_high - log_low)), self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Uniform:
  """x ~ Uniform(low, high), low < high: `uniform(low, high)`."""

  low: float
  high: float

  def from_unit(self, unit: np.ndarray) -> np.ndarray:
    """The quantile function: u ∈ [0, 1) -> low + u (high − low)."""
    return np.clip(self.low + unit * (self.high - self.low), self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of `values`, each with probability 1/len(values): `choice(values)`."""

  values: tuple[Any, ...]

  def from_unit(self, unit: np.ndarray) -> np.ndarray:
    """The quantile function: u ∈ [0, 1) -> values[⌊u k⌋] (k values; indices as an array)."""
    count = len(self.values)
    return np.minimum((unit * count).astype(np.int64), count - 1)


Spec = LogUniform | Uniform | Choice


def log_uniform(low: float, high: float) -> LogUniform:
  """An axis drawn log-uniformly on [low, high], 0 < low < high (Bergstra & Bengio 2012, §2.3:
  a learning rate or a penalty, whose effect scales with its order of magnitude).

  Raises:
    ValueError: a bound that is not a finite number > 0, or low ≥ high.
  """
  validate.require_positive("low", low, "log_uniform")
  validate.require_positive("high", high, "log_uniform")
  validate.require_ordered("low", low, "high", high, "log_uniform", strict=True)
  return LogUniform(float(low), float(high))


def uniform(low: float, high: float) -> Uniform:
  """An axis drawn uniformly on [low, high], low < high (a momentum within a range, a fraction).

  Raises:
    ValueError: a bound that is not a finite number, or low ≥ high.
  """
  for name, value in (("low", low), ("high", high)):
    if not validate.is_finite_number(value):
      raise ValueError(f"uniform: {name}={value!r} must be a finite number")
  validate.require_ordered("low", low, "high", high, "uniform", strict=True)
  return Uniform(float(low), float(high))


def choice(values: Sequence[float]) -> Choice:
  """An axis drawn from `values` (numbers, none repeated), each with probability 1/len(values).

  Raises:
    ValueError: `values` is not a non-empty list of numbers, or a value is repeated.
  """
  if isinstance(values, str) or not isinstance(values, Sequence) or not values:
    raise ValueError(f"choice: values={values!r} must be a non-empty list of numbers")
  for value in values:
    if not validate.is_finite_number(value):
      raise ValueError(f"choice: values={list(values)!r}: {value!r} is not a finite number")
  if len(set(values)) != len(values):
    raise ValueError(f"choice: values={list(values)!r}: a value is repeated")
  return Choice(tuple(v.item() if isinstance(v, np.generic) else v for v in values))


CONSTRUCTORS = {"log_uniform": log_uniform, "uniform": uniform, "choice": choice}


def from_config(value: Mapping[str, Any]) -> Spec:
  """A sampled axis as a config writes it: `{"log_uniform": [low, high]}`, `{"uniform": [low,
  high]}` or `{"choice": [v1, v2, ...]}`.

  Raises:
    ValueError: anything else, saying what a sampled axis looks like.
  """
  example = 'e.g. {"log_uniform": [1e-4, 1.0]}, {"uniform": [0.0, 0.9]} or {"choice": [16, 64]}'
  kinds = sorted(CONSTRUCTORS)
  if not isinstance(value, Mapping) or len(value) != 1:
    raise ValueError(f"{value!r}: a sampled axis is one of {kinds} with its arguments, {example}")
  ((name, arguments),) = value.items()
  if name not in CONSTRUCTORS:
    raise ValueError(f"{name!r} is not a sampled axis: use one of {kinds}, {example}")
  if isinstance(arguments, str) or not isinstance(arguments, Sequence):
    raise ValueError(f"{name}: {arguments!r} must be a list, {example}")
  if name == "choice":
    return choice(list(arguments))
  if len(arguments) != 2:
    raise ValueError(f"{name}: {list(arguments)!r} must be [low, high]")
  return CONSTRUCTORS[name](*arguments)


def _split(axes: Mapping[str, Any], where: str) -> tuple[dict[str, Spec], dict[str, Any]]:
  """(sampled axes, listed axes), checked."""
  if not isinstance(axes, Mapping):
    raise ValueError(f"{where}: axes={axes!r} must map axis names to a sampled axis or a list")
  specs = {k: v for k, v in axes.items() if isinstance(v, Spec)}
  if not specs:
    raise ValueError(
      f"{where}: no axis is sampled: give one as log_uniform(low, high), uniform(low, high) or "
      "choice(values)"
    )
  for key in axes:
    if not isinstance(key, str):
      raise ValueError(f"{where}: axis {key!r} must be a name")
  return specs, {k: v for k, v in axes.items() if k not in specs}


def draw(specs: Mapping[str, Spec], num_samples: int, rng: np.random.Generator) -> list[tuple]:
  """`num_samples` joint points of `specs` (one value per axis, in the order of `specs`) from
  `rng`: a (num_samples, len(specs)) block of uniforms mapped by each axis's quantile function."""
  unit = rng.random((num_samples, len(specs)))
  columns = []
  for j, spec in enumerate(specs.values()):
    values = spec.from_unit(unit[:, j])
    if isinstance(spec, Choice):
      columns.append([spec.values[i] for i in values])
    else:
      columns.append([float(v) for v in values])
  return list(zip(*columns, strict=True))


def sample(axes: Mapping[str, Any], num_samples: int, seed: int) -> dict[Any, list]:
  """Draws the sampled axes of `axes` jointly, `num_samples` points, for `sweep.run`.

  Example::

      axes = sweep.sample(
        {"learning_rate": sweep.log_uniform(1e-4, 1.0), "b1": sweep.uniform(0.0, 0.9),
         "seed": [0, 1]},
        num_samples=16, seed=0,
      )
      # {("learning_rate", "b1"): [(0.0123, 0.41), ...16 points], "seed": [0, 1]}: 32 members
      result = sweep.run(problem, lambda learning_rate, b1: optim.adam(learning_rate, b1=b1),
                         axes, steps=200, eval_every=50, batch_size=32)

  Args:
    axes: axis name -> a sampled axis (`log_uniform`, `uniform`, `choice`) or a list of values.
    num_samples: points to draw (members per combination of the listed axes).
    seed: the generator's seed (`np.random.default_rng(seed)`); the same seed, the same points.

  Returns:
    The joint axis (a tuple of the sampled names -> a list of `num_samples` tuples) first, then
    the listed axes unchanged.

  Raises:
    ValueError: no sampled axis, a bad count or seed, before anything is drawn.
  """
  specs, listed = _split(axes, "sample")
  validate.require_positive_int("num_samples", num_samples, "sample")
  validate.require_int("seed", seed, "sample", low=0)
  points = draw(specs, num_samples, np.random.default_rng(seed))
  return {tuple(specs): points, **listed}


def as_grid(axes: Mapping[str, Any], per_axis: int) -> dict[str, list]:
  """The grid search of the same space: `per_axis` values of every continuous sampled axis, at
  the centres of `per_axis` equal cells (in log space for `log_uniform`), and every value of a
  `choice`; listed axes unchanged. `sweep.run` crosses them (per_axis^d members).

  Centres rather than end points: each grid value stands for an equal share of the range, as a
  random draw does on average, and no trial is spent on the range's edges.

  Raises:
    ValueError: no sampled axis, or `per_axis` is not an integer ≥ 1.
  """
  specs, listed = _split(axes, "as_grid")
  validate.require_positive_int("per_axis", per_axis, "as_grid")
  centres = (np.arange(per_axis) + 0.5) / per_axis
  values = {}
  for name, spec in specs.items():
    if isinstance(spec, Choice):
      values[name] = list(spec.values)
    else:
      values[name] = [float(v) for v in spec.from_unit(centres)]
  return {**values, **listed}


def ranked(
  rows: Sequence[Mapping[str, Any]], metric: str, *, maximize: bool = False
) -> list[Mapping[str, Any]]:
  """`rows` by ascending `metric` (lower is better; descending with `maximize`, for a metric the
  problem names in `higher_is_better`), a non-finite value (a diverged member) last; ties keep
  the rows' order."""
  sign = -1.0 if maximize else 1.0

  def key(row: Mapping[str, Any]) -> float:
    value = row[metric]
    return sign * float(value) if validate.is_finite_number(value) else math.inf

  for row in rows:
    if metric not in row:
      raise ValueError(f"metric {metric!r} is not a column of the table: {sorted(row)}")
  return sorted(rows, key=key)


def narrow(
  axes: Mapping[str, Any],
  rows: Sequence[Mapping[str, Any]],
  *,
  metric: str,
  top_k: int = 3,
  widen: float = 2.0,
  maximize: bool = False,
) -> dict[str, Any]:
  """The next round's axes of a coarse-to-fine search: each sampled axis narrowed around the
  `top_k` best of `rows` (by lowest `metric`, or highest with `maximize`; `ranked`).

  The rule, in t = log x for a `log_uniform` axis and t = x for a `uniform` one: with [a, b] the
  range of t spanned by the top_k members, the new range is the interval of width widen·(b − a)
  centred on (a + b)/2, [c − w(b − a)/2, c + w(b − a)/2], cut to the axis's current range. A
  span of zero (the top members share one value) keeps the current range. A `choice` axis keeps
  the values the top_k members hold, in its order. Listed axes are unchanged. A member that
  diverged (a non-finite metric, or a true `diverged` column) is never among the top: with fewer
  than two others among the top_k there is no span, and every axis keeps its current range.

  Example: log_uniform(1e-4, 1) with top members at 1e-3, 1e-2 and 3e-3: log10 span [−3, −2],
  widened 2× about −2.5 to [−3.5, −1.5]: log_uniform(10^−3.5, 10^−1.5).

  Raises:
    ValueError: top_k not in [2, len(rows)], widen < 1 or not finite, a sampled axis or the
      metric missing from the rows.
  """
  specs, listed = _split(axes, "narrow")
  _check_narrowing(top_k, widen, len(rows), "narrow")
  for name in specs:
    if any(name not in row for row in rows):
      raise ValueError(f"narrow: the rows have no column {name!r} (a sampled axis)")
  best = [
    row for row in ranked(rows, metric, maximize=maximize)[:top_k] if not _diverged(row, metric)
  ]
  if len(best) < 2:  # no span to narrow to
    return dict(axes)
  narrowed: dict[str, Any] = {}
  for name, spec in specs.items():
    held = [row[name] for row in best]
    if isinstance(spec, Choice):
      narrowed[name] = Choice(tuple(v for v in spec.values if v in held))
      continue
    log = isinstance(spec, LogUniform)
    to_t = np.log if log else np.asarray
    a, b = float(np.min(to_t(held))), float(np.max(to_t(held)))
    if not b > a:
      narrowed[name] = spec
      continue
    centre, half = (a + b) / 2, float(widen) * (b - a) / 2
    low, high = float(to_t(spec.low)), float(to_t(spec.high))
    low, high = max(low, centre - half), min(high, centre + half)
    narrowed[name] = LogUniform(math.exp(low), math.exp(high)) if log else Uniform(low, high)
  return {**narrowed, **listed}


def _diverged(row: Mapping[str, Any], metric: str) -> bool:
  """The member diverged: its metric is missing or not finite, or its `diverged` flag is set."""
  return not validate.is_finite_number(row[metric]) or bool(row.get("diverged", False))


def _check_narrowing(top_k: int, widen: float, num_rows: int, where: str) -> None:
  """top_k ∈ [2, num_rows] (a span needs two members) and widen a finite number ≥ 1."""
  validate.require_int("top_k", top_k, where, low=2)
  if top_k > num_rows:
    raise ValueError(f"{where}: top_k={top_k} is more than the {num_rows} members to rank")
  if not (validate.is_finite_number(widen) and widen >= 1):
    raise ValueError(f"{where}: widen={widen!r} must be a finite number >= 1")


class SearchRound(NamedTuple):
  """One round of `coarse_to_fine`.

  Attributes:
    axes: search seed -> the axes its points of this round were drawn from.
    result: the round's sweep; a row's `seed` names its search.
  """

  axes: dict[int, dict[str, Any]]
  result: runner.SweepResult


def coarse_to_fine(
  problem: problem_lib.Problem,
  optimizer: Any,
  axes: Mapping[str, Any],
  *,
  num_samples: int,
  rounds: int,
  metric: str,
  seeds: Sequence[int] = (0,),
  top_k: int = 3,
  widen: float = 2.0,
  out_dir: str | Path | None = None,
  **run_options: Any,
) -> list[SearchRound]:
  """Coarse-to-fine random search: `rounds` rounds of `num_samples` draws per search, each round
  one vmapped `sweep.run`, each search's axes narrowed between rounds by `narrow`.

  Round 0 of the search with seed s draws `sample(axes, num_samples, s)` (a plain random search);
  round r > 0 draws from the narrowed axes with `np.random.default_rng([s, r])`. Every member of
  search s trains with seed s (its parameters and minibatch order), so one seed's search is the
  same whether it runs alone or beside others.

  Args:
    problem, optimizer: as `sweep.run`.
    axes: as `sample`; "seed" may not be an axis (each search's seed is its members').
    num_samples, rounds: draws per round and search; rounds ≥ 1.
    metric: the table column to optimize (e.g. "final_test_error", "best_test_loss"): its
      lowest value, or its highest for a metric the problem names in `higher_is_better`.
    seeds: one independent search per seed, side by side in each round's sweep.
    top_k, widen: as `narrow`.
    out_dir: the rounds' run folders are `out_dir/round0`, `out_dir/round1`, ...; a search run
      again on the same folder resumes (its draws are the same).
    **run_options: the rest of `sweep.run`'s arguments (steps, eval_every, batch_size, ...).

  Returns:
    One `SearchRound` per round.

  Raises:
    ValueError: a bad argument, before anything compiles.
  """
  specs, listed = _split(axes, "coarse_to_fine")
  validate.require_positive_int("num_samples", num_samples, "coarse_to_fine")
  validate.require_positive_int("rounds", rounds, "coarse_to_fine")
  validate.require_sequence("seeds", seeds, "coarse_to_fine")
  for i, seed in enumerate(seeds):
    validate.require_int(f"seeds[{i}]", seed, "coarse_to_fine", low=0)
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"coarse_to_fine: seeds={list(seeds)}: a seed is repeated")
  if "seed" in axes or "seed" in run_options:
    raise ValueError("coarse_to_fine: each search trains its members with its own seed: pass seeds")
  if rounds > 1:  # a search's rows in a round: its draws times the listed axes' combinations
    num_rows = num_samples * math.prod(len(v) for v in listed.values() if isinstance(v, list))
    _check_narrowing(top_k, widen, num_rows, "coarse_to_fine")
  pure = problem_lib.pure(problem)
  names = pure.metric_names
  maximize = metric.partition("_")[2] in pure.maximized_metrics  # final_test_acc -> test_acc
  stopping = run_options.get("early_stopping")
  columns = {f"final_{n}" for n in names} | ({f"best_{stopping}"} if stopping else set())
  if metric not in columns:
    raise ValueError(f"coarse_to_fine: metric={metric!r} must be one of {sorted(columns)}")

  current = {seed: {**specs, **listed} for seed in seeds}
  found = []
  for index in range(rounds):
    joint = []
    for seed in seeds:
      rng = np.random.default_rng(seed if index == 0 else [seed, index])
      drawn = draw({name: current[seed][name] for name in specs}, num_samples, rng)
      joint += [(*point, seed) for point in drawn]
    round_axes = {(*specs, "seed"): joint, **listed}
    folder = None if out_dir is None else Path(out_dir) / f"round{index}"
    result = runner.run(problem, optimizer, round_axes, out_dir=folder, **run_options)
    found.append(SearchRound(dict(current), result))
    if index + 1 < rounds:
      current = {
        seed: narrow(
          current[seed],
          [row for row in result.table if row["seed"] == seed],
          metric=metric,
          top_k=top_k,
          widen=widen,
          maximize=maximize,
        )
        for seed in seeds
      }
  return found
