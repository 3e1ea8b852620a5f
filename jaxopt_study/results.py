"""A run's output folder: resolved config, environment, result tables, and resumable progress.

`jaxopt-study run CONFIG --out DIR` writes `config.json`, `env.json`, `results.csv` (one row per
member), `history.csv` (long format: member, step, metric, value), the plots and `report.html`.
Every file is written atomically (a temporary file renamed into place), so an interrupted run never
leaves a half-written file. Finished work units ("members") are kept in `DIR/.members/`; a run
started again with the same DIR and the same config (and the same `inputs.json`: an experiment's
file; a sweep's data, optimizer factory and model, loss, init rule and metrics) skips them and ends
with the same numbers; the temporary files of a writer killed before its rename are removed.
One process writes into a folder at a time (`RunDir.writing`, a lock on `DIR/.lock` that the
operating system releases when its holder ends, however it ends); a second is refused at once.
"""

import contextlib
import csv
import fcntl
import io
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's files are private (0o600)


def write_atomic(path: Path, text: str) -> None:
  """Writes `text` to `path` through a temporary file in the same folder and a rename."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", newline="") as f:
      f.write(text)
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
  """Writes dict rows as CSV (columns in first-seen order), atomically."""
  columns: list[str] = []
  for row in rows:
    columns.extend(k for k in row if k not in columns)
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
  writer.writeheader()
  writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
  write_atomic(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, Any]]:
  """Reads a CSV written by `write_csv`; numeric cells come back as floats, `True`/`False` as
  booleans."""
  with open(path, newline="") as f:
    return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def flatten_arrays(tree: Any) -> dict[str, np.ndarray]:
  """A pytree's leaves as numpy arrays keyed by their path (`jax.tree_util.keystr`)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten_arrays(arrays: dict[str, np.ndarray], template: Any) -> Any:
  """The inverse of `flatten_arrays`: fills `template`'s structure from the keyed arrays.

  Raises:
    ValueError: a leaf of the template is missing or has another shape (a different model).
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
  filled = []
  for path, leaf in leaves:
    key = jax.tree_util.keystr(path)
    if key not in arrays or arrays[key].shape != np.shape(leaf):
      found = arrays[key].shape if key in arrays else "nothing"
      raise ValueError(
        f"saved arrays do not fit the model: {key} expects {np.shape(leaf)}, found {found}"
      )
    filled.append(jax.numpy.asarray(arrays[key], dtype=leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, filled)


def _savable(array: np.ndarray) -> np.ndarray:
  """`array`, or as float32 if its floating type has no NumPy name (`dtype.kind` "V")."""
  unnamed = array.dtype.kind == "V" and jax.numpy.issubdtype(array.dtype, jax.numpy.floating)
  return array.astype(np.float32) if unnamed else array


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
  """`np.savez` through a temporary file and a rename, so a reader never sees half a file.

  Floating types NumPy's format cannot name (bfloat16, float8: ml_dtypes') are written as
  float32, which holds each value exactly: as themselves they read back as raw bytes (`|V2`)
  that nothing can cast. `unflatten_arrays` casts them back to the model's dtype."""
  arrays = {k: _savable(np.asarray(v)) for k, v in arrays.items()}
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def read_npz(path: Path) -> dict[str, np.ndarray]:
  with np.load(path) as archive:
    return {key: archive[key] for key in archive.files}


def history_rows(member: str, history: dict[str, np.ndarray]) -> list[dict[str, Any]]:
  """Long-format rows (member, step, metric, value) of one member's `TrainResult.history`."""
  steps = np.asarray(history["step"])
  return [
    {"member": member, "step": int(step), "metric": name, "value": float(value)}
    for name, values in history.items()
    if name != "step"
    for step, value in zip(steps, np.asarray(values), strict=True)
  ]


def environment() -> dict[str, Any]:
  """Versions of the numerical stack, the devices, and the git commit of the checkout."""
  import flax
  import optax

  try:
    commit = subprocess.run(
      ["git", "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      check=True,
      cwd=Path(__file__).parent,
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = None
  return {
    "python": platform.python_version(),
    "jax": jax.__version__,
    "optax": optax.__version__,
    "flax": flax.__version__,
    "numpy": np.__version__,
    "devices": [str(d) for d in jax.devices()],
    "platform": platform.platform(),
    "git_commit": commit,
  }


def _is_temporary(name: str) -> bool:
  """A temporary file of `write_atomic` / `write_npz` (".results.csv.k3j2.tmp") or of
  `report.save_figure` (".loss.png.tmp.png"), left when its writer was killed before the rename."""
  return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".tmp.png"))


