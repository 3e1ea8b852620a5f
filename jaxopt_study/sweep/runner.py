"""`sweep.run`: every member of a sweep, trained under as few compiled programs as fit.

The members (`grid.check`) are split into batch-size groups (`grid.batch_groups`), each group into
equal chunks that fit the memory of a device (`program.program_bytes` of the compiled programs
against `program.memory_budget`), and each chunk, padded to a multiple of the device count with
copies of its last member (discarded), runs as `program.compiled_start` (the members' initial
states) then segments of `checkpoint_every` steps (`program.compiled_segment`), with a progress
bar over members × steps and an Orbax checkpoint after every segment. A finished member's row,
history and minibatch log are kept in the run folder (`results.RunDir`), so a run started again
skips finished members and continues a chunk from its latest checkpoint, ending with the same
numbers as an uninterrupted run.
"""

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import itertools
import json
import math
import shutil
import sys
import sysconfig
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxopt_study import problem as problem_lib
from jaxopt_study import results, train, validate
from jaxopt_study.hessian.tracking import CurvatureOptions
from jaxopt_study.results import RunDir, history_rows, member_arrays
from jaxopt_study.sweep import grid, program
from jaxopt_study.sweep.checkpoint import ChunkCheckpoint


class SweepStats(NamedTuple):
  """How a call of `run` went: what it computed, on what, and how long it took."""

  members: int  # members in the sweep
  chunks: int  # chunks computed by this call (finished members of a resumed run are skipped)
  devices: int  # devices the member axis was sharded over
  member_steps: int  # training steps computed by this call, over real (unpadded) members
  bytes_per_device: int  # the largest footprint of the programs run (`program.program_bytes`)
  compile_seconds: float
  run_seconds: float


class SweepResult(NamedTuple):
  """What `run` returns.

  Attributes:
    table: one row per member, in member order: `member`, its axis values (`init_scale`,
      `batch_size`, `seed`, `learning_rate` when given, every hyperparameter axis), the metrics
      of the last evaluation (`final_train_loss`, `final_grad_norm`, `final_<metric>` for every
      reported metric), with early stopping `best_<metric>` and its `best_step`, `diverged` and
      `diverged_at_step` (None for a member that did not diverge).
    history: long-format rows (member, step, metric, value), as `results.history_rows`.
    stats: a `SweepStats`.
    arrays: every member's final parameters and model state, and with early stopping the
      parameters it kept, keyed as `results.member_arrays` (an experiment returns them as its
      `params.npz`); one member's pytrees are `member_state(problem, result, member)`, or
      with `best=True` the early-stopped ones.
    minibatches: with `run(..., log_minibatches=True)`, one row per member and step t = 0, ...,
      steps − 1 (the member's own steps at equal epochs), in member order: `member`, `step`,
      `loss` (the loss of the step's minibatch at θ_t, the one the step descended) and
      `grad_norm` (‖∇ of that loss‖, the quantity Fig. 8.1 plots), NaN from the step a member
      was frozen at (diverged, or stopped early); empty otherwise.
  """

  table: list[dict[str, Any]]
  history: list[dict[str, Any]]
  stats: SweepStats
  arrays: dict[str, np.ndarray]
  minibatches: list[dict[str, Any]]


