"""The compiled programs of a sweep: the training loop `vmap`ped over members, sharded over devices.

A group of members that share a static setup (`ProgramSpec`: the model's structure, the optimizer,
the loss, the group's largest batch size) runs as two programs of the member axis:

* `start`: initializes each member's optimizer on its initial parameters (built on the host by
  `problem.Pure.initial` with the member's seed and init scale, as a run alone builds them);
* `segment`: continues every member for a number of evaluation blocks (steps, then an evaluation,
  and the curvature monitor at the blocks its `measure` flags name, for every member at once).
  The first segment's first block has no step: the evaluation (and measurement) at step 0, as in
  `train.train`'s one program. Segments are padded with inactive blocks (no step, no evaluation)
  to one width, so the training step, evaluation and monitor are compiled once per group, not
  again for the start or a shorter last segment.

With `ProgramSpec.log_steps` each member's `TrainState` carries the loss and gradient norm of
every step's minibatch (`train.TrainState.minibatches`, NaN where the member is frozen), so the
log is checkpointed and resumed with the state.

Per-member values (seed, init scale, batch size, every optimizer hyperparameter) are
traced inputs (`MemberInputs`), so new values never recompile. The member axis is sharded over a
1-D mesh of every device (`jax.sharding`, all processes' devices under `jax.distributed`); data is
replicated. Programs are compiled ahead of time (`jit(...).lower(...).compile()`), which gives
their memory footprint per device before anything runs (`program_bytes`), and cached on their
static setup and shapes.
"""

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxopt_study import problem as problem_lib
from jaxopt_study import train
from jaxopt_study.hessian import tracking
from jaxopt_study.optim.linesearch import real_dtype
from jaxopt_study.sweep import grid

MEMBER_AXIS = "members"
# programs kept per process (each keeps its problem, and so its data, alive): bounded, so that a
# notebook that builds problem after problem does not hold every one of them
CACHED_PROGRAMS = 64


class ProgramSpec(NamedTuple):
  """The static setup of a group's programs (hashable: compiled programs are cached on it; the
  problem and the optimizer factory by identity, and by `functions`, what they compute)."""

  problem: problem_lib.Problem
  optimizer: Callable[..., Any]
  hyperparam_names: tuple[str, ...]  # traced, in this order
  sampling: str
  patience: int | None
  early_stopping: str | None
  max_batch_size: int
  masked: bool  # members of several batch sizes: the loss is weighted by the batch mask
  l2_penalty: float = 0.0
  curvature: tracking.CurvatureOptions | None = None  # the in-loop curvature monitor
  log_steps: int | None = None  # the group's steps: every step's minibatch logged (None: none)
  # `runner.callable_identity` of the factory and of the problem's model, loss, init and metrics:
  # a loss or factory that reads a changed global or closure compiles again instead of reusing
  # the program traced with the old value
  functions: str = ""


class MemberInputs(NamedTuple):
  """Per-member values, each stacked along the member axis."""

  seed: jax.Array  # uint32 (every seed train.train takes, up to 2³² − 1): parameters, order
  init_scale: jax.Array  # `value_dtype`: factor on every initial kernel (§8.4)
  batch_size: jax.Array  # int32: the member's own minibatch size, ≤ spec.max_batch_size
  hyperparams: dict[str, jax.Array]  # `value_dtype`: the optimizer factory's keywords


def value_dtype(spec: ProgramSpec) -> np.dtype:
  """The dtype of the members' real values (init scale, hyperparameters): the parameters' real
  dtype, at least float32. A float64 model keeps b₂ = 1 − 1e-9 as a run alone does (float32
  would round it to 1); a bfloat16 one keeps b₂ = 0.999 (bfloat16 would round it to 1)."""
  real = real_dtype(problem_lib.pure(spec.problem).params_shape)
  return np.dtype(jnp.promote_types(real, jnp.float32))


def member_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, along the member axis."""
  return Mesh(np.asarray(jax.devices()), (MEMBER_AXIS,))


def member_inputs(
  spec: ProgramSpec, seeds, init_scales, batch_sizes, hyperparams, mesh: Mesh
) -> MemberInputs:
  """Host values (one per member, already padded to the chunk) as arrays sharded over members."""
  real = value_dtype(spec)
  host = MemberInputs(
    seed=np.asarray(seeds, np.uint32),
    init_scale=np.asarray(init_scales, real),
    batch_size=np.asarray(batch_sizes, np.int32),
    hyperparams={k: np.asarray(hyperparams[k], real) for k in spec.hyperparam_names},
  )
  return put(host, NamedSharding(mesh, PartitionSpec(MEMBER_AXIS)))


def put(tree: Any, sharding: NamedSharding) -> Any:
  """Host arrays -> global arrays with `sharding`; every process passes the same values."""

  def place(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(place, tree)


def gather(tree: Any) -> Any:
  """Global arrays -> numpy arrays holding every member, on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def data_avals(data: problem_lib.Data, mesh: Mesh) -> problem_lib.Data:
  """The replicated data's shapes and dtypes, the hashable key of a compiled program."""
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), data)


