"""§8.7.5 "Designing models to aid optimization": plain, residual and normalized deep MLPs.

Goodfellow et al. (2016), §8.7.5: "it is more important to choose a model family that is easy to
optimize than to use a powerful optimization algorithm"; skip connections between layers shorten
the path from the output to the lower layers and so mitigate vanishing gradients, and batch
normalization (§8.7.1) reparametrizes the net so that each layer's inputs keep a fixed scale.
Three designs of a digits classifier with `depth` hidden layers of `width` units (Glorot
initialization, the config's activation), at several depths:

* `plain`: `models.MLP`;
* `residual`: `models.ResidualMLP`, h_l = h_{l−1} + act(W_l h_{l−1} + b_l) (He et al. 2016), the
  same parameters;
* `batchnorm`: `models.MLP(batchnorm=True)` (Ioffe & Szegedy 2015).

Measured per design and depth:

* trainability: the full training-set NLL after a fixed budget of SGD steps (Algorithm 8.1) at the
  design's best learning rate of a grid, every (rate, seed) of one design and depth one vmapped
  `sweep.run`. Each seed is judged at the rate best on the other seeds (leave one seed out,
  `grids.held_out_rows`: the lowest mean final loss over them, a rate where one of them diverged
  never), so that no seed's loss picked its own rate (picking on the judged seeds favors the rate
  whose seeds happened to do well); flagged when any such pick lies at the grid's edge;
* the Hessian at initialization, on a batch of training examples: λ_max and λ_min by Lanczos
  (`hessian.spectrum`); a condition number is not defined there (the Hessian is indefinite), so
  λ_max / |λ_min| is reported as the spread of the two ends;
* ‖∂L/∂W₁‖ / ‖∂L/∂W_D‖, the weight-gradient norm of the first hidden layer over the last's.

Claims (`summary.json`), each by design then depth, mean ± std over seeds:
`final_loss_by_depth` (each seed at its held-out rate), `best_learning_rate_by_depth` and
`best_rate_at_grid_edge` (the rate with the lowest mean over all seeds, shown and plotted beside
it), `held_out_learning_rates` (per seed, the rate each was judged at),
`lambda_max_at_init_by_depth` (no published value: the curvature the learning rate must respect
at the start, ε < 2/λ_max, §8.2.1), `lambda_min_at_init_by_depth`,
`grad_ratio_first_last_by_depth`. For the verdict, per design other than plain, at the largest
depth: `final_loss_gap_to_plain_at_deepest`, the plain net's final loss minus the design's, each
seed at each net's held-out rate for it, paired by seed (the same seed draws both initializations
and minibatch orders): the mean over seeds, with `final_loss_gap_to_plain_at_deepest_se` and
`final_loss_gap_to_plain_at_deepest_dof` (seeds − 1); and `best_rate_at_grid_edge_at_deepest`,
whether any held-out pick of the design or of the plain net lies at the grid's edge (a design
whose other seeds diverge at every rate for some seed has no pick there, no final loss, and counts
as at the edge: the grid does not reach down to a rate that trains it). A held-out pick at which
its own seed diverged gives that seed an infinite loss, and the gap is then not finite.

`CRITERIA` judge them into `verdicts`: at the largest depth every other design ends lower than the
plain net beyond t_{0.975, dof} standard errors of the seeds' paired gaps (gap > 0); inconclusive
for a design whose best rate, or the plain net's, lies at the grid's edge, and when the designs
leave nothing to compare.
"""

import functools
import math
from pathlib import Path
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from jaxopt_study import hessian, optim, report, sweep, validate
from jaxopt_study.config import build_problem
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, grids, landscape, unit_stats, verdicts
from jaxopt_study.results import read_csv

DESIGNS = {
  "plain": {"name": "mlp", "batchnorm": False},
  "residual": {"name": "residual_mlp"},
  "batchnorm": {"name": "mlp", "batchnorm": True},
}