def run(
  problem: problem_lib.Problem,
  optimizer: Callable[..., Any],
  axes: dict[str | tuple[str, ...], list],
  *,
  steps: int,
  eval_every: int,
  batch_size: int | None = None,
  learning_rate: float | None = None,
  init_scale: float = 1.0,
  seed: int = 0,
  out_dir: str | Path | None = None,
  progress: bool = False,
  memory_budget: int | None = None,
  sampling: str = "epoch",
  patience: int | None = None,
  early_stopping: str | None = None,
  l2_penalty: float = 0.0,
  checkpoint_every: int | None = None,
  divergence_factor: float = 10.0,
  config: dict[str, Any] | None = None,
  curvature_every: int | None = None,
  curvature: CurvatureOptions | None = None,
  equal_epochs: bool = False,
  log_minibatches: bool = False,
) -> SweepResult:
  """Trains every member of the Cartesian product of `axes` for `steps` steps, vmapped.

  Example::

      result = sweep.run(
        problem,
        optimizer=lambda learning_rate, max_norm: optax.chain(
          optax.clip_by_global_norm(max_norm), optim.adam(learning_rate)),
        axes={"learning_rate": [1e-3, 3e-3], "max_norm": [1.0, 10.0], "seed": [0, 1]},
        steps=300, eval_every=50, batch_size=64,
      )

  Args:
    problem: a `problem.Problem`.
    optimizer: the optimizer factory, called with one keyword per hyperparameter (every axis
      other than init_scale, batch_size and seed, and `learning_rate` when given).
    axes: axis name -> list of values (see `grid`); `{}` is one run. A tuple of names -> list of
      tuples is a joint axis, its points taken whole (random search: `search.sample`).
    steps, eval_every: training steps, and steps between evaluations.
    batch_size, learning_rate, init_scale, seed: each member's value when not an axis
      (`batch_size` is required then; `learning_rate` None: not passed to the factory).
    out_dir: the run folder for finished members, checkpoints, `results.csv`, `history.csv`,
      `params.npz` and, with `log_minibatches`, `minibatches.csv`; started again on the same
      folder, the run resumes. None: nothing saved.
    progress: show a progress bar over members × steps.
    memory_budget: bytes one device may hold (default: `program.memory_budget()`).
    sampling, patience, early_stopping, l2_penalty: as in `train.train`.
    checkpoint_every: steps between checkpoints (a multiple of eval_every; default about 10
      segments).
    divergence_factor: a member whose training loss becomes non-finite, or exceeds this factor
      times its initial training loss L₀ at an evaluation, is flagged `diverged` (for a loss
      that may be negative: rises above L₀ by more than (factor − 1)·|L₀|).
    config: what the run folder's `config.json` records (default: a description of the problem
      and of these arguments); a folder holding another one is refused.
    curvature_every, curvature: the curvature monitor, as in `train.train`, run for every member
      at once inside the vmapped program (each member's values equal its run alone).
    equal_epochs: compare batch sizes after the same number of epochs (Keskar et al. 2017;
      Goyal et al. 2017): `steps`, `eval_every`, `checkpoint_every` and `curvature_every` are
      those of the smallest batch size b₀, and a member of batch size b runs ⌈steps · b₀/b⌉
      steps, evaluating every ⌈eval_every · b₀/b⌉ (`grid.Plan.for_batch_size`); each batch size
      is then one compiled program, and `table` gains each member's `steps`.
    log_minibatches: keep the loss and gradient norm of every step's minibatch for every member
      (`SweepResult.minibatches`; Fig. 8.1 plots these gradient norms, not the full-batch
      `grad_norm` of the history), as `train.train(..., log_minibatches=True)` does; the log is
      part of each member's checkpointed state, so a resumed run ends with the same log.

  Returns:
    A `SweepResult`.
  """
  if memory_budget is not None:  # 0 is refused, not taken for the default
    validate.require_int("memory_budget", memory_budget, "sweep", low=1)
  plan = grid.check(
    problem,
    optimizer,
    axes,
    steps=steps,
    eval_every=eval_every,
    batch_size=batch_size,
    learning_rate=learning_rate,
    init_scale=init_scale,
    seed=seed,
    sampling=sampling,
    patience=patience,
    early_stopping=early_stopping,
    l2_penalty=l2_penalty,
    checkpoint_every=checkpoint_every,
    divergence_factor=divergence_factor,
    curvature_every=curvature_every,
    curvature=curvature,
    equal_epochs=equal_epochs,
    log_minibatches=log_minibatches,
  )
  if config is None and out_dir is not None:
    config = describe(
      plan,
      axes,
      batch_size=batch_size,
      learning_rate=learning_rate,
      init_scale=init_scale,
      seed=seed,
    )
  inputs = problem_identity(problem) | {"optimizer": callable_identity(optimizer)}
  functions = {k: v for k, v in inputs.items() if k in ("optimizer", *PROBLEM_FUNCTIONS)}
  run_dir = RunDir(out_dir, config, inputs) if out_dir is not None else None
  writes = run_dir is not None and jax.process_index() == 0
  with run_dir.writing() if writes else contextlib.nullcontext():
    identity = json.dumps(functions, sort_keys=True)
    return _run_plan(plan, problem, run_dir, progress, memory_budget, identity)


