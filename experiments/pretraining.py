"""§8.7.4 "Supervised pretraining": greedy layer-wise supervised pretraining vs end-to-end training.

Greedy supervised pretraining (Goodfellow et al. 2016, §8.7.4, Fig. 8.7; Bengio et al. 2007)
grows a deep MLP one hidden layer at a time on the digits task. Stage 1 trains a net with one
hidden layer; stage k builds a net with k hidden layers whose lower k − 1 come from stage k − 1
(`models.inherit_lower_layers`) and whose top hidden layer and output layer are fresh, and trains
it for `stage_steps` steps, with the lower layers frozen when `freeze_lower_layers` (Bengio et
al.'s variant: each new layer is trained as the hidden layer of a one-hidden-layer net whose input
is the previous layer's output) or trained along. After stage L = `model.depth`, the whole net is
fine-tuned jointly for `finetune_steps` steps. The baseline trains the same depth-L net end to
end from its random initialization for the same total number of minibatch steps,
L · `stage_steps` + `finetune_steps`. The comparison is at equal optimizer steps (equal minibatch
gradient evaluations); a greedy stage's step is cheaper (a shallower net, and only the top layers
are updated when frozen), so counted in arithmetic the budget favors end-to-end training.

The fresh layers are drawn as `models.build_model` draws them for the seed (its hidden layers are
created first, in order), so stage k's new hidden layer starts from exactly the draw of hidden
layer k of the end-to-end net of the same seed; only the output layers differ. Minibatches: stage
1 and the end-to-end run use ``jax.random.key(seed)`` as `train.train(seed=seed)` does, stage
k ≥ 2 ``fold_in(key, k)`` and the fine-tuning ``fold_in(key, L + 1)``.

Every method runs at each learning rate of `learning_rates` (same optimizer and rate in every
stage) and `num_seeds` seeds. All members of a greedy stage or of the fine-tuning are one vmapped
`train.make_train_fn` (they start from the previous phase's parameters, with their own minibatch
keys and frozen layers: `optax.multi_transform` with `optax.set_to_zero` on the frozen ones); the
end-to-end members are one `sweep.run` over rates and seeds, each the deep net trained alone.

Each method is judged seed by seed: each seed at the rate with the lowest mean final training
loss over the method's other seeds (leave one seed out, `grids.held_out_rows`;
`held_out_learning_rates`), so that no seed's numbers picked its own rate (picking on the judged
seeds favors the rate whose seeds happened to do well, and understates the spread). The rate with
the lowest mean over all seeds (`<method>_learning_rate`) is the one shown: the curves, the stage
losses.

Claims (`summary.json`): `pretrained_final_loss` and `end_to_end_final_loss` (mean final
full-training-set NLL over seeds, each seed at its held-out rate), `pretrained_test_error` and
`end_to_end_test_error` (the same rows), `stage_final_losses` (stage 1 … L, before fine-tuning, at
the pretrained method's all-seed rate) against `end_to_end_loss_at_stage_ends` (the end-to-end net
at its all-seed rate, at the same step counts), `seeds_pretrained_lower` (the fraction of seeds
where pretraining ends lower), and the paired differences per seed (seed s of each method at its
held-out rate for s) `end_to_end_minus_pretrained_final_loss` and
`end_to_end_minus_pretrained_test_error`, with their standard errors over seeds (`_se`) and
degrees of freedom (`_dof`, seeds − 1), each judged beyond t_{0.975, dof} standard errors of 0. A
method with a held-out rate that is the smallest or largest of the grid, or with a seed that has
none (its other seeds not finite at any rate; its numbers NaN) (`<method>_rate_at_grid_edge`,
`a_best_rate_at_grid_edge`) leaves both verdicts undecided.
"""

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import models, optim, report, sweep, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, grids, verdicts
from jaxopt_study.lab.curves import history_curves, read_curves

METHODS = ("pretrained", "end_to_end")


class Phase(NamedTuple):
  """One training phase of every member: a greedy stage, the fine-tuning or the baseline."""

  method: str  # "pretrained" or "end_to_end"
  name: str  # "stage k", "fine-tune" or "end to end"
  hidden_layers: int
  frozen_layers: int
  first_step: int  # where the phase starts in the method's step count
  history: dict[str, np.ndarray]  # metric -> (members, evaluations)
  frozen_change: np.ndarray  # per member: the largest move of a frozen layer (0: none moved)