class ModelDesign(Experiment):
  """Plain, residual and batch-normalized MLPs at several depths: trainability and curvature."""

  NAME = "model_design"
  TITLE = "Chapter 8.7.5: designing models to aid optimization: skip connections, normalization"
  SECTION = "8.7.5"
  DESCRIPTION = (
    "Plain, residual (skip connections) and batch-normalized MLPs of the digits at depths from 2 "
    "up: the training loss after a fixed budget of SGD steps at each design's best learning rate "
    "(each seed at the rate best on the other seeds, so that no seed's loss picked its own rate), "
    "the Hessian's extreme eigenvalues at initialization, and the first-over-last layer "
    "gradient-norm ratio. §8.7.5: a model family that is easy to optimize matters more than the "
    "optimizer; skip connections and normalization keep deep nets trainable where the plain net "
    "slows down."
  )
  PUBLISHED = {
    "final_loss_by_depth": "residual and normalized nets stay trainable as depth grows, plain "
    "ones degrade (Goodfellow et al. 2016, §8.7.5; He et al. 2016, Fig. 1 and 4)",
  }
  CRITERIA = {
    "final_loss_by_depth": above(
      "final_loss_gap_to_plain_at_deepest",
      0.0,
      standard_error="final_loss_gap_to_plain_at_deepest_se",
      unless="best_rate_at_grid_edge_at_deepest",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    # "beyond the spread over seeds" needs a spread; each seed's rate is picked on the others
    "seeds": validate.seeds(min_length=2),
    "depths": validate.each(validate.require_positive_int),
    "designs": validate.each(validate.require_choice, choices=list(DESIGNS)),
    "model.width": validate.require_positive_int,
    "learning_rates": validate.each(validate.require_positive),
    "steps": validate.require_positive_int,
    "eval_every": validate.require_positive_int,
    "batch_size": validate.require_positive_int,
    "hessian_examples": validate.require_positive_int,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    for field in ("batch_size", "hessian_examples"):
      validate.require_int(field, config[field], self.NAME, low=1, high=num_train)
    if len(config.learning_rates) < 3:
      raise ValueError(
        f"{self.NAME}: learning_rates={list(config.learning_rates)!r}: at least 3 rates, so that "
        "a best rate can lie inside the grid"
      )
    for design in config.designs:
      try:
        digits_tasks.mlp(config.seeds[0], **_model_block(config, design, 2))
      except (TypeError, ValueError) as error:
        raise ValueError(f"{self.NAME}: model ({design}): {error}") from error

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """One sweep (rates × seeds) and the curvature at initialization per design and depth; each
    (design, depth) is a member that a later run in the same folder resumes."""
    table, history = [], []
    for design in config.designs:
      for depth in config.depths:
        record, _ = members.get(
          f"{design}-depth{depth}", functools.partial(_design_at_depth, config, design, depth)
        )
        table += record["rows"]
        history += record["history"]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    train_rows = [row for row in results.table if row["part"] == "train"]
    init_rows = [row for row in results.table if row["part"] == "init"]
    held_out = _held_out(train_rows)
    final, best_rate, at_edge, held_out_rates = {}, {}, {}, {}
    for design in config.designs:
      final[design], best_rate[design], at_edge[design], held_out_rates[design] = {}, {}, {}, {}
      for depth in config.depths:
        rows = [r for r in train_rows if r["design"] == design and r["depth"] == depth]
        best = _best_rate(rows)
        best_rate[design][str(depth)] = best
        # no rate trains: the grid does not reach down to a rate that would, an edge too
        at_edge[design][str(depth)] = best is None or best in (
          min(config.learning_rates),
          max(config.learning_rates),
        )
        losses = held_out[design, depth].losses
        final[design][str(depth)] = (
          None if losses is None else verdicts.mean_and_std(list(losses.values()))
        )
        held_out_rates[design][str(depth)] = {
          str(int(seed)): rate for seed, rate in held_out[design, depth].rates.items()
        }

    def at_init(field: str) -> dict:
      return {
        design: {
          str(depth): verdicts.mean_and_std(
            [r[field] for r in init_rows if r["design"] == design and r["depth"] == depth]
          )
          for depth in config.depths
        }
        for design in config.designs
      }

    deepest = max(config.depths)
    others = [d for d in config.designs if d != "plain"] if "plain" in config.designs else []

    def gap_to_plain(design: str) -> tuple[float | None, float | None, int | None]:
      """Plain minus the design at the largest depth, each seed at each net's held-out rate for
      it, paired by seed: the mean, its standard error and that error's degrees of freedom
      (seeds − 1)."""
      plain, mine = (held_out[d, deepest].losses for d in ("plain", design))
      if plain is None or mine is None:
        return None, None, None
      differences = [plain[s] - mine[s] for s in sorted(plain)]
      return *verdicts.mean_and_standard_error(differences), verdicts.dof(differences)

    gaps = {design: gap_to_plain(design) for design in others}

    return {
      "final_loss_by_depth": final,
      "best_learning_rate_by_depth": best_rate,
      "best_rate_at_grid_edge": at_edge,
      "held_out_learning_rates": held_out_rates,
      "lambda_max_at_init_by_depth": at_init("lambda_max"),
      "lambda_min_at_init_by_depth": at_init("lambda_min"),
      "lambda_spread_at_init_by_depth": at_init("lambda_spread"),
      "grad_ratio_first_last_by_depth": at_init("grad_ratio_first_last"),
      "final_loss_gap_to_plain_at_deepest": {design: gap[0] for design, gap in gaps.items()},
      "final_loss_gap_to_plain_at_deepest_se": {design: gap[1] for design, gap in gaps.items()},
      "final_loss_gap_to_plain_at_deepest_dof": {design: gap[2] for design, gap in gaps.items()},
      "best_rate_at_grid_edge_at_deepest": {
        design: held_out[design, deepest].at_edge or held_out["plain", deepest].at_edge
        for design in others
      },
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The final loss at the best rate, λ_max at initialization and the gradient ratio, each
    against depth, one line per design."""
    table = read_csv(out_dir / "results.csv")
    designs = list(dict.fromkeys(row["design"] for row in table))
    train_rows = [row for row in table if row["part"] == "train"]
    init_rows = [row for row in table if row["part"] == "init"]

    def by_depth(rows, value) -> dict:
      series = {}
      for design in designs:
        mine = [r for r in rows if r["design"] == design]
        depths = sorted({r["depth"] for r in mine})
        series[design] = (depths, [value([r for r in mine if r["depth"] == d]) for d in depths])
      return series

    held_out = _held_out(train_rows)

    def best_final(rows):
      losses = held_out[rows[0]["design"], rows[0]["depth"]].losses
      if losses is None:  # no rate trains: no point on the line
        return math.nan
      return float(np.mean(list(losses.values())))

    def mean_of(field):
      return lambda rows: float(np.mean([r[field] for r in rows]))

    figures = (
      (
        by_depth(train_rows, best_final),
        "final_loss_by_depth.png",
        "training NLL after the budget, best learning rate (§8.7.5)",
        "final training NLL (mean over seeds, each at the rate best on the others)",
      ),
      (
        by_depth(init_rows, mean_of("lambda_max")),
        "lambda_max_at_init.png",
        "λ_max of the Hessian at initialization",
        "λ_max (mean over seeds)",
      ),
      (
        by_depth(init_rows, mean_of("grad_ratio_first_last")),
        "gradient_ratio.png",
        "‖∂L/∂W₁‖ / ‖∂L/∂W_D‖ at initialization",
        "first over last hidden layer",
      ),
    )
    return [
      report.line_plot(
        series, out_dir / name, title=title, xlabel="hidden layers", ylabel=ylabel, logy=True
      )
      for series, name, title, ylabel in figures
    ]


def _model_block(config: ml_collections.ConfigDict, design: str, depth: int) -> dict:
  """The model options of one design at one depth (the config's model block, overridden)."""
  block = {**config.model.to_dict(), **DESIGNS[design], "depth": depth}
  if block["name"] != "mlp":
    block.pop("batchnorm", None)
  return block


class HeldOut(NamedTuple):
  """One design at one depth judged on seeds its rate was not picked on."""

  losses: dict[int, float] | None  # seed -> final loss at its held-out rate; None: a seed has none
  rates: dict[int, float]  # seed -> the rate best on the other seeds (the seeds that have one)
  at_edge: bool  # a pick at the grid's edge, or a seed without one


def _held_out(rows: list[dict]) -> dict[tuple[str, int], HeldOut]:
  """Per (design, depth) of the training rows: each seed at the rate with the lowest mean final
  loss over the *other* seeds (leave one seed out, `grids.held_out_rows`). A diverged run counts
  as +inf, so that a rate where another seed diverged is never picked, and a seed that diverged
  at its own pick has an infinite loss there. A seed whose other seeds diverge at every rate has
  no pick: the (design, depth) then has no losses and counts as at the grid's edge (the grid does
  not reach down to a rate that trains it)."""
  scored = [row | {"final_train_loss": math.inf} if row.get("diverged") else row for row in rows]
  picks, at_edge = grids.held_out_rows(
    scored, ("design", "depth"), "final_train_loss", center=np.mean
  )
  held_out = {}
  for key in dict.fromkeys((r["design"], r["depth"]) for r in rows):
    seeds = sorted({r["seed"] for r in rows if (r["design"], r["depth"]) == key})
    chosen = picks.get(key, {})
    complete = sorted(chosen) == seeds
    held_out[key] = HeldOut(
      {s: float(chosen[s]["final_train_loss"]) for s in seeds} if complete else None,
      {s: chosen[s]["learning_rate"] for s in sorted(chosen)},
      not complete or at_edge[key],
    )
  return held_out


def _best_rate(rows: list[dict]) -> float | None:
  """The learning rate with the lowest mean final loss over seeds; a rate any of whose seeds
  diverged (a non-finite loss) is never the best; None when every rate has such a seed."""
  means = {}
  for rate in sorted({r["learning_rate"] for r in rows}):
    values = [r["final_train_loss"] for r in rows if r["learning_rate"] == rate]
    finite = all(isinstance(v, int | float) and math.isfinite(v) for v in values)
    means[rate] = (
      float(np.mean(values))
      if finite and not any(r.get("diverged") for r in rows if r["learning_rate"] == rate)
      else math.inf
    )
  best = min(means, key=means.get)
  return None if math.isinf(means[best]) else best


def _design_at_depth(config: ml_collections.ConfigDict, design: str, depth: int):
  """The sweep over rates × seeds, then the Hessian's ends and the gradient ratio per seed."""
  block = _model_block(config, design, depth)
  problem_config = ml_collections.ConfigDict({"data": config.data, "model": block})
  result = sweep.run(
    build_problem(problem_config),
    optim.sgd,
    {"learning_rate": list(config.learning_rates), "seed": list(config.seeds)},
    steps=config.steps,
    eval_every=config.eval_every,
    batch_size=config.batch_size,
    init_scale=block.get("init_scale", 1.0),
  )
  rows = [
    {
      "member": f"{design}/depth{depth}/{row['member']}",
      "part": "train",
      "design": design,
      "depth": depth,
      "learning_rate": row["learning_rate"],
      "seed": row["seed"],
      "final_train_loss": row["final_train_loss"],
      "diverged": bool(row["diverged"]),
    }
    for row in result.table
  ]
  history = [{**row, "member": f"{design}/depth{depth}/{row['member']}"} for row in result.history]
  data = digits_tasks.load(config.data)
  x, y = data.x_train[: config.hessian_examples], data.y_train[: config.hessian_examples]
  # One loss function for every seed, so that the Lanczos products and the gradient compile once.
  model, initial = digits_tasks.mlps(list(config.seeds), **block)
  loss_fn = digits_tasks.nll(model)
  gradient = jax.jit(jax.grad(loss_fn))
  for i, seed in enumerate(config.seeds):
    params = landscape.select(initial, i)
    ends = hessian.spectrum(loss_fn, params, x, y, method="lanczos", k=1, which="both")
    lambda_min, lambda_max = float(ends.eigenvalues[0]), float(ends.eigenvalues[-1])
    norms = unit_stats.layer_gradient_norms(gradient(params, x, y))
    rows.append(
      {
        "member": f"{design}/depth{depth}/init/seed{seed}",
        "part": "init",
        "design": design,
        "depth": depth,
        "seed": seed,
        "lambda_max": lambda_max,
        "lambda_min": lambda_min,
        "lambda_spread": lambda_max / abs(lambda_min) if lambda_min else math.inf,
        "grad_ratio_first_last": float(norms[0] / norms[depth - 1]),
      }
    )
  return {"rows": rows, "history": history}, {}