def _run_plan(
  plan: grid.Plan,
  problem: problem_lib.Problem,
  run_dir: RunDir | None,
  progress: bool,
  memory_budget: int | None,
  functions: str,
) -> SweepResult:
  """Trains the members of `plan` that `run_dir` does not hold yet, group by group, chunk by
  chunk; saves each finished member there (process 0). `functions`: `ProgramSpec.functions`."""
  done = {}
  for member in plan.members if run_dir is not None else []:
    if (record := run_dir.load_member(member.name)) is not None:
      done[member.index] = record | {"arrays": run_dir.load_member_arrays(member.name)}
  mesh = program.member_mesh()
  host_data = problem_lib.as_data(problem)
  data = program.put(host_data, NamedSharding(mesh, PartitionSpec()))
  context = _Context(
    plan=plan,
    mesh=mesh,
    data=data,
    data_aval=program.data_avals(host_data, mesh),
    segments=[],
    run_dir=run_dir,
    bar=tqdm(
      total=sum(_steps(plan, m) for m in plan.members),
      initial=sum(_steps(plan, m) for m in plan.members if m.index in done),
      unit="step",
      desc="sweep",
      disable=not progress or jax.process_index() != 0,
    ),
    stats={
      "chunks": 0,
      "member_steps": 0,
      "bytes_per_device": 0,
      "compile_seconds": 0.0,
      "run_seconds": 0.0,
    },
  )
  sizes = [m.values["batch_size"] for m in plan.members]
  separate = plan.equal_epochs or _masking_changes_loss(problem, sizes)
  for group in grid.batch_groups(sizes, separate=separate):
    members = [m for m in plan.members if m.values["batch_size"] in group]
    if all(m.index in done for m in members):
      continue
    group_plan = plan.for_batch_size(group[0])  # one size per group at equal epochs
    context.plan = group_plan
    context.segments = _segments(group_plan)
    # Chunks are planned over the whole group, done or not, so that a resumed run computes the
    # same chunks with the same programs (and finds their checkpoints) as the interrupted one.
    spec = _spec(group_plan, group, functions)
    size = _chunk_size(context, spec, len(members), memory_budget or program.memory_budget())
    for first in range(0, len(members), size):
      chunk = members[first : first + size]
      if all(m.index in done for m in chunk):
        continue
      for member, record in zip(chunk, _run_chunk(context, spec, chunk, size), strict=True):
        done[member.index] = record
        if run_dir is not None and jax.process_index() == 0:
          arrays = record["arrays"]
          run_dir.save_member(
            member.name, {k: v for k, v in record.items() if k != "arrays"}, arrays
          )
      if context.checkpoint is not None:
        context.checkpoint.remove()
  context.bar.close()
  table = [done[m.index]["row"] for m in plan.members]
  history = [row for m in plan.members for row in done[m.index]["history"]]
  initial: dict[str, dict[str, float]] = {}
  for r in history:
    if r["step"] == 0 and r["metric"] in train.INITIAL_LOSSES:
      initial.setdefault(r["metric"], {})[r["member"]] = r["value"]
  train.warn_of_initial_loss(initial, stacklevel=4)  # the caller of sweep.run
  stats = SweepStats(members=len(plan.members), devices=mesh.size, **context.stats)
  arrays = {k: v for m in plan.members for k, v in done[m.index]["arrays"].items()}
  minibatches = [row for m in plan.members for row in done[m.index].get("minibatches", [])]
  if run_dir is not None and jax.process_index() == 0:
    run_dir.write_tables(table, history, minibatches if plan.log_minibatches else None)
    run_dir.write_params(arrays)
    # every member is done: what is left is a checkpoint of another chunk layout (an interrupted
    # run on another device count or memory budget), holding every state of its chunk
    shutil.rmtree(run_dir.path / ".checkpoints", ignore_errors=True)
  return SweepResult(
    table=table, history=history, stats=stats, arrays=arrays, minibatches=minibatches
  )


PROBLEM_FUNCTIONS = ("model", "loss", "init", "metrics")


def problem_identity(problem: problem_lib.Problem) -> dict[str, Any]:
  """What a run folder's `inputs.json` records of a problem: the digests of its data
  (`Problem.data_fingerprint`) and the `callable_identity` of its model, loss, init rule and
  metrics, and the metrics it maximizes where there are any (early stopping keeps their highest
  value; a folder recorded without them had none)."""
  identity = problem.data_fingerprint() | {
    **{part: callable_identity(getattr(problem, part)) for part in PROBLEM_FUNCTIONS[:3]},
    "metrics": {name: callable_identity(fn) for name, fn in sorted(problem.metrics.items())},
  }
  if problem.higher_is_better:
    identity["higher_is_better"] = sorted(problem.higher_is_better)
  return identity


