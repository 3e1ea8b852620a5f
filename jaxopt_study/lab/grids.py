"""Learning-rate grids of experiments that compare optimizers: checked before anything compiles,
trained as one vmapped program, and their best members picked from the results table (by a
metric's median over seeds, e.g. the steps a run takes to reach a target, `steps_to_reach`; or
each seed's from the other seeds, `held_out_rows`), with a best rate at the edge of its grid
flagged.

A config's `optimizers` field maps an optimizer's name (a key of `optim.OPTIMIZERS`) to its
hyperparameters by their Optax names, `learning_rate` being the list of rates searched; any other
hyperparameter given as a list (e.g. Newton's `damping`) is one more axis of the grid, as in a
`jaxopt_study.sweep`.
"""

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import models, optim, train, validate
from jaxopt_study.lab import digits_tasks


def check_learning_rate_grids(
  optimizers: ml_collections.ConfigDict, where: str, allowed: Collection[str] | None = None
) -> None:
  """Raises ValueError, `"{where}: optimizers.NAME..."`, for an unknown name or a grid that cannot
  run.

  Every value of every axis is passed to the constructor with the other hyperparameters (the other
  axes at their first values), so a negative rate or a bad decay is refused here, by the
  constructor's own checks.

  Args:
    optimizers: name -> hyperparameters, `learning_rate` a non-empty list; other lists are axes.
    where: the experiment's name, which starts the error message.
    allowed: the names this experiment accepts (default: every key of `optim.OPTIMIZERS`).
  """
  allowed = sorted(optim.OPTIMIZERS if allowed is None else allowed)
  for name, hyper in optimizers.items():
    if name not in allowed:
      raise ValueError(
        f"{where}: optimizers.{name} is not an optimizer here; known: {', '.join(allowed)}"
      )
    validate.require_sequence(f"optimizers.{name}.learning_rate", hyper.get("learning_rate"), where)
    hyper = hyper.to_dict()
    axes = {k: v for k, v in hyper.items() if isinstance(v, list | tuple)}
    for axis, values in axes.items():
      validate.require_sequence(f"optimizers.{name}.{axis}", values, where)
    firsts = {k: v[0] for k, v in axes.items()}
    for axis, values in axes.items():
      for value in values:
        try:
          optim.OPTIMIZERS[name](**{**hyper, **firsts, axis: value})
        except (TypeError, ValueError) as error:
          raise ValueError(f"{where}: optimizers.{name}: {error}") from error


def train_vmapped(
  model: models.FunctionalModel,
  optimizer: Callable[..., optax.GradientTransformation],
  points: Sequence[jax.Array],
  data: Any,
  *,
  seed: int,
  **options: Any,
) -> tuple[train.TrainState, dict[str, jax.Array]]:
  """`train.make_train_fn(model, optimizer(*point), **options)` at every point of a grid, `vmap`ped
  into one compiled program: every member starts from `model`'s parameters and draws the same
  minibatches (`jax.random.key(seed)`). `train_vmapped_over_seeds` with one seed.

  Args:
    model: the model every member trains.
    optimizer: (*point) -> the transformation of one member; its hyperparameters are traced, so
      build it with `optax.inject_hyperparams`.
    points: equal-length arrays, one per argument of `optimizer`.
    data: the `data.Dataset` (or `problem.Data`).
    seed: the key of the minibatch order.
    options: `make_train_fn`'s (steps, batch_size, eval_every, loss, sampling, ...).

  Returns:
    The final `train.TrainState`s and the histories (`metric -> (members, evaluations)`), stacked
    along the grid.
  """
  stacked = train_vmapped_over_seeds([model], optimizer, points, data, seeds=[seed], **options)
  return jax.tree.map(lambda leaf: leaf[0], stacked)


