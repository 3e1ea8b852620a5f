"""Transfer learning: pretrain on digits 0-4, learn 5-9 from a few examples per class.

The lecture notes' transfer learning (CS231n, "Transfer Learning"; Goodfellow et al. 2016, §15.2,
beside §8.7.4's supervised pretraining), in Yosinski et al.'s (2014) split-the-classes design:
the built-in MLP is trained on the digits of `source_classes` (labels renumbered 0, 1, ...) for
`pretrain_steps` minibatch steps, one net per seed. The target task is the digits of
`target_classes`: for each seed and class, n training examples are drawn (the first n of one
permutation per class and seed, so the subsets are nested in n), n in `examples_per_class`, and
every net is tested on the whole held-out target split. Three methods train for `steps`
full-batch steps of the same optimizer (a few-shot training set is small enough to take whole),
each at its own rate of `learning_rates`, on the same subset:

* head_only: `models.transfer(pretrained, classes, freeze=True)`, the pretrained hidden layers
  fixed features under a fresh output layer, only the head trained (`Transfer.optimizer`:
  `optax.partition` with zero updates on the frozen layers; Yosinski et al.'s AnB with every
  hidden layer transferred);
* fine_tune: the same start, every layer trained (their AnB+);
* scratch: the same network from its random initialization (their baseB).

Programs: the pretraining of every seed is one vmapped `train.make_train_fn`, and every member
of the target task (method × n × seed) another. Each member's optimizer is
``Transfer.optimizer(inner, frozen_scale=...)``: the hidden layers' updates times 0 for a
head-only member (exactly zero: they never move), times 1 for the others, which for an
element-wise optimizer such as the default Adam is `inner` on every parameter. For one shape
across n, each subset is repeated to lcm(`examples_per_class`) examples per class: every example
equally often, so the full-batch loss and its gradient are those of the subset. Seed s
pretrains from `nnx.Rngs(s)` with minibatch key `key(s)` (as `train.train(seed=s)` does), draws
its subsets from ``np.random.default_rng((s, class))``, and its transferred head and its scratch
net from `nnx.Rngs(s)`.

Claims (`summary.json`): `test_error_by_n` (method -> n -> mean test error over seeds) and
`test_error_by_n_se`; paired per seed (the same subset for every method), with standard errors
(`_se`) and their degrees of freedom (`_dof`, seeds − 1; judged beyond t_{0.975, dof} errors):
`scratch_minus_head_only_by_n`, `scratch_minus_fine_tune_by_n`, `head_only_minus_fine_tune_by_n`,
`scratch_minus_head_only_at_smallest_n` and `fine_tune_gain_growth` (head_only − fine_tune at the
largest n minus the same at the smallest); `pretrain_test_error` on the source task, and
`head_only_hidden_max_change` (the largest move of a frozen hidden-layer parameter, 0).
"""

import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, report, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, verdicts

METHODS = ("head_only", "fine_tune", "scratch")
MAX_EXAMPLES = 5000  # the repeated target training set of a member (see the module docstring)
PAIRS = (("scratch", "head_only"), ("scratch", "fine_tune"), ("head_only", "fine_tune"))


