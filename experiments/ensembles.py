"""Model ensembles (lecture 7 of Stanford CS231n, "Training neural networks II"; Goodfellow et al.
2016, §7.11) at one budget of steps per model: independent members, snapshots, Polyak averaging.

A digits MLP (`config.model`) is trained by SGD with momentum (Algorithm 8.2) for `steps` steps in
four ways, `repeats` times over (each repeat with its own seeds, for the error bars):

* `single`: a model annealed by one cosine cycle (`optim.cosine_warm_restarts(ε, steps)`, one
  cycle of T = steps), the standard schedule; K = `members` of them per repeat, each its own seed;
* `ensemble`: the K singles of a repeat, their predicted class probabilities averaged
  (`ensembles.ensemble_error`): K times the training cost;
* `snapshot_ensemble` (Huang et al. 2017): one run of the same `steps` under SGDR with `cycles`
  cycles (Loshchilov & Hutter 2017) from `snapshot_learning_rate`, the snapshots at the ends of
  the cycles averaged; the cost of one model;
* `polyak`: one run at the constant rate ε whose parameters' exponential moving average
  θ̂ ← β θ̂ + (1 − β) θ (`optim.polyak_average(mode="ema")`, §8.7.3) is tested instead of its last
  iterate; the cost of one model.

Every run of every method is one member of one vmapped program over seeds and schedules
(`ensembles.make_snapshot_fn`, the pure form of `ensembles.snapshot_ensemble`, with each run's
rate schedule traced: SGDR with the run's period, from its own top to its own bottom rate, a
constant rate when they are equal), so the whole experiment compiles once; each run equals the
same run alone (`train.train`, `ensembles.snapshot_ensemble`). All runs use the weight decay
`l2_penalty` (§7.1.1), as Huang et al. do.

Every method's test error is the 0-1 error of the argmax of its (averaged) class probabilities on
the held-out digits. Claims (`summary.json`), each the mean over repeats with its standard error
`_se` (s/√repeats) and its degrees of freedom `_dof` (repeats − 1), a gain where it is positive
beyond t_{0.975, dof} standard errors of the repeats' paired differences: `ensemble_gain`, the
test error of the best of the K singles (chosen on the test set, the most favourable single
model) minus the ensemble's; `snapshot_gain`, the mean single model's test error minus the
snapshot ensemble's (same training cost); `snapshot_gain_over_last_snapshot`; `polyak_gain`, the
last iterate's test error minus the averaged one's; `test_error_by_method`; and the ensemble's
error against the number of members it averages (the first k singles, the last k snapshots).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxopt_study import ensembles, optim, report, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import build_problem
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.lab.verdicts import dof, mean_and_standard_error
from jaxopt_study.results import history_rows

# The methods a repeat measures once (the singles are K rows per repeat).
ONE_PER_REPEAT = (
  "ensemble",
  "snapshot_ensemble",
  "snapshot_last",
  "polyak_last",
  "polyak_averaged",
)


class Ensembles(Experiment):
  """Independent members, snapshot ensembles and Polyak averaging, at one budget per model."""

  NAME = "ensembles"
  TITLE = "Model ensembles: independent members vs snapshot ensembles vs Polyak averaging"
  SECTION = "8.7.3"
  DESCRIPTION = (
    "A digits MLP trained by SGD with momentum for the same number of steps per model: single "
    "models under one cosine annealing; the average of the predicted class probabilities of K "
    "independently seeded singles (K times the cost); a snapshot ensemble (Huang et al. 2017), one "
    "run under cosine annealing with warm restarts whose end-of-cycle snapshots are averaged (the "
    "cost of one model); and Polyak averaging, the exponential moving average of one constant-rate "
    "run's parameters tested instead of its last iterate (§8.7.3). Each is repeated with fresh "
    "seeds, and the gains are means over repeats with their standard errors; the ensemble's gain "
    "is measured against the best single member on the test set itself."
  )
  PUBLISHED = {
    "ensemble_gain": "≈ 0.02: 'train multiple independent models, at test time average their "
    "results: enjoy 2% extra performance' (CS231n lecture 7, 2017; Goodfellow et al. 2016, §7.11)",
    "snapshot_gain": "> 0: the snapshot ensemble beats a single model trained at the same cost "
    "(Huang et al. 2017, Table 2; CS231n lecture 7)",
    "polyak_gain": "> 0: a moving average of the parameters tests better than the last iterate "
    "(Goodfellow et al. 2016, §8.7.3; CS231n lecture 7)",
  }
  # Each gain positive beyond t_{0.975, dof} standard errors over the repeats (0 is "no gain").
  CRITERIA = {
    "ensemble_gain": above("ensemble_gain", 0.0, standard_error="ensemble_gain_se"),
    "snapshot_gain": above("snapshot_gain", 0.0, standard_error="snapshot_gain_se"),
    "polyak_gain": above("polyak_gain", 0.0, standard_error="polyak_gain_se"),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    **dict.fromkeys(("steps", "batch_size", "cycles"), validate.require_positive_int),
    "seed": functools.partial(validate.require_int, low=0),
    "members": functools.partial(validate.require_int, low=2),
    "repeats": functools.partial(validate.require_int, low=2),  # a standard error needs 2
    "learning_rate": validate.require_positive,
    "snapshot_learning_rate": validate.require_positive,
    "momentum": validate.require_unit_interval,
    "polyak_decay": validate.require_unit_interval,
    "l2_penalty": validate.require_non_negative,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Whole cycles that fill the budget, a batch within the training set, a model that builds."""
    if config.cycles < 2 or config.steps % config.cycles:
      raise ValueError(
        f"{self.NAME}: cycles={config.cycles} must be >= 2 and divide steps={config.steps}"
      )
    validate.require_unit_interval(
      "polyak_decay", config.polyak_decay, self.NAME, include_one=False
    )
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    validate.require_int("batch_size", config.batch_size, self.NAME, low=1, high=num_train)
    try:
      digits_tasks.mlp(config.seed, **config.model)
    except (TypeError, ValueError) as error:
      raise ValueError(f"{self.NAME}: model: {error}") from error

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every run (singles, snapshot runs, Polyak runs) as one vmapped program; a later run in the
    same folder reads its results back."""
    problem = build_problem(config)
    record, _ = members.get("runs", functools.partial(_runs, config, problem, progress))
    return Results(record["rows"], record["history"])

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Per repeat: each method's test error and the gains; their means over repeats and the
    standard errors of the means."""
    by = {(row["method"], row["repeat"]): row["test_error"] for row in results.table}
    repeats = range(config.repeats)
    single_rows = [row for row in results.table if row["method"] == "single"]
    singles = [[row["test_error"] for row in single_rows if row["repeat"] == r] for r in repeats]
    per_repeat = {
      "single": [float(np.mean(errors)) for errors in singles],
      "single_best": [min(errors) for errors in singles],
      **{method: [by[(method, r)] for r in repeats] for method in ONE_PER_REPEAT},
    }
    gains = {
      "ensemble_gain": np.subtract(per_repeat["single_best"], per_repeat["ensemble"]),
      "ensemble_gain_over_mean_member": np.subtract(per_repeat["single"], per_repeat["ensemble"]),
      "snapshot_gain": np.subtract(per_repeat["single"], per_repeat["snapshot_ensemble"]),
      "snapshot_gain_over_last_snapshot": np.subtract(
        per_repeat["snapshot_last"], per_repeat["snapshot_ensemble"]
      ),
      "polyak_gain": np.subtract(per_repeat["polyak_last"], per_repeat["polyak_averaged"]),
    }
    summary = {}
    for name, values in gains.items():
      summary[name], summary[f"{name}_se"] = mean_and_standard_error(values)
      summary[f"{name}_dof"] = dof(values)
    return {
      **summary,
      "test_error_by_method": {m: float(np.mean(v)) for m, v in per_repeat.items()},
      "test_error_by_method_se": {m: mean_and_standard_error(v)[1] for m, v in per_repeat.items()},
      "ensemble_size_curve": {
        kind: _size_curve(results.history, kind) for kind in ("independent", "snapshots")
      },
      "members": config.members,
      "cycles": config.cycles,
      "repeats": config.repeats,
      "seeds": sorted({row["seed"] for row in results.table if row["method"] == "single"}),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The ensemble's test error against its number of members (the first k singles, the last k
    snapshots), from history.csv."""
    curves = read_curves(out_dir / "history.csv", "ensemble_test_error")
    return [
      report.line_plot(
        {
          "independent members (k models' cost)": curves["independent"],
          "last k snapshots (one model's cost)": curves["snapshots"],
        },
        out_dir / "ensemble_size.png",
        title="test error of an ensemble of k members (mean over repeats)",
        xlabel="members k",
        ylabel="held-out 0-1 error",
      )
    ]


def _size_curve(history: list[dict], kind: str) -> dict[str, float]:
  """k -> the ensemble's mean test error over repeats, from the history rows of `kind`."""
  return {
    str(row["step"]): row["value"]
    for row in history
    if row["member"] == kind and row["metric"] == "ensemble_test_error"
  }