def callable_identity(fn: Any, depth: int = 0) -> str:
  """What a run folder records of a function the run calls (the optimizer factory; the problem's
  model, loss, init rule and metrics), to refuse resuming it with another one.

  A function of this package, of Optax or of any installed library or Python itself by its
  qualified name (a new release does not make old runs foreign); any other function (or class)
  also by a digest of its source (its bytecode where there is none), of what it closes over, of
  the module globals its code reads (a constant or a helper of its file; a class's: its
  methods') and, for a class, of its base classes: numbers, strings and their tuples, and dicts
  of those, by value, functions and classes in turn (two levels deep), modules, arrays and other
  objects by type; a `functools.partial` by its function and arguments. So an edited lambda, one
  closing over another clipping norm, or a loss whose file sets another label smoothing counts as
  another function.
  """
  if isinstance(fn, functools.partial):
    arguments = [
      *(_argument_identity(v, depth) for v in fn.args),
      *(f"{k}={_argument_identity(v, depth)}" for k, v in sorted(fn.keywords.items())),
    ]
    return f"partial({callable_identity(fn.func, depth)}, {', '.join(arguments)})"
  name = f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
  if name.split(".")[0] in ("jaxopt_study", "optax") or _installed(fn) or depth > 2:
    return name
  digest = hashlib.blake2b(digest_size=8)
  digest.update(_source(fn).encode())
  for cell in getattr(fn, "__closure__", None) or ():
    _digest_value(digest, cell.cell_contents, depth)
  for key, value in _globals_read(fn):
    digest.update(key.encode())
    _digest_value(digest, value, depth)
  for base in fn.__mro__[1:] if isinstance(fn, type) else ():
    digest.update(callable_identity(base, depth).encode())  # a library's base by its name
  return f"{name} {digest.hexdigest()}"


def _source(fn: Any) -> str:
  """The source of `fn`. A class whose file Python cannot find (one defined in a notebook, or in
  a problem file the CLI runs, which has no entry in `sys.modules`) by its attributes: methods by
  their source, plain values by value, others by type. Code with no source by its bytecode."""
  try:
    return inspect.getsource(fn)
  except (OSError, TypeError):
    pass
  if isinstance(fn, type):
    return repr(
      [
        (key, _source(value) if inspect.isfunction(value) else _plain_repr(value))
        for key, value in _members(fn)
      ]
    )
  code = getattr(fn, "__code__", None)
  return repr(code.co_code if code else type(fn))


def _members(cls: type) -> list[tuple[str, Any]]:
  """A class's own attributes, sorted, with the functions of static and class methods and of
  properties in their place."""
  found = []
  for key, value in sorted(vars(cls).items()):
    if isinstance(value, staticmethod | classmethod):
      value = value.__func__
    if isinstance(value, property):
      accessors = {part: getattr(value, part) for part in ("fget", "fset", "fdel")}
      found.extend((f"{key}.{part}", f) for part, f in accessors.items() if f is not None)
    else:
      found.append((key, value))
  return found


def _argument_identity(value: Any, depth: int) -> str:
  """A `functools.partial` argument: a function by `callable_identity` (its repr holds its
  address, which differs from one process to the next: a rerun of the same script was refused
  as another run), an array by a digest of its values, anything else by its repr."""
  if callable(value):
    return callable_identity(value, depth + 1)
  if isinstance(value, np.ndarray | jax.Array):
    array = np.asarray(value)
    digest = hashlib.blake2b(array.tobytes(), digest_size=8).hexdigest()
    return f"array {array.dtype}{list(array.shape)} {digest}"
  return repr(value)


def _plain_repr(value: Any) -> str:
  """A value's repr where it is its value (`_plain`), else its type's name."""
  if _plain(value):
    return repr(sorted(value.items()) if isinstance(value, dict) else value)
  return type(value).__qualname__


def _installed(fn: Any) -> bool:
  """Whether `fn` comes from an installed library or Python itself (jax.nn.relu, math.exp), whose
  new release must not make old runs foreign: such a function counts by its name."""
  name = getattr(fn, "__module__", None) or ""
  path = getattr(sys.modules.get(name), "__file__", None)
  if path is None:  # a module built into Python (math), or code without a file (__main__ of -c)
    return name in sys.builtin_module_names
  return any(part in ("site-packages", "dist-packages") for part in Path(path).parts) or Path(
    path
  ).is_relative_to(sysconfig.get_paths()["stdlib"])