class MemberFunctions(NamedTuple):
  """A group's functions of the member axis, and the shapes of one member's model."""

  start: Callable  # (params, model_state, inputs) -> TrainState at step 0
  segment: Callable  # (state, inputs, data, lengths, measure, active) -> (TrainState, history)
  params: Any  # one member's abstract parameters (ShapeDtypeStruct leaves)
  model_state: Any


def _with_named_keywords(factory: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
  """`factory` itself, or for one that takes ``**kwargs`` (or has no signature) a wrapper whose
  signature names the swept hyperparameters: `optax.inject_hyperparams` binds arguments by the
  signature, and would hand ``factory(**hp)`` one argument named ``hp``."""
  if grid.keyword_names(factory) is not None:
    return factory

  def named(**hyperparams):
    return factory(**hyperparams)

  named.__signature__ = inspect.Signature(
    [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in names]
  )
  return named


@functools.lru_cache(maxsize=CACHED_PROGRAMS)
def member_functions(spec: ProgramSpec) -> MemberFunctions:
  """The start and segment functions of a group: `train.make_train_loop`'s pieces, vmapped.

  The loop over steps runs outside `vmap`, so that the epoch permutations of the members'
  minibatch orders (`train.masked_batch_indices`, one sort of the training set per member) are
  drawn only at steps where some member starts an epoch, and kept in between; inside `vmap`, a
  conditional on a per-member value would compute both branches at every step.
  """
  pure = problem_lib.pure(spec.problem)
  # every hyperparameter optax injects, the factory's defaults too, in `value_dtype`: left to
  # optax, a bfloat16 model's would be bfloat16, Adam's b₂ = 0.999 rounded to 1 (NaN at step 1)
  factory = optax.inject_hyperparams(
    _with_named_keywords(spec.optimizer, spec.hyperparam_names),
    static_args=grid.integer_hyperparameters(spec.optimizer),
    hyperparam_dtype=value_dtype(spec),
  )
  largest = spec.max_batch_size

  def member_loop(inputs: MemberInputs) -> train.TrainLoop:
    tx = factory(**inputs.hyperparams)
    return train.make_train_loop(
      spec.problem,
      tx,
      batch_size=largest,
      sampling=spec.sampling,
      patience=spec.patience,
      early_stopping=spec.early_stopping,
      freeze_nonfinite=True,
      l2_penalty=spec.l2_penalty,
      curvature=spec.curvature,
      log_steps=spec.log_steps,
    )

  def vmapped(piece: str, *in_axes):
    return jax.vmap(
      lambda inputs, *args: getattr(member_loop(inputs), piece)(*args), in_axes=(0, *in_axes)
    )

  init, update = vmapped("init", 0, 0), vmapped("update", 0, 0, 0 if spec.masked else None)
  evaluate, record = vmapped("evaluate", 0, 0, None), vmapped("record", 0, 0)
  monitor = vmapped("monitor", 0, None) if spec.curvature is not None else None

  def skip_monitor(inputs: MemberInputs, state: train.TrainState, data):
    del inputs, data
    nan = jnp.full(state.step.shape, jnp.nan, jnp.result_type(float))
    return state, {name: nan for name in spec.curvature.metric_names()}

  def segment(
    state: train.TrainState,
    inputs: MemberInputs,
    data,
    block_lengths: jax.Array,
    measure: jax.Array,
    active: jax.Array,
  ):
    num_train = data.train[0].shape[0]
    keys = jax.vmap(jax.random.key)(inputs.seed)
    steps_per_epoch = num_train // inputs.batch_size

    def epoch_orders(epochs: jax.Array) -> jax.Array:
      def one(key, epoch):
        return jax.random.permutation(jax.random.fold_in(key, epoch), num_train)

      return jax.vmap(one)(keys, epochs)

    def one_step(_, carry):
      state, orders, epochs = carry
      if spec.sampling == "epoch":  # the order of data.batch_indices, drawn once per epoch
        now, position = jnp.divmod(state.step, steps_per_epoch)
        stale = jnp.any(now != epochs)
        orders = jax.lax.cond(stale, epoch_orders, lambda _: orders, now)
        slice_batch = jax.vmap(train.epoch_slice, in_axes=(0, 0, 0, None))
        idx, weights = slice_batch(orders, position, inputs.batch_size, largest)
        epochs = now
      else:
        draw = jax.vmap(train.masked_batch_indices, in_axes=(0, 0, None, 0, None, None))
        idx, weights = draw(keys, state.step, num_train, inputs.batch_size, largest, spec.sampling)
      batch = tuple(a[idx] for a in data.train)  # (members, batch, ...)
      state = update(inputs, state, batch, weights if spec.masked else None)
      return state, orders, epochs

    def evaluated(state: train.TrainState):
      metrics = evaluate(inputs, state.params, state.model_state, data)
      return record(inputs, state, metrics), metrics

    def padding(state: train.TrainState):
      shapes = jax.eval_shape(evaluated, state)[1]
      # NaN where the metric is a float; an integer or boolean metric (a count) gets 0: its
      # padding blocks are dropped alike, and NaN cast to an integer warns
      return state, jax.tree.map(lambda x: jnp.full(x.shape, _missing(x.dtype), x.dtype), shapes)

    def block(carry, schedule):
      num_steps, measured, real = schedule
      state, orders, epochs = jax.lax.fori_loop(0, num_steps, one_step, carry)
      state, metrics = jax.lax.cond(real, evaluated, padding, state)
      if monitor is not None:  # the flag is the same for every member: one branch runs
        state, more = jax.lax.cond(measured, monitor, skip_monitor, inputs, state, data)
        metrics = metrics | more
      return (state, orders, epochs), metrics

    epochs = state.step // steps_per_epoch
    orders = epoch_orders(epochs) if spec.sampling == "epoch" else jnp.zeros([0], jnp.int32)
    schedule = (block_lengths, measure, active)
    (state, _, _), history = jax.lax.scan(block, (state, orders, epochs), schedule)
    return state, {k: v.T for k, v in history.items()}  # (blocks, members) -> (members, blocks)

  def start(params, model_state, inputs: MemberInputs) -> train.TrainState:
    return init(inputs, params, model_state)

  return MemberFunctions(
    start=start, segment=segment, params=pure.params_shape, model_state=pure.model_state_shape
  )


def _member_avals(tree: Any, num_members: int, mesh: Mesh) -> Any:
  """One member's avals stacked `num_members` times, sharded along the member axis."""
  sharding = NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct((num_members, *x.shape), x.dtype, sharding=sharding), tree
  )


