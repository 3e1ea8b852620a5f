"""§8.3.1 learning-rate schedules compared: constant, step, exponential, 1/t, linear, cosine, SGDR.

Goodfellow et al. (2016), §8.3.1: SGD's minibatch gradient stays noisy at a minimum, so a
constant rate ε keeps the iterate bouncing around it; in practice "it is necessary to gradually
decrease the learning rate over time" (eq. 8.12-8.14). The lecture that accompanies chapter 8
(Stanford CS231n, lecture 7) lists step, exponential and 1/t decay; Loshchilov & Hutter (2017)
add cosine annealing with warm restarts (SGDR). A digits MLP is trained by plain SGD (Algorithm
8.1) for the same `steps` under each schedule, from a base rate ε_0 of the grid `learning_rates`,
over `seeds`:

* `constant`: ε_k = ε_0;
* `step`: ε_0 · γ^⌊k/s⌋ with `step_drops` drops, γ = f^(1/drops), s = ⌈steps/(drops + 1)⌉;
* `exponential`: ε_0 · f^(k/steps);
* `inverse_time`: ε_0 / (1 + γk), γ = (1/f − 1)/steps;
* `linear`: eq. 8.14, from ε_0 to f·ε_0 at k = steps;
* `cosine`: one cosine cycle over the run (`optim.cosine_warm_restarts(ε_0, steps)`);
* `sgdr`: `sgdr_cycles` cycles, each `sgdr_period_factor` times the last, filling the run.

Every decaying schedule except the cosines ends at f = `final_fraction` of ε_0 (the book suggests
about 1% for eq. 8.14); the cosines end near 0, as Loshchilov & Hutter's do. Every schedule ×
rate × seed is one member of one `sweep.run` (the schedule an axis, `optim.choose_schedule`), so
the whole comparison is one compiled program.

A schedule's best base rate is the one with the lowest final training loss (the objective whose
minibatch noise §8.3.1 is about: the NLL plus the L2 penalty (α/2)‖θ‖² SGD minimizes,
α = `l2_penalty`), mean over seeds, a rate any of whose seeds diverged never the best. The claims
judge each seed at the rate best on the other seeds (leave one seed out, `grids.held_out_rows`),
so that no judged value comes from a seed its rate was picked on (picking and judging on the same
seeds favours the rate whose seeds happened to do well); `held_out_learning_rates` lists those
picks per schedule and seed. The rate best on all seeds (`best_learning_rate_by_schedule`, with
`best_rate_at_grid_edge`) is shown in the plots. A held-out pick at its grid's edge is flagged
(`held_out_rate_at_grid_edge`) and a claim involving it is inconclusive. Claims (`summary.json`):
`final_test_error_by_schedule` and `final_train_loss_by_schedule` at the held-out rates (mean over
seeds, with `_se`); `train_loss_ratio_to_constant` per decaying schedule;
`train_loss_minus_constant` and `test_error_minus_constant` per decaying schedule (paired by seed,
each seed of both schedules at its held-out rate, with `_se` and `_dof`, the shared seeds less
one: the verdicts judge these beyond t_{0.975, dof} standard errors); `sgdr_minus_step_test_error`
(with `_se` and `_dof`).
"""

import functools
from collections.abc import Callable
from pathlib import Path

import ml_collections
import numpy as np
import optax

from jaxopt_study import optim, sweep, validate
from jaxopt_study.config import build_problem
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import digits_tasks, grids, rate_plots
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.lab.verdicts import dof, mean_and_standard_error
from jaxopt_study.results import read_csv

# name -> (config, ε_0) -> the schedule ε_k; ε_0 may be traced (a sweep's axis).
ScheduleBuilder = Callable[[ml_collections.ConfigDict, float], optax.Schedule]