class Transfer(Experiment):
  """Head only vs fine-tuning vs training from scratch on a new task with few examples."""

  NAME = "transfer"
  TITLE = "Transfer learning: digits 0-4 to 5-9 from a few examples per class"
  SECTION = "8.7.4"
  DESCRIPTION = (
    "An MLP pretrained on the digits 0-4 learns the digits 5-9 from n examples per class, in "
    "three ways: its hidden layers frozen under a fresh output layer (head only), every layer "
    "fine-tuned from the pretrained values, or the same network trained from its random "
    "initialization (scratch), each at a fixed learning rate for the same number of steps. "
    "The small training subsets are drawn per seed, the error is measured on the whole held-out "
    "set of 5-9, and the methods are compared per seed on the same subset and minibatches. "
    "The source task is small and close to the pixels: whether its features beat the raw "
    "input at this scale is what is measured."
  )
  PUBLISHED = {
    "head_only_beats_scratch_at_few_examples": "with few target examples, a linear classifier "
    "on the transferred features beats training the network from scratch (CS231n notes, "
    "'Transfer Learning': a small dataset like the original one calls for a linear classifier "
    "on the features; Yosinski et al. 2014)",
    "fine_tune_beats_scratch": "transferred then fine-tuned features generalize better than "
    "training on the target task alone (Yosinski et al. 2014, §4.1 and Fig. 2: AnB+ above baseB)",
    "fine_tune_gain_grows_with_n": "fine-tuning every layer gains more over training the head "
    "alone as the target data grows (CS231n notes, 'Transfer Learning': little data, train a "
    "linear classifier; more data, fine-tune through the network)",
  }
  # Paired over seeds, > 0 where the claim holds; inconclusive within t_{0.975, dof} standard
  # errors of 0, dof = seeds − 1.
  CRITERIA = {
    "head_only_beats_scratch_at_few_examples": above(
      "scratch_minus_head_only_at_smallest_n",
      0.0,
      standard_error="scratch_minus_head_only_at_smallest_n_se",
    ),
    "fine_tune_beats_scratch": above(
      "scratch_minus_fine_tune_by_n", 0.0, standard_error="scratch_minus_fine_tune_by_n_se"
    ),
    "fine_tune_gain_grows_with_n": above(
      "fine_tune_gain_growth", 0.0, standard_error="fine_tune_gain_growth_se"
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "model.name": functools.partial(validate.require_choice, choices=["mlp"]),
    "model.depth": functools.partial(validate.require_int, low=1),  # a hidden layer to transfer
    **dict.fromkeys(
      ("pretrain_steps", "steps", "eval_every", "batch_size"), validate.require_positive_int
    ),
    "num_seeds": functools.partial(validate.require_int, low=2),  # paired standard errors
    "pretrain_learning_rate": validate.require_positive,
    **{f"learning_rates.{m}": validate.require_positive for m in METHODS},
    "examples_per_class": validate.each(validate.require_positive_int),
    "source_classes": validate.each(validate.require_int, low=0, high=9),
    "target_classes": validate.each(validate.require_int, low=0, high=9),
    "optimizer.name": functools.partial(validate.require_choice, choices=sorted(optim.OPTIMIZERS)),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Two disjoint sets of classes, subsets the target split can hold, an optimizer and a net
    that build."""
    source, target = list(config.source_classes), list(config.target_classes)
    for name, classes in (("source_classes", source), ("target_classes", target)):
      if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"{self.NAME}: {name}={classes} must be at least 2 distinct digits")
    if set(source) & set(target):
      raise ValueError(
        f"{self.NAME}: source_classes and target_classes share {sorted(set(source) & set(target))}"
      )
    if sorted(set(config.examples_per_class)) != list(config.examples_per_class):
      raise ValueError(
        f"{self.NAME}: examples_per_class={list(config.examples_per_class)} must increase"
      )
    repeated = math.lcm(*config.examples_per_class) * len(target)
    if repeated > MAX_EXAMPLES:
      raise ValueError(
        f"{self.NAME}: examples_per_class={list(config.examples_per_class)}: every subset is "
        f"repeated to their least common multiple per class, {repeated} examples, more than "
        f"{MAX_EXAMPLES}: choose sizes with a smaller common multiple (e.g. 5, 10, 20, 50)"
      )
    labels = np.asarray(digits_tasks.load(config.data).y_train)
    fewest = min(int(np.sum(labels == c)) for c in target)
    if config.examples_per_class[-1] > fewest:
      raise ValueError(
        f"{self.NAME}: examples_per_class={config.examples_per_class[-1]} is more than the "
        f"{fewest} training examples of the rarest target class"
      )
    optimizer(config)(learning_rate=config.pretrain_learning_rate)
    options = {k: v for k, v in config.model.items() if k != "name"}
    nnx.eval_shape(  # the net builds (no arrays drawn)
      lambda: models.build_model("mlp", digits_tasks.NUM_FEATURES, len(target), **options)
    )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Pretraining, one vmapped program over the seeds; then every method, n and seed, one
    vmapped program; nothing to resume."""
    digits = data_lib.Dataset(*(np.asarray(a) for a in digits_tasks.load(config.data)))
    source, target = (split(digits, config[f"{k}_classes"]) for k in ("source", "target"))
    seeds = [config.seed + i for i in range(config.num_seeds)]
    options = {k: v for k, v in config.model.items() if k not in ("name", "init_scale")}
    source_problem = problem_lib.builtin("mlp", source, **options)
    source_pure = problem_lib.pure(source_problem)
    pretrained, pretrain_curves = train_members(
      source_problem,
      optimizer(config),
      stack([source_pure.initial(s) for s in seeds]),
      {"learning_rate": np.full(len(seeds), config.pretrain_learning_rate)},
      jax.vmap(jax.random.key)(np.asarray(seeds)),
      stack([problem_lib.as_data(source_problem)] * len(seeds)),
      steps=config.pretrain_steps,
      batch_size=config.batch_size,
      eval_every=config.pretrain_steps,
    )
    transfers = [
      models.transfer(
        source_problem.module(*jax.tree.map(lambda leaf, i=i: leaf[i], pretrained)),
        len(config.target_classes),
      )
      for i in range(len(seeds))
    ]
    target_problem = problem_lib.builtin("mlp", target, **options)
    target_pure = problem_lib.pure(target_problem)
    transferred = stack(
      [split_model(t.model(nnx.Rngs(s))) for t, s in zip(transfers, seeds, strict=True)]
    )
    starts = {
      "head_only": transferred,
      "fine_tune": transferred,
      "scratch": stack([target_pure.initial(s) for s in seeds]),
    }
    if jax.tree.structure(transferred[0]) != jax.tree.structure(target_pure.params_shape):
      raise ValueError(f"{self.NAME}: the transferred net is not the target task's MLP")
    sizes = list(config.examples_per_class)
    grid = [(m, n, s) for m in METHODS for n in sizes for s in seeds]  # the members, in order
    length = math.lcm(*sizes)  # every subset repeated to this many examples per class
    data = stack([per_class_subset(target, s, n, length // n) for _, n, s in grid])
    keys = jax.vmap(jax.random.fold_in)(
      jax.vmap(jax.random.key)(np.asarray([s for *_, s in grid])),
      np.asarray([n for _, n, _ in grid]),
    )
    hyperparams = {
      "learning_rate": [config.learning_rates[m] for m, _, _ in grid],
      "frozen_scale": [0.0 if m == "head_only" else 1.0 for m, _, _ in grid],
    }

    def target_optimizer(learning_rate, frozen_scale):
      # one Transfer's labels serve every seed: they depend on parameter paths only
      inner = optimizer(config)(learning_rate=learning_rate)
      return transfers[0].optimizer(inner, frozen_scale=frozen_scale)

    start = concat([tile(starts[m], len(sizes)) for m in METHODS])
    final, curves = train_members(
      target_problem,
      target_optimizer,
      start,
      hyperparams,
      keys,
      data,
      steps=config.steps,
      batch_size=length * len(config.target_classes),  # the whole subset, repeated
      eval_every=config.eval_every,
    )
    moved = frozen_change(transfers[0], start[0], final[0])
    table = [member_row(m, n, s, curves, i, moved[i]) for i, (m, n, s) in enumerate(grid)]
    history = [
      row
      for m in METHODS
      for n in sizes
      for row in history_rows(
        config, f"{m}@n{n}", curves, [i for i, g in enumerate(grid) if g[:2] == (m, n)]
      )
    ]
    return Results(table, history + pretrain_history(config, seeds, pretrain_curves))

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Means and standard errors over seeds, and the paired differences between methods."""
    errors = {
      m: {n: by_seed(results.table, m, n) for n in config.examples_per_class} for m in METHODS
    }
    summary: dict = {
      "test_error_by_n": {
        m: {str(n): float(e.mean()) for n, e in errors[m].items()} for m in METHODS
      },
      "test_error_by_n_se": {
        m: {str(n): verdicts.standard_error(e) for n, e in errors[m].items()} for m in METHODS
      },
    }
    for first, second in PAIRS:
      differences = {n: errors[first][n] - errors[second][n] for n in config.examples_per_class}
      key = f"{first}_minus_{second}_by_n"
      summary[key] = {str(n): float(d.mean()) for n, d in differences.items()}
      summary[f"{key}_se"] = {str(n): verdicts.standard_error(d) for n, d in differences.items()}
      summary[f"{key}_dof"] = {str(n): verdicts.dof(d) for n, d in differences.items()}
    smallest, largest = config.examples_per_class[0], config.examples_per_class[-1]
    at_smallest = errors["scratch"][smallest] - errors["head_only"][smallest]
    summary["scratch_minus_head_only_at_smallest_n"] = float(at_smallest.mean())
    summary["scratch_minus_head_only_at_smallest_n_se"] = verdicts.standard_error(at_smallest)
    summary["scratch_minus_head_only_at_smallest_n_dof"] = verdicts.dof(at_smallest)
    gain = {n: errors["head_only"][n] - errors["fine_tune"][n] for n in (smallest, largest)}
    growth = gain[largest] - gain[smallest]
    summary["fine_tune_gain_growth"] = float(growth.mean())
    summary["fine_tune_gain_growth_se"] = verdicts.standard_error(growth)
    summary["fine_tune_gain_growth_dof"] = verdicts.dof(growth)
    summary["pretrain_test_error"] = float(
      np.mean(
        [
          row["value"]
          for row in results.history
          if row["member"].startswith("pretrain@") and row["metric"] == "test_error"
        ]
      )
    )
    summary["head_only_hidden_max_change"] = max(
      row["hidden_max_change"] for row in results.table if row["method"] == "head_only"
    )
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Held-out error against examples per class, one line per method (mean over seeds)."""
    summary = json.loads((out_dir / "summary.json").read_text())
    by_n = summary["test_error_by_n"]
    return [
      report.line_plot(
        {
          method.replace("_", " "): ([int(n) for n in values], list(values.values()))
          for method, values in by_n.items()
        },
        out_dir / "test_error_by_n.png",
        title="a new task after pretraining on another: head only, fine-tune, scratch",
        xlabel="training examples per class n",
        ylabel="held-out 0-1 error (mean over seeds)",
        logx=True,
      )
    ]


def optimizer(config: ml_collections.ConfigDict) -> Callable[..., optax.GradientTransformation]:
  """`optimizer.name` with the config's other hyperparameters, a function of the learning rate."""
  hyper = {k: v for k, v in config.optimizer.to_dict().items() if k != "name"}
  return functools.partial(optim.OPTIMIZERS[config.optimizer.name], **hyper)


def split(digits: data_lib.Dataset, classes: Sequence[int]) -> data_lib.Dataset:
  """The examples of `classes`, each labelled by its class's position in `classes`."""
  relabel = np.full(10, -1)
  relabel[list(classes)] = np.arange(len(classes))

  def pick(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    keep = np.isin(np.asarray(y), list(classes))
    return x[keep], jnp.asarray(relabel[np.asarray(y)[keep]], jnp.int32)

  train_split, test_split = pick(digits.x_train, digits.y_train), pick(digits.x_test, digits.y_test)
  return data_lib.Dataset(*train_split, *test_split)


def per_class_subset(task: data_lib.Dataset, seed: int, n: int, repeat: int) -> problem_lib.Data:
  """n training examples of every class, the first n of a permutation drawn per class by
  ``np.random.default_rng((seed, class))`` (so a smaller n takes a subset of a larger one), each
  `repeat` times, and the whole held-out split. Repeating every example equally leaves the mean
  loss over the training set, and so full-batch training, unchanged; it gives every n the same
  array shapes, so that all train in one program."""
  labels = np.asarray(task.y_train)
  picked = []
  for c in range(int(labels.max()) + 1):
    pool = np.flatnonzero(labels == c)
    picked.append(pool[np.random.default_rng((seed, c)).permutation(pool.size)[:n]])
  index = np.tile(np.concatenate(picked), repeat)
  return problem_lib.Data((task.x_train[index], task.y_train[index]), (task.x_test, task.y_test))


def split_model(module: nnx.Module) -> tuple[nnx.State, nnx.State]:
  """The (params, model_state) of a live module."""
  _, params, model_state = nnx.split(module, nnx.Param, ...)
  return params, model_state


def stack(trees: Sequence[Any]) -> Any:
  """Pytrees of one structure stacked on the host along a new leading axis."""
  return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def concat(trees: Sequence[Any]) -> Any:
  """Stacked pytrees concatenated on the host along their leading axis."""
  return jax.tree.map(lambda *leaves: np.concatenate(leaves), *trees)


def tile(tree: Any, copies: int) -> Any:
  """Stacked members repeated `copies` times along the leading axis."""
  return concat([tree] * copies)


def train_members(problem, make_optimizer, start, hyperparams, keys, data, **options):
  """Every member trained, one vmapped `train.make_train_fn` program: from its `start` (stacked
  params and model state) with ``make_optimizer(**its hyperparams)``, its minibatch key and its
  data; `options` are make_train_fn's (steps, batch_size, eval_every). The final (params, model
  state) and the histories, metric -> (members, evaluations)."""

  def one_member(params, model_state, member_hyperparams, key, member_data):
    train_fn = train.make_train_fn(problem, make_optimizer(**member_hyperparams), **options)
    state, history = train_fn(params, model_state, member_data, key)
    return (state.params, state.model_state), history

  hyperparams = {k: jnp.asarray(v, jnp.float32) for k, v in hyperparams.items()}
  final, history = jax.jit(jax.vmap(one_member))(*start, hyperparams, keys, data)
  return final, {k: np.asarray(v, np.float64) for k, v in history.items()}


def frozen_change(t: models.Transfer, start: nnx.State, final: nnx.State) -> np.ndarray:
  """Per member, the largest |Δ| of a parameter that `t` labels frozen, a hidden layer's (0 for
  a head-only member: none moved)."""
  labels = jax.tree.leaves(t.labels(start))
  moves = [
    np.abs(np.asarray(b) - np.asarray(a)).reshape(a.shape[0], -1).max(axis=1)
    for a, b, label in zip(jax.tree.leaves(start), jax.tree.leaves(final), labels, strict=True)
    if label == models.FROZEN
  ]
  return np.max(moves, axis=0)


def member_row(method: str, n: int, seed: int, curves: dict, i: int, moved: float) -> dict:
  """Member i's final numbers; `moved`: the largest move of a hidden layer's parameter."""
  return {
    "method": method,
    "examples_per_class": n,
    "seed": seed,
    **{f"final_{m}": float(curves[m][i, -1]) for m in train.METRICS},
    "hidden_max_change": float(moved),
  }


def history_rows(config, member: str, curves: dict, picked: list[int]) -> list[dict]:
  """history.csv rows of the members `picked`: every metric averaged over seeds."""
  steps = train.eval_steps(config.steps, config.eval_every)
  return [
    {"member": member, "step": int(t), "metric": metric, "value": float(v)}
    for metric in train.METRICS
    for t, v in zip(steps, curves[metric][picked].mean(axis=0), strict=True)
  ]


def pretrain_history(config, seeds: list[int], curves: dict) -> list[dict]:
  """history.csv rows of the pretrained nets at the end of pretraining, one member per seed."""
  return [
    {"member": f"pretrain@seed{s}", "step": config.pretrain_steps, "metric": metric}
    | {"value": float(curves[metric][i, -1])}
    for i, s in enumerate(seeds)
    for metric in train.METRICS
  ]


def by_seed(table: list[dict], method: str, n: int) -> np.ndarray:
  """The final test errors of `method` at n, in seed order."""
  rows = sorted(
    (r for r in table if r["method"] == method and r["examples_per_class"] == n),
    key=lambda r: r["seed"],
  )
  return np.asarray([r["final_test_error"] for r in rows])