def _digest_value(digest: Any, value: Any, depth: int) -> None:
  """Adds a value a function reads to its digest (`callable_identity`'s rules)."""
  if callable(value):
    digest.update(callable_identity(value, depth + 1).encode())
  else:
    digest.update(_plain_repr(value).encode())


def _plain(value: Any) -> bool:
  """A number, string, bool or None, or a tuple or str-keyed dict of them: its repr is its value
  (another object's repr may hold its address, which differs between processes)."""
  if isinstance(value, int | float | str | bool | type(None)):
    return True
  if type(value) is tuple:
    return all(map(_plain, value))
  if isinstance(value, dict):
    return all(isinstance(k, str) and _plain(v) for k, v in value.items())
  return False


def _globals_read(fn: Any) -> list[tuple[str, Any]]:
  """The module globals (name, value) that the code of `fn` (or of a class's methods) reads,
  nested functions and comprehensions included, in sorted order; builtins are not globals."""
  functions = (
    [v for _, v in _members(fn) if inspect.isfunction(v)] if isinstance(fn, type) else [fn]
  )
  found: dict[str, Any] = {}
  for function in functions:
    code, scope = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    codes = [code] if code is not None else []
    while codes:
      current = codes.pop()
      codes.extend(c for c in current.co_consts if inspect.iscode(c))
      found.update({n: scope[n] for n in current.co_names if n in scope and n != function.__name__})
  return sorted(found.items())


def _masking_changes_loss(problem: problem_lib.Problem, sizes: list[int]) -> bool:
  """Whether batch sizes that would share a program must run apart because the masked loss,
  taken one example at a time, is not the problem's loss (`Pure.loss_is_example_mean`: a model
  with state, a loss with sample weights, a sum); warns in the last case, which costs programs."""
  if len(grid.batch_groups(sizes)) == len(set(sizes)):
    return False  # no two sizes would share a program anyway
  pure = problem_lib.pure(problem)
  if not pure.stateless:
    return True
  if pure.loss_is_example_mean:
    return False
  warnings.warn(
    "sweep: the loss is not a mean of per-example terms (sample weights from the batch, a sum, "
    "or a term across examples?), so masked minibatches would change it; each batch size runs "
    "in its own program",
    stacklevel=4,  # the caller of sweep.run
  )
  return True


def member_state(
  problem: problem_lib.Problem, result: SweepResult, member: str, *, best: bool = False
) -> tuple[Any, Any]:
  """Member `member`'s final (params, model_state) from `result.arrays`, as `nnx.State`s; with
  `best=True` (a sweep with early stopping) the parameters of its best evaluation, at its table
  row's `best_step`, as `train.train`'s `best_params`, with the final model state."""
  return results.member_state(result.arrays, member, *problem_lib.pure(problem).initial(0), best)


def describe(plan: grid.Plan, axes: dict[Any, list], **arguments: Any) -> dict[str, Any]:
  """What a `sweep.run` folder's `config.json` records when no config is given: the problem's
  shape (model class, parameter count, data shapes, loss and metric names) and the arguments."""
  problem = plan.problem
  pure = problem_lib.pure(problem)
  shapes = jax.tree.leaves(pure.params_shape)
  return {
    "problem": {
      "model": pure.module_class,
      "num_params": int(sum(math.prod(x.shape) for x in shapes)),
      "loss": getattr(problem.loss, "__qualname__", type(problem.loss).__name__),
      "metrics": sorted(problem.metrics),
      "train_data": [list(a.shape) for a in problem.train_data],
      "heldout_data": None
      if problem.heldout_data is None
      else [list(a.shape) for a in problem.heldout_data],
    },
    "axes": {
      _axis_key(k): [list(p) if isinstance(k, tuple) else p for p in map(grid.plain, v)]
      for k, v in axes.items()
    },
    **{k: grid.plain(v) for k, v in arguments.items()},
    "steps": plan.steps,
    "eval_every": plan.eval_every,
    "sampling": plan.sampling,
    "patience": plan.patience,
    "early_stopping": plan.early_stopping,
    "l2_penalty": plan.l2_penalty,
    "divergence_factor": plan.divergence_factor,
    "curvature_every": plan.curvature_every,
    "curvature": None if plan.curvature is None else describe_curvature(plan.curvature),
    "equal_epochs": plan.equal_epochs,
    "log_minibatches": plan.log_minibatches,
  }