def _repeat_seeds(config: ml_collections.ConfigDict) -> list[list[int]]:
  """The K member seeds of each repeat; a repeat's snapshot and Polyak runs take its first."""
  k = config.members
  return [[config.seed + r * k + i for i in range(k)] for r in range(config.repeats)]


def _plan(config: ml_collections.ConfigDict) -> list[dict]:
  """Every run: its method, repeat, seed and schedule, ε_k = cosine_warm_restarts(max_rate,
  period, min_value=min_rate) (a constant rate when min_rate = max_rate)."""
  rate, steps = config.learning_rate, config.steps
  names = ("method", "repeat", "seed", "max_rate", "min_rate", "period")
  runs = []
  for r, group in enumerate(_repeat_seeds(config)):
    settings = [("single", r, seed, rate, 0.0, steps) for seed in group]
    snapshot_rate = config.snapshot_learning_rate
    settings.append(("snapshot_last", r, group[0], snapshot_rate, 0.0, steps // config.cycles))
    settings.append(("polyak_last", r, group[0], rate, rate, steps))
    runs += [dict(zip(names, values, strict=True)) for values in settings]
  return runs


def _train(config: ml_collections.ConfigDict, problem: problem_lib.Problem, runs: list[dict]):
  """Every run as one vmapped program: `ensembles.make_snapshot_fn` with `cycles` cycles of
  steps / cycles steps (a snapshot at each end), the run's own schedule traced, and an EMA of its
  parameters watching (`optim.polyak_average`). Returns the snapshots (runs, cycles, ...), the
  averaged parameters (runs, ...) and the metrics at the cycles' ends (runs, cycles)."""
  pure = problem_lib.pure(problem)
  seeds = [run["seed"] for run in runs]
  initial = [pure.initial(seed) for seed in seeds]
  params, model_state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *initial)
  keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
  hyper = {
    name: jnp.asarray([run[name] for run in runs], dtype)
    for name, dtype in (("max_rate", jnp.float32), ("min_rate", jnp.float32), ("period", jnp.int32))
  }
  lengths = ensembles.cycle_lengths(config.steps // config.cycles, config.cycles)

  def one_run(params, model_state, key, hyper, data):
    schedule = optim.cosine_warm_restarts(
      hyper["max_rate"], hyper["period"], min_value=hyper["min_rate"]
    )
    optimizer = optim.polyak_average(
      optim.momentum(schedule, config.momentum), mode="ema", decay=config.polyak_decay
    )
    snapshot_fn = ensembles.make_snapshot_fn(
      problem,
      optimizer,
      lengths=lengths,
      batch_size=config.batch_size,
      l2_penalty=config.l2_penalty,
    )
    state, snapshots, metrics = snapshot_fn(params, model_state, data, key)
    return snapshots, optim.averaged_params(state.opt_state, state.params), metrics

  vmapped = jax.jit(jax.vmap(one_run, in_axes=(0, 0, 0, 0, None)))
  return vmapped(params, model_state, keys, hyper, problem_lib.as_data(problem))


def _runs(config: ml_collections.ConfigDict, problem: problem_lib.Problem, progress: bool):
  """Trains every run, then measures each method's test error from the members' class
  probabilities, and the ensembles' errors against their number of members."""
  del progress  # one program, seconds
  runs = _plan(config)
  snapshots, averaged, metrics = _train(config, problem, runs)
  labels = np.asarray(problem.heldout_data[1])
  cycle_steps = np.cumsum(ensembles.cycle_lengths(config.steps // config.cycles, config.cycles))

  def member(i: int, cycle: int = -1) -> ensembles.Member:
    return jax.tree.map(lambda x: x[i, cycle], snapshots)

  rows, history, sizes = [], [], {"independent": [], "snapshots": []}
  for i, run in enumerate(runs):
    name = f"{run['method']}/repeat{run['repeat']}/seed{run['seed']}"
    run_history = {k: np.asarray(v[i]) for k, v in metrics.items()} | {"step": cycle_steps}
    history += history_rows(name, run_history)
    rows.append(
      {
        "member": name,
        **run,
        "test_error": ensembles.ensemble_error(problem, [member(i)]),
        "train_loss": float(run_history["train_loss"][-1]),
      }
    )
  for r in range(config.repeats):
    mine = [i for i, run in enumerate(runs) if run["repeat"] == r]
    singles = [member(i) for i in mine if runs[i]["method"] == "single"]
    snapshot_run = next(i for i in mine if runs[i]["method"] == "snapshot_last")
    polyak_run = next(i for i in mine if runs[i]["method"] == "polyak_last")
    snapshot_members = [member(snapshot_run, c) for c in range(config.cycles)]
    polyak_averaged = (
      jax.tree.map(lambda x, i=polyak_run: x[i], averaged),
      member(polyak_run)[1],
    )
    for method, members in (
      ("ensemble", singles),
      ("snapshot_ensemble", snapshot_members),
      ("polyak_averaged", [polyak_averaged]),
    ):
      rows.append(
        {
          "member": f"{method}/repeat{r}",
          "method": method,
          "repeat": r,
          "seed": runs[mine[0]]["seed"],
          "test_error": ensembles.ensemble_error(problem, members),
        }
      )
    sizes["independent"].append(_size_curve_of(problem, singles, labels, first=True))
    sizes["snapshots"].append(_size_curve_of(problem, snapshot_members, labels, first=False))
  for kind, errors in sizes.items():
    mean = np.mean(errors, axis=0)
    history += [
      {"member": kind, "step": k + 1, "metric": "ensemble_test_error", "value": float(v)}
      for k, v in enumerate(mean)
    ]
  return {"rows": rows, "history": history}, {}


def _size_curve_of(problem, members, labels: np.ndarray, *, first: bool) -> list[float]:
  """The test error of the ensemble of the first (else the last) k members, k = 1, 2, ...: each
  member's class probabilities once, then their running means."""
  inputs = problem.heldout_data[0]
  probabilities = np.stack(
    [ensembles.ensemble_probabilities(problem, [m], inputs) for m in members]
  )
  if not first:
    probabilities = probabilities[::-1]
  means = np.cumsum(probabilities, axis=0) / np.arange(1, len(members) + 1)[:, None, None]
  return [float(np.mean(m.argmax(axis=-1) != labels)) for m in means]