def train_vmapped_over_seeds(
  seed_models: Sequence[models.FunctionalModel],
  optimizer: Callable[..., optax.GradientTransformation],
  points: Sequence[jax.Array],
  data: Any,
  *,
  seeds: Sequence[int],
  **options: Any,
) -> tuple[train.TrainState, dict[str, jax.Array]]:
  """`train_vmapped`'s grid repeated for every seed, as one compiled program: seed i's members
  start from `seed_models[i]`'s parameters (one architecture, the initialization of that seed)
  and draw the minibatches of `jax.random.key(seeds[i])`. The initial parameters are arguments of
  the program, not constants folded into it, so the seeds share one compilation.

  `data` is the dataset of every seed, or a list with one dataset per seed (one shape; a task
  whose data are drawn per seed), which become arguments of the program like the parameters.

  Returns:
    The final `train.TrainState`s and the histories, stacked as (seeds, grid points, ...).
  """
  if len(seed_models) != len(seeds):
    raise ValueError(f"{len(seed_models)} models for {len(seeds)} seeds: give one per seed")
  per_seed = isinstance(data, list)
  if per_seed and len(data) != len(seeds):
    raise ValueError(f"{len(data)} datasets for {len(seeds)} seeds: give one per seed")

  def one_member(params, model_state, key, seed_data, *point):
    train_fn = train.make_train_fn(seed_models[0], optimizer(*point), **options)
    return train_fn(params, model_state, seed_data if per_seed else data, key)

  over_points = jax.vmap(one_member, in_axes=(None, None, None, None, *[0] * len(points)))
  over_seeds = jax.vmap(
    over_points, in_axes=(0, 0, 0, 0 if per_seed else None, *[None] * len(points))
  )
  params = digits_tasks.stack([m.params for m in seed_models])
  model_state = digits_tasks.stack([m.model_state for m in seed_models])
  keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
  seed_data = digits_tasks.stack(data) if per_seed else None
  return jax.jit(over_seeds)(params, model_state, keys, seed_data, *points)


def best_rows(
  table: Sequence[Mapping[str, Any]], group: str | tuple[str, ...], metric: str
) -> dict[Any, Mapping[str, Any]]:
  """Per value of the column `group` (e.g. the method; a tuple of columns: per combination of
  their values, keyed by the tuple), the row with the lowest finite `metric`.

  A grid member that diverged (a non-finite or missing metric) is never the best; a group whose
  every member diverged is left out. Ties keep the first row.
  """
  best: dict[Any, Mapping[str, Any]] = {}
  for row in table:
    value = row.get(metric)
    if not validate.is_finite_number(value):
      continue
    key = tuple(row[g] for g in group) if isinstance(group, tuple) else row[group]
    current = best.get(key)
    if current is None or value < current[metric]:
      best[key] = row
  return best


def best_at_edge(
  table: Sequence[Mapping[str, Any]],
  group: str | tuple[str, ...],
  metric: str,
  column: str = "learning_rate",
) -> dict[Any, bool]:
  """Per group of `best_rows`, whether its best row's `column` (the rate searched) is the
  smallest or the largest value the group's grid tried: then the grid does not bracket the
  optimum, and a claim about the best member cannot be judged (`experiment.above(...,
  unless=...)`)."""
  tried: dict[Any, list[float]] = {}
  for row in table:
    key = tuple(row[g] for g in group) if isinstance(group, tuple) else row[group]
    tried.setdefault(key, []).append(row[column])
  return {
    key: row[column] in (min(tried[key]), max(tried[key]))
    for key, row in best_rows(table, group, metric).items()
  }


def could_flip(
  ratio: float | None, numerator: Sequence[Any], denominator: Sequence[Any], *, claim: str
) -> list[Any]:
  """The groups whose best value, if a wider grid lowered it, could flip the verdict on `ratio`
  = (best of the `numerator` groups) / (best of the `denominator` groups) against 1: the groups
  whose best rate at a grid's edge leaves that verdict undecided.

  A wider grid can only lower a best loss: a lower numerator lowers the ratio, a lower denominator
  raises it. For the claim "ratio < 1" (`claim="below"`) the denominator's edges matter while it
  holds and the numerator's while it does not; for "ratio > 1" (`"above"`) the reverse; every
  group's while the ratio is unknown (None or not finite).
  """
  if claim not in ("below", "above"):
    raise ValueError(f"could_flip: claim={claim!r} must be 'below' or 'above'")
  if ratio is None or not math.isfinite(ratio):
    return [*numerator, *denominator]
  holds = ratio < 1 if claim == "below" else ratio > 1
  return list(numerator) if (claim == "below") != holds else list(denominator)


