"""§8.5.4 "Choosing the right optimization algorithm": chapter 8's first-order optimizers compared.

Every optimizer of `jaxopt_study.optim.OPTIMIZERS` trains the same digits MLP from the same
initialization on the same minibatch order; each runs over its own small learning-rate grid. The
grid of one optimizer is one compiled program (`grids.train_vmapped`: the learning rate injected as
a traced hyperparameter with `optax.inject_hyperparams`, the training loop `vmap`ped over it).

Claims (`summary.json`): `best_optimizer` (lowest final training loss at its best learning rate;
`best_is_adaptive_rate` 1 when it is an adaptive-rate method of §8.5, else 0),
`final_loss_by_optimizer`, `test_error_by_optimizer`, `best_learning_rate_by_optimizer`, and
`best_learning_rate_at_grid_edge` (optimizers whose grid should be widened to bracket the best),
with `any_best_rate_at_grid_edge`, which leaves the verdict undecided.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, grids, rate_plots
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import history_rows, member_arrays, read_csv

# The adaptive-learning-rate family of §8.5 (with Adadelta and delta-bar-delta), Schaul et al.'s
# robust group.
ADAPTIVE_RATE = ("adagrad", "rmsprop", "rmsprop_nesterov", "adam", "adadelta", "delta_bar_delta")


class Optimizers(Experiment):
  """Each first-order optimizer of chapter 8 over its learning-rate grid, on one digits MLP."""

  NAME = "optimizers"
  TITLE = "Chapter 8.5.4: choosing an optimization algorithm"
  SECTION = "8.5.4"
  PUBLISHED = {
    "best_optimizer": "no consensus (§8.5.4); Schaul et al. 2014: adaptive-rate methods "
    "(RMSProp, AdaDelta) are the most robust across tasks. Judged on this one task and seed as: "
    "an adaptive-rate method reaches the lowest final training loss (robustness across tasks "
    "needs more tasks than one)",
  }
  # On one task, the claim that can fail: the best optimizer is an adaptive-rate one.
  # Undecided while any optimizer's best rate sits at its grid's edge: a wider grid could change
  # the ranking ("best rates never at a grid edge").
  CRITERIA = {
    "best_optimizer": above("best_is_adaptive_rate", 0.5, unless="any_best_rate_at_grid_edge")
  }
  DESCRIPTION = (
    "The same MLP on scikit-learn's digits, trained from one initialization and one minibatch "
    "order by each first-order optimizer of chapter 8 (Algorithms 8.1-8.7, Adadelta, "
    "delta-bar-delta), each over a small learning-rate grid. Curves show each optimizer at the "
    "learning rate with the lowest final training loss."
  )
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    **dict.fromkeys(("steps", "eval_every", "batch_size"), validate.require_positive_int),
    "sampling": functools.partial(validate.require_choice, choices=train.SAMPLINGS),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Every grid runs, the model builds and a minibatch fits in the training set."""
    grids.check_learning_rate_grids(config.optimizers, self.NAME)
    models.build_model(in_features=64, out_features=10, seed=config.seed, **config.model)
    num_train = _digits(config).x_train.shape[0]
    validate.require_int("batch_size", config.batch_size, self.NAME, low=1, high=num_train)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains every optimizer over its grid; a finished optimizer is kept for resuming."""
    data = _digits(config)
    model = models.functional(
      models.build_model(in_features=64, out_features=10, seed=config.seed, **config.model)
    )
    table, history, arrays = [], [], {}
    for name in tqdm(list(config.optimizers), desc="optimizers", disable=not progress):
      record, member_params = members.get(name, lambda n=name: _train_grid(config, model, data, n))
      table.extend(record["table"])
      history.extend(record["history"])
      arrays.update(member_params)
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Each optimizer at its best learning rate (lowest finite final training loss)."""
    best = grids.best_rows(results.table, "optimizer", "final_train_loss")
    winner = min(best.values(), key=lambda r: r["final_train_loss"], default=None)
    at_edge = grids.best_at_edge(results.table, "optimizer", "final_train_loss")
    edge = [k for k, flagged in at_edge.items() if flagged]
    return {
      "best_optimizer": winner["optimizer"] if winner else None,
      "best_is_adaptive_rate": float(winner["optimizer"] in ADAPTIVE_RATE) if winner else None,
      "final_loss_by_optimizer": {k: r["final_train_loss"] for k, r in best.items()},
      "test_error_by_optimizer": {k: r["final_test_error"] for k, r in best.items()},
      "best_learning_rate_by_optimizer": {k: r["learning_rate"] for k, r in best.items()},
      # A best rate at either end of its grid means the grid does not bracket the optimum.
      "best_learning_rate_at_grid_edge": sorted(edge),
      "any_best_rate_at_grid_edge": bool(edge),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The curves of every optimizer at its best rate, and the final loss against the rate."""
    table = read_csv(out_dir / "results.csv")
    figures = [
      rate_plots.best_rate_plot(
        table,
        read_curves(out_dir / "history.csv", metric),
        out_dir / f"{metric}.png",
        title=f"{metric} at each optimizer's best learning rate",
        ylabel=ylabel,
        logy=logy,
      )
      for metric, ylabel, logy in (
        ("train_loss", "training NLL (full batch)", True),
        ("test_error", "held-out 0-1 error", False),
        ("grad_norm", "‖∇L‖ (full batch)", True),
      )
    ]
    sensitivity = rate_plots.rate_plot(
      table,
      "final_train_loss",
      out_dir / "lr_sensitivity.png",
      title="final training loss vs learning rate",
      ylabel="final training NLL",
      logy=True,
    )
    return [*figures, sensitivity]


def _digits(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  return data_lib.load_digits(config.data.test_fraction, config.data.split_seed)


def _train_grid(
  config: ml_collections.ConfigDict, model: models.FunctionalModel, data, name: str
) -> tuple[dict, dict]:
  """One optimizer's grid as one vmapped program: (table and history rows, final arrays)."""
  hyper = config.optimizers[name].to_dict()
  grid = hyper.pop("learning_rate")
  constructor = optax.inject_hyperparams(optim.OPTIMIZERS[name])
  dtype = jax.tree.leaves(model.params)[0].dtype
  states, histories = grids.train_vmapped(
    model,
    lambda lr: constructor(learning_rate=lr, **hyper),
    [jnp.asarray(grid, dtype)],
    data,
    seed=config.seed,
    steps=config.steps,
    batch_size=config.batch_size,
    eval_every=config.eval_every,
    sampling=config.sampling,
  )
  steps = train.eval_steps(config.steps, config.eval_every)
  table, rows, arrays = [], [], {}
  for i, lr in enumerate(grid):
    member = f"{name}@{lr:g}"
    member_history = {k: np.asarray(v[i]) for k, v in histories.items()} | {"step": steps}
    rows.extend(history_rows(member, member_history))
    final = jax.tree.map(lambda leaf, i=i: leaf[i], (states.params, states.model_state))
    arrays.update(member_arrays(member, *final))
    final_loss = float(member_history["train_loss"][-1])
    table.append(
      {
        "member": member,
        "optimizer": name,
        "learning_rate": float(lr),
        "final_train_loss": final_loss,
        "final_test_error": float(member_history["test_error"][-1]),
        "best_test_error": float(np.nanmin(member_history["test_error"])),
        "final_grad_norm": float(member_history["grad_norm"][-1]),
        "diverged": not np.isfinite(final_loss),
      }
    )
  return {"table": table, "history": rows}, arrays
