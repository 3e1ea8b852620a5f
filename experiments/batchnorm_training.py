"""§8.7.1 "Batch normalization" (Ioffe & Szegedy 2015): fewer steps, larger rates, steadier inputs.

Sigmoid MLPs on digits, with and without BatchNorm between each linear map and its sigmoid
(`models.MLP(batchnorm=...)`), trained by minibatch SGD (Algorithm 8.1): Ioffe & Szegedy's MNIST
network (§4.1, Fig. 1a: 3 hidden layers of 100 sigmoid units, minibatches of 60) and a deeper
one (`depths`).

* Steps to a target. For each network, one vmapped sweep (`jaxopt_study.sweep`) of a ×2
  learning-rate grid × seeds; a run's time is the first step at which its held-out accuracy
  (inference mode: BatchNorm's running averages) reaches `target_accuracy`, interpolated between
  evaluations (`grids.steps_to_reach`; None when it never does within `steps`). Each seed of a
  network is timed at the rate best on the other seeds, the one with their fewest median steps
  (leave one seed out, `grids.held_out_rows`; `held_out_learning_rates`), so that no seed's time
  picked the rate it is judged at (picking and judging on the same seeds favours the rate whose
  seeds happened to be fast); `best_learning_rate` and `steps_to_target`, the rate with the fewest
  median steps over all seeds and that median, are shown, not judged. A held-out pick at the edge
  of its grid is flagged and the claim refused. The claim `steps_to_target_ratio` is plain over
  BatchNorm, per depth, paired by seed (one seed draws both networks' initializations and
  minibatch orders): the geometric mean over seeds of the per-seed ratio at the two networks'
  held-out rates, with the standard error of its log (`verdicts.paired_ratio`) and its degrees
  of freedom (`_dof`, one less than the seeds). A seed that never gets there at its held-out rate
  (or whose other seeds' medians reach the target at no rate) counts as the step budget, a bound
  on its time, and is listed (`steps_to_target_censored_seeds`; its network in
  `steps_to_target_censored`): censored plain seeds make the ratio a lower bound (kept in
  `steps_to_target_ratio_lower_bound`; the ratio None when it is under the criterion's threshold
  and so decides nothing), a censored BatchNorm seed an upper bound (the ratio None).
* Largest trainable rate. A rate trains a seed when that run reaches the target; per seed the
  largest such rate of the grid, the median over seeds per network. The claim `max_lr_ratio` is
  BatchNorm's over plain's, per depth, paired by seed as above (over the seeds both networks train
  at some rate, which its `_dof` counts); refused when a seed's largest
  trainable rate is the top of the grid (the true one may lie beyond).
* Drift. With one learning rate, the input of every sigmoid unit of the last hidden layer of
  the MNIST network (W h + b without BatchNorm; the normalized γ ẑ + β with it, with the held-out
  batch's statistics) is recorded on the held-out digits every `eval_every` steps as its 15th,
  50th and 85th percentiles, as in Ioffe & Szegedy's Fig. 1(b, c), for each seed (one vmapped
  program per network). The drift of a percentile is its range over training, in units of the
  unit's final 15-85 spread (so that the two networks' input scales do not matter; a unit with no
  final spread is left out); a run's drift is the mean over its units and the three
  percentiles. The claim `percentile_drift_ratio` is the geometric mean over seeds of plain's
  drift over BatchNorm's (paired by seed), with the standard error of its log; `unit`'s
  percentiles at the first seed are the figure.

Every ratio is judged on the log scale, beyond t_{0.975, dof} standard errors of the seeds'
paired log ratios from its threshold.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, report, sweep, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, grids, verdicts
from jaxopt_study.lab.curves import history_curves, read_curves
from jaxopt_study.results import read_csv

PERCENTILES = (15, 50, 85)
NETWORKS = {"plain": False, "batchnorm": True}
MIN_SEEDS = 2  # a standard error needs two
STEPS_RATIO_THRESHOLD = 2.0  # "far fewer steps": at least 2× fewer


class BatchnormTraining(Experiment):
  """Sigmoid MLPs without and with BatchNorm: steps to a target accuracy at each one's best rate,
  the largest rate that trains, and the input drift of one unit."""

  NAME = "batchnorm_training"
  TITLE = "Chapter 8.7.1: batch normalization, steps to a target accuracy and trainable rates"
  SECTION = "8.7.1"
  DESCRIPTION = (
    "Ioffe & Szegedy's MNIST network (3 hidden layers of 100 sigmoid units, minibatches of 60) "
    "and a deeper one, on digits, with and without BatchNorm, trained by SGD over a ×2 "
    "learning-rate grid and several seeds. Each network is timed to a target held-out accuracy "
    "at its own best rate, each seed at the rate with the fewest median steps over the other seeds "
    "(leave one seed out, so that no seed's time picks its own rate; a pick at the edge of the "
    "grid makes the claim inconclusive), and its largest rate that still reaches the target is "
    "found. The 15th, 50th and 85th percentiles of each last-layer sigmoid unit's input on "
    "held-out digits are followed through training (Fig. 1b, c): their drift is their range over "
    "training, relative to the unit's final 15-85 spread, averaged over the units and compared "
    "seed by seed. Ioffe & Szegedy's 14× fewer steps and 5-30× larger rates come from Inception "
    "on ImageNet; the verdicts say what holds for these small sigmoid networks."
  )
  PUBLISHED = {
    "percentile_drift_ratio": "> 1: BN keeps the distribution stable (Ioffe & Szegedy 2015, "
    "Fig. 1b, c)",
    "steps_to_target_ratio": "≫ 1: BN reaches the target accuracy in far fewer steps (Ioffe & "
    "Szegedy 2015, Fig. 1a on MNIST; §4.2.2: Inception's accuracy in 14× fewer steps)",
    "max_lr_ratio": "> 1: BN trains at much higher rates (Ioffe & Szegedy 2015, §4.2: 5× and 30×)",
  }
  # "Far fewer" as at least 2× fewer steps, each seed at the rate best on the other seeds; "higher
  # rates" as a larger largest trainable rate (one ×2 grid step or more); both beyond
  # t_{0.975, dof} standard errors of the seeds' paired log ratios (judged on the log scale), at
  # every depth.
  CRITERIA = {
    "percentile_drift_ratio": above(
      "percentile_drift_ratio", 1.0, standard_error="percentile_drift_ratio_se", ratio=True
    ),
    "steps_to_target_ratio": above(
      "steps_to_target_ratio",
      STEPS_RATIO_THRESHOLD,
      standard_error="steps_to_target_ratio_se",
      ratio=True,
      unless="steps_to_target_ratio_at_grid_edge",
    ),
    "max_lr_ratio": above(
      "max_lr_ratio",
      1.0,
      standard_error="max_lr_ratio_se",
      ratio=True,
      unless="max_lr_ratio_at_grid_edge",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    **dict.fromkeys(("steps", "eval_every", "batch_size", "width"), validate.require_positive_int),
    "depths": validate.each(validate.require_positive_int),
    "seeds": validate.seeds(min_length=MIN_SEEDS),
    "unit": functools.partial(validate.require_int, low=0),
    "drift_learning_rate": validate.require_positive,
    "learning_rates": functools.partial(
      validate.require_sequence, each=validate.require_positive, min_length=3
    ),
    "target_accuracy": functools.partial(validate.require_unit_interval, include_zero=False),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """The unit exists, the rates climb by at most ×2, the seeds are distinct and the
    evaluations divide the steps."""
    rates = np.asarray(config.learning_rates, float)
    if config.unit >= config.width:
      raise ValueError(f"{self.NAME}: unit={config.unit} must be below width={config.width}")
    ratios = rates[1:] / rates[:-1]
    if np.any(ratios <= 1) or np.any(ratios > 2 * (1 + 1e-9)):
      raise ValueError(
        f"{self.NAME}: learning_rates={list(config.learning_rates)} must increase by at most ×2 "
        "from one rate to the next (Ioffe & Szegedy's rates are compared on a ×2 grid or finer)"
      )
    if len(set(config.seeds)) < MIN_SEEDS:
      raise ValueError(
        f"{self.NAME}: seeds={list(config.seeds)} must hold >= {MIN_SEEDS} distinct seeds"
      )
    if config.steps % config.eval_every:
      raise ValueError(
        f"{self.NAME}: eval_every={config.eval_every} must divide steps={config.steps}"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Percentile drift of the MNIST network without and with BatchNorm, then each network's
    rate × seed sweep, a member that a later run in the same folder resumes."""
    data = digits_tasks.load(config.data)
    table, history = [], []
    steps = np.arange(0, config.steps + 1, config.eval_every)
    for name, batchnorm in NETWORKS.items():
      paths = percentile_paths(config, data, batchnorm)  # (seeds, evaluations, 3, units)
      for rank, p in enumerate(PERCENTILES):
        history += [
          {"member": f"{name} p{p}", "step": int(t), "metric": "unit_input_percentile", "value": v}
          for t, v in zip(steps, paths[0, :, rank, config.unit].tolist(), strict=True)
        ]
      for seed, path in zip(config.seeds, paths, strict=True):
        drift = relative_drift(path)
        kept = drift[:, np.isfinite(drift[0])]  # (3, units with a final spread)
        table.append(
          {
            "member": f"{name} drift seed {seed}",
            "part": "drift",
            "network": name,
            "seed": seed,
            "units_with_spread": kept.shape[1],
            "mean_percentile_drift": float(kept.mean()) if kept.size else None,
            **{
              f"drift_p{p}": float(d.mean()) if d.size else None
              for p, d in zip(PERCENTILES, kept, strict=True)
            },
          }
        )
    jobs = [(name, depth) for depth in config.depths for name in NETWORKS]
    for name, depth in tqdm(jobs, desc="networks", disable=not progress):
      record, _ = members.get(
        f"{name}-depth{depth}", functools.partial(rate_sweep, config, data, name, depth)
      )
      table += record["rows"]
      history += record["history"]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Drift ratio (paired by seed); per depth, the steps to the target of each seed at each
    network's rate best on the other seeds (plain over BatchNorm) and the largest trainable rates
    (BatchNorm over plain), with standard errors from the seeds and the grid-edge flags that
    refuse them."""
    drift = {
      name: {
        r["seed"]: r["mean_percentile_drift"]
        for r in results.table
        if r["part"] == "drift" and r["network"] == name
      }
      for name in NETWORKS
    }
    plain_drift = [drift["plain"][seed] for seed in config.seeds]
    drift_ratio, drift_ratio_se = verdicts.paired_ratio(
      plain_drift, [drift["batchnorm"].get(seed) for seed in config.seeds]
    )
    runs = [r for r in results.table if r["part"] == "run"]
    _, best, _ = rate_search(runs)  # shown, not judged
    picks, at_edge = held_out_search(runs)
    top = max(config.learning_rates)
    seeds = sorted(set(config.seeds))
    summary = {
      "percentile_drift_ratio": drift_ratio,
      "percentile_drift_ratio_se": drift_ratio_se,
      "percentile_drift_ratio_dof": verdicts.dof(plain_drift),
      "percentile_drift": {
        name: None if None in values.values() else float(np.mean(list(values.values())))
        for name, values in drift.items()
      },
      "target_accuracy": config.target_accuracy,
      "num_seeds": len(seeds),
    }
    fields = (
      "steps_to_target",
      "best_learning_rate",
      "held_out_learning_rates",
      "max_trainable_learning_rate",
      "steps_to_target_ratio",
      "steps_to_target_ratio_se",
      "steps_to_target_ratio_dof",
      "steps_to_target_ratio_at_grid_edge",
      "steps_to_target_censored",
      "steps_to_target_censored_seeds",
      "steps_to_target_ratio_lower_bound",
      "max_lr_ratio",
      "max_lr_ratio_se",
      "max_lr_ratio_dof",
      "max_lr_ratio_at_grid_edge",
    )
    summary |= {field: {} for field in fields}
    per_network = (
      "steps_to_target",
      "best_learning_rate",
      "held_out_learning_rates",
      "max_trainable_learning_rate",
    )
    for field in per_network:
      summary[field] = {name: {} for name in NETWORKS}
    for depth in config.depths:
      key = str(depth)
      seed_steps, seed_rates, censored_seeds = {}, {}, {}
      for name in NETWORKS:
        chosen = best.get((name, depth))
        mine = [r for r in runs if r["network"] == name and r["depth"] == depth]
        held_out = picks.get((name, depth), {})
        # a seed censored at its held-out rate, or whose other seeds' medians reach the target at
        # no rate (no pick), counts as the budget: at least that many steps
        times = {s: held_out[s]["steps_to_target"] if s in held_out else None for s in seeds}
        censored_seeds[name] = [s for s in seeds if times[s] is None]
        seed_steps[name] = {
          s: float(config.steps) if time is None else time for s, time in times.items()
        }
        seed_rates[name] = largest_trainable_rates(mine)
        summary["steps_to_target"][name][key] = (
          None if chosen is None else chosen["steps_to_target"]
        )
        summary["best_learning_rate"][name][key] = (
          None if chosen is None else chosen["learning_rate"]
        )
        summary["held_out_learning_rates"][name][key] = {
          str(s): held_out[s]["learning_rate"] if s in held_out else None for s in seeds
        }
        summary["max_trainable_learning_rate"][name][key] = (
          float(np.median(list(seed_rates[name].values()))) if seed_rates[name] else None
        )
      ratio, se, dof = verdicts.paired_ratio_by_seed(seed_steps["plain"], seed_steps["batchnorm"])
      censored = [n for n in NETWORKS if censored_seeds[n]]
      summary["steps_to_target_ratio_lower_bound"][key] = ratio if "plain" in censored else None
      # a bound under the threshold, or no ratio at all (a time of 0: the target met at step 0)
      undecided = "plain" in censored and (ratio is None or ratio <= STEPS_RATIO_THRESHOLD)
      summary["steps_to_target_ratio"][key] = (
        None if "batchnorm" in censored or undecided else ratio
      )
      summary["steps_to_target_ratio_se"][key] = se
      summary["steps_to_target_ratio_dof"][key] = dof
      summary["steps_to_target_censored"][key] = censored
      summary["steps_to_target_censored_seeds"][key] = censored_seeds
      summary["steps_to_target_ratio_at_grid_edge"][key] = any(
        at_edge.get((n, depth), False) for n in NETWORKS
      )
      # None where no seed trains both networks at some rate of the grid
      ratio, se, dof = verdicts.paired_ratio_by_seed(seed_rates["batchnorm"], seed_rates["plain"])
      summary["max_lr_ratio"][key] = ratio
      summary["max_lr_ratio_se"][key] = se
      summary["max_lr_ratio_dof"][key] = dof
      summary["max_lr_ratio_at_grid_edge"][key] = any(
        rate == top for rates in seed_rates.values() for rate in rates.values()
      )
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """The unit's input percentiles through training, median steps to the target vs learning
    rate, and the held-out accuracy at each network's best rate."""
    rows = [r for r in read_csv(out_dir / "results.csv") if r["part"] == "run"]
    medians, _, _ = rate_search(rows)
    searched = grids.curves_over_column(
      medians, lambda row: f"{row['network']} depth {row['depth']:g}", "steps_to_target"
    )
    history = out_dir / "history.csv"
    return [
      report.line_plot(
        read_curves(history, "unit_input_percentile"),
        out_dir / "unit_input_percentiles.png",
        title="15/50/85th percentiles of a last-layer sigmoid's input (held-out)",
        xlabel="step",
        ylabel="input of the sigmoid",
      ),
      report.line_plot(
        searched,
        out_dir / "steps_to_target_vs_learning_rate.png",
        title="median steps to the target held-out accuracy (missing: not reached)",
        xlabel="learning rate",
        ylabel="steps",
        logx=True,
        logy=True,
      ),
      report.line_plot(
        read_curves(history, "test_accuracy_at_best_rate"),
        out_dir / "accuracy_at_best_rate.png",
        title="held-out accuracy at each network's best rate (Ioffe & Szegedy Fig. 1a)",
        xlabel="step",
        ylabel="held-out accuracy",
      ),
    ]


