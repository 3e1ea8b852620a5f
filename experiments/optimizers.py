"""§8.5.4 "Choosing the right optimization algorithm": chapter 8's first-order optimizers compared.

Every optimizer of `jaxopt_study.optim.OPTIMIZERS` trains the same digits MLP from the same
initialization on the same minibatch order; each runs over its own small learning-rate grid. The
grid of one optimizer is one compiled program: the learning rate is injected as a traced
hyperparameter (`optax.inject_hyperparams`) and the training loop is `vmap`ped over it.

Claims (`summary.json`): `best_optimizer` (lowest final training loss at its best learning rate),
`final_loss_by_optimizer`, `test_error_by_optimizer`, `best_learning_rate_by_optimizer`, and
`best_learning_rate_at_grid_edge` (optimizers whose grid should be widened to bracket the best).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, report, train
from jaxopt_study.results import ExperimentResults, RunDir, history_rows, member_arrays, read_csv

TITLE = "Chapter 8.5.4: choosing an optimization algorithm"
SECTION = "8.5.4"
PUBLISHED = {
  "best_optimizer": "no consensus (§8.5.4); Schaul et al. 2014: adaptive-rate methods "
  "(RMSProp, AdaDelta) are the most robust across tasks",
  "best_learning_rate_at_grid_edge": "empty when every grid brackets its best rate",
}
DESCRIPTION = (
  "The same MLP on scikit-learn's digits, trained from one initialization and one minibatch "
  "order by each first-order optimizer of chapter 8 (Algorithms 8.1-8.7, Adadelta, "
  "delta-bar-delta), each over a small learning-rate grid. Curves show each optimizer at the "
  "learning rate with the lowest final training loss."
)


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before any data is loaded or compiled."""
  if config.data.name != "digits":
    raise ValueError(f"data.name={config.data.name!r}: this experiment runs on 'digits'")
  for name, hyper in config.optimizers.items():
    if name not in optim.OPTIMIZERS:
      raise ValueError(
        f"optimizers.{name}: unknown optimizer; known: {', '.join(sorted(optim.OPTIMIZERS))}"
      )
    grid = hyper.get("learning_rate")
    if not isinstance(grid, list | tuple) or not grid:
      raise ValueError(f"optimizers.{name}.learning_rate={grid!r}: must be a non-empty list")
    for lr in grid:
      try:
        optim.OPTIMIZERS[name](**{**hyper.to_dict(), "learning_rate": lr})
      except (TypeError, ValueError) as error:
        raise ValueError(f"optimizers.{name}: {error}") from error
  models.build_model(config.model.name, 64, 10, seed=config.seed, **_model_options(config))
  num_train = data_lib.load_digits(config.data.test_fraction, config.data.split_seed).x_train.shape[
    0
  ]
  if not isinstance(config.batch_size, int) or not 1 <= config.batch_size <= num_train:
    raise ValueError(f"batch_size={config.batch_size!r}: must be an integer in [1, {num_train}]")
  for field in ("steps", "eval_every"):
    if not isinstance(config[field], int) or config[field] < 1:
      raise ValueError(f"{field}={config[field]!r}: must be an integer ≥ 1")
  if config.sampling not in train.SAMPLINGS:
    raise ValueError(f"sampling={config.sampling!r}: must be one of {list(train.SAMPLINGS)}")


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Trains every optimizer over its grid; finished ones are kept in `run_dir` for resuming."""
  check(config)
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
  model = models.functional(
    models.build_model(config.model.name, 64, 10, seed=config.seed, **_model_options(config))
  )
  table, history, arrays = [], [], {}
  names = list(config.optimizers.keys())
  for name in tqdm(names, desc="optimizers", disable=not progress):
    member = run_dir.load_member(name) if run_dir else None
    if member is None:
      member, member_params = _train_grid(config, model, data, name)
      if run_dir:
        run_dir.save_member(name, member, member_params)
    else:
      member_params = run_dir.load_member_arrays(name)
    table.extend(member["table"])
    history.extend(member["history"])
    arrays.update(member_params)
  return ExperimentResults(table, history, _summarize(table), arrays)


def _train_grid(
  config, model: models.FunctionalModel, data: data_lib.Dataset, name: str
) -> tuple[dict, dict]:
  """One optimizer's grid as one vmapped program: (table and history rows, final arrays)."""
  hyper = config.optimizers[name].to_dict()
  grid = hyper.pop("learning_rate")
  constructor = optax.inject_hyperparams(optim.OPTIMIZERS[name])

  def one_member(learning_rate):
    tx = constructor(learning_rate=learning_rate, **hyper)
    train_fn = train.make_train_fn(
      model,
      tx,
      steps=config.steps,
      batch_size=config.batch_size,
      eval_every=config.eval_every,
      sampling=config.sampling,
    )
    state, member_history = train_fn(
      model.params, model.model_state, data, jax.random.key(config.seed)
    )
    return member_history, state.params, state.model_state

  dtype = jax.tree.leaves(model.params)[0].dtype
  histories, params, model_states = jax.jit(jax.vmap(one_member))(jnp.asarray(grid, dtype))
  steps = train.eval_steps(config.steps, config.eval_every)
  table, rows, arrays = [], [], {}
  for i, lr in enumerate(grid):
    member = f"{name}@{lr:g}"
    member_history = {k: np.asarray(v[i]) for k, v in histories.items()}
    member_history["step"] = steps
    rows.extend(history_rows(member, member_history))
    final = jax.tree.map(lambda leaf: leaf[i], (params, model_states))  # noqa: B023
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