def _axis_key(key: str | tuple[str, ...]) -> str:
  """An axis's key in `config.json`: its name, or a joint axis's names joined by commas."""
  return ",".join(key) if isinstance(key, tuple) else key


def describe_curvature(options: CurvatureOptions) -> dict[str, Any]:
  """The monitor's options as JSON (the preconditioner by its function's name)."""
  preconditioner = options.preconditioner
  return options._asdict() | {
    "preconditioner": None
    if preconditioner is None
    else getattr(preconditioner, "__qualname__", repr(preconditioner))
  }


@dataclasses.dataclass
class _Context:
  """What every chunk of one `run` shares; `stats` and `checkpoint` change as chunks run, `plan`
  (`Plan.for_batch_size`) and `segments` from one batch group to the next."""

  plan: grid.Plan
  mesh: Mesh
  data: Any  # the replicated `problem.Data`
  data_aval: Any
  segments: list["Segment"]
  run_dir: RunDir | None
  bar: Any  # tqdm
  stats: dict[str, Any]
  checkpoint: ChunkCheckpoint | None = None
  initial_models: dict[tuple[int, float], Any] = dataclasses.field(default_factory=dict)


def _steps(plan: grid.Plan, member: grid.Member) -> int:
  """The training steps of `member`: the plan's, or at equal epochs its batch size's."""
  return plan.for_batch_size(member.values["batch_size"]).steps


class Segment(NamedTuple):
  """The evaluation blocks of one checkpointed segment, padded to the width of every segment, so
  that one compiled program runs them all."""

  lengths: np.ndarray  # int32: the steps before each evaluation (none for step 0's or padding)
  measure: np.ndarray  # bool: the curvature monitor measures after the block
  active: np.ndarray  # bool: a real block (a prefix); padding neither steps nor evaluates

  @property
  def blocks(self) -> int:
    return int(self.active.sum())


