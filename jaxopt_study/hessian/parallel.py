"""Spreading independent Hessian-vector products over every device with `jax.sharding`.

The independent work of this package, the rows of a chunk of the dense Hessian and the probes of
stochastic Lanczos quadrature and Hutchinson's estimator, has a leading "items" axis. `map_items`
splits that axis over a 1-D mesh of all devices of the default backend (`jax.shard_map`, each
device computing its share) while the parameters and data are replicated. Every item is computed
from its own inputs alone (its basis index, its probe's key), so the results do not depend on the
number of devices beyond floating-point reassociation in the HVPs.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "items"


def num_devices() -> int:
  """The number of devices the items are spread over: all devices of the default backend."""
  return jax.device_count()


def _mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicate(tree: Any) -> Any:
  """`tree` placed on every device (a no-op with one device), outside jit."""
  if num_devices() == 1:
    return tree
  return jax.device_put(tree, NamedSharding(_mesh(), PartitionSpec()))


def map_items(fn: Callable[..., Any], items: Any, *shared: Any) -> Any:
  """``fn(items, *shared)`` with the leading axis of `items` split over all devices (traceable).

  `fn` must treat the items independently (e.g. a vmap over them). The items are padded with
  copies of the last one to a multiple of the device count; the padding is dropped.
  """
  devices = num_devices()
  if devices == 1:
    return fn(items, *shared)
  count = jax.tree.leaves(items)[0].shape[0]
  padded = -(-count // devices) * devices

  def pad(x: jax.Array) -> jax.Array:
    return jax.numpy.concatenate([x, jax.numpy.repeat(x[-1:], padded - count, axis=0)])

  sharded = jax.shard_map(
    fn,
    mesh=_mesh(),
    in_specs=(PartitionSpec(AXIS),) + (PartitionSpec(),) * len(shared),
    out_specs=PartitionSpec(AXIS),
    # the replicated params meet per-device tangents inside jvp; every output is per-device,
    # so the check that would ask us to mark them varying (jax.lax.pvary) proves nothing here
    check_vma=False,
  )
  outputs = sharded(jax.tree.map(pad, items), *shared)
  return jax.tree.map(lambda x: x[:count], outputs)


ITEMS_PER_CALL = 8  # probes per compiled call: peak memory stays that of 8 HVPs per device


def chunk_length(num_items: int) -> int:
  """Items per call of `in_chunks`: `ITEMS_PER_CALL` per device, at most `num_items`."""
  return min(num_items, ITEMS_PER_CALL * num_devices())


def in_chunks(compiled_fn: Callable[..., Any], chunks: Iterable[np.ndarray], *shared: Any) -> Any:
  """``compiled_fn(chunk, *shared)`` for each chunk of items, results concatenated along axis 0.

  Every chunk but the last has `chunk_length` items (`split` makes them from an array, or a
  caller draws them one at a time), so the peak memory of the HVPs is that of one chunk,
  whatever the number of items (probes). The last chunk is padded with copies of its last item to
  the same shape, so one compilation serves every call; the padding is dropped.
  """
  parts, length = [], None
  for part in chunks:
    count = len(part)
    length = length or count
    if count < length:
      part = np.concatenate([part, np.repeat(part[-1:], length - count, axis=0)])
    out = compiled_fn(jax.numpy.asarray(part), *shared)
    parts.append(jax.tree.map(lambda x, count=count: np.asarray(x)[:count], out))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def split(items: np.ndarray) -> list[np.ndarray]:
  """`items` in chunks of `chunk_length` rows, for `in_chunks`."""
  length = chunk_length(len(items))
  return [items[start : start + length] for start in range(0, len(items), length)]
