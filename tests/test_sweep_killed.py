"""A sweep killed with SIGKILL after its first checkpoint resumes to the numbers of one run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxopt_study import cli
from jaxopt_study.results import read_csv
from jaxopt_study.sweep import checkpoint

ROOT = Path(__file__).parents[1]
CONFIG = str(ROOT / "configs" / "sweep_init_batch_quick.py")
# 6 members, 200 steps in 20 segments: a checkpoint every 10 steps, so the kill lands mid-run
SMALL = ["--set", "steps=200", "--set", "eval_every=10", "--set", "checkpoint_every=10"]
SMALL += ["--set", "sweep.learning_rate=[0.1]", "--set", "sweep.seed=[0]", "--no-progress"]


def saved_segments(out: Path) -> list[Path]:
  """The complete checkpoints: Orbax renames a step's folder to its number once it is written."""
  return [p for p in out.glob(".checkpoints/*/*") if p.name.isdigit()]


@pytest.mark.slow  # starts a process
def test_a_sweep_killed_after_its_first_checkpoint_resumes_to_the_same_numbers(
  tmp_path, monkeypatch
):
  once = tmp_path / "once"
  assert cli.main(["run", CONFIG, "--out", str(once), *SMALL]) == 0
  out = tmp_path / "killed"
  run = subprocess.Popen(
    [sys.executable, "-m", "jaxopt_study.cli", "run", CONFIG, "--out", str(out), *SMALL],
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.monotonic() + 300
  while not saved_segments(out):
    assert run.poll() is None, f"the run ended before its first checkpoint: {run.stderr.read()}"
    assert time.monotonic() < deadline, "no checkpoint after 300 s"
    time.sleep(0.002)
  run.send_signal(signal.SIGKILL)
  run.communicate(timeout=60)
  assert run.returncode == -signal.SIGKILL
  assert saved_segments(out) and not (out / "results.csv").exists(), "killed mid-run"

  restores = []
  restore = checkpoint.ChunkCheckpoint.restore

  def counted_restore(self, blocks_done, *args):
    restores.append(blocks_done)
    return restore(self, blocks_done, *args)

  monkeypatch.setattr(checkpoint.ChunkCheckpoint, "restore", counted_restore)
  assert cli.main(["run", CONFIG, "--out", str(out), *SMALL]) == 0  # the lock died with it
  assert len(restores) == 1 and restores[0] >= 2, "continued from the checkpoint, not from 0"
  assert not (out / ".checkpoints").exists()
  for name in ("results.csv", "history.csv"):
    assert read_csv(out / name) == read_csv(once / name), name
