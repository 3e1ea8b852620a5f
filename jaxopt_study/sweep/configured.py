"""Sweeps from config files: a config's fields as `sweep.run`'s problem, optimizer and axes.

A sweep config (`configs/sweep_init_batch.py`) names its problem, either built in or the user's:

* built in: `data` (`data.DATASETS` name and options), `model` (`models.MODELS` name, its
  options, `init`, `init_scale`) and optionally `loss` (`losses.LOSSES`, default cross-entropy),
  made by `problem.builtin`;
* the user's: `problem = "path/to/file.py:make_problem"` (relative to the config file) or
  `"package.module:make_problem"`, a function of no arguments returning a `Problem`
  (`config.build_problem`; `config.load_config` makes a relative file path absolute).

and `optimizer` (an `optim.OPTIMIZERS` name and its hyperparameters by their Optax names),
`seed`, `steps`, `batch_size`, `learning_rate`, `eval_every`, and `sweep` (axis -> values, or
a sampled axis `{"log_uniform": [low, high]}`, `{"uniform": [low, high]}` or `{"choice": [...]}`,
whose points `search.sample` draws jointly with the `search` block's `num_samples` and `seed`,
default the config's seed; Bergstra & Bengio 2012); optional `sampling`, `patience`,
`early_stopping`, `l2_penalty`, `checkpoint_every`, `divergence_factor`, `equal_epochs` (batch
sizes compared after the same epochs, `sweep.run`), `log_minibatches` (every step's minibatch
loss and gradient norm, `SweepResult.minibatches`), and `curvature_every`
with an optional `curvature` block (the in-loop curvature monitor: `lanczos_steps`, `tolerance`,
`probes`, `examples`, and `preconditioned=True` for the preconditioned sharpness of the optimizer's
`optim.PRECONDITIONERS` entry, with its δ and β's).
A built-in classification problem stops early on `test_error` by default, so its table has
`best_test_error`.
"""

import functools
import inspect
from pathlib import Path
from typing import Any

import ml_collections

from jaxopt_study import optim, validate
from jaxopt_study.config import ConfigError, build_problem
from jaxopt_study.hessian import CurvatureOptions
from jaxopt_study.sweep import grid, runner, search


def optimizer_factory(config: ml_collections.ConfigDict) -> tuple[Any, dict[str, float]]:
  """`optim.OPTIMIZERS[config.optimizer.name]` with the config's static hyperparameters bound
  (strings, integers that fix shapes), and its real-valued ones, which a sweep traces.

  The factory is the same object for the same name and static values, so sweeps of one config
  with other real values reuse their compiled programs.
  """
  options = config.optimizer.to_dict()
  name = options.pop("name")
  if name not in optim.OPTIMIZERS:
    raise ConfigError(f"optimizer.name={name!r}: must be one of {sorted(optim.OPTIMIZERS)}")
  if "learning_rate" in options:
    raise ConfigError("optimizer.learning_rate: set the learning rate at the top level")
  known = inspect.signature(optim.OPTIMIZERS[name]).parameters
  if unknown := sorted(set(options) - set(known)):
    raise ConfigError(f"optimizer {name!r} has no hyperparameter {', '.join(unknown)}")
  integers = grid.integer_hyperparameters(optim.OPTIMIZERS[name])
  real = {
    k: float(v) for k, v in options.items() if validate.is_real_number(v) and k not in integers
  }
  static = tuple(sorted((k, v) for k, v in options.items() if k not in real))
  return _bound(name, static), real


@functools.cache
def _bound(name: str, static: tuple[tuple[str, Any], ...]):
  return functools.partial(optim.OPTIMIZERS[name], **dict(static))


def curvature_options(config: ml_collections.ConfigDict) -> CurvatureOptions | None:
  """The monitor's options from the config's `curvature` block (None without one)."""
  if config.get("curvature", None) is None:
    return None
  options = config.curvature.to_dict()
  preconditioned = options.pop("preconditioned", False)
  if unknown := sorted(set(options) - set(CurvatureOptions._fields) - {"preconditioner"}):
    raise ConfigError(f"curvature has no option {', '.join(unknown)}")
  if "preconditioner" in options:
    raise ConfigError("curvature.preconditioner: set curvature.preconditioned=True instead")
  if preconditioned:
    name = config.optimizer.name
    if name not in optim.PRECONDITIONERS:
      raise ConfigError(
        f"curvature.preconditioned=True: optimizer {name!r} has no diagonal preconditioner; "
        f"one of {sorted(optim.PRECONDITIONERS)} has"
      )
    make = optim.PRECONDITIONERS[name]
    known = inspect.signature(make).parameters
    options["preconditioner"] = make(
      **{k: v for k, v in config.optimizer.to_dict().items() if k in known}
    )
  return CurvatureOptions(**options)


