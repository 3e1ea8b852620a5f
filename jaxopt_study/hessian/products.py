"""Hessian-vector products of a dataset-weighted loss, on any pytree of parameters.

Every tool of `jaxopt_study.hessian` reduces its input, ``loss_fn(params, *args)`` with `params` a
pytree or an `nnx.Module`, to a `Problem`: the parameters raveled into one vector θ ∈ ℝᴺ (in
`jax.flatten_util.ravel_pytree` order), the arrays held fixed, the data, and a static, hashable
`Objective` that jitted kernels take as a static argument, so that calling a tool again with the
same `loss_fn` and parameter structure does not compile again. A loss may read arrays or numbers
that are not its arguments (a global, a closure, `self.x` of a bound method): the `Objective`
then also carries a fingerprint of the loss's trace (its jaxpr and the values of the constants
it closes over, `trace_fingerprint`), so that a call after those values changed compiles anew
instead of reusing the values the first call compiled in (JAX's own `jax.jit` would).

The loss over a dataset given as batches B₁ ... B_K with n_b examples each (n_b the leading
length that every array of the batch shares) is the size-weighted mean

.. math:: L(θ) = Σ_b n_b L_b(θ) / Σ_b n_b,

so that its gradient, Hessian-vector products and Hessian are those of the whole dataset, whatever
the batch sizes. Batches of equal shapes are stacked and scanned over, one batch's activations in
memory at a time; each batch's gradient or HVP is taken inside the scan and summed with its weight.

The Hessian-vector product is forward-over-reverse, H v = ∂/∂t ∇L(θ + t v) at t = 0
(`jax.jvp` of `jax.grad`; Pearlmutter 1994), as cheap as a few gradients and exact.
"""

import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxopt_study import validate

LossFn = Callable[..., chex.Numeric]
MODES = ("train", "eval")
# the attributes `module.train()` and `module.eval()` set on BatchNorm and Dropout
_MODE_ATTRIBUTES = {
  "train": {"deterministic": False, "use_running_average": False},
  "eval": {"deterministic": True, "use_running_average": True},
}


def working_dtype(dtype: Any) -> np.dtype:
  """The precision the tools work in for parameters of `dtype`: at least float32. A bfloat16 or
  float16 model's Hessian-vector products run in its own dtype, but the flat vectors, the Krylov
  bases and the eigenproblems (which LAPACK does not offer in half precision) in float32: in
  bfloat16 the Lanczos basis loses orthogonality at once and its Ritz values came out 3x too small
  (as `tracking`'s monitor does)."""
  return np.dtype(jnp.promote_types(dtype, jnp.float32))