def _summarize(table: list[dict]) -> dict:
  best = {}
  for row in table:
    loss = row["final_train_loss"]
    current = best.get(row["optimizer"])
    if np.isfinite(loss) and (current is None or loss < current["final_train_loss"]):
      best[row["optimizer"]] = row
  winner = min(best.values(), key=lambda r: r["final_train_loss"]) if best else None
  grids: dict[str, list[float]] = {}
  for row in table:
    grids.setdefault(row["optimizer"], []).append(row["learning_rate"])
  return {
    "best_optimizer": winner["optimizer"] if winner else None,
    "final_loss_by_optimizer": {k: r["final_train_loss"] for k, r in best.items()},
    "test_error_by_optimizer": {k: r["final_test_error"] for k, r in best.items()},
    "best_learning_rate_by_optimizer": {k: r["learning_rate"] for k, r in best.items()},
    # A best rate at either end of its grid means the grid does not bracket the optimum.
    "best_learning_rate_at_grid_edge": sorted(
      k for k, r in best.items() if r["learning_rate"] in (min(grids[k]), max(grids[k]))
    ),
  }


def plot(out_dir: Path) -> list[Path]:
  """Draws the figures from the saved `results.csv` and `history.csv`."""
  table = read_csv(out_dir / "results.csv")
  summary = _summarize(table)
  curves: dict[str, dict[str, tuple[list, list]]] = {}
  for row in read_csv(out_dir / "history.csv"):
    curve = curves.setdefault(row["metric"], {}).setdefault(row["member"], ([], []))
    curve[0].append(row["step"])
    curve[1].append(row["value"])
  best_members = {
    f"{name}@{lr:g}": f"{name} (lr {lr:g})"
    for name, lr in summary["best_learning_rate_by_optimizer"].items()
  }
  figures = []
  for metric, ylabel, logy in (
    ("train_loss", "training NLL (full batch)", True),
    ("test_error", "held-out 0-1 error", False),
    ("grad_norm", "‖∇L‖ (full batch)", True),
  ):
    series = {label: curves[metric][m] for m, label in best_members.items()}
    figures.append(
      report.line_plot(
        series,
        out_dir / f"{metric}.png",
        title=f"{metric} at each optimizer's best learning rate",
        xlabel="step",
        ylabel=ylabel,
        logy=logy,
      )
    )
  by_optimizer: dict[str, tuple[list, list]] = {}
  for row in table:
    lrs, losses = by_optimizer.setdefault(row["optimizer"], ([], []))
    lrs.append(row["learning_rate"])
    losses.append(row["final_train_loss"])
  figures.append(
    report.line_plot(
      by_optimizer,
      out_dir / "lr_sensitivity.png",
      title="final training loss vs learning rate",
      xlabel="learning rate",
      ylabel="final training NLL",
      logx=True,
      logy=True,
    )
  )
  return figures


def _model_options(config: ml_collections.ConfigDict) -> dict:
  options = config.model.to_dict()
  del options["name"]
  return options
