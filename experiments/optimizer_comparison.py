"""§8.5.4 "Choosing the right optimization algorithm": first- and second-order methods compared.

Goodfellow et al. (2016, §8.5.4) find no consensus on which algorithm to choose; Schaul et al.
(2014) compared many on many tasks and found the adaptive-rate family (RMSProp, AdaDelta) most
robust, with no single best. Here every optimizer of `optim.OPTIMIZERS` trains the same problems on
scikit-learn's digits, each tuned over its own small grid with `jaxopt_study.sweep` (one vmapped
program per optimizer and problem):

* logistic regression (an MLP of depth 0: softmax of a linear map) with the L2 penalty
  (α/2) θᵀθ of §7.1.1 (`train.make_train_loop(l2_penalty=α)`), which makes it strictly convex:
  its one minimum is computed independently in float64 by `scipy.optimize.minimize`, so every
  optimizer's distance to the optimum is known;
* a small tanh MLP (one hidden layer), small enough for the dense Hessian of Newton's method.

The first-order methods (Algorithms 8.1-8.7, Adadelta, delta-bar-delta) take minibatch steps,
each grid point from every seed of `seeds` (its initialization and minibatch order; a `seed` axis
of the sweep); the methods that use the loss itself (Newton and saddle-free Newton, §8.6.1;
conjugate gradients, §8.6.2; BFGS and L-BFGS, §8.6.3: Hessians and line searches) take
full-batch, deterministic steps, far fewer of them, each far costlier, from every seed's
initialization too (on a problem that starts from θ = 0, logistic regression here, every seed's
run of them is the same run: they run from the first seed only). A grid point's final objective
is its median over its seeds. The comparison therefore reports, at
each optimizer's best grid point (lowest final training objective), the final objective, the
number of steps, the passes over the training set that its gradients made (not counting
line-search trials or Hessian-vector products) and the run time of its grid per member
(compilation excluded).

Claims (`summary.json`, each keyed by problem): `best_optimizer`, `final_loss_by_optimizer`,
`best_hyperparameters_by_optimizer`, `steps_by_optimizer`, `epochs_by_optimizer`,
`seconds_by_optimizer`, `best_at_grid_edge` (the optimizers whose best grid point sits at
either end of one of its swept axes of several values, the learning rate or Newton's damping;
`grid_edge_axes` names the axes), `first_order_best_at_grid_edge` (such an edge among the
first-order methods, which leaves the best-optimizer verdict undecided: that verdict compares them
only), `best_first_order_is_adaptive_rate` (1 or 0),
`adaptive_over_other_final_loss` (± `..._se`, with `..._dof`, the seeds less one: the best
adaptive-rate method's final objective over the best other first-order method's, each at its best
grid point, as the geometric mean over seeds of the per-seed ratio, `verdicts.paired_ratio`,
which the verdict judges on the log scale, beyond t_{0.975, dof} standard errors of 1). The two
are picked on `seeds` and trained again at their best points from fresh `evaluation_seeds`,
which judge them: picked and judged on the same seeds, the larger family would be favoured (more
draws to pick the luckiest from); `adaptive_over_other_final_loss_on_selection_seeds` (±
`..._se`, with `..._dof`) keeps the ratio on the seeds that picked them. On the
convex problems `reference_optimum_loss`, `gap_to_optimum_by_optimizer` and
`steps_to_optimum_by_optimizer` (the first evaluated step within `optimum_rtol` of the optimum;
None when never), and for Newton, BFGS and L-BFGS (keyed "problem/optimizer")
`newton_bfgs_steps_to_optimum` and `newton_bfgs_relative_gap_to_optimum` ((J − J*) / J*).
"""

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
import scipy.optimize
import scipy.special
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import report, sweep, validate
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import digits_tasks, grids, rate_plots
from jaxopt_study.lab.adaptive_rate import ADAPTIVE_RATE, adaptive_over_other, judged_on_fresh_seeds
from jaxopt_study.lab.curves import history_curves, read_curves
from jaxopt_study.results import read_csv