def steps_to_reach(
  steps: Sequence[float],
  values: Sequence[float],
  target: float,
  *,
  log: bool = False,
  stay: bool = False,
) -> float | None:
  """The first step at which a curve evaluated at `steps` falls to `target` or below, linearly
  interpolated between the two evaluations around the crossing (in log value with `log=True`, for
  a loss that decays geometrically); None when it never does (a censored time: at least the last
  step). A non-finite value ends the curve (a diverged run never reaches it afterwards). With
  `log=True` the target must be > 0; a value of exactly 0 crosses it linearly (no log of 0).

  With `stay=True`, the crossing after which the curve stays at or below `target` to its end: the
  time a run has learned the task, not one it passed through on an unstable climb back (None when
  its last value is above the target).

  Raises:
    ValueError: `log=True` with a target ≤ 0.
  """
  if log and not target > 0:
    raise ValueError(f"steps_to_reach: target={target!r} must be > 0 to interpolate in log value")
  if stay:  # start from the last evaluation above the target (or not finite)
    above = [i for i, v in enumerate(values) if not (math.isfinite(v) and v <= target)]
    steps, values = (steps[above[-1] :], values[above[-1] :]) if above else (steps, values)
  previous = None
  for step, value in zip(steps, values, strict=True):
    if not math.isfinite(value):
      return None
    if value <= target:
      if previous is None:
        return float(step)
      (last_step, last_value), scale = previous, (math.log if log and value > 0 else float)
      fraction = (scale(last_value) - scale(target)) / (scale(last_value) - scale(value))
      return float(last_step + fraction * (step - last_step))
    previous = (step, value)
  return None


def seed_medians(
  table: Sequence[Mapping[str, Any]], by: tuple[str, ...], metric: str
) -> list[dict[str, Any]]:
  """One row per combination of the columns `by` (e.g. ("depth", "learning_rate")): those
  columns, `metric` as the median over the rows of the combination (the seeds; a missing or
  None value, e.g. a censored time, counts as +inf, so a median that is inf means at least half
  the seeds never got there), and `num_finite`, how many rows had a finite value. In first-seen
  order; `best_rows` and `best_at_edge` then pick each group's best rate by the median."""
  grouped: dict[tuple, list[float]] = {}
  for row in table:
    value = row.get(metric)
    finite = validate.is_finite_number(value)
    grouped.setdefault(tuple(row[c] for c in by), []).append(value if finite else math.inf)
  return [
    {
      **dict(zip(by, key, strict=True)),
      metric: float(np.median(values)),
      "num_finite": sum(math.isfinite(v) for v in values),
    }
    for key, values in grouped.items()
  ]


def best_by_median(
  runs: Sequence[Mapping[str, Any]],
  group: tuple[str, ...],
  metric: str,
  column: str = "learning_rate",
) -> tuple[list[dict[str, Any]], dict[Any, Mapping[str, Any]], dict[Any, bool]]:
  """A rate search over seeds: the median of `metric` per (*group, column) (`seed_medians`),
  each group's best median row (`best_rows`; absent where no value of `column` has a finite
  median) and whether that best lies at its grid's edge (`best_at_edge`)."""
  medians = seed_medians(runs, (*group, column), metric)
  return (
    medians,
    best_rows(medians, group, metric),
    best_at_edge(medians, group, metric, column),
  )


def seed_rows_at(
  table: Sequence[Mapping[str, Any]],
  best: Mapping[Any, Mapping[str, Any]],
  group: tuple[str, ...],
  column: str = "learning_rate",
) -> dict[Any, list[Mapping[str, Any]]]:
  """Per group of `best` (`best_by_median`'s best median rows, keyed by the tuple of the `group`
  columns), the rows of `table` at its best value of `column`, one per seed, in seed order: the
  runs a claim about each group's best setting pairs by seed."""
  return {
    key: sorted(
      (r for r in table if tuple(r[g] for g in group) == key and r[column] == row[column]),
      key=lambda r: r["seed"],
    )
    for key, row in best.items()
  }