class Pretraining(Experiment):
  """Greedy layer-wise supervised pretraining against end-to-end training of a deep MLP."""

  NAME = "pretraining"
  TITLE = "Chapter 8.7.4: greedy layer-wise supervised pretraining vs end-to-end training"
  SECTION = "8.7.4"
  DESCRIPTION = (
    "A deep sigmoid MLP (Glorot-uniform init, plain SGD) on scikit-learn's digits, trained "
    "either greedily, one hidden layer per stage with a fresh output layer and the lower layers "
    "frozen, then fine-tuned jointly (Bengio et al. 2007; §8.7.4), or end to end from random "
    "initialization for the same total number of minibatch steps. Each method's curves are shown "
    "at the learning rate of its grid with the lowest mean final training loss over seeds; each "
    "seed is judged at the rate best on the method's other seeds, so that no seed's numbers "
    "picked its own rate, and the comparison is the paired difference per seed, with its "
    "standard error. The effect needs the hard case, a deep sigmoid net that end-to-end "
    "training from random initialization struggles with; with the lower layers frozen each "
    "stage can end slightly higher than the one before, and the joint fine-tuning brings the "
    "gain."
  )
  PUBLISHED = {
    "pretrained_final_loss": "below end-to-end training of the same deep net: greedy supervised "
    "pretraining helps where joint training from random init gets stuck (Bengio et al. 2007; "
    "Goodfellow et al. 2016, §8.7.4)",
    "pretrained_test_error": "lower than without pretraining (Bengio et al. 2007 on MNIST, by "
    "less than unsupervised pretraining gains)",
  }
  # Paired over seeds, each seed of each method at the rate best on the method's other seeds: end
  # to end minus pretrained, > 0 where pretraining ends lower; undecided while a held-out rate of
  # either method sits at an edge of the grid (it may do better off the grid).
  CRITERIA = {
    "pretrained_final_loss": above(
      "end_to_end_minus_pretrained_final_loss",
      0.0,
      standard_error="end_to_end_minus_pretrained_final_loss_se",
      unless="a_best_rate_at_grid_edge",
    ),
    "pretrained_test_error": above(
      "end_to_end_minus_pretrained_test_error",
      0.0,
      standard_error="end_to_end_minus_pretrained_test_error_se",
      unless="a_best_rate_at_grid_edge",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "model.name": functools.partial(validate.require_choice, choices=["mlp"]),
    "model.depth": functools.partial(validate.require_int, low=2),
    **dict.fromkeys(("stage_steps", "eval_every", "batch_size"), validate.require_positive_int),
    # each seed is judged at the rate best on the other seeds: at least one other
    "num_seeds": functools.partial(validate.require_int, low=2),
    "finetune_steps": functools.partial(validate.require_int, low=0),
    "learning_rates": validate.each(validate.require_positive),
    "optimizer.name": functools.partial(validate.require_choice, choices=sorted(optim.OPTIMIZERS)),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Evaluations at the phase boundaries, a bool for freezing, an optimizer and a net that
    build."""
    for field in ("stage_steps", "finetune_steps"):
      if config[field] % config.eval_every:
        raise ValueError(
          f"{self.NAME}: eval_every={config.eval_every} must divide {field}={config[field]}"
        )
    if not isinstance(config.freeze_lower_layers, bool):
      raise ValueError(
        f"{self.NAME}: freeze_lower_layers={config.freeze_lower_layers!r} must be a bool"
      )
    for rate in config.learning_rates:
      optimizer(config)(learning_rate=rate)
    digits_tasks.mlp(config.seed, **config.model)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """The greedy stages, the fine-tuning and the end-to-end baseline; nothing to resume."""
    data = digits_tasks.load(config.data)
    depth, stage_steps = config.model.depth, config.stage_steps
    seeds = [config.seed + i for i in range(config.num_seeds)]
    grid = [(float(lr), s) for lr in config.learning_rates for s in seeds]
    member_seeds = [s for _, s in grid]
    rates = jnp.asarray([lr for lr, _ in grid], jnp.float32)
    keys = jax.vmap(jax.random.key)(jnp.asarray(member_seeds))

    def stage_keys(stage: int) -> jax.Array:
      return jax.vmap(lambda key: jax.random.fold_in(key, stage))(keys)

    phases: list[Phase] = []
    params, unfrozen = None, np.zeros(len(grid))
    for k in range(1, depth + 1):
      model, fresh = digits_tasks.mlps(member_seeds, **{**config.model, "depth": k})
      if params is not None:
        fresh = models.inherit_lower_layers(fresh, params)
      num_frozen = k - 1 if config.freeze_lower_layers else 0
      stage_key = keys if k == 1 else stage_keys(k)
      params, history = train_stage(
        config, model, fresh, data, rates, stage_key, stage_steps, num_frozen
      )
      change = frozen_change(fresh, params, num_frozen, len(grid))
      phases.append(
        Phase("pretrained", f"stage {k}", k, num_frozen, (k - 1) * stage_steps, history, change)
      )
    if config.finetune_steps:
      _, history = train_stage(
        config, model, params, data, rates, stage_keys(depth + 1), config.finetune_steps, 0
      )
      phases.append(
        Phase("pretrained", "fine-tune", depth, 0, depth * stage_steps, history, unfrozen)
      )
    history = end_to_end(config, data, seeds, progress)
    phases.append(Phase("end_to_end", "end to end", depth, 0, 0, history, unfrozen))
    table = [phase_row(phase, i, grid) for phase in phases for i in range(len(grid))]
    return Results(table, mean_histories(config, phases, grid))

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Each method seed by seed at the rate best on its other seeds, and its all-seed best rate;
    the stages against the end-to-end net at the same steps."""
    table, history = results.table, results.history
    summary: dict = {"total_steps": config.model.depth * config.stage_steps + config.finetune_steps}
    finals: dict[str, dict[str, dict]] = {"final_train_loss": {}, "final_test_error": {}}
    final_rows = [row for row in table if row["phase"] == final_phase(config, row["method"])]
    picks, picks_at_edge = grids.held_out_rows(
      final_rows, ("method",), "final_train_loss", center=np.mean
    )
    held_out_rates = {}
    for method in METHODS:
      seeds = sorted({row["seed"] for row in final_rows if row["method"] == method})
      chosen = picks.get((method,), {})
      summary[f"{method}_learning_rate"] = best_learning_rate(config, table, method)
      # a seed with no pick (its other seeds not finite at any rate): off the grid, an edge too
      summary[f"{method}_rate_at_grid_edge"] = len(chosen) < len(seeds) or picks_at_edge[(method,)]
      held_out_rates[method] = {
        str(int(s)): chosen[s]["learning_rate"] if s in chosen else None for s in seeds
      }
      for column, name in (("final_train_loss", "final_loss"), ("final_test_error", "test_error")):
        by_seed = {s: chosen[s][column] if s in chosen else np.nan for s in seeds}
        finals[column][method] = by_seed
        summary[f"{method}_{name}"] = float(np.mean(list(by_seed.values())))
    summary["held_out_learning_rates"] = held_out_rates
    summary["a_best_rate_at_grid_edge"] = any(
      summary[f"{method}_rate_at_grid_edge"] for method in METHODS
    )
    summary["loss_ratio_end_to_end_over_pretrained"] = (
      summary["end_to_end_final_loss"] / summary["pretrained_final_loss"]
    )
    for column, name in (("final_train_loss", "final_loss"), ("final_test_error", "test_error")):
      by_seed = finals[column]
      # per seed: the same initialization draws and minibatch keys for both methods
      difference = np.asarray(
        [by_seed["end_to_end"][s] - by_seed["pretrained"][s] for s in by_seed["pretrained"]]
      )
      summary[f"end_to_end_minus_pretrained_{name}"] = float(difference.mean())
      summary[f"end_to_end_minus_pretrained_{name}_se"] = (
        float(difference.std(ddof=1) / np.sqrt(difference.size)) if difference.size > 1 else None
      )
      summary[f"end_to_end_minus_pretrained_{name}_dof"] = verdicts.dof(difference)
    losses = finals["final_train_loss"]
    summary["seeds_pretrained_lower"] = float(
      np.mean([losses["pretrained"][s] < losses["end_to_end"][s] for s in losses["pretrained"]])
    )
    lr = summary["pretrained_learning_rate"]
    summary["stage_final_losses"] = [
      seed_means(table, "pretrained", f"stage {k}", "final_train_loss")[lr]
      for k in range(1, config.model.depth + 1)
    ]
    end_member = f"end_to_end@lr{summary['end_to_end_learning_rate']:g}"
    end_curve = {
      row["step"]: row["value"]
      for row in history
      if row["member"] == end_member and row["metric"] == "train_loss"
    }
    summary["end_to_end_loss_at_stage_ends"] = [
      end_curve[k * config.stage_steps] for k in range(1, config.model.depth + 1)
    ]
    summary["frozen_layers_max_change"] = max(row["frozen_layers_max_change"] for row in table)
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Training NLL and held-out error of both methods at their best rates; the stage losses."""
    summary = json.loads((out_dir / "summary.json").read_text())
    rates = {m: summary[f"{m}_learning_rate"] for m in METHODS}
    labels = {"pretrained": "greedy pretraining + fine-tuning", "end_to_end": "end to end"}

    def at_best_rates(metric: str) -> digits_tasks.Curves:
      series = read_curves(out_dir / "history.csv", metric)
      return {f"{labels[m]} (lr {rates[m]:g})": series[f"{m}@lr{rates[m]:g}"] for m in METHODS}

    figures = digits_tasks.metric_figures(
      out_dir,
      (
        ("train_loss", "training NLL (mean over seeds)", True),
        ("test_error", "held-out 0-1 error (mean over seeds)", False),
      ),
      at_best_rates,
      file="{metric}.png",
      title="greedy supervised pretraining vs end-to-end training",
      xlabel="minibatch step (all stages together)",
    )
    layers = list(range(1, len(summary["stage_final_losses"]) + 1))
    figures.append(
      report.line_plot(
        {
          "greedy stage k (k hidden layers)": (layers, summary["stage_final_losses"]),
          "end to end at the same step": (layers, summary["end_to_end_loss_at_stage_ends"]),
        },
        out_dir / "stage_losses.png",
        title="training NLL at the end of each greedy stage",
        xlabel="stage k",
        ylabel="training NLL (mean over seeds)",
        logy=True,
      )
    )
    return figures


def optimizer(config: ml_collections.ConfigDict) -> Callable[..., optax.GradientTransformation]:
  """`optimizer.name` with the config's other hyperparameters, a function of the learning rate."""
  hyper = {k: v for k, v in config.optimizer.to_dict().items() if k != "name"}
  return functools.partial(optim.OPTIMIZERS[config.optimizer.name], **hyper)


def frozen_labels(params, num_frozen: int):
  """`optax.multi_transform` labels: "frozen" on hidden layers 0 … num_frozen − 1, else "train"."""

  def label(path, _) -> str:
    lowest = path[0].key == "hidden" and path[1].key < num_frozen
    return "frozen" if lowest else "train"

  return jax.tree_util.tree_map_with_path(label, params)


def train_stage(config, model, params, data, rates, keys, steps: int, num_frozen: int):
  """Trains every member (vmapped) for `steps` steps; returns final params and history."""

  def one_member(member_params, learning_rate, key, data):
    tx = optimizer(config)(learning_rate=learning_rate)
    if num_frozen:
      labels = frozen_labels(member_params, num_frozen)
      tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    train_fn = train.make_train_fn(
      model, tx, steps=steps, batch_size=config.batch_size, eval_every=config.eval_every
    )
    state, history = train_fn(member_params, model.model_state, data, key)
    return state.params, history

  batched = jax.jit(jax.vmap(one_member, in_axes=(0, 0, 0, None)))
  final, history = batched(params, rates, keys, data)
  return final, {k: np.asarray(v, np.float64) for k, v in history.items()}


def frozen_change(before, after, num_frozen: int, num_members: int) -> np.ndarray:
  """Per member, the largest |Δ| of any entry of hidden layers 0 … num_frozen − 1 (0: frozen)."""
  changes = [
    np.abs(np.asarray(a) - np.asarray(b)).reshape(num_members, -1).max(axis=1)
    for i in range(num_frozen)
    for a, b in zip(
      jax.tree.leaves(after["hidden"][i]), jax.tree.leaves(before["hidden"][i]), strict=True
    )
  ]
  return np.max([np.zeros(num_members), *changes], axis=0)


def end_to_end(config, data, seeds: list[int], progress: bool) -> dict[str, np.ndarray]:
  """The baseline: the depth-L net trained alone from its seed's initialization for the whole
  budget, every (rate, seed) one member of a `sweep.run`; metric -> (members, evaluations)."""
  options = {k: v for k, v in config.model.items() if k not in ("name", "init_scale")}
  result = sweep.run(
    problem_lib.builtin("mlp", data, **options),
    optimizer(config),
    {"learning_rate": list(config.learning_rates), "seed": seeds},
    steps=config.model.depth * config.stage_steps + config.finetune_steps,
    eval_every=config.eval_every,
    batch_size=config.batch_size,
    init_scale=config.model.init_scale,
    progress=progress,
  )
  return {
    metric: np.asarray([v for _, v in history_curves(result.history, metric).values()])
    for metric in train.METRICS
  }


def phase_row(phase: Phase, i: int, members: list[tuple[float, int]]) -> dict:
  """Member i's numbers at the start and end of `phase`."""
  learning_rate, seed = members[i]
  history = {k: v[i] for k, v in phase.history.items()}
  return {
    "method": phase.method,
    "phase": phase.name,
    "learning_rate": learning_rate,
    "seed": seed,
    "hidden_layers": phase.hidden_layers,
    "frozen_layers": phase.frozen_layers,
    "first_step": phase.first_step,
    "start_train_loss": float(history["train_loss"][0]),
    "final_train_loss": float(history["train_loss"][-1]),
    "final_train_error": float(history["train_error"][-1]),
    "final_test_loss": float(history["test_loss"][-1]),
    "final_test_error": float(history["test_error"][-1]),
    "frozen_layers_max_change": float(phase.frozen_change[i]),
  }


def mean_histories(config, phases: list[Phase], members) -> list[dict]:
  """history.csv rows: every metric averaged over seeds, per method and rate, on global steps.

  The pretrained member's stages follow each other, so a stage boundary has two rows at the same
  step: the end of stage k and the start of stage k + 1 (fresh top and output layers).
  """
  rows = []
  for phase in phases:
    evaluations = phase.history["train_loss"].shape[1]
    eval_steps = phase.first_step + np.arange(evaluations) * config.eval_every
    for learning_rate in config.learning_rates:
      picked = [i for i, (lr, _) in enumerate(members) if lr == float(learning_rate)]
      member = f"{phase.method}@lr{learning_rate:g}"
      for metric in train.METRICS:
        means = phase.history[metric][picked].mean(axis=0)
        rows.extend(
          {"member": member, "step": int(t), "metric": metric, "value": float(v)}
          for t, v in zip(eval_steps, means, strict=True)
        )
  return rows


def final_phase(config: ml_collections.ConfigDict, method: str) -> str:
  if method == "end_to_end":
    return "end to end"
  return "fine-tune" if config.finetune_steps else f"stage {config.model.depth}"


def seed_means(table, method: str, phase: str, column: str) -> dict[float, float]:
  """learning rate -> the mean of `column` over seeds, for one method's phase."""
  values: dict[float, list[float]] = {}
  for row in table:
    if row["method"] == method and row["phase"] == phase:
      values.setdefault(row["learning_rate"], []).append(row[column])
  return {lr: float(np.mean(v)) for lr, v in values.items()}


def best_learning_rate(config: ml_collections.ConfigDict, table, method: str) -> float:
  """The rate with the lowest mean final training loss over seeds (a non-finite one never)."""
  means = seed_means(table, method, final_phase(config, method), "final_train_loss")
  return min(means, key=lambda lr: means[lr] if np.isfinite(means[lr]) else np.inf)
