"""Transfer learning: a trained network's lower layers under a fresh output layer
(`models.transfer`).

Goodfellow et al. (2016), §15.2; Yosinski et al. (2014). Kept apart from `models` (which
re-exports `Transfer` and `transfer`) because it works on any `nnx.Module`, the built-in ones and
a user's own alike, and knows nothing of how they are built.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import optax
from flax import nnx

from jaxopt_study import init as initializers
from jaxopt_study import validate as validation

FROZEN, TRAINED = "frozen", "trained"  # the labels of `Transfer.labels`


class Transfer(NamedTuple):
  """What `transfer` returns: the new task's model and which of its parameters stay fixed.

  `model` is a factory ``rngs -> nnx.Module`` for ``Problem(model=...)``: every call returns a
  copy of the trained module with a fresh head drawn from `rngs`. `head` and `frozen` are layer
  paths ("hidden/0": attribute names and list indices joined by "/").
  """

  model: Callable[[nnx.Rngs], nnx.Module]
  head: str
  frozen: tuple[str, ...]

  def labels(self, params: Any) -> Any:
    """`FROZEN` or `TRAINED` on every leaf of `params`, by its path: the `param_labels` of
    `optax.partition`. `params` is any pytree with the model's parameter paths (an `nnx.State`,
    a sweep's stacked arrays, `nnx.to_pure_dict(state)`)."""
    prefixes = [tuple(path.split("/")) for path in self.frozen]

    def label(path, _) -> str:
      parts = _path_parts(path)
      return FROZEN if any(parts[: len(p)] == p for p in prefixes) else TRAINED

    return jax.tree_util.tree_map_with_path(label, params)

  def optimizer(
    self, inner: optax.GradientTransformation, frozen_scale: float | jax.Array = 0.0
  ) -> optax.GradientTransformation:
    """`inner` on the trained parameters and `optax.set_to_zero` on the frozen ones
    (`optax.partition`, Optax's recipe for freezing): a frozen parameter never moves and `inner`
    keeps no state for it. Without frozen layers, `inner` itself.

    With `frozen_scale` ≠ 0 the frozen layers are fine-tuned instead, by a second copy of
    `inner` whose updates are multiplied by `frozen_scale` (the CS231n notes' smaller rate for
    the transferred layers). It may be an array traced under `jit` / `vmap`, so that the members
    of one program freeze (0: updates of exactly zero) or fine-tune (1: `inner` on each group,
    which is `inner` on all parameters for an element-wise optimizer such as SGD or Adam, not
    for one that couples parameters, e.g. through a global norm)."""
    validation.require_non_negative("frozen_scale", frozen_scale, "Transfer.optimizer")
    if not self.frozen:
      return inner
    if isinstance(frozen_scale, int | float) and frozen_scale == 0:
      body = optax.set_to_zero()
    else:
      body = optax.chain(inner, optax.scale(frozen_scale))
    return optax.partition({TRAINED: inner, FROZEN: body}, self.labels)