def held_out_rows(
  table: Sequence[Mapping[str, Any]],
  group: tuple[str, ...],
  metric: str,
  column: str | tuple[str, ...] = "learning_rate",
  *,
  center: Callable[[Sequence[float]], float] = np.median,
) -> tuple[dict[Any, dict[Any, Mapping[str, Any]]], dict[Any, bool]]:
  """A rate search judged on seeds it did not see (leave one seed out, i.e. cross-fitting):
  per group (keyed by the tuple of its `group` columns) and per seed, the row of that seed at the
  value of `column` whose `center` (the median, by default) of `metric` over the group's *other*
  seeds is lowest; and per group, whether any of those picks lies at its grid's edge. With a
  tuple of columns (e.g. a rate and a block size searched together) the pick is the best
  combination, and a pick lies at the edge when any of its columns is its grid's least or most.

  Picking a best rate and judging it on the same seeds favours the rate whose seeds happened to
  do well (the winner's curse): the judged value is biased low and its standard error too small.
  Each value here comes from a seed the pick never saw, so the mean over seeds is an unbiased
  estimate of what the search gives a new seed, and the seeds' spread its error, at no extra
  training (Stone 1974, cross-validation). The folds share seeds, so that spread slightly
  understates the error; and with three seeds each pick is the center of two (a median of two is
  their mean), so one lucky seed can set the others' rate, and one censored seed (+inf) puts a
  rate out of their reach: more seeds steady the picks.

  A missing or non-finite value (a censored time, a diverged run) counts as +inf, as in
  `seed_medians`, and a center that is NaN (a geometric mean of an inf) is never picked; a seed
  whose other seeds have no finite center at any value gets no row. Ties keep the first value in
  table order. Seeds are the table's `seed` column; a group with one seed has nothing to pick
  from and is left out.
  """
  columns = column if isinstance(column, tuple) else (column,)
  values: dict[Any, dict[Any, dict[Any, Mapping[str, Any]]]] = {}
  for row in table:
    key, setting = tuple(row[g] for g in group), tuple(row[c] for c in columns)
    values.setdefault(key, {}).setdefault(setting, {})[row["seed"]] = row
  picks: dict[Any, dict[Any, Mapping[str, Any]]] = {}
  edge: dict[Any, bool] = {}
  for key, by_value in values.items():
    seeds = sorted({seed for rows in by_value.values() for seed in rows})
    if len(seeds) < 2:
      continue
    ends = [{min(axis), max(axis)} for axis in zip(*by_value, strict=True)]
    chosen: dict[Any, Mapping[str, Any]] = {}
    for seed in seeds:
      best, best_center = None, math.inf
      for value, rows in by_value.items():
        others = [
          r.get(metric) if validate.is_finite_number(r.get(metric)) else math.inf
          for s, r in rows.items()
          if s != seed
        ]
        score = float(center(others)) if others else math.inf
        if score < best_center and seed in rows:
          best, best_center = value, score
      if best is not None:
        chosen[seed] = by_value[best][seed]
    if chosen:
      picks[key] = chosen
      edge[key] = any(
        row[c] in end for row in chosen.values() for c, end in zip(columns, ends, strict=True)
      )
  return picks, edge


def curves_over_column(
  medians: Sequence[Mapping[str, Any]],
  label: Callable[[Mapping[str, Any]], str],
  metric: str,
  column: str = "learning_rate",
) -> dict[str, tuple[list, list]]:
  """`best_by_median`'s median rows (or any rows) as plot series: per `label(row)`, the values of
  `column` and of `metric`, in increasing `column` (a grid listed in another order drew a
  zig-zag where the curve is a U)."""
  points: dict[Any, list[tuple[Any, Any]]] = {}
  for row in medians:
    points.setdefault(label(row), []).append((row[column], row[metric]))
  return {
    key: tuple(map(list, zip(*sorted(pairs, key=lambda pair: pair[0]), strict=True)))
    for key, pairs in points.items()
  }


def history_at_rate(
  table: Sequence[Mapping[str, Any]],
  best: Mapping[str, Any] | None,
  curves: Mapping[str, tuple[Sequence, Sequence]],
  prefix: str,
  metric: str,
  value: Callable[[float], float] = float,
) -> list[dict[str, Any]]:
  """History rows (`member` "{prefix} seed {seed}", `step`, `metric`, `value(v)`) of the sweep
  members of `table` trained at `best`'s learning rate, from their `curves[member] = (steps,
  values)`; none when `best` is None (no rate reached the target)."""
  return [
    {"member": f"{prefix} seed {row['seed']}", "step": step, "metric": metric, "value": value(v)}
    for row in table
    if best is not None and row["learning_rate"] == best["learning_rate"]
    for step, v in zip(*curves[row["member"]], strict=True)
  ]
