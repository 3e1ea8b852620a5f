"""Hyperparameter search (lecture notes; Goodfellow et al. 2016, §11.4.3-11.4.4): grid vs random
search at equal budget when one of two hyperparameters matters, then coarse-to-fine.

Bergstra & Bengio (2012, Fig. 1): with B trials over two hyperparameters of which one matters, a
grid tries √B values of the important one, B independent draws try B, so random search finds a
better value of it. Here the problem is real: an MLP on scikit-learn's digits trained by a
`config.optimizer` (Adam, Algorithm 8.7) whose learning rate (drawn log-uniformly over four
decades) matters and whose β₁ within [0, 0.9] barely does. Every trial trains on the digits'
training split less a stratified `validation_fraction` of it, the validation set every search
minimizes its final error on; the digits' held-out quarter is the test set, which no search sees:
each search's pick (its trial of lowest validation error) is reported by its test error, as
Bergstra & Bengio (2012, §2.1) report the test accuracy of the model validation picks (the
validation error of the pick flatters it, and a method that tries more points, or narrows around
its best validation trials, flatters itself more). For each budget B (a square):

* grid: `sweep.as_grid(space, √B)`, √B cell centres per axis (in log space for the rate);
* random: the first B points of `sweep.sample(space, max B, seed)` (nested budgets of one search);
* coarse_to_fine: `sweep.coarse_to_fine` with `rounds` rounds of B/rounds draws, narrowed around
  the `top_k` best of each round (`sweep.narrow`); its round 0 is `sample(space, B/rounds, seed)`,
  the first draws of the random search, so the two are paired and differ in the rest of the budget.

Each of `num_searches` independent searches (seed s = seed + i) draws with s and trains its
members with s (their parameters and minibatch order); the grid is the same for every search, its
members trained with s. Every trial of the grid and random searches runs in vmapped sweeps of the
size of a coarse-to-fine round where that size divides them, so they share its compiled program.

Claims (`summary.json`): `best_found_by_budget` (method -> budget -> the lowest validation error
found, mean over searches, with `best_found_by_budget_se`), `test_error_of_best_by_budget` (the
test error of that trial, the same way), `grid_minus_random` (mean over searches and budgets of
the test error of grid's pick minus random's, with `_se` and `_dof` over searches; by budget in
`grid_minus_random_by_budget`; the same difference of the validation errors in
`grid_minus_random_validation`), `distinct_values_by_budget` (distinct values of the
important hyperparameter tried: B for random search, √B for the grid, by construction, so it is
shown and not judged) and `distinct_value_ratio` (random's over grid's, the smallest over budgets),
`variance_share_by_axis` (the main effect of each axis on the validation error over the
largest grid: the variance of the axis's marginal means over the total, as functional ANOVA
defines it; `important_share`, `other_share`, means over searches with `_se` and `_dof`), and
`random_minus_coarse_to_fine` (test errors of
the picks, with `_se` and `_dof`; validation errors in `random_minus_coarse_to_fine_validation`).
The differences of test errors are judged beyond t_{0.975, dof} standard errors of 0.
"""

import functools
import itertools
import json
import math
from pathlib import Path

import jax
import ml_collections
import numpy as np
import sklearn.model_selection

from jaxopt_study import data as data_lib
from jaxopt_study import problem as problem_lib
from jaxopt_study import report, sweep, validate
from jaxopt_study.config import load_data
from jaxopt_study.experiment import Experiment, Members, Results, above, all_of, below
from jaxopt_study.lab import digits_tasks, verdicts
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import member_state, read_csv
from jaxopt_study.sweep import search

METHODS = ("grid", "random", "coarse_to_fine")
METRIC = "final_test_error"  # a sweep's held-out set here is the validation set


