"""Checkpoints of a running chunk of sweep members, with Orbax: the way a long sweep resumes.

After every segment the chunk's `TrainState` (sharded over the member axis) and its history so far
are saved under `DIR/.checkpoints/CHUNK/`, one folder per saved segment, of which only the latest
is kept. Orbax writes a checkpoint into a temporary folder and renames it when it is complete, so
an interruption leaves either the previous checkpoint or the new one, never half of one. Under
`jax.distributed` every process writes its own shards of the same checkpoint.

The tree is saved as a flat dict of its leaves (`state/0000`, ..., `history/train_loss`) and
rebuilt with the tree structure of the chunk's program, so that any optimizer state restores.
"""

import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class ChunkCheckpoint:
  """The latest saved segment of one chunk of members."""

  def __init__(self, directory: Path):
    self.directory = Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest(self) -> int | None:
    """The number of evaluation blocks done at the latest checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, blocks_done: int, state: Any, history: dict[str, jax.Array]) -> None:
    """Saves the chunk after `blocks_done` evaluation blocks (replacing the previous one)."""
    leaves = {f"{i:04d}": leaf for i, leaf in enumerate(jax.tree.leaves(state))}
    tree = {"state": leaves, "history": dict(history)}
    self._manager.save(blocks_done, args=ocp.args.StandardSave(tree))
    self._manager.wait_until_finished()

  def restore(self, blocks_done: int, state_avals: Any, history_avals: dict) -> tuple[Any, dict]:
    """The state and history saved at `blocks_done`, placed with the shardings of the avals."""
    leaves, treedef = jax.tree.flatten(state_avals)
    target = {
      "state": {f"{i:04d}": leaf for i, leaf in enumerate(leaves)},
      "history": dict(history_avals),
    }
    tree = self._manager.restore(blocks_done, args=ocp.args.StandardRestore(target))
    state = jax.tree.unflatten(treedef, [tree["state"][f"{i:04d}"] for i in range(len(leaves))])
    return state, tree["history"]

  def remove(self) -> None:
    """Deletes the chunk's checkpoints once its results are saved (by the first process)."""
    self._manager.close()
    if jax.process_index() == 0:
      shutil.rmtree(self.directory, ignore_errors=True)
      if not any(self.directory.parent.iterdir()):  # the last chunk: no `.checkpoints/` left
        self.directory.parent.rmdir()
