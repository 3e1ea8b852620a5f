"""Block coordinate descent, Goodfellow et al. (2016) §8.7.2: one block of parameters per step.

The parameters are split into blocks (whole leaves of the params pytree); step t updates block
⌊t / k⌋ mod n with an inner transformation and leaves the others where they are. With k = 1 (the
default) the blocks take turns step by step; with k > 1 each visit runs k inner steps on its block,
approximately minimizing the objective over that block before moving on, the alternating
minimization of the book's sparse-coding example.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate

BlockIds = Any  # a pytree with the params' structure whose leaves are block ids 0, 1, ..., n − 1


class CoordinateDescentState(NamedTuple):
  """State of `coordinate_descent`."""

  count: (
    chex.Array
  )  # t: the number of updates done so far (int32 scalar); block ⌊t / k⌋ mod n is next
  inner_states: tuple  # one inner state per block, each advanced only on that block's steps


_WHERE = "coordinate_descent"


def _checked_ids(blocks: BlockIds) -> list[int]:
  """The leaves of `blocks` as ints, checked to be the block ids 0, 1, ..., n − 1, all used."""
  ids = jax.tree.leaves(blocks)
  if not ids:
    raise ValueError(f"{_WHERE}: blocks={blocks!r} has no leaves; give one block id per leaf")
  for leaf in ids:
    if not validate.is_integer(leaf) or leaf < 0:
      raise ValueError(f"{_WHERE}: block id {leaf!r} in blocks must be a non-negative int")
  ids = [int(i) for i in ids]
  missing = sorted(set(range(max(ids) + 1)) - set(ids))
  if missing:
    raise ValueError(
      f"{_WHERE}: block id {missing[0]} is used by no leaf of blocks; the ids must be "
      f"0, 1, ..., n − 1 with every one used (got {sorted(set(ids))})"
    )
  return ids


def _block_ids(blocks: BlockIds | Callable[[Any], BlockIds] | None, tree: Any) -> list[int]:
  """The block id of each leaf of `tree` (params or updates), in `jax.tree` leaf order."""
  structure = jax.tree.structure(tree)
  if structure.num_leaves == 0:
    raise ValueError(f"{_WHERE}: the params have no leaves, so there is nothing to split in blocks")
  if blocks is None:
    return list(range(structure.num_leaves))
  if callable(blocks):
    blocks = blocks(tree)
  if jax.tree.structure(blocks) != structure:
    raise ValueError(
      f"{_WHERE}: blocks has structure {jax.tree.structure(blocks)} but the params have "
      f"{structure}; give one block id per params leaf"
    )
  return _checked_ids(blocks)


def _block_masks(ids: list[int], tree: Any) -> list[Any]:
  """For each block b, a pytree of bools shaped like `tree`'s structure: leaf in block b."""
  structure = jax.tree.structure(tree)
  return [jax.tree.unflatten(structure, [i == block for i in ids]) for block in range(max(ids) + 1)]


def _same_types(branches: list[Callable], operand: Any, ids: list[int]) -> list[Callable]:
  """The branches, each casting its output to the types the active block gives each part.

  `jax.lax.switch` needs every branch to return the same types, but the inner step may change
  the dtype of what it touches (bfloat16 gradients on float32 params give float32 updates,
  as under `optax.MultiSteps`), while the other branches pass it through: each leaf of the
  updates takes the dtype the branch of its own block gives it, and so does each block's state.
  """
  shapes = [jax.eval_shape(branch, operand) for branch in branches]
  leaves = [jax.tree.leaves(shapes[block][0])[i] for i, block in enumerate(ids)]
  target = (
    jax.tree.unflatten(jax.tree.structure(operand[0]), leaves),
    tuple(shape[1][block] for block, shape in enumerate(shapes)),
  )

  def cast(branch):
    return lambda x: jax.tree.map(lambda y, t: y.astype(t.dtype), branch(x), target)

  return [cast(branch) for branch in branches]