def transfer(
  trained: nnx.Module,
  new_head_classes: int,
  *,
  freeze: bool | str | Sequence[str] = True,
  head: str = "output",
  kernel_init: initializers.Initializer | None = None,
  bias_init: initializers.Initializer = jax.nn.initializers.zeros,
) -> Transfer:
  """Reuses the lower layers of a trained network on a new task under a fresh output layer.

  Transfer learning (Goodfellow et al. 2016, §15.2; Yosinski et al. 2014, "How transferable are
  features in deep neural networks?"): a network trained on one task keeps every layer but its
  output layer `head`, which is replaced by a new `nnx.Linear` with the same inputs and
  `new_head_classes` outputs, drawn from the `rngs` the factory gets. Training on the new task
  then either updates the head alone, the lower layers `freeze`-ing as fixed features (Yosinski
  et al.'s AnB), or fine-tunes every layer from the transferred values (their AnB+).

  Design: `trained` is a live `nnx.Module`, the built-in `MLP` or a user's own module, e.g. of
  a `train.train` result: ``problem.module(result.params, result.model_state)``. It is copied at
  once (later changes to it do not leak in), and `Transfer.model` is the new task's factory, so
  the new task is a plain `Problem` for `train.train` and `sweep.run` (a sweep over seeds draws a
  new head per seed on the same transferred layers). Freezing is an Optax transformation, not a
  change to the model: `Transfer.optimizer(tx)` wraps any optimizer in `optax.partition` with
  `optax.set_to_zero` on the frozen parameters (a sweep takes
  ``lambda learning_rate: t.optimizer(optim.sgd(learning_rate))``; with its `frozen_scale`, a
  hyperparameter that may be traced, one vmapped program freezes some members and fine-tunes
  others), and `Transfer.labels` gives the same labels for one's own `optax.partition`. Only
  `nnx.Param` updates are stopped: BatchNorm statistics of a frozen layer still follow the new
  data in train mode; the module's other state (BatchNorm statistics, RNG streams) is copied
  from `trained`.

  Example::

      source = train.train(problem, optim.adam(1e-3), steps=500, batch_size=32)
      t = models.transfer(problem.module(source.params, source.model_state), 5, freeze=True)
      target = Problem(model=t.model, loss=loss, train_data=(x, y), heldout_data=(xt, yt))
      result = train.train(target, t.optimizer(optim.adam(1e-3)), steps=300, batch_size=25)

  Args:
    trained: the trained network (not modified).
    new_head_classes: the new output layer's units (classes of the new task), ≥ 1.
    freeze: True: every layer but the head is frozen (only the head trains); False: nothing is
      (fine-tuning); or the paths of the layers to freeze ("hidden/0", or "hidden" for all of
      them), the rest fine-tuned.
    head: path of the output layer to replace, an `nnx.Linear`: "output" for `MLP`,
      `ResidualMLP` and `RNN`, "layers/-1" for `DeepLinear` (a negative index counts from the
      end), a user's module's own attribute name.
    kernel_init, bias_init: the new head's initializers (default: Glorot uniform, as `MLP`;
      zeros).

  Returns:
    A `Transfer`: `model` (the factory), `head` and `frozen` (paths with indices ≥ 0), and
    `labels(params)` / `optimizer(tx, frozen_scale=0.0)` for freezing.

  Raises:
    TypeError: `trained` is not an `nnx.Module`, or `head` is not an `nnx.Linear`.
    ValueError: `new_head_classes` < 1 or not an integer; `head` or a `freeze` path names no
      layer of `trained`, or a frozen path holds no parameters or overlaps the head.
  """
  if not isinstance(trained, nnx.Module):
    raise TypeError(f"transfer: trained is a {type(trained).__name__}, not an nnx.Module")
  if not validation.is_integer(new_head_classes):
    raise ValueError(f"transfer: new_head_classes={new_head_classes!r} must be an integer ≥ 1")
  if new_head_classes < 1:
    raise ValueError(f"transfer: new_head_classes={new_head_classes!r} must be an integer ≥ 1")
  param_paths = [
    _path_parts(path)
    for path, _ in jax.tree_util.tree_flatten_with_path(nnx.state(trained, nnx.Param))[0]
  ]
  head_parts, old_head = _resolve(trained, head, "head")
  if not isinstance(old_head, nnx.Linear):
    raise TypeError(
      f"transfer: head={head!r} is a {type(old_head).__name__}, not an nnx.Linear: name the "
      "network's output layer"
    )
  if freeze is True:
    frozen = _outside(param_paths, head_parts)
  elif freeze is False:
    frozen = []
  else:
    frozen = [_frozen_path(trained, path, head_parts, param_paths) for path in _paths(freeze)]
  snapshot = nnx.clone(trained)
  kernel_init = kernel_init or initializers.glorot_uniform()

  def model(rngs: nnx.Rngs) -> nnx.Module:
    module = nnx.clone(snapshot)
    new_head = nnx.Linear(
      old_head.in_features,
      int(new_head_classes),
      use_bias=old_head.use_bias,
      dtype=old_head.dtype,
      param_dtype=old_head.param_dtype,
      kernel_init=kernel_init,
      bias_init=bias_init,
      rngs=rngs,
    )
    parent = _resolve(module, "/".join(head_parts[:-1]), "head")[1] if head_parts[1:] else module
    _set_child(parent, head_parts[-1], new_head)
    return module

  return Transfer(model, "/".join(head_parts), tuple("/".join(p) for p in dict.fromkeys(frozen)))