def _segments(plan: grid.Plan) -> list[Segment]:
  """The evaluation blocks, step 0's first, cut into segments that end every `checkpoint_every`
  steps (step 0's block in front of the first) and padded to one width."""
  evaluations = train.eval_steps(plan.steps, plan.eval_every)
  lengths = np.diff(evaluations, prepend=0).astype(np.int32)
  measure = train.curvature_schedule(plan.steps, plan.eval_every, plan.curvature_every)
  per_segment = plan.checkpoint_every // plan.eval_every
  bounds = [0, *range(per_segment + 1, len(lengths), per_segment), len(lengths)]
  width = max(b - a for a, b in itertools.pairwise(bounds))

  def padded(values: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.pad(values[a:b], (0, width - (b - a)))

  return [
    Segment(padded(lengths, a, b), padded(measure, a, b), np.arange(width) < b - a)
    for a, b in itertools.pairwise(bounds)
  ]


def _spec(plan: grid.Plan, group: tuple[int, ...], functions: str) -> program.ProgramSpec:
  """The programs of the batch sizes `group`, under the group's plan (`Plan.for_batch_size`,
  whose steps are the length of the minibatch log), for the functions `functions` compute."""
  return program.ProgramSpec(
    problem=plan.problem,
    optimizer=plan.optimizer,
    hyperparam_names=plan.hyperparam_names,
    sampling=plan.sampling,
    patience=plan.patience,
    early_stopping=plan.early_stopping,
    max_batch_size=max(group),
    masked=len(group) > 1,
    l2_penalty=plan.l2_penalty,
    curvature=plan.curvature,
    log_steps=plan.steps if plan.log_minibatches else None,
    functions=functions,
  )


def _chunk_size(context: _Context, spec: program.ProgramSpec, num_members: int, budget: int) -> int:
  """The largest chunk whose programs fit `budget` bytes per device (`_padded` sizes).

  Candidates for ⌈n / j⌉ members, j = 1, 2, 4, ..., are compiled (nothing is allocated) and
  measured by `program.program_bytes` until one fits; usually the first does.
  """
  devices = context.mesh.size
  parts = 1
  while True:
    size = _padded(math.ceil(num_members / parts), devices)
    start, segment = _compiled(context, spec, size)
    need = max(program.program_bytes(c) for c in [start, segment])
    if need <= budget:
      context.stats["bytes_per_device"] = max(context.stats["bytes_per_device"], need)
      return size
    if size == devices:
      raise ValueError(
        f"one member per device needs {need / 2**20:.1f} MiB, over the budget of "
        f"{budget / 2**20:.1f} MiB per device: use a smaller model, batch or data set"
      )
    parts *= 2


def _padded(num_members: int, devices: int) -> int:
  """Members per device rounded up to 1 or an even number, times the devices.

  XLA picks kernels by shape, so a member's float32 rounding can depend on how many members share
  its program; with even counts, a sweep and the same sweep less one member often share their
  shapes, and then their other members agree bit for bit. At most one copy per device is added.
  """
  per_device = math.ceil(num_members / devices)
  return devices * (per_device if per_device == 1 else per_device + per_device % 2)


def _compiled(context: _Context, spec: program.ProgramSpec, size: int):
  began = time.perf_counter()
  start = program.compiled_start(spec, size, context.mesh)
  width = len(context.segments[0].lengths)
  segment = program.compiled_segment(spec, size, width, context.data_aval, context.mesh)
  context.stats["compile_seconds"] += time.perf_counter() - began
  return start, segment


def _run_chunk(
  context: _Context, spec: program.ProgramSpec, chunk: list[grid.Member], size: int
) -> list[dict[str, Any]]:
  """Trains one chunk (resuming from its checkpoint) and returns each member's record."""
  plan, mesh = context.plan, context.mesh
  padded = chunk + [chunk[-1]] * (size - len(chunk))  # copies of a real member, discarded
  inputs = program.member_inputs(
    spec,
    [m.values["seed"] for m in padded],
    [m.values["init_scale"] for m in padded],
    [m.values["batch_size"] for m in padded],
    {k: [m.hyperparams[k] for m in padded] for k in spec.hyperparam_names},
    mesh,
  )
  start, segment = _compiled(context, spec, size)
  began = time.perf_counter()
  context.checkpoint = None
  blocks_done = None
  if context.run_dir is not None:
    # keyed by the members, the chunk size and where the segments end (`checkpoint_every`): a
    # checkpoint cut at other segment ends cannot be continued (its run re-ran blocks and failed)
    ends = np.cumsum([s.blocks for s in context.segments]).tolist()
    key = hashlib.sha1(repr(([m.index for m in chunk], size, ends)).encode()).hexdigest()[:10]
    name = f"chunk-{chunk[0].index:04d}-{key}"
    folder = context.run_dir.path / ".checkpoints"
    for other in folder.glob(f"chunk-{chunk[0].index:04d}-*") if jax.process_index() == 0 else ():
      if other.name != name:  # the chunk's checkpoint under other segment ends: it starts again
        shutil.rmtree(other, ignore_errors=True)
    context.checkpoint = ChunkCheckpoint(folder / name)
    blocks_done = context.checkpoint.latest()
  members = NamedSharding(mesh, PartitionSpec(program.MEMBER_AXIS))
  if blocks_done is None:
    params, model_state = _initial_models(context, spec, padded)
    params, model_state = program.put((params, model_state), members)
    state, history, blocks_done = start(params, model_state, inputs), None, 0
  else:
    history_avals = {
      k: jax.ShapeDtypeStruct((size, blocks_done), v.dtype, sharding=members)
      for k, v in segment.out_info[1].items()
    }
    state_avals = program.state_avals(spec, size, mesh)
    state, history = context.checkpoint.restore(blocks_done, state_avals, history_avals)
  first = _segments_done(context, blocks_done)
  context.bar.update(len(chunk) * int(sum(s.lengths.sum() for s in context.segments[:first])))
  replicated = NamedSharding(mesh, PartitionSpec())
  for schedule in context.segments[first:]:
    state, more = segment(state, inputs, context.data, *program.put(schedule[:3], replicated))
    more = {k: v[:, : schedule.blocks] for k, v in more.items()}
    if history is not None:
      more = {k: jnp.concatenate([history[k], more[k]], axis=1) for k in more}
    history = more
    blocks_done += schedule.blocks
    if context.checkpoint is not None:
      context.checkpoint.save(blocks_done, state, history)
    context.bar.update(len(chunk) * int(schedule.lengths.sum()))
    context.stats["member_steps"] += len(chunk) * int(schedule.lengths.sum())
  (
    history,
    best_value,
    best_step,
    best_params,
    diverged,
    diverged_at,
    params,
    model_state,
    logged,
  ) = program.gather(
    (
      history,
      state.best_value,
      state.best_step,
      state.best_params if plan.early_stopping is not None else None,
      state.diverged,
      state.diverged_at_step,
      state.params,
      state.model_state,
      state.minibatches,
    )
  )
  context.stats["run_seconds"] += time.perf_counter() - began
  context.stats["chunks"] += 1
  steps = train.eval_steps(plan.steps, plan.eval_every)
  names = problem_lib.pure(plan.problem).metric_names
  names += plan.curvature.metric_names() if plan.curvature is not None else ()
  records = []
  for i, member in enumerate(chunk):
    member_history = {k: history[k][i] for k in names} | {"step": steps}
    row = {"member": member.name, **member.values}
    if plan.equal_epochs:
      row["steps"] = plan.steps
    row |= {f"final_{k}": float(member_history[k][-1]) for k in names}
    if plan.early_stopping is not None:
      # the loop's own: the value at best_step (a NaN evaluation is never the best)
      row[f"best_{plan.early_stopping}"] = float(best_value[i])
      row["best_step"] = int(best_step[i])
    at = _divergence(
      member_history, plan.divergence_factor, diverged_at[i] if diverged[i] else None
    )
    row |= {"diverged": at is not None, "diverged_at_step": at}
    final = jax.tree.map(lambda leaf, i=i: leaf[i], (params, model_state, best_params))
    records.append(
      {
        "row": row,
        "history": history_rows(member.name, member_history),
        "arrays": member_arrays(member.name, *final),
        "minibatches": [] if logged is None else _minibatch_rows(member.name, logged, i),
      }
    )
  return records


def _minibatch_rows(member: str, logged: dict[str, np.ndarray], index: int) -> list[dict[str, Any]]:
  """Rows (member, step, loss, grad_norm) of the chunk's `index`-th member's minibatch log
  (`train.TrainState.minibatches`, gathered: (members, steps) per name)."""
  columns = {name: logged[name][index] for name in train.MINIBATCH_LOG}
  return [
    {"member": member, "step": step} | {name: float(v[step]) for name, v in columns.items()}
    for step in range(len(columns["loss"]))
  ]


def _divergence(history: dict[str, np.ndarray], factor: float, frozen_at: int | None) -> int | None:
  """The first step at which a member diverged, or None: its loss became non-finite (it was
  frozen at `frozen_at`) or, at an evaluation, rose above its initial training loss L₀ by more
  than (factor − 1)·|L₀| (for L₀ > 0: exceeded `factor` · L₀), whichever came first (an
  evaluation at 5.8e17 before the step that overflowed was reported at the later one). Measured
  from L₀ by |L₀|, so a loss that starts negative (a Gaussian NLL, a loss with an offset) is not
  flagged for falling; for L₀ = 0 only a non-finite loss counts."""
  loss = history["train_loss"]
  allowed = (factor - 1.0) * abs(loss[0]) if loss[0] != 0 else np.inf
  above = np.flatnonzero(~(loss - loss[0] <= allowed))
  steps = [int(history["step"][above[0]])] if above.size else []
  steps += [int(frozen_at)] if frozen_at is not None else []
  return min(steps, default=None)


def _initial_models(context: _Context, spec: program.ProgramSpec, members: list[grid.Member]):
  """Each member's initial (params, model_state) as a run alone builds them, stacked on the host.

  `problem.Pure.initial(seed, init_scale)` once per distinct (seed, init scale).
  """
  pure = problem_lib.pure(spec.problem)
  for member in members:
    key = (member.values["seed"], member.values["init_scale"])
    if key not in context.initial_models:
      context.initial_models[key] = jax.tree.map(np.asarray, pure.initial(*key))
  trees = [context.initial_models[(m.values["seed"], m.values["init_scale"])] for m in members]
  return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def _segments_done(context: _Context, blocks_done: int) -> int:
  """How many segments `blocks_done` evaluation blocks cover (step 0's block among them)."""
  cumulative = np.cumsum([s.blocks for s in context.segments])
  return int(np.searchsorted(cumulative, blocks_done, side="right"))