# Methods that use the loss (a dense Hessian or a line search): full-batch, deterministic steps.
FULL_BATCH = ("newton", "saddle_free_newton", "conjugate_gradient", "bfgs", "lbfgs")
# The methods the convergence claims name: Newton (§8.6.1), BFGS and L-BFGS (§8.6.3).
NEWTON_BFGS = ("newton", "bfgs", "lbfgs")
# "A few dozen" iterations: the full config's full-batch run length. A Newton or BFGS run that
# has not reached the optimum after that many steps counts as FEW_DOZEN + 1, a failure; in a
# shorter run (the quick config's) it stays undecided.
FEW_DOZEN = 40


class OptimizerComparison(Experiment):
  """Every optimizer, tuned over its grid, on logistic regression (with its float64 optimum) and a
  small MLP; reported with its steps, passes over the data and run time."""

  NAME = "optimizer_comparison"
  TITLE = "Chapter 8.5.4: every optimizer on logistic regression and a small MLP"
  SECTION = "8.5.4"
  DESCRIPTION = (
    "Every optimizer of chapter 8 on scikit-learn's digits, each tuned over a small grid with the "
    "sweep: L2-regularized logistic regression (strictly convex, its optimum computed in float64 "
    "by scipy) and a small tanh MLP. First-order methods take minibatch steps; Newton, saddle-free "
    "Newton, conjugate gradients, BFGS and L-BFGS take full-batch steps, fewer and costlier: each "
    "is reported with its steps, its passes over the data and its run time, not its loss alone."
  )
  PUBLISHED = {
    "best_optimizer": "no consensus (§8.5.4); Schaul et al. 2014: adaptive-rate methods "
    "(RMSProp, AdaDelta) are the most robust across tasks, with no single best. Judged per "
    "problem, over seeds, as: the best adaptive-rate method reaches a lower final training loss "
    "than the best other first-order method (each family's best picked on selection seeds and "
    "judged on fresh evaluation seeds). The reported best_optimizer compares final "
    "objectives at unequal budgets (full-batch methods: fewer, costlier steps; see "
    "epochs_by_optimizer and seconds_by_optimizer)",
    "steps_to_optimum_by_optimizer": "on a strictly convex problem Newton's method converges "
    "quadratically near the minimum (§8.6.1) and BFGS superlinearly (§8.6.3): a few dozen "
    "iterations; first-order methods converge linearly at a rate set by the condition number",
    "gap_to_optimum_by_optimizer": "→ 0 for Newton and (L-)BFGS on the convex problem",
  }
  # The best adaptive-rate method ends below the best other first-order method, by more than
  # t_{0.975, dof} standard errors of the seeds' paired ratio (judged on the log scale its
  # delta-method error was made on: `ratio=True`); Newton and (L-)BFGS reach the optimum
  # (J ≤ J*(1 + 1e-4)) within FEW_DOZEN steps and end there.
  CRITERIA = {
    "best_optimizer": below(  # undecided where a best rate sits at its grid's edge
      "adaptive_over_other_final_loss",
      1.0,
      standard_error="adaptive_over_other_final_loss_se",
      ratio=True,
      unless="first_order_best_at_grid_edge",
    ),
    "steps_to_optimum_by_optimizer": below("newton_bfgs_steps_to_optimum", FEW_DOZEN + 0.5),
    "gap_to_optimum_by_optimizer": below("newton_bfgs_relative_gap_to_optimum", 1e-4),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "minibatch.steps": validate.require_positive_int,
    "minibatch.eval_every": validate.require_positive_int,
    "minibatch.batch_size": validate.require_positive_int,
    "full_batch.steps": validate.require_positive_int,
    "full_batch.eval_every": validate.require_positive_int,
    "optimum_rtol": validate.require_positive,
    "seeds": validate.seeds(),
    "evaluation_seeds": validate.seeds(),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """The problems' penalties, the grids, the minibatch size, and every sweep's own check."""
    if not config.problems or not config.optimizers:
      raise ValueError(f"{self.NAME}: problems and optimizers must each name at least one")
    for name, problem in config.problems.items():
      field = f"problems.{name}.l2_penalty"
      if _is_logistic_regression(problem):  # digits are separable: without a penalty, no minimum
        validate.require_positive(field, problem.l2_penalty, self.NAME)
      validate.require_non_negative(field, problem.l2_penalty, self.NAME)
    grids.check_learning_rate_grids(config.optimizers, self.NAME)
    if shared := sorted(set(config.seeds) & set(config.evaluation_seeds)):
      raise ValueError(
        f"{self.NAME}: evaluation_seeds={list(config.evaluation_seeds)!r} share {shared} with "
        "seeds: the winners are judged on seeds the selection never saw"
      )
    num_train = _digits(config).x_train.shape[0]
    batch_size = config.minibatch.batch_size
    validate.require_int("minibatch.batch_size", batch_size, self.NAME, low=1, high=num_train)
    for problem in config.problems:
      for name in config.optimizers:
        try:
          sweep.check_config(sweep_config(config, problem, name, num_train))
        except ValueError as error:
          raise ValueError(
            f"{self.NAME}: optimizers.{name} on problems.{problem}: {error}"
          ) from None

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every optimizer's grid on every problem; a finished grid is kept for resuming."""
    num_train = _digits(config).x_train.shape[0]
    jobs = [(p, name) for p in config.problems for name in config.optimizers]
    table, history, arrays = [], [], {}

    def add(record: dict, best_arrays: dict) -> None:
      table.extend(record["table"])
      history.extend(record["history"])
      arrays.update(best_arrays)

    for problem, name in tqdm(jobs, desc="optimizers", disable=not progress):
      add(
        *members.get(
          f"{problem}:{name}", lambda p=problem, n=name: _run_grid(config, p, n, num_train)
        )
      )
    for (problem, name), point in _winners(table, _swept(config)).items():  # from fresh seeds
      label = ",".join(f"{a}={v:g}" for a, v in point.items())
      add(
        *members.get(
          f"evaluation:{problem}:{name}:{label}",
          lambda p=problem, n=name, q=point: _run_grid(config, p, n, num_train, q),
        )
      )
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Per problem, each optimizer at its best grid point (lowest median final training objective
    over seeds), its costs, on the convex problems its distance to the float64 optimum, and the
    best adaptive-rate method against the best other first-order one, paired by seed."""
    table = [r for r in results.table if r["phase"] == SELECTION]
    data = _digits(config)
    optima = {
      p: logistic_regression_optimum(data, config.problems[p].l2_penalty)
      for p in config.problems
      if _is_logistic_regression(config.problems[p])
    }
    at_best = best_points(table)
    best = {
      p: {k: _median_row(rows) for (q, k), rows in at_best.items() if q == p}
      for p in dict.fromkeys(r["problem"] for r in table)
    }
    losses = history_curves(results.history, "train_loss")
    steps_to_optimum = {
      p: {
        k: _first_step_below(losses[r["member"]], optima[p] * (1 + config.optimum_rtol))
        for k, r in best[p].items()
      }
      for p in optima
    }
    newton_bfgs = [(p, k) for p in optima for k in NEWTON_BFGS if k in best[p]]
    swept = _swept(config)
    edge_axes = _edge_axes(table, best, swept)
    edges = {p: sorted(k for k, axes in by_k.items() if axes) for p, by_k in edge_axes.items()}
    return {
      "best_optimizer": {
        p: min(rows.values(), key=lambda r: r["final_train_loss"])["optimizer"] if rows else None
        for p, rows in best.items()
      },
      "final_loss_by_optimizer": _by(best, "final_train_loss"),
      "best_member_by_optimizer": _by(best, "member"),
      "best_hyperparameters_by_optimizer": {
        p: {k: {a: r[a] for a in swept[k]} for k, r in rows.items()} for p, rows in best.items()
      },
      "steps_by_optimizer": _by(best, "steps"),
      "epochs_by_optimizer": _by(best, "epochs"),
      "seconds_by_optimizer": _by(best, "seconds"),
      "final_test_error_by_optimizer": _by(best, "final_test_error"),
      # A best grid point at either end of an axis of several values: it may not be bracketed.
      "best_at_grid_edge": edges,
      "grid_edge_axes": {p: {k: a for k, a in by_k.items() if a} for p, by_k in edge_axes.items()},
      "members_not_descending": sorted(
        r["member"]
        for r in table
        if r["diverged"] or not r["final_train_loss"] < r["initial_train_loss"]
      ),
      "seeds": list(config.seeds),
      "reference_optimum_loss": optima,
      "gap_to_optimum_by_optimizer": {
        p: {k: r["final_train_loss"] - optima[p] for k, r in best[p].items()} for p in optima
      },
      "steps_to_optimum_by_optimizer": steps_to_optimum,
      "best_first_order_is_adaptive_rate": {
        p: _is_adaptive_rate(_best_first_order(rows)) for p, rows in best.items()
      },
      **_per_problem(
        {
          p: judged_on_fresh_seeds(
            _first_order_pick(at_best, p),
            [r for r in results.table if r["phase"] == EVALUATION and r["problem"] == p],
          )
          for p in best
        }
      ),
      "first_order_best_at_grid_edge": {
        p: any(k not in FULL_BATCH for k in edges[p]) for p in best
      },
      # None where no convex problem ran one of them: nothing to judge
      "newton_bfgs_steps_to_optimum": {
        f"{p}/{k}": _or_failed(steps_to_optimum[p][k], config.full_batch.steps)
        for p, k in newton_bfgs
      }
      or None,
      "newton_bfgs_relative_gap_to_optimum": {
        f"{p}/{k}": (best[p][k]["final_train_loss"] - optima[p]) / optima[p] for p, k in newton_bfgs
      }
      or None,
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Per problem: the best members' objective vs step and vs run time (the first seed's), and
    the final objective vs learning rate (the median over seeds)."""
    table = [r for r in read_csv(out_dir / "results.csv") if r["phase"] == SELECTION]
    losses = read_curves(out_dir / "history.csv", "train_loss")
    summary = json.loads((out_dir / "summary.json").read_text())
    optima = summary["reference_optimum_loss"]
    by_member = {r["member"]: r for r in table}
    figures = []
    for problem in dict.fromkeys(r["problem"] for r in table):
      best = {k: by_member[m] for k, m in summary["best_member_by_optimizer"][problem].items()}
      shift = optima.get(problem, 0.0)
      ylabel = "training objective − optimum" if problem in optima else "training objective"
      for axis, xlabel in (
        ("step", "step + 1"),
        ("seconds", "seconds (estimated: (step + 1) × its grid's run time per member and step)"),
      ):
        series = {}
        for name, row in best.items():
          steps, values = losses[row["member"]]
          scale = 1.0 if axis == "step" else row["seconds"] / row["steps"]
          series[name] = ([(s + 1) * scale for s in steps], [v - shift for v in values])
        figures.append(
          report.line_plot(
            series,
            out_dir / f"{problem}_loss_vs_{axis}.png",
            title=f"{problem}: each optimizer at its best grid point",
            xlabel=xlabel,
            ylabel=ylabel,
            logx=True,
            logy=True,
          )
        )
      figures.append(
        rate_plots.rate_plot(
          grids.seed_medians(  # full-batch grids are of damping, or a single rate
            [r for r in table if r["problem"] == problem and r["optimizer"] not in FULL_BATCH],
            ("optimizer", "learning_rate"),
            "final_train_loss",
          ),
          "final_train_loss",
          out_dir / f"{problem}_lr_sensitivity.png",
          shift=shift,
          title=f"{problem}: final objective vs learning rate (median over seeds)",
          ylabel=ylabel,
          logy=True,
        )
      )
    return figures


SELECTION, EVALUATION = "selection", "evaluation"  # a row's phase: the grid, or a winner again


def _swept(config: ml_collections.ConfigDict) -> dict[str, list[str]]:
  """Per optimizer, its swept hyperparameters (those given as lists)."""
  return {
    k: [a for a, v in h.items() if isinstance(v, list | tuple)]
    for k, h in config.optimizers.items()
  }


def _first_order_pick(at_best: dict[tuple[str, str], list[dict]], problem: str) -> dict:
  """`adaptive_over_other` on `problem`'s first-order methods, each at its best point."""
  return adaptive_over_other(
    {
      k: [r["final_train_loss"] for r in rows]
      for (p, k), rows in at_best.items()
      if p == problem and k not in FULL_BATCH
    }
  )


def _winners(table: list[dict], swept: dict[str, list[str]]) -> dict[tuple[str, str], dict]:
  """Per problem, the best adaptive-rate method and the best other first-order one on the
  selection seeds (`adaptive_over_other`'s pick), each with its best point's hyperparameters."""
  at_best = best_points([r for r in table if r["phase"] == SELECTION])
  winners = {}
  for problem in dict.fromkeys(p for p, _ in at_best):
    picked = _first_order_pick(at_best, problem)
    for name in (picked["best_adaptive_rate_optimizer"], picked["best_other_optimizer"]):
      if name is not None:
        winners[(problem, name)] = {a: at_best[(problem, name)][0][a] for a in swept[name]}
  return winners


def _digits(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  return data_lib.load_digits(config.data.test_fraction, config.data.split_seed)


def sweep_config(
  config: ml_collections.ConfigDict,
  problem: str,
  name: str,
  num_train: int,
  point: dict[str, float] | None = None,
) -> ml_collections.ConfigDict:
  """The sweep of optimizer `name` on `problem`: its list-valued hyperparameters are the axes.

  A full-batch method's minibatch is the whole training set (`batch_size` = n, one epoch per
  step, so every step sees every example once). The run is one segment, so that one training
  program is compiled per optimizer and problem. A minibatch method's sweep has a `seed` axis
  (`config.seeds`); so has a full-batch method's, unless the problem starts from θ = 0
  (`init_scale` 0), where its deterministic steps make every seed's run the same: it runs from
  the first seed only. With `point` (a winner's best hyperparameters), the sweep is that point
  from every seed of `evaluation_seeds`.
  """
  hyper = config.optimizers[name].to_dict()
  axes = {k: list(v) for k, v in hyper.items() if isinstance(v, list | tuple)}
  fixed = {k: v for k, v in hyper.items() if k not in axes}
  full = name in FULL_BATCH
  if point is not None:
    axes = {k: [point[k]] for k in axes} | {"seed": list(config.evaluation_seeds)}
  elif not full or not _starts_at_zero(config.problems[problem]):
    axes["seed"] = list(config.seeds)
  schedule = config.full_batch if full else config.minibatch
  return ml_collections.ConfigDict(
    {
      "seed": axes.get("seed", config.seeds)[0],
      "steps": schedule.steps,
      "eval_every": schedule.eval_every,
      "checkpoint_every": schedule.eval_every * math.ceil(schedule.steps / schedule.eval_every),
      "batch_size": num_train if full else schedule.batch_size,
      "sampling": "epoch",
      "learning_rate": axes["learning_rate"][0],
      "l2_penalty": config.problems[problem].l2_penalty,
      "data": config.data.to_dict(),
      "model": config.problems[problem].model.to_dict(),
      "optimizer": {"name": name, **fixed},
      "sweep": axes,
    }
  )


def _run_grid(
  config, problem: str, name: str, num_train: int, point: dict | None = None
) -> tuple[dict, dict]:
  """One optimizer's grid on one problem (or, with `point`, a winner's best point from the
  evaluation seeds): its rows, its history, the best member's arrays."""
  grid_config = sweep_config(config, problem, name, num_train, point)
  result = sweep.run_config(grid_config)
  axes = list(grid_config.sweep.keys())
  steps, batch_size = grid_config.steps, grid_config.batch_size
  initial = {
    e["member"]: e["value"]
    for e in result.history
    if e["step"] == 0 and e["metric"] == "train_loss"
  }
  rows, labels = [], {}
  for row in result.table:
    label = f"{problem}:{name}:" + ",".join(f"{a}={row[a]:g}" for a in axes)
    labels[row["member"]] = label
    rows.append(
      {
        "member": label,
        "problem": problem,
        "optimizer": name,
        "phase": SELECTION if point is None else EVALUATION,
        "full_batch": name in FULL_BATCH,
        **{a: row[a] for a in axes},
        "seed": row["seed"],
        # the grid point, whatever the seed: its seeds' rows share it
        "point": ",".join(f"{a}={row[a]:g}" for a in axes if a != "seed"),
        "steps": steps,
        "batch_size": batch_size,
        "epochs": steps * batch_size / num_train,
        "seconds": result.stats.run_seconds / len(result.table),
        "final_train_loss": row["final_train_loss"],
        "initial_train_loss": initial[row["member"]],
        "final_grad_norm": row["final_grad_norm"],
        "final_test_error": row["final_test_error"],
        "diverged": row["diverged"],
      }
    )
  history = [{**entry, "member": labels[entry["member"]]} for entry in result.history]
  # The final parameters of the best grid point's members (one per seed), renamed from the
  # sweep's m0003/... to their labels
  sweep_names = {label: member for member, label in labels.items()}
  best_arrays = {
    row["member"] + key.removeprefix(sweep_names[row["member"]]): value
    for seeds in best_points(rows).values()
    for row in seeds
    for key, value in result.arrays.items()
    if key.startswith(sweep_names[row["member"]] + "/")
  }
  return {"table": rows, "history": history}, best_arrays


def best_points(table: list[dict]) -> dict[tuple[str, str], list[dict]]:
  """Per (problem, optimizer), the rows of its best grid point, in seed order: the point with
  the lowest median final objective over its seeds (a diverged seed counts as +inf, and its row's
  final objective is +inf here); a pair whose every point has a median of +inf is left out."""
  scored = [
    {**r, "final_train_loss": math.inf if r["diverged"] else r["final_train_loss"]} for r in table
  ]
  pairs = ("problem", "optimizer")
  medians = grids.seed_medians(scored, (*pairs, "point"), "final_train_loss")
  best = grids.best_rows(medians, pairs, "final_train_loss")
  return grids.seed_rows_at(scored, best, pairs, "point")


def _edge_axes(
  table: list[dict], best: dict[str, dict[str, dict]], swept: dict[str, list[str]]
) -> dict[str, dict[str, list[str]]]:
  """Per problem and optimizer, the swept axes (of several values) at whose smallest or largest
  value the best grid point sits: a grid that may not bracket the best."""
  values: dict[tuple[str, str, str], set] = {}
  for row in table:
    for axis in swept[row["optimizer"]]:
      values.setdefault((row["problem"], row["optimizer"], axis), set()).add(row[axis])
  return {
    p: {
      k: [
        a
        for a in swept[k]
        if len(tried := values[(p, k, a)]) > 1 and r[a] in (min(tried), max(tried))
      ]
      for k, r in rows.items()
    }
    for p, rows in best.items()
  }


def _median_row(rows: list[dict]) -> dict:
  """The first seed's row of a grid point, with its final objective and held-out error the
  medians over the point's seeds (its steps, costs and curve are the first seed's)."""
  return {
    **rows[0],
    **{m: float(np.median([r[m] for r in rows])) for m in ("final_train_loss", "final_test_error")},
  }


def _per_problem(claims: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
  """{problem: {key: value}} as {key: {problem: value}}, the shape of the other claims."""
  keys = dict.fromkeys(k for by_key in claims.values() for k in by_key)
  return {k: {p: by_key[k] for p, by_key in claims.items()} for k in keys}


def logistic_regression_objective(
  data: data_lib.Dataset, l2_penalty: float
) -> tuple[Callable[[np.ndarray], tuple[float, np.ndarray]], int]:
  """The L2-regularized multinomial logistic regression objective in float64, and its size.

  J(W, b) = (1/n) Σᵢ [log Σ_k exp(zᵢₖ) − zᵢ,yᵢ] + (α/2)(‖W‖² + ‖b‖²), z = XW + b, with its
  gradient (1/n) Xᵀ(P − Y) + αW, (1/n) Σᵢ (P − Y)ᵢ + αb (P the softmax, Y the one-hot labels),
  written out in numpy: θ ↦ (J, ∇J) for θ = (vec W, b), as `scipy.optimize.minimize(jac=True)`
  takes it.
  """
  x = np.asarray(data.x_train, np.float64)
  labels = np.asarray(data.y_train)
  n, d = x.shape
  k = int(labels.max()) + 1
  one_hot = np.eye(k)[labels]

  def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
    w, b = theta[: d * k].reshape(d, k), theta[d * k :]
    z = x @ w + b
    log_norm = scipy.special.logsumexp(z, axis=1)
    value = np.mean(log_norm - z[np.arange(n), labels]) + 0.5 * l2_penalty * theta @ theta
    residual = (np.exp(z - log_norm[:, None]) - one_hot) / n
    grad = np.concatenate([(x.T @ residual).ravel(), residual.sum(axis=0)]) + l2_penalty * theta
    return value, grad

  return objective, d * k + k


def logistic_regression_optimum(data: data_lib.Dataset, l2_penalty: float) -> float:
  """The minimum of `logistic_regression_objective`, in float64, by scipy's L-BFGS-B to a
  gradient norm of 1e-10: an independent reference for the float32 runs (J is strictly convex
  for α > 0, so the minimum is unique)."""
  objective, size = logistic_regression_objective(data, l2_penalty)
  solution = scipy.optimize.minimize(
    objective,
    np.zeros(size),
    jac=True,
    method="L-BFGS-B",
    options={"maxiter": 20_000, "gtol": 1e-10, "ftol": 1e-16},
  )
  return float(solution.fun)


def _by(best: dict[str, dict[str, dict]], field: str) -> dict[str, dict[str, Any]]:
  return {p: {k: r[field] for k, r in rows.items()} for p, rows in best.items()}


def _best_first_order(rows: dict[str, dict]) -> str | None:
  """The first-order optimizer with the lowest final training objective (None: none ran)."""
  first = {k: r for k, r in rows.items() if k not in FULL_BATCH}
  return min(first, key=lambda k: first[k]["final_train_loss"]) if first else None


def _is_adaptive_rate(name: str | None) -> float | None:
  """1 for an adaptive-rate method, 0 for another (a number, for the verdict), None for none."""
  return None if name is None else float(name in ADAPTIVE_RATE)


def _or_failed(step: int | None, run_steps: int) -> int | None:
  """The step the optimum was reached at; FEW_DOZEN + 1 if a run of at least FEW_DOZEN steps
  never reached it (the claim fails); None if a shorter run did not (undecided)."""
  if step is None and run_steps >= FEW_DOZEN:
    return FEW_DOZEN + 1
  return step


def _first_step_below(curve: tuple[list, list], level: float) -> int | None:
  steps, values = curve
  return next((int(s) for s, v in zip(steps, values, strict=True) if v <= level), None)


def _starts_at_zero(problem: ml_collections.ConfigDict) -> bool:
  """The problem's model starts from θ = 0 whatever the seed (`init_scale` 0)."""
  return problem.model.get("init_scale", 1.0) == 0.0


def _is_logistic_regression(problem: ml_collections.ConfigDict) -> bool:
  """An MLP without hidden layers: softmax of a linear map, convex in its parameters."""
  return problem.model.name == "mlp" and problem.model.get("depth", 2) == 0