def _path_parts(path: tuple) -> tuple[str, ...]:
  """A pytree key path as strings: ('hidden', '0', 'kernel', 'value')."""
  parts = []
  for key in path:
    for field in ("key", "name", "idx"):
      if hasattr(key, field):
        parts.append(str(getattr(key, field)))
        break
    else:
      parts.append(str(key))
  return tuple(parts)


def _resolve(module: nnx.Module, path: str, argument: str) -> tuple[tuple[str, ...], Any]:
  """The node at `path` below `module` and its path with indices made non-negative."""
  if not isinstance(path, str) or not path.strip("/"):
    raise ValueError(f"transfer: {argument}={path!r} must name a layer, e.g. 'output'")
  node, parts = module, []
  for part in path.strip("/").split("/"):
    if isinstance(node, Sequence) and part.lstrip("-").isdigit():
      index = int(part)
      if not -len(node) <= index < len(node):
        raise ValueError(
          f"transfer: {argument}={path!r}: index {index} is out of range for a list of "
          f"{len(node)} layers"
        )
      node, part = node[index], str(index % len(node))
    elif isinstance(node, Mapping) and part in node:
      node = node[part]
    elif isinstance(node, nnx.Module) and part in vars(node):
      node = getattr(node, part)
    else:
      known = _children(node)
      raise ValueError(
        f"transfer: {argument}={path!r}: no layer {part!r} in {type(node).__name__}"
        + (f" (it has {known})" if known else "")
      )
    parts.append(part)
  return tuple(parts), node


def _children(node: Any) -> list[str]:
  if isinstance(node, Sequence):
    return [str(i) for i in range(len(node))]
  if isinstance(node, Mapping):
    return [str(k) for k in node]
  if isinstance(node, nnx.Module):
    return [k for k, v in vars(node).items() if isinstance(v, nnx.Module | nnx.Variable)]
  return []


def _set_child(parent: Any, part: str, child: nnx.Module) -> None:
  if isinstance(parent, Sequence):
    parent[int(part)] = child
  elif isinstance(parent, Mapping):
    parent[part] = child
  else:
    setattr(parent, part, child)


def _paths(freeze: Any) -> list[str]:
  if isinstance(freeze, str):
    return [freeze]
  if not isinstance(freeze, Sequence) or not all(isinstance(p, str) for p in freeze):
    raise ValueError(
      f"transfer: freeze={freeze!r} must be True, False or layer paths such as ['hidden/0']"
    )
  return list(freeze)


def _outside(param_paths: list[tuple[str, ...]], head: tuple[str, ...]) -> list[tuple[str, ...]]:
  """The largest subtrees that hold parameters and do not contain the head, in order."""
  subtrees = []
  for parts in param_paths:
    common = zip(parts, head, strict=False)
    depth = next((i for i, (a, b) in enumerate(common) if a != b), len(head))
    if depth < len(head):  # not below the head
      subtrees.append(parts[: depth + 1])
  return subtrees


def _frozen_path(
  module: nnx.Module, path: str, head: tuple[str, ...], param_paths: list[tuple[str, ...]]
) -> tuple[str, ...]:
  parts = _resolve(module, path, "freeze")[0]
  shared = min(len(parts), len(head))
  if parts[:shared] == head[:shared]:
    raise ValueError(
      f"transfer: freeze path {path!r} overlaps the head {'/'.join(head)!r}, which is new and "
      "must train"
    )
  if not any(p[: len(parts)] == parts for p in param_paths):
    raise ValueError(f"transfer: freeze path {path!r} holds no parameters")
  return parts