def rate_search(runs: list[dict]) -> tuple[list[dict], dict, dict]:
  """`grids.best_by_median` of the steps to the target per (network, depth): the medians over
  seeds, each network's best rate (absent where no rate's median reaches the target) and whether
  it is at its grid's edge."""
  return grids.best_by_median(runs, ("network", "depth"), "steps_to_target")


def held_out_search(runs: list[dict]) -> tuple[dict, dict]:
  """`grids.held_out_rows` of the steps to the target per (network, depth): each seed's run at the
  rate with the fewest median steps over the other seeds (a seed whose other seeds' medians reach
  the target at no rate has none) and whether any of those picks is at its grid's edge."""
  return grids.held_out_rows(runs, ("network", "depth"), "steps_to_target")


def largest_trainable_rates(runs: list[dict]) -> dict[int, float]:
  """Per seed, the largest learning rate whose run reached the target (seeds that never did are
  left out)."""
  largest: dict[int, float] = {}
  for r in runs:
    if r["steps_to_target"] is not None:
      largest[r["seed"]] = max(largest.get(r["seed"], 0.0), r["learning_rate"])
  return largest


def relative_drift(path: np.ndarray) -> np.ndarray:
  """(3, units): each percentile's range over training of a path (evaluations, 3, units), in
  units of the unit's final 15-85 spread; NaN for a unit with no final spread."""
  spread = path[-1, -1] - path[-1, 0]
  with np.errstate(divide="ignore", invalid="ignore"):
    drift = (path.max(axis=0) - path.min(axis=0)) / spread
  return np.where(spread > 0, drift, np.nan)