def coordinate_descent(
  inner: optax.GradientTransformation,
  blocks: BlockIds | Callable[[Any], BlockIds] | None = None,
  steps_per_block: int = 1,
) -> optax.GradientTransformationExtraArgs:
  """Block coordinate descent, Goodfellow et al. (2016) §8.7.2, cycling through the blocks.

  With blocks B_0, ..., B_{n−1} partitioning the params' leaves and k = `steps_per_block`, step t
  (t = 0, 1, ...) applies `inner` to block b = ⌊t / k⌋ mod n only:

  .. math::
    Δθ_{B_b} = \\text{inner}(g_{B_b}),  Δθ_j = 0 \\text{ for } j ∉ B_b.

  Each block has its own inner state (`optax.masked(inner, mask_b)`), which advances only on that
  block's steps, so an inner Adam counts its bias-correction steps per block and an inner schedule
  is indexed by the block's own step count. Only the active block's inner update runs
  (`jax.lax.switch` on b).

  Args:
    inner: the transformation applied to the active block.
    blocks: which block each leaf of the params is in. `None`: every leaf is its own block, in
      `jax.tree` leaf order. Or a pytree with the params' structure whose leaves are
      non-negative ints using every id 0, ..., n − 1. Or a callable from the params to such a
      pytree; it is called at `init` with the params and at `update` with the updates, so it may
      depend on the structure and shapes only. `optax.tree.map_params` (which calls `init` on a
      placeholder without leaves) needs the number of blocks before the params are seen: it works
      with blocks given as a pytree, and raises a ValueError that says so otherwise.
    steps_per_block: k, the number of consecutive steps each block gets per visit (≥ 1); a large
      k lets `inner` (approximately) minimize over the block, the book's "minimizing f(x) with
      respect to a single variable" (or block) before the next.

  Returns:
    An `optax.GradientTransformationExtraArgs` with state `CoordinateDescentState`; extra
    arguments are passed on to `inner`, those of the second-order optimizers restricted to the
    active block as `optax.masked` restricts the params: ``grad=`` to the block's leaves, and
    ``value_fn=`` to a function of the block's leaves, the others held at ``params`` (so Newton,
    CG, BFGS or L-BFGS minimizes over the block).

  With such a second-order inner optimizer and two blocks or more, pass ``value`` and ``grad``
  from `jax.value_and_grad` at every step, not from `optax.value_and_grad_from_state`: each block
  keeps its own inner state, whose ``value`` and ``grad`` are those of the block's last visit
  (and ``grad`` covers the block's leaves only), so none is f and ∇f at the current params, and
  `optax.value_and_grad_from_state`, finding several, raises ``KeyError: Found multiple values
  for 'value'`` before this update runs.
  """
  validate.require_transformation("inner", inner, _WHERE)
  if blocks is not None and not callable(blocks):
    _checked_ids(blocks)  # fail at construction, before any params are seen
  if not validate.is_integer(steps_per_block) or steps_per_block < 1:
    raise ValueError(f"{_WHERE}: steps_per_block={steps_per_block!r} must be an integer ≥ 1")

  def placeholder_masks(params):
    """One mask per block for params without leaves: `optax.tree.map_params` calls `init` on
    such a placeholder to find the copies of the params in the state, and `optax.masked` passes
    it on to `inner` whatever the mask; the number of blocks must be known without the params."""
    if blocks is None or callable(blocks):
      raise ValueError(
        f"{_WHERE}: init got params with no leaves (optax.tree.map_params's placeholder, or an "
        "empty tree); with blocks=None or a callable the number of blocks comes from the "
        "params' leaves, so no state can be built: pass blocks as a pytree of block ids (e.g. "
        "jax.tree.map(lambda _: 0, params) for one block) to use optax.tree.map_params"
      )
    return _block_masks(_checked_ids(blocks), blocks)

  def init_fn(params: optax.Params) -> CoordinateDescentState:
    if jax.tree.structure(params).num_leaves == 0:
      masks = placeholder_masks(params)
    else:
      masks = _block_masks(_block_ids(blocks, params), params)
    inner_states = tuple(optax.masked(inner, mask).init(params) for mask in masks)
    return CoordinateDescentState(count=jnp.zeros([], jnp.int32), inner_states=inner_states)

  def update_fn(updates, state, params=None, **extra_args):
    ids = _block_ids(blocks, updates)
    masks = _block_masks(ids, updates)

    def block_update(block: int) -> Callable:
      mask = masks[block]
      masked = optax.masked(inner, mask)

      def run(operand):
        grads, inner_states = operand
        block_args = _block_extra_args(extra_args, mask, params)
        block_updates, block_state = masked.update(grads, inner_states[block], params, **block_args)
        # optax.masked passes the other leaves through unchanged; they must not move.
        block_updates = jax.tree.map(
          lambda in_block, u: u if in_block else jnp.zeros_like(u), mask, block_updates
        )
        new_states = inner_states[:block] + (block_state,) + inner_states[block + 1 :]
        return block_updates, new_states

      return run

    active = (state.count // steps_per_block) % len(masks)
    operand = (updates, state.inner_states)
    branches = _same_types([block_update(block) for block in range(len(masks))], operand, ids)
    new_updates, inner_states = jax.lax.switch(active, branches, operand)
    return new_updates, CoordinateDescentState(
      count=optax.safe_increment(state.count), inner_states=inner_states
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _block_extra_args(extra_args: dict, mask: Any, params: Any) -> dict:
  """`extra_args` for `optax.masked(inner, mask)`: ``grad`` with the leaves outside the block
  replaced by `optax.MaskedNode` (as optax.masked gives the params), and ``value_fn`` of the
  block's leaves with the other leaves taken from `params`; other arguments unchanged."""
  block_args = dict(extra_args)
  if "grad" in extra_args:
    block_args["grad"] = jax.tree.map(
      lambda in_block, g: g if in_block else optax.MaskedNode(), mask, extra_args["grad"]
    )
  if "value_fn" in extra_args:
    value_fn = extra_args["value_fn"]

    def block_value_fn(block_params, *args, **kwargs):
      full = jax.tree.map(lambda in_block, p, b: b if in_block else p, mask, params, block_params)
      return value_fn(full, *args, **kwargs)

    block_args["value_fn"] = block_value_fn
  return block_args