def _step(config: ml_collections.ConfigDict, rate) -> optax.Schedule:
  """ε_0 γ^⌊k/s⌋: `step_drops` drops by γ = f^(1/drops), the last one reaching f ε_0."""
  drops = config.step_drops
  every = -(-config.steps // (drops + 1))  # ⌈steps / (drops + 1)⌉: the last drop before the end
  return optim.step_decay(rate, config.final_fraction ** (1 / drops), every)


def _sgdr_first_period(config: ml_collections.ConfigDict) -> int:
  """T_0 with T_0 (1 + T_mult + ... + T_mult^(cycles − 1)) = steps."""
  factor, cycles = config.sgdr_period_factor, config.sgdr_cycles
  return config.steps // sum(factor**i for i in range(cycles))


SCHEDULES: dict[str, ScheduleBuilder] = {
  "constant": lambda config, rate: lambda count: rate,
  "step": _step,
  "exponential": lambda config, rate: optim.exponential_decay(
    rate, config.final_fraction, config.steps
  ),
  "inverse_time": lambda config, rate: optim.inverse_time_decay(
    rate, (1 / config.final_fraction - 1) / config.steps
  ),
  "linear": lambda config, rate: optim.linear_decay(
    rate, config.final_fraction * rate, config.steps
  ),
  "cosine": lambda config, rate: optim.cosine_warm_restarts(rate, config.steps),
  "sgdr": lambda config, rate: optim.cosine_warm_restarts(
    rate, _sgdr_first_period(config), config.sgdr_period_factor
  ),
}
DECAYING = tuple(name for name in SCHEDULES if name != "constant")


class LrSchedules(Experiment):
  """SGD under seven learning-rate schedules, each seed at the base rate best on the other seeds."""

  NAME = "lr_schedules"
  TITLE = "Chapter 8.3.1: learning-rate schedules for SGD, each at its best base rate"
  SECTION = "8.3.1"
  DESCRIPTION = (
    "A digits MLP trained by plain minibatch SGD (Algorithm 8.1) for the same number of steps "
    "under a constant rate and under step, exponential, 1/t, linear (eq. 8.14), cosine and SGDR "
    "(cosine with warm restarts, Loshchilov & Hutter 2017) schedules, each from every base rate "
    "of a grid and several seeds, all in one vmapped sweep. Each seed of a schedule is judged at "
    "the base rate with the lowest final training loss (mean) over the other seeds (leave one "
    "seed out), so that no judged value comes from a seed its rate was picked on; a pick at the "
    "grid's edge is flagged. §8.3.1: the minibatch gradient's noise does not vanish at a "
    "minimum, so the rate must decay for SGD to settle."
  )
  PUBLISHED = {
    "final_train_loss_by_schedule": "lower with a decaying rate than with a constant one: SGD's "
    "gradient noise does not vanish at a minimum (Goodfellow et al. 2016, §8.3.1, eq. 8.12-8.13)",
    "final_test_error_by_schedule": "decaying the rate helps in practice (Goodfellow et al. "
    "2016, §8.3.1; CS231n lecture 7: step, exponential, 1/t decay)",
    "sgdr_minus_step_test_error": "≤ 0: SGDR as good as or better than step decay at equal "
    "budget (Loshchilov & Hutter 2017, Table 1)",
  }
  # Every decaying schedule ends below constant SGD, in training loss and in test error, beyond
  # t_{0.975, dof} standard errors of the seeds' paired differences; SGDR no worse than step
  # decay beyond t_{0.975, dof} standard errors of a margin of 0.5 points. Each seed at the rate
  # best on the other seeds; inconclusive where such a held-out rate is at its grid's edge.
  CRITERIA = {
    "final_train_loss_by_schedule": below(
      "train_loss_minus_constant",
      0.0,
      standard_error="train_loss_minus_constant_se",
      unless="compared_at_grid_edge",
    ),
    "final_test_error_by_schedule": below(
      "test_error_minus_constant",
      0.0,
      standard_error="test_error_minus_constant_se",
      unless="compared_at_grid_edge",
    ),
    "sgdr_minus_step_test_error": below(
      "sgdr_minus_step_test_error",
      0.005,
      standard_error="sgdr_minus_step_test_error_se",
      unless="sgdr_or_step_at_grid_edge",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    **dict.fromkeys(
      ("steps", "eval_every", "batch_size", "step_drops", "sgdr_cycles", "sgdr_period_factor"),
      validate.require_positive_int,
    ),
    "seeds": validate.seeds(),
    "learning_rates": validate.each(validate.require_positive),
    "final_fraction": functools.partial(
      validate.require_unit_interval, include_zero=False, include_one=False
    ),
    "schedules": validate.each(validate.require_choice, choices=list(SCHEDULES)),
    "l2_penalty": validate.require_non_negative,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """At least 3 rates (a best one can lie inside), two seeds (a standard error), the constant
    schedule (the baseline), whole SGDR cycles, a model that builds."""
    if len(config.learning_rates) < 3 or len(set(config.learning_rates)) != len(
      config.learning_rates
    ):
      raise ValueError(
        f"{self.NAME}: learning_rates={list(config.learning_rates)!r}: at least 3 distinct rates"
      )
    if len(set(config.seeds)) < 2:
      raise ValueError(f"{self.NAME}: seeds={list(config.seeds)!r}: at least 2 distinct seeds")
    if "constant" not in config.schedules or len(set(config.schedules)) < 2:
      raise ValueError(
        f"{self.NAME}: schedules={list(config.schedules)!r} must hold 'constant' (the baseline) "
        "and at least one other"
      )
    if config.steps % config.eval_every:
      raise ValueError(f"{self.NAME}: eval_every={config.eval_every} must divide steps")
    first = _sgdr_first_period(config)
    total = sum(first * config.sgdr_period_factor**i for i in range(config.sgdr_cycles))
    if first < 1 or total != config.steps:
      raise ValueError(
        f"{self.NAME}: sgdr_cycles={config.sgdr_cycles} cycles growing by sgdr_period_factor="
        f"{config.sgdr_period_factor} do not fill steps={config.steps} exactly"
      )
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    validate.require_int("batch_size", config.batch_size, self.NAME, low=1, high=num_train)
    try:
      digits_tasks.mlp(config.seeds[0], **config.model)
    except (TypeError, ValueError) as error:
      raise ValueError(f"{self.NAME}: model: {error}") from error

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every schedule × rate × seed as one sweep, one compiled program (seconds to minutes:
    nothing to resume)."""
    names = list(config.schedules)

    def optimizer(learning_rate, schedule):
      candidates = [SCHEDULES[name](config, learning_rate) for name in names]
      return optim.sgd(optim.choose_schedule(candidates, schedule))

    result = sweep.run(
      build_problem(config),
      optimizer,
      {
        "schedule": list(range(len(names))),
        "learning_rate": list(config.learning_rates),
        "seed": list(config.seeds),
      },
      steps=config.steps,
      eval_every=config.eval_every,
      batch_size=config.batch_size,
      l2_penalty=config.l2_penalty,
      progress=progress,
    )
    table = [
      {
        **row,
        "schedule": names[round(row["schedule"])],
        "member": f"{names[round(row['schedule'])]}/lr{row['learning_rate']:g}/seed{row['seed']}",
        "diverged": int(bool(row["diverged"])),
      }
      for row in result.table
    ]
    renamed = {row["member"]: table[i]["member"] for i, row in enumerate(result.table)}
    history = [{**row, "member": renamed[row["member"]]} for row in result.history]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Per schedule, each seed's final training loss and test error at the base rate best on the
    other seeds (lowest mean final training loss, a rate where one of them diverged never the
    best: leave one seed out, `grids.held_out_rows`); their means, and the comparisons with the
    constant rate paired by seed. The rate best on all seeds is kept for display."""
    means = _rate_means(results.table)
    best = grids.best_rows(means, "schedule", "final_train_loss")
    edge = grids.best_at_edge(means, "schedule", "final_train_loss")
    selection = [  # a diverged seed makes its rate's mean infinite, as in `_rate_means`
      {**row, "selection_loss": np.inf if row["diverged"] else row["final_train_loss"]}
      for row in results.table
    ]
    picks, picks_at_edge = grids.held_out_rows(
      selection, ("schedule",), "selection_loss", center=np.mean
    )
    at_best = {name: rows for (name,), rows in picks.items()}
    held_out_edge = {name: flag for (name,), flag in picks_at_edge.items()}
    loss, loss_se, error, error_se = {}, {}, {}, {}
    for name, rows in at_best.items():
      runs = rows.values()
      loss[name], loss_se[name] = mean_and_standard_error([r["final_train_loss"] for r in runs])
      error[name], error_se[name] = mean_and_standard_error([r["final_test_error"] for r in runs])
    decaying = [name for name in at_best if name != "constant"]
    paired, paired_loss = (
      {name: _paired(at_best[name], at_best.get("constant", {}), metric) for name in decaying}
      for metric in ("final_test_error", "final_train_loss")
    )
    sgdr_step = _paired(at_best.get("sgdr", {}), at_best.get("step", {}), "final_test_error")
    return {
      "final_test_error_by_schedule": error,
      "final_test_error_by_schedule_se": error_se,
      "final_train_loss_by_schedule": loss,
      "final_train_loss_by_schedule_se": loss_se,
      "best_learning_rate_by_schedule": {name: row["learning_rate"] for name, row in best.items()},
      "best_rate_at_grid_edge": edge,
      # the rates behind the judged values: each seed's, best on the other seeds
      "held_out_learning_rates": {
        name: {str(int(seed)): row["learning_rate"] for seed, row in sorted(rows.items())}
        for name, rows in at_best.items()
      },
      "held_out_rate_at_grid_edge": held_out_edge,
      "train_loss_ratio_to_constant": {
        name: loss[name] / loss["constant"] for name in decaying if "constant" in loss
      },
      "train_loss_minus_constant": {name: paired_loss[name][0] for name in decaying},
      "train_loss_minus_constant_se": {name: paired_loss[name][1] for name in decaying},
      "train_loss_minus_constant_dof": {name: paired_loss[name][2] for name in decaying},
      "test_error_minus_constant": {name: paired[name][0] for name in decaying},
      "test_error_minus_constant_se": {name: paired[name][1] for name in decaying},
      "test_error_minus_constant_dof": {name: paired[name][2] for name in decaying},
      "compared_at_grid_edge": {
        name: bool(held_out_edge[name] or held_out_edge.get("constant", True)) for name in decaying
      },
      "sgdr_minus_step_test_error": sgdr_step[0],
      "sgdr_minus_step_test_error_se": sgdr_step[1],
      "sgdr_minus_step_test_error_dof": sgdr_step[2],
      "sgdr_or_step_at_grid_edge": bool(
        held_out_edge.get("sgdr", True) or held_out_edge.get("step", True)
      ),
      "diverged_members": sorted(r["member"] for r in results.table if r["diverged"]),
      "seeds": list(config.seeds),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The training loss of each schedule at its best rate (one seed), and the final training
    loss against the base rate, from the saved CSVs."""
    table = read_csv(out_dir / "results.csv")
    first_seed = int(min(row["seed"] for row in table))
    one_seed = [row for row in table if row["seed"] == first_seed]
    return [
      rate_plots.best_rate_plot(
        _rate_means(table),
        {
          member.replace(f"/seed{first_seed}", ""): curve
          for member, curve in read_curves(out_dir / "history.csv", "train_loss").items()
          if member.endswith(f"/seed{first_seed}")
        },
        out_dir / "train_loss.png",
        group="schedule",
        title=f"SGD's training loss under each schedule at its best base rate (seed {first_seed})",
        ylabel="training objective, NLL + (α/2)‖θ‖² (full batch)",
      ),
      rate_plots.rate_plot(
        one_seed,
        "final_train_loss",
        out_dir / "final_loss_by_rate.png",
        group="schedule",
        title=f"final training loss against the base rate (seed {first_seed})",
        ylabel="final training objective, NLL + (α/2)‖θ‖²",
        logy=True,
      ),
    ]


def _rate_means(table: list[dict]) -> list[dict]:
  """One row per (schedule, rate): the means over seeds of the final loss and error, `member`
  naming it; a rate any of whose seeds diverged gets an infinite loss (never the best)."""
  groups: dict[tuple, list[dict]] = {}
  for row in table:
    groups.setdefault((row["schedule"], row["learning_rate"]), []).append(row)
  rows = []
  for (name, rate), members in groups.items():
    diverged = any(r["diverged"] for r in members)
    rows.append(
      {
        "member": f"{name}/lr{rate:g}",
        "schedule": name,
        "learning_rate": rate,
        "final_train_loss": np.inf
        if diverged
        else float(np.mean([r["final_train_loss"] for r in members])),
        "final_test_error": float(np.mean([r["final_test_error"] for r in members])),
      }
    )
  return rows


def _paired(
  rows: dict, baseline: dict, metric: str
) -> tuple[float | None, float | None, int | None]:
  """The mean over shared seeds of rows[seed][metric] − baseline[seed][metric], its standard
  error and that error's degrees of freedom (the shared seeds less one); None where fewer than
  two seeds are shared."""
  seeds = sorted(set(rows) & set(baseline))
  if len(seeds) < 2:
    return None, None, None
  differences = [rows[s][metric] - baseline[s][metric] for s in seeds]
  return *mean_and_standard_error(differences), dof(differences)