def model_config(config: ml_collections.ConfigDict, depth: int, batchnorm: bool) -> dict:
  """The sigmoid MLP of the config with `depth` hidden layers, without or with BatchNorm."""
  return {"width": config.width, "depth": depth, "activation": "sigmoid", "batchnorm": batchnorm}


def unit_inputs(module: models.MLP, x: jax.Array) -> jax.Array:
  """The inputs (batch, units) of the sigmoid units of the last hidden layer on the batch x, in
  training mode.

  Without BatchNorm: z = W h + b; with it: γ (z − μ_B)/√(σ_B² + ε) + β with the statistics of
  the batch x, i.e. what the sigmoid sees during training. `MLP.preactivations` is inference
  mode (running averages, which lag the weights early in training), hence the layer loop here;
  the running averages it updates belong to a copy and are dropped.
  """
  h = x
  for index, layer in enumerate(module.hidden):
    z = layer(h)
    if module.norms:
      z = module.norms[index](z, use_running_average=False)
    h = module.activation(z)
  return z


def percentile_paths(config: ml_collections.ConfigDict, data: data_lib.Dataset, batchnorm: bool):
  """Percentiles (seeds, evaluations, 3, units) of the last hidden layer's held-out inputs,
  every `eval_every` steps, in the config's first network (`depths[0]` hidden layers: Ioffe &
  Szegedy's MNIST network), one run per seed of `config.seeds` (its initialization and its
  minibatch order), vmapped.

  SGD runs in blocks of `eval_every` minibatch steps of `train.make_train_loop`; the percentiles
  are taken between blocks, at the parameters reached.
  """
  options = model_config(config, config.depths[0], batchnorm)
  modules = [
    models.build_model("mlp", in_features=64, out_features=10, seed=seed, **options)
    for seed in config.seeds
  ]
  functional, graphdef = [models.functional(m) for m in modules], nnx.graphdef(modules[0])
  loop = train.make_train_loop(  # the first model's `apply` serves every seed
    functional[0], optim.sgd(config.drift_learning_rate), batch_size=config.batch_size
  )
  initial = [loop.init(f.params, f.model_state) for f in functional]
  states = jax.tree.map(lambda *leaves: jnp.stack(leaves), *initial)
  keys = jnp.stack([jax.random.key(seed) for seed in config.seeds])

  @jax.jit
  @jax.vmap
  def block(state, key):
    return jax.lax.fori_loop(
      0, config.eval_every, lambda _, s: loop.step(s, data, key, None), state
    )

  @jax.jit
  @jax.vmap
  def percentiles(state):
    module = nnx.merge(graphdef, state.params, state.model_state, copy=True)
    return jnp.percentile(unit_inputs(module, data.x_test), jnp.asarray(PERCENTILES), axis=0)

  path = [percentiles(states)]
  for _ in range(config.steps // config.eval_every):
    states = block(states, keys)
    path.append(percentiles(states))
  return np.asarray(jnp.stack(path, axis=1), np.float64)


def rate_sweep(
  config: ml_collections.ConfigDict, data: data_lib.Dataset, name: str, depth: int
) -> tuple[dict, dict]:
  """One network's learning rate × seed sweep (minibatch SGD, one `sweep.run` program): each
  run's steps to the target held-out accuracy (None: not reached), and the held-out accuracy of
  every seed at the best rate, as a `Members` record."""
  problem = problem_lib.builtin("mlp", data, **model_config(config, depth, NETWORKS[name]))
  result = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": list(config.learning_rates), "seed": list(config.seeds)},
    steps=config.steps,
    eval_every=config.eval_every,
    batch_size=config.batch_size,
    seed=config.seed,
  )
  errors = history_curves(result.history, "test_error")
  rows = [
    {
      "member": f"{name} depth {depth} lr {row['learning_rate']:g} seed {row['seed']}",
      "part": "run",
      "network": name,
      "depth": depth,
      "learning_rate": row["learning_rate"],
      "seed": row["seed"],
      "steps_to_target": grids.steps_to_reach(*errors[row["member"]], 1.0 - config.target_accuracy),
      "final_test_accuracy": 1.0 - row["final_test_error"],
      "diverged": bool(row["diverged"]),
    }
    for row in result.table
  ]
  best = rate_search(rows)[1].get((name, depth))
  history = grids.history_at_rate(
    result.table,
    best,
    errors,
    f"{name} depth {depth}",
    "test_accuracy_at_best_rate",
    lambda error: 1.0 - error,
  )
  return {"rows": rows, "history": history}, {}