class Layout(NamedTuple):
  """How a pytree of arrays maps onto one flat vector, in `ravel_pytree` order (hashable)."""

  treedef: Any
  shapes: tuple[tuple[int, ...], ...]
  dtypes: tuple[np.dtype, ...]

  @property
  def num_params(self) -> int:
    return sum(math.prod(shape) for shape in self.shapes)

  @property
  def dtype(self) -> np.dtype:
    """The flat vector's dtype, `working_dtype` of the parameters' common dtype."""
    return working_dtype(jnp.result_type(*self.dtypes))

  def ravel(self, tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
      return jnp.concatenate([jnp.ravel(leaf).astype(self.dtype) for leaf in leaves])
    # concrete leaves: assembled on the host, which compiles nothing for a new layout
    return jnp.asarray(np.concatenate([np.ravel(leaf).astype(self.dtype) for leaf in leaves]))

  def unravel(self, flat: jax.Array) -> Any:
    sizes = [math.prod(shape) for shape in self.shapes]
    pieces = jnp.split(flat, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [flat]
    leaves = [
      piece.reshape(shape).astype(dtype)
      for piece, shape, dtype in zip(pieces, self.shapes, self.dtypes, strict=True)
    ]
    return jax.tree.unflatten(self.treedef, leaves)


class Objective(NamedTuple):
  """The static part of a problem: the loss, the parameter layout, the NNX graph (or None), and
  the fingerprint of the loss's trace (None inside an outer trace, where the values it closes
  over are the outer trace's own)."""

  loss_fn: LossFn
  layout: Layout
  graphdef: Any  # nnx.GraphDef when params was an nnx.Module, else None
  fingerprint: str | None = None


class BatchGroup(NamedTuple):
  """Batches of one shape: args stacked on a new leading axis, with their weights n_b / Σ n.

  `weights` is None for the single argument tuple of a call without ``batches=`` (weight 1, args
  not stacked).
  """

  weights: jax.Array | None
  args: tuple


class Problem(NamedTuple):
  """A loss ready for the kernels: static `objective`, flat params θ, fixed state, data."""

  objective: Objective
  flat_params: jax.Array  # θ, shape (N,)
  fixed: Any  # nnx state held fixed (BatchNorm statistics, ...), or None
  data: tuple[BatchGroup, ...]

  @property
  def num_params(self) -> int:
    return self.objective.layout.num_params


def host_rng(key: jax.Array | None) -> np.random.Generator:
  """A numpy generator seeded by the bits of a JAX PRNG key (typed or raw), or of
  `jax.random.key(seed)` for an int seed; None: seed 0.

  The tools draw their random vectors on the host: the same vectors for the same key whatever
  the devices, and no random-number program to compile for every new parameter count.
  """
  if key is None:
    return np.random.default_rng(0)
  if validate.is_integer(key):
    validate.require_int("key", key, "hessian", low=0, high=validate.MAX_SEED)
    key = jax.random.key(int(key))
  if not hasattr(key, "dtype"):
    raise TypeError(f"key={key!r}: pass a JAX PRNG key, e.g. jax.random.key(0), or an int seed")
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())


def _batch_size(batch: tuple, index: int) -> int:
  """n_b, the leading length that every array of the batch shares.

  Raises:
    ValueError: a batch without arrays, with a scalar, or whose arrays' leading lengths differ (a
      per-class table beside the examples: which length counts the examples would be a guess; the
      first array of a dict in key order weighted every batch by the number of classes).
  """
  lengths = {
    f"batches[{index}]{jax.tree_util.keystr(path)}": jnp.shape(leaf)[0] if jnp.ndim(leaf) else None
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]
  }
  scalars = [name for name, n in lengths.items() if n is None]
  if not lengths or scalars:
    raise ValueError(
      f"batches[{index}]: every array needs a leading batch dimension (the number of examples "
      f"n_b that weights the batch); got {'no array' if not lengths else 'a scalar ' + scalars[0]}"
    )
  if len(set(lengths.values())) > 1:
    listed = ", ".join(f"{name}: {n}" for name, n in lengths.items())
    raise ValueError(
      f"batches[{index}]: its arrays' leading lengths differ ({listed}), so the number of "
      "examples that weights the batch is ambiguous: give every array of a batch one row per "
      "example, and what is not per example (class weights, ...) through the loss's closure"
    )
  return int(next(iter(lengths.values())))