def early_stopping(config: ml_collections.ConfigDict) -> str | None:
  """The config's early-stopping metric: its `early_stopping` field, by default "test_error" for
  a built-in classifier (a config without `problem`, trained on cross-entropy), else None."""
  builtin_classifier = "problem" not in config and config.get("loss", "cross_entropy") == (
    "cross_entropy"
  )
  return config.get("early_stopping", "test_error" if builtin_classifier else None)


def arguments(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`sweep.run`'s arguments from a config: problem, optimizer, axes and the run settings."""
  problem = build_problem(config)
  axes = sweep_axes(config)
  factory, real = optimizer_factory(config)
  names = {name for key in axes for name in (key if isinstance(key, tuple) else (key,))}
  axes |= {k: [v] for k, v in real.items() if k not in names}  # traced: new values, same program
  return {
    "problem": problem,
    "optimizer": factory,
    "axes": axes,
    "steps": config.steps,
    "eval_every": config.eval_every,
    "batch_size": config.batch_size,
    "learning_rate": config.learning_rate,
    "init_scale": config.model.get("init_scale", 1.0) if "model" in config else 1.0,
    "seed": config.seed,
    "sampling": config.get("sampling", "epoch"),
    "patience": config.get("patience", None),
    "early_stopping": early_stopping(config),
    "l2_penalty": config.get("l2_penalty", 0.0),
    "checkpoint_every": config.get("checkpoint_every", None),
    "divergence_factor": config.get("divergence_factor", 10.0),
    "curvature_every": config.get("curvature_every", None),
    "curvature": curvature_options(config),
    "equal_epochs": config.get("equal_epochs", False),
    "log_minibatches": config.get("log_minibatches", False),
  }


def sweep_axes(config: ml_collections.ConfigDict) -> dict[Any, list]:
  """The config's `sweep` axes, its sampled ones drawn by `search.sample` (one joint axis)."""
  axes = config.sweep.to_dict() if config.get("sweep", None) else {}
  sampled = [k for k, v in axes.items() if isinstance(v, dict)]
  options = config.get("search", None)
  if not sampled:
    if options is not None:
      raise ConfigError("search: the config's sweep has no sampled axis to draw")
    return axes
  if options is None:
    raise ConfigError(
      f"sweep.{sampled[0]} is sampled: add a search block with num_samples (and seed)"
    )
  options = options.to_dict()
  if unknown := sorted(set(options) - {"num_samples", "seed"}):
    raise ConfigError(f"search has no option {', '.join(unknown)} (only num_samples, seed)")
  if "num_samples" not in options:
    raise ConfigError("search.num_samples: how many points to draw is required")
  for name in sampled:
    try:
      axes[name] = search.from_config(axes[name])
    except ValueError as error:
      raise ConfigError(f"sweep.{name}: {error}") from None
  try:
    return search.sample(axes, options["num_samples"], options.get("seed", config.seed))
  except ValueError as error:
    raise ConfigError(f"search: {error}") from None


# Every field a sweep config may hold (the module docstring says what each means).
FIELDS = (
  "experiment", "problem", "data", "model", "loss", "optimizer", "seed", "steps", "batch_size",
  "learning_rate", "eval_every", "sweep", "search", "sampling", "patience", "early_stopping",
  "l2_penalty", "checkpoint_every", "divergence_factor", "equal_epochs", "log_minibatches",
  "curvature_every", "curvature",
)  # fmt: skip


def check(config: ml_collections.ConfigDict) -> grid.Plan:
  """Validates a sweep config and returns its `grid.Plan`; nothing is compiled.

  Raises:
    ConfigError: naming the field, for one a sweep config does not have (a misspelled
      `l2_penallty` trained without the penalty), or a built-in problem's `data`, `loss` or model
      option beside the user's own `problem`, which would be ignored.
  """
  if unknown := sorted(set(config) - set(FIELDS)):
    raise ConfigError(
      f"{unknown[0]}: a sweep config has no such field (misspelled?); its fields are "
      f"{', '.join(FIELDS)}"
    )
  if config.get("problem", None):
    ignored = [f for f in ("data", "loss") if config.get(f, None) is not None]
    if "model" in config:
      ignored += [f"model.{k}" for k in sorted(config.model) if k != "init_scale"]
    if ignored:
      raise ConfigError(
        f"{ignored[0]}: the config names its own problem ({config.problem}), which brings its "
        "data, model and loss; only model.init_scale applies to it: remove " + ", ".join(ignored)
      )
  return grid.check(**arguments(config))


def run_config(
  config: ml_collections.ConfigDict,
  out_dir: str | Path | None = None,
  *,
  progress: bool = False,
  memory_budget: int | None = None,
) -> runner.SweepResult:
  """`sweep.run` on a config's problem, optimizer and axes; `config.json` records the config."""
  return runner.run(
    **arguments(config),
    out_dir=out_dir,
    progress=progress,
    memory_budget=memory_budget,
    config=config.to_dict(),
  )