def _input_avals(spec: ProgramSpec, num_members: int, mesh: Mesh) -> MemberInputs:
  int32, real = jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), value_dtype(spec))
  seed = jax.ShapeDtypeStruct((), jnp.uint32)
  one = MemberInputs(seed, real, int32, {k: real for k in spec.hyperparam_names})
  return _member_avals(one, num_members, mesh)


def _start_avals(spec: ProgramSpec, num_members: int, mesh: Mesh):
  functions = member_functions(spec)
  return (
    _member_avals(functions.params, num_members, mesh),
    _member_avals(functions.model_state, num_members, mesh),
    _input_avals(spec, num_members, mesh),
  )


@functools.lru_cache(maxsize=CACHED_PROGRAMS)
def compiled_start(spec: ProgramSpec, num_members: int, mesh: Mesh) -> jax.stages.Compiled:
  """`start` for `num_members` members: (params, model_state, inputs) -> state at step 0."""
  members = NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))
  jitted = jax.jit(member_functions(spec).start, out_shardings=members)
  return jitted.lower(*_start_avals(spec, num_members, mesh)).compile()


def state_avals(spec: ProgramSpec, num_members: int, mesh: Mesh) -> Any:
  """The sharded shapes of a chunk's `TrainState`, e.g. to restore a checkpoint into."""
  state = jax.eval_shape(member_functions(spec).start, *_start_avals(spec, num_members, mesh))
  sharding = NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


@functools.lru_cache(maxsize=CACHED_PROGRAMS)
def compiled_segment(
  spec: ProgramSpec, num_members: int, num_blocks: int, data: problem_lib.Data, mesh: Mesh
) -> jax.stages.Compiled:
  """`segment` of `num_blocks` blocks: (state, inputs, data, lengths, measure, active) ->
  (state, history)."""
  members = NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))
  replicated = NamedSharding(mesh, PartitionSpec())
  state = state_avals(spec, num_members, mesh)
  inputs = _input_avals(spec, num_members, mesh)
  lengths = jax.ShapeDtypeStruct((num_blocks,), jnp.int32, sharding=replicated)
  flags = jax.ShapeDtypeStruct((num_blocks,), jnp.bool_, sharding=replicated)
  jitted = jax.jit(member_functions(spec).segment, out_shardings=members)
  return jitted.lower(state, inputs, data, lengths, flags, flags).compile()


def program_bytes(compiled: jax.stages.Compiled) -> int:
  """Bytes one device holds while `compiled` runs: arguments, outputs and temporaries.

  From XLA's `memory_analysis()` of the compiled program; where a backend gives none, the
  arguments and outputs counted from their shapes, times 4 for the temporaries.
  """
  stats = compiled.memory_analysis()
  if stats is not None:
    return int(
      stats.argument_size_in_bytes
      + stats.output_size_in_bytes
      + stats.temp_size_in_bytes
      - stats.alias_size_in_bytes
    )
  avals = jax.tree.leaves((compiled.args_info, compiled.out_info))
  per_device = sum(x.size * x.dtype.itemsize for x in avals) // jax.device_count()
  return 4 * per_device


def memory_budget() -> int:
  """Bytes a program may use on one device: its memory limit, or half the host RAM on CPU."""
  stats = jax.local_devices()[0].memory_stats()
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return host // 2 // jax.local_device_count()


def _missing(dtype: Any) -> float:
  """A padding block's value of a metric of `dtype`: NaN, or 0 for an integer or boolean."""
  return jnp.nan if jnp.issubdtype(dtype, jnp.inexact) else 0