def _group_batches(batches: Sequence[tuple], dtype: np.dtype) -> tuple[BatchGroup, ...]:
  """Groups batches (checked by `_check_batches`) by shape and stacks each group; weights
  n_b / Σ n in `dtype`."""
  batches = [tuple(batch) if isinstance(batch, (tuple, list)) else (batch,) for batch in batches]
  sizes = [_batch_size(batch, index) for index, batch in enumerate(batches)]
  total = sum(sizes)
  groups: dict[Any, list[int]] = {}
  for index, batch in enumerate(batches):
    leaves, treedef = jax.tree.flatten(batch)
    signature = (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    groups.setdefault(signature, []).append(index)
  return tuple(
    BatchGroup(
      weights=jnp.asarray([sizes[i] / total for i in members], dtype),
      args=jax.tree.map(lambda *xs: jnp.stack(xs), *[batches[i] for i in members]),
    )
    for members in groups.values()
  )


def _check_batches(loss_fn: LossFn, batches: Sequence, where: str) -> None:
  """Refuses batches= that is not a non-empty sequence, or whose argument tuples
  `loss_fn(params, *batch)` cannot take, before anything is stacked or traced: ``batches=(x, y)``,
  one batch where a list of batches belongs, reached the loss as the two batches (x,) and (y,)
  and failed inside it. A loss whose signature Python cannot read is left to fail on its own."""
  if isinstance(batches, (str, bytes)) or not isinstance(batches, Sequence) or not batches:
    raise ValueError(
      f"{where}: batches={type(batches).__name__}: must be a non-empty sequence of argument "
      "tuples, e.g. [(x1, y1), (x2, y2)]"
    )
  try:
    signature = inspect.signature(loss_fn)
  except (TypeError, ValueError):
    return
  first = batches[0]
  batch = tuple(first) if isinstance(first, (tuple, list)) else (first,)
  try:
    signature.bind(None, *batch)
  except TypeError as error:
    hint = (
      "; batches=(x, y) is a single batch: pass it as *args, or as batches=[(x, y)]"
      if isinstance(batches, tuple) and len(batch) == 1
      else ""
    )
    raise ValueError(
      f"{where}: batches[0] holds {len(batch)} argument(s), which loss_fn(params, ...) cannot "
      f"take ({error}); batches= is a list of argument tuples [(x1, y1), (x2, y2), ...]{hint}"
    ) from None


def _split_module(model: nnx.Module, mode: str | None, where: str) -> tuple[Any, Any, Any]:
  """(graphdef, Param state, the rest) of `model`, on a view of it in `mode`: "train" sets
  BatchNorm to batch statistics and dropout on, "eval" running averages and dropout off, as
  `module.train()` / `module.eval()` do. Without a mode, a model whose loss depends on one
  (BatchNorm statistics, or dropout that is on) is refused.

  The view is taken of a copy, for its graph alone, and the state is the model's own: `nnx.view`
  calls every node's `set_view`, and an `nnx.Rngs` the module keeps answers any attribute with a
  stream, so a view of the model itself drew a key, moving the caller's RNG count and the noise
  draw the curvature was taken at."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  if mode is None:
    has_batch_stats = bool(jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
    in_eval = nnx.view(nnx.clone(model), **_MODE_ATTRIBUTES["eval"], raise_if_not_found=False)
    if has_batch_stats or nnx.graphdef(in_eval) != graphdef:
      raise ValueError(
        f"{where}: the model has BatchNorm statistics (nnx.BatchStat) or dropout that is on, so "
        "the loss depends on the mode: pass mode='train' (batch statistics, dropout on: the "
        "training objective) or mode='eval' (running averages, dropout off)"
      )
    return graphdef, params, rest
  viewed = nnx.view(nnx.clone(model), **_MODE_ATTRIBUTES[mode], raise_if_not_found=False)
  return nnx.split(viewed, nnx.Param, ...)[0], params, rest


def require_count(name: str, value: Any, where: str, low: int = 1, size: int | None = None) -> None:
  """Refuses an option that is not an integer in [low, N] (N = `size`; no upper bound if None):
  a bool, a float such as 2.0 or NaN, a string or a list is named in the error, not converted."""
  valid = validate.is_integer(value) and low <= value <= (size if size is not None else value)
  if not valid:
    bound = f"in [{low}, N={size}]" if size is not None else f"≥ {low}"
    raise ValueError(f"{where}: {name}={value!r}: must be an integer {bound}")


def require_tolerance(name: str, value: Any, where: str) -> None:
  """Refuses a tolerance that is neither None (the default rule) nor a finite number ≥ 0."""
  if value is not None:
    validate.require_non_negative(name, value, where)


def require_params(params: Any, where: str) -> None:
  """Raises unless `params` is a pytree of floating arrays with one entry or more, finite where
  their values are known (a traced leaf is checked for its dtype and shape only); the error names
  the first offending leaf by its path, e.g. ``params['w']``. Abstract leaves
  (`jax.ShapeDtypeStruct`, for planning a state) are checked for their dtype and shape."""
  with_paths = jax.tree_util.tree_flatten_with_path(params)[0]
  if not with_paths:
    raise ValueError(f"{where}: params has no arrays to differentiate")
  for path, leaf in with_paths:
    name = f"params{jax.tree_util.keystr(path)}"
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise TypeError(
        f"{where}: {name} has dtype {jnp.result_type(leaf)} and shape {jnp.shape(leaf)}: "
        "every parameter must be floating point to be differentiated"
      )
    concrete = not isinstance(leaf, jax.core.Tracer | jax.ShapeDtypeStruct)
    if concrete and not np.all(np.isfinite(np.asarray(leaf))):
      raise ValueError(f"{where}: {name} is not finite (NaN or ±inf): no curvature there")
  if not sum(math.prod(jnp.shape(leaf)) for _, leaf in with_paths):
    raise ValueError(f"{where}: params has no entries (every array is empty)")


def prepare(
  loss_fn: LossFn,
  params: Any,
  args: tuple,
  batches: Sequence[tuple] | None,
  mode: str | None,
  where: str,
  *,
  evaluate: bool = False,
) -> Problem:
  """Validates a tool's inputs and builds its `Problem`; `where` names the tool in errors. With
  `evaluate=True` (every tool that reports on a point) the loss and gradient there are evaluated
  and required finite (`require_finite_point`)."""
  if not callable(loss_fn):
    raise TypeError(f"{where}: loss_fn={loss_fn!r} is not callable")
  if args and batches is not None:
    raise ValueError(
      f"{where}: got {len(args)} positional data argument(s) and batches=: pass the data either "
      "as *args (one batch) or as batches=[(x1, y1), ...] (the whole dataset), not both"
    )
  if mode is not None and mode not in MODES:
    raise ValueError(f"{where}: mode={mode!r}: must be one of {MODES} or None")
  if isinstance(params, nnx.Module):
    graphdef, params, fixed = _split_module(params, mode, where)
  elif mode is not None:
    raise ValueError(f"{where}: mode={mode!r} applies only when params is an nnx.Module")
  else:
    graphdef, fixed = None, None
  require_params(params, where)
  leaves, treedef = jax.tree.flatten(params)
  layout = Layout(
    treedef, tuple(jnp.shape(x) for x in leaves), tuple(jnp.result_type(x) for x in leaves)
  )
  if batches is None:
    data = (BatchGroup(weights=None, args=tuple(args)),)
  else:
    _check_batches(loss_fn, batches, where)
    data = _group_batches(batches, layout.dtype)
  problem = Problem(Objective(loss_fn, layout, graphdef), layout.ravel(params), fixed, data)
  traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(problem))
  if not traced:
    objective = problem.objective._replace(fingerprint=trace_fingerprint(problem))
    problem = problem._replace(objective=objective)
  if evaluate and not traced:  # inside a trace the values are unknown: nothing to check
    require_finite_point(problem, *loss_and_grad_jit(*problem), where)
  return problem


def trace_fingerprint(problem: Problem) -> str:
  """A digest of the loss's trace on the problem's first batch: its jaxpr (the operations, and
  the Python numbers it reads, as literals) and the values of the arrays it closes over (its
  constants, a PRNG key by its key data). Two calls with equal fingerprints trace the same
  function of the loss's arguments, so that the kernels one compiled serve the other."""
  group = problem.data[0]
  first = group.args if group.weights is None else jax.tree.map(lambda x: x[0], group.args)
  closed = jax.make_jaxpr(functools.partial(batch_loss, problem.objective))(
    problem.flat_params, problem.fixed, first
  )
  return jaxpr_fingerprint(closed)


class Fingerprinted(NamedTuple):
  """A function and the fingerprint of its trace (`jaxpr_fingerprint`), hashed and compared as
  the pair: a static argument of `jax.jit` that tells two traces apart, so that a function that
  reads a changed global or closure compiles again instead of reusing the values compiled in."""

  fn: Callable[..., Any]
  fingerprint: str

  def __call__(self, *args: Any) -> Any:
    return self.fn(*args)


def jaxpr_fingerprint(closed: Any) -> str:
  """A digest of a function traced by `jax.make_jaxpr`: its jaxpr's text and the values of its
  constants (concrete: the trace of a call outside any outer trace)."""
  digest = hashlib.sha256(str(closed.jaxpr).encode())
  for const in closed.consts:
    if jnp.issubdtype(jnp.result_type(const), jax.dtypes.prng_key):
      const = jax.random.key_data(const)
    array = np.asarray(const)
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def batch_loss(objective: Objective, flat: jax.Array, fixed: Any, args: tuple) -> jax.Array:
  """L_b(θ) on one batch: unravels θ, rebuilds the module if any, checks the loss is a scalar."""
  params = objective.layout.unravel(flat)
  if objective.graphdef is not None:
    # copy=True: fresh Variables in this trace, so that BatchNorm in train mode may write its
    # statistics; they are discarded, the caller's module is never updated.
    params = nnx.merge(objective.graphdef, params, fixed, copy=True)
  value = objective.loss_fn(params, *args)
  name = getattr(objective.loss_fn, "__name__", objective.loss_fn)
  if not isinstance(value, jax.Array | np.ndarray | np.generic | float | int):
    raise TypeError(
      f"loss_fn {name!r} returned a {type(value).__name__}: it must return one scalar array "
      "(a loss with auxiliary outputs: wrap it, lambda *a: loss_fn(*a)[0])"
    )
  if jnp.shape(value) != ():
    raise TypeError(
      f"loss_fn {name!r} returned shape {jnp.shape(value)}: it must return a scalar (reduce the "
      "per-example losses)"
    )
  return jnp.asarray(value, flat.dtype)


def dataset_sum(fn: Callable[[tuple], Any], data: tuple[BatchGroup, ...]) -> Any:
  """Σ_b w_b fn(args_b) over every batch, with w_b = n_b / Σ n (or 1 for a single batch)."""
  total = None
  for group in data:
    if group.weights is None:
      part = fn(group.args)
    else:

      def accumulate(acc, weighted_batch):
        weight, args = weighted_batch
        return jax.tree.map(lambda a, y: a + weight.astype(y.dtype) * y, acc, fn(args)), None

      first = jax.tree.map(lambda x: x[0], group.args)
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, first))
      part, _ = jax.lax.scan(accumulate, zeros, (group.weights, group.args))
    total = part if total is None else jax.tree.map(jnp.add, total, part)
  return total