class RunDirBusyError(ValueError):
  """Another process is writing into the run folder."""


_HELD: dict[Path, int] = {}  # folders whose lock this process holds -> nesting depth


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
  """Holds the one-writer lock of the folder `path` (created if missing): `fcntl.flock` on
  `path/.lock`, which records its holder. Re-entrant within a process (an experiment that runs a
  sweep into its own folder); the kernel drops the lock when the holder exits or is killed, so
  no stale lock is left behind.

  Raises:
    RunDirBusyError: another process holds it; the message names the folder and the holder.
  """
  key = Path(path).resolve()
  if key in _HELD:
    _HELD[key] += 1
    try:
      yield
    finally:
      _HELD[key] -= 1
    return
  key.mkdir(parents=True, exist_ok=True)
  fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise RunDirBusyError(
      f"{path} is being written by {holder}: wait until that run ends (it can then be resumed "
      "here), or choose another --out"
    ) from None
  stamp = time.strftime("%Y-%m-%d %H:%M:%S")
  os.ftruncate(fd, 0)
  os.write(fd, f"process {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
  _HELD[key] = 1
  try:
    yield
  finally:
    del _HELD[key]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def first_names(names: list[str]) -> str:
  """The first three of `names`, comma-separated, with "..." where there are more: a folder's
  entries in an error message."""
  return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


class RunDir:
  """The output folder of one run, with its per-member progress for resuming."""

  def __init__(
    self, path: str | Path, config: dict[str, Any], inputs: dict[str, Any] | None = None
  ):
    """`config`: what the run is (`config.json`); `inputs`: what a config does not pin down and a
    resumed run must share, kept in `inputs.json` (digests of an experiment's file; of a sweep's
    data, and of its optimizer factory and the problem's model, loss, init rule and metrics)."""
    self.path = Path(path)
    self.config = json.loads(json.dumps(config))  # tuples become lists, as read back
    self.inputs = None if inputs is None else json.loads(json.dumps(inputs))
    self._members = self.path / ".members"

  def open(self, write: bool = True) -> int:
    """Creates the folder or checks that it holds this same config; returns members already done.

    With `write=False` (the processes other than process 0 of a `jax.distributed` run) it only
    checks and counts, and creates nothing.

    Raises:
      ValueError: DIR holds a run of a different config, or of other inputs (resuming it would
        mix two runs), or is not empty and holds no run (its files would be overwritten).
    """
    if write:
      self._refuse_foreign_folder()
    self._check_or_write("config.json", self.config, "a different config", write)
    if self.inputs is not None:
      other = "other code, data, model, loss or optimizer"
      self._check_or_write("inputs.json", self.inputs, other, write, known_fields_only=True)
    if write:
      self._write_environment()
    return len(list(self._members.glob("*.json"))) if self._members.exists() else 0

  def _write_environment(self) -> None:
    """Writes `env.json`, this process's `environment()`; a resumed run's folder keeps the
    environments of the runs before it, where they differ, under "earlier" (oldest first), so
    that the commit that computed its kept members stays on record."""
    path = self.path / "env.json"
    current = environment()
    earlier = []
    if path.exists():
      previous = json.loads(path.read_text())
      earlier = previous.pop("earlier", [])
      if previous != current:
        earlier.append(previous)
    record = current | ({"earlier": earlier} if earlier else {})
    write_atomic(path, json.dumps(record, indent=2) + "\n")

  def _remove_stale_files(self) -> None:
    """Removes the temporary files (`write_atomic`'s, `write_npz`'s, a figure's) that a writer
    killed between writing and renaming left in the folder or in its kept members. Called by the
    one writer, under the lock: no other process can be writing them."""
    for folder in (self.path, self._members):
      if folder.is_dir():
        for path in folder.iterdir():
          if _is_temporary(path.name):
            path.unlink(missing_ok=True)

  def _refuse_foreign_folder(self) -> None:
    """Refuses an existing folder that holds files but no run (no config.json), whose files a
    run would overwrite (a finished tour's report.html)."""
    if not self.path.is_dir() or (self.path / "config.json").exists():
      return
    foreign = sorted(
      p.name for p in self.path.iterdir() if p.name != ".lock" and not _is_temporary(p.name)
    )
    if foreign:
      raise ValueError(
        f"{self.path} is not empty ({first_names(foreign)}) and holds no run (no config.json): "
        "choose another --out, or an empty folder"
      )

  def _check_or_write(
    self,
    name: str,
    record: dict[str, Any],
    other: str,
    write: bool,
    known_fields_only: bool = False,
  ) -> None:
    """Refuses a folder whose `name` holds another record; writes `record` there if it has none
    (a folder from before `inputs.json` existed gets one, unchecked). `known_fields_only`: only
    the fields both records hold are checked, and the folder's record takes the others in: a
    field written by an earlier release, or by the experiment that runs a sweep into its own
    folder (its file's digest beside the sweep's data and model digests)."""
    path = self.path / name
    if path.exists():
      previous = json.loads(path.read_text())
      merged, grown = previous | record, not record.keys() <= previous.keys()
      if known_fields_only:
        previous, record = (
          {k: v for k, v in mine.items() if k in theirs}
          for mine, theirs in ((previous, record), (record, previous))
        )
      if previous != record:
        changed = sorted(_differences(previous, record))
        raise ValueError(
          f"{self.path} holds a run of {other} (fields {', '.join(changed)} "
          "differ): choose another --out, or delete the folder to start again"
        )
      if write and known_fields_only and grown:
        write_atomic(path, json.dumps(merged, indent=2, sort_keys=True) + "\n")
    elif write:
      self.path.mkdir(parents=True, exist_ok=True)
      write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")

  @contextlib.contextmanager
  def writing(self) -> Iterator[int]:
    """`open()` under the folder's one-writer lock, held until the block ends; yields the
    number of members already done.

    Raises:
      RunDirBusyError: another process is writing into the folder.
      ValueError: it holds a run of a different config.
    """
    self._refuse_foreign_folder()  # before the lock file is made there
    with writer_lock(self.path):
      self._remove_stale_files()
      yield self.open(write=True)

  def load_member(self, name: str) -> dict[str, Any] | None:
    """The saved result of member `name`, or None if it has not finished."""
    path = self._members / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None

  def save_member(
    self, name: str, result: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
  ) -> None:
    """Saves a finished member's JSON-serializable result, and its arrays (final parameters).

    The arrays are written first: a member counts as finished once its JSON exists.
    """
    if arrays is not None:
      write_npz(self._members / f"{name}.npz", arrays)
    write_atomic(self._members / f"{name}.json", json.dumps(result))

  def load_member_arrays(self, name: str) -> dict[str, np.ndarray]:
    """The arrays saved with member `name` (empty if none were)."""
    path = self._members / f"{name}.npz"
    return read_npz(path) if path.exists() else {}

  def write_params(self, arrays: dict[str, np.ndarray]) -> None:
    """Writes `params.npz`: every member's final parameters and model state, keyed
    `MEMBER/params['layer']...` and `MEMBER/model_state[...]`, and with early stopping the
    parameters it kept, `MEMBER/best_params[...]` (see `member_arrays`)."""
    write_npz(self.path / "params.npz", arrays)

  def write_tables(
    self,
    table: Sequence[dict[str, Any]],
    history: Iterable[dict[str, Any]],
    minibatches: Sequence[dict[str, Any]] | None = None,
  ) -> None:
    """Writes `results.csv`, `history.csv` and, when given, `minibatches.csv` (one row per
    member and step: the loss and gradient norm of the step's minibatch)."""
    write_csv(self.path / "results.csv", table)
    write_csv(self.path / "history.csv", list(history))
    if minibatches is not None:
      write_csv(self.path / "minibatches.csv", minibatches)

  def write_summary(self, summary: dict[str, Any]) -> None:
    """Writes `summary.json` as strict JSON (RFC 8259, which `jq` and browsers read): a value that
    is not finite (a diverged run's infinite loss, the standard error of one seed) is written as
    null, which the verdicts already read as "cannot decide"; `results.csv` keeps the value."""
    text = json.dumps(_finite_or_null(summary), indent=2, allow_nan=False)
    write_atomic(self.path / "summary.json", text + "\n")


def _finite_or_null(value: Any) -> Any:
  """`value` with every float that is not finite, at any depth of dicts and lists, made None."""
  if isinstance(value, float):
    return value if np.isfinite(value) else None
  if isinstance(value, dict):
    return {k: _finite_or_null(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite_or_null(v) for v in value]
  return value


def load_or_compute(
  run_dir: RunDir | None,
  name: str,
  compute: Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """A member's (record, arrays): as saved in `run_dir` by an earlier run, or else computed by
  `compute()` and saved there (nothing is saved when `run_dir` is None).

  This is how an experiment resumes: the members an interrupted run finished are read back, and
  the run ends with the same numbers as an uninterrupted one.
  """
  if run_dir is not None and (record := run_dir.load_member(name)) is not None:
    return record, run_dir.load_member_arrays(name)
  record, arrays = compute()
  if run_dir is not None:
    run_dir.save_member(name, record, arrays)
  return record, arrays


def _differences(a: dict, b: dict, prefix: str = "") -> Iterable[str]:
  for key in set(a) | set(b):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      yield from _differences(va, vb, f"{prefix}{key}.")
    elif va != vb:
      yield f"{prefix}{key}"


def _csv_cell(value: Any) -> Any:
  """Floats in full precision (`repr`), so a table read back equals the numbers computed."""
  return repr(float(value)) if isinstance(value, float | np.floating) else value


def _parse_cell(text: str) -> Any:
  if text in ("True", "False"):  # a boolean column (`diverged`) as written by `write_csv`
    return text == "True"
  if text == "":  # `write_csv`'s None (a missing value)
    return None
  try:
    return float(text)
  except ValueError:
    return text


def member_arrays(
  member: str, params: Any, model_state: Any, best_params: Any = None
) -> dict[str, np.ndarray]:
  """One member's final parameters and model state, keyed for `params.npz`, and where given
  the parameters early stopping kept (`MEMBER/best_params[...]`)."""
  best = {} if best_params is None else flatten_arrays(best_params)
  return {
    **{f"{member}/params{k}": v for k, v in flatten_arrays(params).items()},
    **{f"{member}/model_state{k}": v for k, v in flatten_arrays(model_state).items()},
    **{f"{member}/best_params{k}": v for k, v in best.items()},
  }


def member_state(
  arrays: dict[str, np.ndarray], member: str, params: Any, model_state: Any, best: bool = False
) -> tuple[Any, Any]:
  """Member `member`'s (params, model_state) from arrays keyed as `member_arrays`, shaped like
  the templates; with `best=True` the parameters early stopping kept (those of the evaluation
  with the best early-stopping metric, `train.TrainResult.best_params`) with the final model
  state (the loop keeps no other).

  Raises:
    ValueError: `member` is not among the arrays, its arrays do not fit the templates, or
      `best=True` for a run without early stopping.
  """
  members = sorted({key.split("/", 1)[0] for key in arrays})
  if member not in members:
    raise ValueError(f"member {member!r} has no saved arrays; members: {', '.join(members)}")
  if best and not any(key.startswith(f"{member}/best_params") for key in arrays):
    raise ValueError(
      f"member {member!r} has no early-stopped parameters saved (best=True): its run had no "
      "early_stopping metric, or an older release wrote it, which kept the final parameters "
      "only (run it again in a new folder to have them)"
    )

  def part(prefix: str) -> dict[str, np.ndarray]:
    head = f"{member}/{prefix}"
    return {k[len(head) :]: v for k, v in arrays.items() if k.startswith(head + "[") or k == head}

  return unflatten_arrays(part("best_params" if best else "params"), params), unflatten_arrays(
    part("model_state"), model_state
  )


def load_member_state(
  path: Path, member: str, params: Any, model_state: Any, best: bool = False
) -> tuple[Any, Any]:
  """Reads member `member`'s (params, model_state) from `params.npz` (see `member_state`)."""
  try:
    return member_state(read_npz(path), member, params, model_state, best)
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from error