class Search(Experiment):
  """Grid, random and coarse-to-fine search at equal budgets on a digits MLP."""

  NAME = "search"
  TITLE = "Hyperparameter search: grid vs random at equal budget, then coarse-to-fine"
  SECTION = "11.4.4"
  DESCRIPTION = (
    "Grid, random and coarse-to-fine search of two hyperparameters of Adam on a digits MLP, at "
    "equal budgets of trials: the learning rate (log-uniform over four decades) matters, β₁ in "
    "[0, 0.9] barely does. A grid of B trials tries √B learning rates, random search B "
    "(Bergstra & Bengio 2012, Fig. 1); coarse-to-fine splits its budget into rounds, the first a "
    "random search, each next one in a range narrowed around the previous round's best trials. "
    "Every search's trials run as vmapped sweeps; each search is repeated with independent "
    "seeds, and the figures show the lowest validation error found against the budget and the "
    "trials of one search. Each search's pick, its trial of lowest validation error, is judged "
    "by its error on a test set no search sees (the digits' held-out quarter)."
  )
  PUBLISHED = {
    "best_found_by_budget": "random search finds models as good or better than grid search over "
    "the same domain at equal budget when few hyperparameters matter (Bergstra & Bengio 2012, "
    "abstract and Fig. 1; Goodfellow et al. 2016, §11.4.4)",
    "variance_share_by_axis": "low effective dimensionality: few hyperparameters matter much "
    "for a given data set (Bergstra & Bengio 2012, §3 and Fig. 7)",
    "random_minus_coarse_to_fine": "search coarse to fine: narrow the ranges around the best "
    "trials of a coarse random search (Karpathy, CS231n notes 'Neural Networks Part 3', "
    "Hyperparameter optimization; Bergstra & Bengio 2012, §7)",
  }
  # The test error of random's pick below grid's, over budgets and searches, beyond t_{0.975, dof}
  # standard errors of the per-search differences, dof = searches − 1 (a strict reading of "as
  # good or better": equal within noise is inconclusive); the important axis explains over half
  # the variance of the validation error and the other under a tenth; the test error of
  # coarse-to-fine's pick below random's.
  CRITERIA = {
    "best_found_by_budget": above("grid_minus_random", 0.0, standard_error="grid_minus_random_se"),
    "variance_share_by_axis": all_of(
      above("important_share", 0.5, standard_error="important_share_se"),
      below("other_share", 0.1, standard_error="other_share_se"),
    ),
    "random_minus_coarse_to_fine": above(
      "random_minus_coarse_to_fine", 0.0, standard_error="random_minus_coarse_to_fine_se"
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    **dict.fromkeys(
      ("num_searches", "steps", "eval_every", "batch_size", "coarse_to_fine.rounds"),
      validate.require_positive_int,
    ),
    "seed": functools.partial(validate.require_int, low=0),
    "budgets": validate.each(validate.require_positive_int),
    "coarse_to_fine.top_k": functools.partial(validate.require_int, low=2),
    "coarse_to_fine.widen": validate.require_positive,
    "validation_fraction": functools.partial(
      validate.require_unit_interval, include_zero=False, include_one=False
    ),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """The space (two continuous sampled axes, the important one among them), the budgets
    (ascending squares, each split evenly into rounds of at least top_k draws) and a sweep of the
    optimizer at the space's corners, before anything compiles."""
    for field in ("space", "important", "optimizer"):
      if field not in config:
        raise ValueError(f"{self.NAME}: the config has no field {field!r}")
    space = search_space(config)
    if len(space) != 2 or any(isinstance(s, search.Choice) for s in space.values()):
      raise ValueError(f"{self.NAME}: space must have two axes drawn log_uniform or uniform")
    validate.require_choice("important", config.important, self.NAME, list(space))
    budgets, rounds = list(config.budgets), config.coarse_to_fine.rounds
    if budgets != sorted(set(budgets)):
      raise ValueError(f"{self.NAME}: budgets={budgets} must be increasing")
    for budget in budgets:
      if math.isqrt(budget) ** 2 != budget or budget % rounds:
        raise ValueError(
          f"{self.NAME}: budget {budget} must be a square (a √B × √B grid) and a multiple of "
          f"coarse_to_fine.rounds={rounds}"
        )
      if rounds > 1 and budget // rounds < config.coarse_to_fine.top_k:
        raise ValueError(
          f"{self.NAME}: budget {budget} gives rounds of {budget // rounds} draws, fewer than "
          f"coarse_to_fine.top_k={config.coarse_to_fine.top_k}"
        )
    if not config.coarse_to_fine.widen >= 1:
      raise ValueError(
        f"{self.NAME}: coarse_to_fine.widen={config.coarse_to_fine.widen} must be >= 1"
      )
    problem, factory, fixed = _training(config)
    corners = itertools.product(*[(spec.low, spec.high) for spec in space.values()])
    axes = {(*space, "seed"): [(*corner, config.seed) for corner in corners], **fixed}
    sweep.check(problem, factory, axes, **_run_options(config))

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every trial of every method, budget and search: one table row each."""
    problem, factory, fixed = _training(config)
    space = search_space(config)
    seeds = [config.seed + i for i in range(config.num_searches)]
    trials = _grid_and_random_trials(config, space, seeds)
    points = [(*t["point"], t["seed"]) for t in trials]
    size = _sweep_size(config, len(points))
    table = []
    for first in range(0, len(points), size):
      record, _ = members.get(
        f"trials{first:05d}",
        lambda first=first: (
          {
            "rows": _with_test_errors(
              config,
              problem,
              sweep.run(
                problem,
                factory,
                {(*space, "seed"): points[first : first + size], **fixed},
                progress=progress,
                **_run_options(config),
              ),
            )
          },
          {},
        ),
      )
      for trial, row in zip(trials[first : first + size], record["rows"], strict=True):
        table.append(_trial_row(trial, row, space))
    for budget in config.budgets:
      folder = None if members.path is None else members.path / f"coarse_to_fine_{budget}"
      rounds = sweep.coarse_to_fine(
        problem,
        factory,
        {**space, **fixed},
        num_samples=budget // config.coarse_to_fine.rounds,
        rounds=config.coarse_to_fine.rounds,
        metric=METRIC,
        seeds=seeds,
        top_k=config.coarse_to_fine.top_k,
        widen=config.coarse_to_fine.widen,
        out_dir=folder,
        progress=progress,
        **_run_options(config),
      )
      for index, found in enumerate(rounds):
        tested = _with_test_errors(config, problem, found.result)
        for seed in seeds:
          rows = [r for r in tested if r["seed"] == seed]
          for i, row in enumerate(rows):
            trial = {
              "method": "coarse_to_fine",
              "budget": budget,
              "search": seed - config.seed,
              "seed": seed,
              "round": index,
              "trial": index * len(rows) + i,
            }
            table.append(_trial_row(trial, row, space))
    means = best_found(config, table)[0]
    history = [
      {"member": method, "step": budget, "metric": "best_validation_error", "value": value}
      for method in METHODS
      for budget, value in zip(config.budgets, means[method].values(), strict=True)
    ]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Best found per method and budget (mean and standard error over searches) and the test
    error of each search's pick, the paired differences of both, the distinct values of the
    important axis, and each axis's variance share."""
    table = results.table
    means, errors, validation = best_found(config, table)
    test_means, test_errors, test = best_found(config, table, "test_error")
    budgets = [str(b) for b in config.budgets]
    distinct = {
      method: {
        str(b): float(
          np.mean(
            [
              len({row[config.important] for row in _trials(table, method, b, s)})
              for s in range(config.num_searches)
            ]
          )
        )
        for b in config.budgets
      }
      for method in METHODS
    }
    by_search = variance_shares_by_search(config, table)
    shares = variance_shares(config, table)
    (other,) = (axis for axis in shares if axis != config.important)  # two axes (check_more)
    return {
      "num_searches": config.num_searches,
      "seeds": [config.seed + i for i in range(config.num_searches)],
      "budgets": list(config.budgets),
      "best_found_by_budget": means,
      "best_found_by_budget_se": errors,
      "test_error_of_best_by_budget": test_means,
      "test_error_of_best_by_budget_se": test_errors,
      **_difference("grid_minus_random", test["grid"] - test["random"], budgets),
      **_difference(
        "random_minus_coarse_to_fine", test["random"] - test["coarse_to_fine"], budgets
      ),
      **_difference(
        "grid_minus_random_validation", validation["grid"] - validation["random"], budgets
      ),
      **_difference(
        "random_minus_coarse_to_fine_validation",
        validation["random"] - validation["coarse_to_fine"],
        budgets,
      ),
      "distinct_values_by_budget": distinct,
      "distinct_value_ratio": min(distinct["random"][b] / distinct["grid"][b] for b in budgets),
      "variance_share_by_axis": shares,
      **_share("important_share", by_search[config.important]),
      **_share("other_share", by_search[other]),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The best validation error found against the budget, per method; the validation error
    against the learning rate over the trials of the first search at the largest budget."""
    figures = [
      report.line_plot(
        read_curves(out_dir / "history.csv", "best_validation_error"),
        out_dir / "best_found_by_budget.png",
        title="lowest validation error found (mean over searches)",
        xlabel="budget (trials)",
        ylabel="validation error",
        logx=True,
      )
    ]
    axis = json.loads((out_dir / "config.json").read_text())["important"]
    rows = [
      {**r, **{k: int(r[k]) for k in _ROW_FIELDS if k != "method"}}
      for r in read_csv(out_dir / "results.csv")
    ]
    largest = max(r["budget"] for r in rows)
    series = {}
    for method in METHODS:
      trials = sorted(_trials(rows, method, largest, 0), key=lambda r: r[axis])
      series[f"{method} ({len({r[axis] for r in trials})} values)"] = (
        [r[axis] for r in trials],
        [r["validation_error"] for r in trials],
      )
    figures.append(
      report.line_plot(
        series,
        out_dir / "trials.png",
        title=f"the {largest} trials of one search: validation error against {axis}",
        xlabel=axis,
        ylabel="validation error",
        logx=True,
        logy=True,
      )
    )
    return figures


# The columns of a trial's row other than the hyperparameters (written first, in this order).
_ROW_FIELDS = ("method", "budget", "search", "seed", "round", "trial")


def search_space(config: ml_collections.ConfigDict) -> dict[str, search.Spec]:
  """The config's `space` block as sampled axes (`search.from_config`), the important axis
  first, then the others by name (a config's fields keep no order: the draws and the grid's
  rows depend on it)."""
  space = {}
  block = config.space.to_dict()
  for name in sorted(block, key=lambda name: (name != config.get("important"), name)):
    value = block[name]
    try:
      space[name] = search.from_config(value)
    except ValueError as error:
      raise ValueError(f"search: space.{name}: {error}") from None
  return space


def _training(config: ml_collections.ConfigDict):
  """(problem on the training split less the validation set, with the validation set held out;
  optimizer factory; the optimizer's fixed real hyperparameters as one-value axes)."""
  factory, real = sweep.optimizer_factory(config)
  return _validation_problem(config), factory, {k: [v] for k, v in real.items()}


def _validation_problem(config: ml_collections.ConfigDict) -> problem_lib.Problem:
  """The config's MLP on the digits' training split less a stratified `validation_fraction`,
  that fraction held out (the searches' validation set). One `Problem` per data and model in a
  process (`_PROBLEMS`), so that `check_more` and `run` share compiled programs."""
  model = config.model.to_dict()
  model.pop("init_scale", None)
  key = (json.dumps(config.data.to_dict(), sort_keys=True), json.dumps(model, sort_keys=True))
  key += (config.validation_fraction,)
  if key not in _PROBLEMS:
    digits = load_data(config)
    x_train, x_valid, y_train, y_valid = sklearn.model_selection.train_test_split(
      np.asarray(digits.x_train),
      np.asarray(digits.y_train),
      test_size=config.validation_fraction,
      random_state=config.data.split_seed,
      stratify=np.asarray(digits.y_train),
    )
    inner = data_lib.Dataset(*(jax.numpy.asarray(a) for a in (x_train, y_train, x_valid, y_valid)))
    _PROBLEMS[key] = problem_lib.builtin(model.pop("name"), inner, **model)
  return _PROBLEMS[key]


_PROBLEMS: dict[tuple, problem_lib.Problem] = {}


def _with_test_errors(
  config: ml_collections.ConfigDict, problem: problem_lib.Problem, result: sweep.SweepResult
) -> list[dict]:
  """The sweep's rows, each with `final_heldout_error`: its member's final parameters' 0-1 error
  on the digits' held-out quarter, the test set no search sees."""
  digits = load_data(config)
  error = _test_error(problem)
  templates = problem_lib.pure(problem).initial(0)  # the shapes every member's arrays fill
  return [
    row
    | {
      "final_heldout_error": float(
        error(*member_state(result.arrays, row["member"], *templates), digits.x_test, digits.y_test)
      )
    }
    for row in result.table
  ]


@functools.cache  # a `Problem` hashes by identity; those of `_PROBLEMS` live for the process
def _test_error(problem: problem_lib.Problem):
  """A compiled (params, model_state, x, y) -> the problem's `error` metric in eval mode."""
  pure = problem_lib.pure(problem)
  return jax.jit(lambda params, state, x, y: pure.metrics(params, state, (x, y))["error"])


def _run_options(config: ml_collections.ConfigDict) -> dict:
  return {"steps": config.steps, "eval_every": config.eval_every, "batch_size": config.batch_size}


def _grid_and_random_trials(
  config: ml_collections.ConfigDict, space: dict, seeds: list[int]
) -> list[dict]:
  """Every grid trial of every budget and every random trial (the largest budget's draws), for
  each search, with its point (values in the order of `space`) and seed."""
  trials = []
  for i, seed in enumerate(seeds):
    for budget in config.budgets:
      values = sweep.as_grid(space, math.isqrt(budget))
      grid_points = [(a, b) for a in values[list(space)[0]] for b in values[list(space)[1]]]
      trials += [
        {
          "method": "grid",
          "budget": budget,
          "search": i,
          "seed": seed,
          "round": 0,
          "trial": j,
          "point": point,
        }
        for j, point in enumerate(grid_points)
      ]
    drawn = sweep.sample(space, max(config.budgets), seed)[tuple(space)]
    trials += [
      {
        "method": "random",
        "budget": max(config.budgets),
        "search": i,
        "seed": seed,
        "round": 0,
        "trial": j,
        "point": point,
      }
      for j, point in enumerate(drawn)
    ]
  return trials


def _sweep_size(config: ml_collections.ConfigDict, num_trials: int) -> int:
  """Trials per sweep: the largest coarse-to-fine round's member count that divides them (the
  sweeps then reuse its compiled program), else all of them in one sweep."""
  sizes = [config.num_searches * b // config.coarse_to_fine.rounds for b in config.budgets]
  fitting = [s for s in sizes if num_trials % s == 0]
  return max(fitting) if fitting else num_trials


def _trial_row(trial: dict, row: dict, space: dict) -> dict:
  return {
    **{k: trial[k] for k in _ROW_FIELDS},
    **{name: row[name] for name in space},
    "validation_error": row[METRIC],
    "validation_loss": row["final_test_loss"],
    "test_error": row["final_heldout_error"],
    "train_loss": row["final_train_loss"],
    "diverged": row["diverged"],
  }


def _trials(table: list[dict], method: str, budget: int, search_index: int) -> list[dict]:
  """The trials of one search of `method` at `budget` (random: its first `budget` draws)."""
  if method == "random":
    return [
      r
      for r in table
      if r["method"] == "random" and r["search"] == search_index and r["trial"] < budget
    ]
  return [
    r
    for r in table
    if r["method"] == method and r["budget"] == budget and r["search"] == search_index
  ]


def best_found(
  config: ml_collections.ConfigDict, table: list[dict], column: str = "validation_error"
):
  """(method -> budget -> mean over searches of `column` of the search's pick, its trial of
  lowest validation error (by default: that lowest error), the same's standard errors, method ->
  (searches, budgets) array of the picks' values)."""
  per_search = {
    method: np.asarray(
      [
        [_of_pick(_trials(table, method, b, s), column) for b in config.budgets]
        for s in range(config.num_searches)
      ]
    )
    for method in METHODS
  }
  budgets = [str(b) for b in config.budgets]
  means = {m: dict(zip(budgets, _means(v), strict=True)) for m, v in per_search.items()}
  errors = {m: dict(zip(budgets, _standard_errors(v), strict=True)) for m, v in per_search.items()}
  return means, errors, per_search


def _of_pick(trials: list[dict], column: str = "validation_error") -> float:
  """`column` of the trial of lowest validation error among `trials` (a non-finite error counts
  as 1: all wrong). Errors are counts over the validation set, so good trials often tie: the
  lower validation loss breaks the tie, then the first in table order."""

  def rank(row: dict) -> tuple[float, float]:
    loss = row.get("validation_loss", math.inf)
    return _error(row["validation_error"]), loss if math.isfinite(loss) else math.inf

  return _error(min(trials, key=rank)[column])


def _error(value: float) -> float:
  return float(value) if math.isfinite(value) else 1.0


def variance_shares(config: ml_collections.ConfigDict, table: list[dict]) -> dict[str, float]:
  """Each axis's mean share over the searches of `variance_shares_by_search`; NaN if every
  search is left out."""
  return {
    name: float(np.mean(values)) if values else math.nan
    for name, values in variance_shares_by_search(config, table).items()
  }


def variance_shares_by_search(
  config: ml_collections.ConfigDict, table: list[dict]
) -> dict[str, list[float]]:
  """Each axis's main effect over the largest grid, one per search: the variance of the
  validation error's mean along the axis (averaged over the other) over its total variance
  (functional ANOVA, Hooker 2007; the measure of Hutter et al. 2014). A search whose errors are
  all equal (every trial diverged) has no shares and is left out."""
  budget = max(config.budgets)
  side = math.isqrt(budget)
  names = list(search_space(config))
  shares = {name: [] for name in names}
  for s in range(config.num_searches):
    trials = sorted(_trials(table, "grid", budget, s), key=lambda r: r["trial"])
    errors = np.asarray([_of_pick([r]) for r in trials]).reshape(side, side)  # (first, second)
    total = errors.var()
    if total > 0:  # a flat surface (once counted as a share of 0) says nothing of the axes
      shares[names[0]].append(errors.mean(axis=1).var() / total)
      shares[names[1]].append(errors.mean(axis=0).var() / total)
  return shares


def _share(name: str, per_search: list[float]) -> dict:
  """An axis's variance share: `{name}` its mean over the searches, with `_se` and `_dof`."""
  mean, error = verdicts.mean_and_standard_error(per_search)
  return {name: mean, f"{name}_se": error, f"{name}_dof": verdicts.dof(per_search)}


def _difference(name: str, values: np.ndarray, budgets: list[str]) -> dict:
  """A paired difference between two methods' (searches, budgets) values: `{name}` its mean over
  searches and budgets, with `_se` and `_dof` over the searches' means over budgets, and
  `{name}_by_budget` (with `_se`) budget by budget."""
  per_search = values.mean(axis=1)
  return {
    f"{name}_by_budget": dict(zip(budgets, _means(values), strict=True)),
    f"{name}_by_budget_se": dict(zip(budgets, _standard_errors(values), strict=True)),
    name: float(values.mean()),
    f"{name}_se": verdicts.standard_error(per_search),
    f"{name}_dof": verdicts.dof(per_search),
  }


def _means(values: np.ndarray) -> list[float]:
  return [float(v) for v in values.mean(axis=0)]


def _standard_errors(values: np.ndarray) -> list[float | None]:
  return [verdicts.standard_error(column) for column in values.T]