def loss_value(objective: Objective, flat: jax.Array, fixed: Any, data: tuple) -> jax.Array:
  """L(θ) over the dataset (traceable)."""
  return dataset_sum(lambda args: batch_loss(objective, flat, fixed, args), data)


def loss_and_grad(
  objective: Objective, flat: jax.Array, fixed: Any, data: tuple
) -> tuple[jax.Array, jax.Array]:
  """(L(θ), ∇L(θ)) over the dataset, each batch differentiated inside the scan (traceable)."""
  value_and_grad = jax.value_and_grad(lambda f, args: batch_loss(objective, f, fixed, args))
  return dataset_sum(lambda args: value_and_grad(flat, args), data)


def hvp_rows(
  objective: Objective, flat: jax.Array, fixed: Any, data: tuple, vectors: jax.Array
) -> jax.Array:
  """H vᵢ for each row vᵢ of `vectors` (k, N): forward-over-reverse, vmapped (traceable)."""

  def batch_hvps(args: tuple) -> jax.Array:
    grad = jax.grad(lambda f: batch_loss(objective, f, fixed, args))
    return jax.vmap(lambda v: jax.jvp(grad, (flat,), (v,))[1])(vectors)

  return dataset_sum(batch_hvps, data)


def first_and_second_order(
  objective: Objective, flat: jax.Array, fixed: Any, data: tuple
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(L(θ), g = ∇L(θ), H g): the loss, its gradient and one HVP along it (traceable)."""
  loss, grad = loss_and_grad(objective, flat, fixed, data)
  return loss, grad, hvp_rows(objective, flat, fixed, data, grad[None])[0]


first_and_second_order_jit = jax.jit(first_and_second_order, static_argnums=0)
loss_and_grad_jit = jax.jit(loss_and_grad, static_argnums=0)


def require_finite_point(
  problem: Problem, loss: Any, grad: Any, where: str, grad_name: str = "the gradient"
) -> None:
  """Raises ValueError when the loss or the gradient (raveled) at the point is not finite, naming
  which (the gradient as `grad_name`, and its first non-finite leaf): a kind or a spectrum there
  would be noise."""
  if not np.isfinite(float(loss)):
    raise ValueError(f"{where}: the loss at params is {float(loss)}: no curvature there")
  tree = problem.objective.layout.unravel(jnp.asarray(grad))
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if not np.all(np.isfinite(np.asarray(leaf))):
      raise ValueError(
        f"{where}: {grad_name} at params is not finite in params{jax.tree_util.keystr(path)}"
      )


def require_non_negative_loss(problem: Problem, where: str) -> None:
  """Raises ValueError when the loss at the point is negative: Keskar et al.'s sharpness divides
  by 1 + f(x), a scale made for losses ≥ 0 (a negative loss inflated it, or made it negative)."""
  loss = float(loss_and_grad_jit(*problem)[0])
  if loss < 0:
    raise ValueError(
      f"{where}: the loss at params is {loss:g} < 0; Keskar et al.'s sharpness divides by "
      "1 + f(x) and is defined for a loss ≥ 0 (cross-entropy, squared error): shift your loss "
      "by a constant to make it non-negative"
    )


def hvp(
  loss_fn: LossFn,
  params: Any,
  *args: Any,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
) -> Callable[[Any], Any]:
  """The Hessian-vector product v ↦ H v of `loss_fn` at `params`, on pytrees shaped like params.

  .. math:: H v = \\frac{d}{dt} ∇L(θ + t v) \\Big|_{t=0}

  computed forward-over-reverse (`jax.jvp` of `jax.grad`, Pearlmutter 1994) at the cost of a few
  gradients, exactly and without forming H. Jitted; the product is compiled once per
  (loss_fn, parameter structure, data shapes) and works inside an outer `jax.jit` too.

  Example::

    product = hvp(lambda p, x, y: jnp.mean((x @ p["w"] - y) ** 2), {"w": w}, x, y)
    product({"w": v})  # {"w": H v}

  Args:
    loss_fn: ``loss_fn(params, *args) -> scalar``.
    params: a pytree of floating arrays (dict, `nnx.State`, array), or an `nnx.Module`, whose
      `nnx.Param` state is differentiated while the rest is held fixed; `loss_fn` is then called
      with the module.
    *args: the data of one batch, passed to `loss_fn` after params.
    batches: instead of `*args`, a sequence of argument tuples; the loss is then the mean over all
      examples, L = Σ_b n_b L_b / Σ_b n_b (see the module docstring).
    mode: "train" or "eval" for a module with BatchNorm statistics or dropout that is on
      (required there), as `module.train()` / `module.eval()` set them: batch statistics and
      dropout on (the training objective, one dropout mask; running averages are not updated),
      or running averages and dropout off.

  Returns:
    A function from a pytree v shaped like the parameters (an `nnx.State` of the Params for a
    module) to H v of the same structure.
  """
  problem = prepare(loss_fn, params, args, batches, mode, "hvp")
  layout = problem.objective.layout

  def product(vector: Any) -> Any:
    if jax.tree.structure(vector) != layout.treedef:
      raise ValueError(
        f"hvp: the vector's structure {jax.tree.structure(vector)} differs from the "
        f"parameters' {layout.treedef}"
      )
    leaves = jax.tree_util.tree_flatten_with_path(vector)[0]
    for (path, leaf), shape in zip(leaves, layout.shapes, strict=True):
      if jnp.shape(leaf) != shape:
        raise ValueError(
          f"hvp: vector{jax.tree_util.keystr(path)} has shape {jnp.shape(leaf)} where the "
          f"parameter has {shape}"
        )
    return _tree_hvp_jit(
      problem.objective, problem.flat_params, problem.fixed, problem.data, vector
    )

  return product


def _tree_hvp(objective: Objective, flat: jax.Array, fixed: Any, data: tuple, vector: Any) -> Any:
  """H v with v and H v pytrees in the parameters' layout."""
  layout = objective.layout
  return layout.unravel(hvp_rows(objective, flat, fixed, data, layout.ravel(vector)[None])[0])


_tree_hvp_jit = jax.jit(_tree_hvp, static_argnums=0)
