"""Run folders: resuming a member from what an earlier run saved, and one writer at a time."""

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxopt_study import cli, experiment, registry, results
from jaxopt_study.results import (
  RunDir,
  RunDirBusyError,
  flatten_arrays,
  load_or_compute,
  read_csv,
  read_npz,
  unflatten_arrays,
  write_csv,
  write_npz,
  writer_lock,
)


def test_a_table_reads_back_its_numbers_booleans_and_text(tmp_path):
  rows = [
    {"member": "m0000", "loss": 0.1 + 0.2, "diverged": False, "batch_size": 16},
    {"member": "m0001", "loss": float("nan"), "diverged": np.bool_(True), "batch_size": 64},
  ]
  write_csv(tmp_path / "t.csv", rows)
  back = read_csv(tmp_path / "t.csv")
  assert [r["diverged"] for r in back] == [False, True]
  assert [type(r["diverged"]) for r in back] == [bool, bool]
  assert back[0]["loss"] == 0.1 + 0.2 and np.isnan(back[1]["loss"])
  assert [r["member"] for r in back] == ["m0000", "m0001"]
  assert [r["batch_size"] for r in back] == [16.0, 64.0]


def test_a_missing_value_reads_back_as_none(tmp_path):
  """`write_csv` writes None as an empty cell; it read back as the string '' (a "final loss" that
  `math.isfinite` refused with a TypeError)."""
  write_csv(tmp_path / "t.csv", [{"member": "a", "loss": None}, {"member": "b", "loss": 0.5}])
  assert [r["loss"] for r in read_csv(tmp_path / "t.csv")] == [None, 0.5]


def test_the_summary_is_strict_json_with_null_for_values_that_are_not_finite(tmp_path):
  """`json.loads` with a parse_constant that raises reads it, as jq or a browser would."""
  run_dir = RunDir(tmp_path, {"steps": 1})
  loss = {"sgd": float("inf"), "adam": 0.25, "se": [float("nan"), 0.5]}
  run_dir.write_summary({"loss": loss, "ratio": -float("inf"), "best": "adam", "seeds": (0, 1)})

  def refuse(constant):
    raise ValueError(f"not JSON: {constant}")

  back = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
  assert back == {
    "loss": {"sgd": None, "adam": 0.25, "se": [None, 0.5]},
    "ratio": None,
    "best": "adam",
    "seeds": [0, 1],
  }


def test_a_member_is_computed_once_then_read_back(tmp_path):
  calls = []

  def compute():
    calls.append(1)
    return {"loss": 0.25}, {"m/params": np.arange(3.0)}

  run_dir = RunDir(tmp_path, {"seed": 0})
  run_dir.open()
  first = load_or_compute(run_dir, "m", compute)
  again = load_or_compute(RunDir(tmp_path, {"seed": 0}), "m", compute)
  assert calls == [1]
  assert again[0] == first[0] == {"loss": 0.25}
  np.testing.assert_array_equal(again[1]["m/params"], [0.0, 1.0, 2.0])
  assert load_or_compute(None, "m", compute)[0] == {"loss": 0.25} and calls == [1, 1]


HOLDER = """
import sys, time
from jaxopt_study.results import writer_lock
with writer_lock(sys.argv[1]):
  print("holding", flush=True)
  time.sleep(120)
"""


@pytest.fixture
def held_folder(tmp_path):
  """A run folder whose writer lock another process holds; yields (folder, that process)."""
  folder = tmp_path / "run"
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
  )
  assert holder.stdout.readline().strip() == "holding"
  yield folder, holder
  holder.kill()
  holder.wait()


@pytest.mark.slow  # several processes
def test_a_second_writer_is_refused_naming_the_folder_and_the_holder(held_folder):
  folder, holder = held_folder
  with pytest.raises(RunDirBusyError, match=f"{folder} is being written by process {holder.pid}"):
    with RunDir(folder, {"seed": 0}).writing():
      pass
  assert not (folder / "config.json").exists(), "the refused run wrote nothing"
  holder.kill()  # SIGKILL: the kernel releases the lock, no stale lock is left behind
  holder.wait()
  with RunDir(folder, {"seed": 0}).writing() as done:
    assert done == 0 and (folder / "config.json").exists()


@pytest.mark.slow  # several processes
def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
  with writer_lock(tmp_path), RunDir(tmp_path, {"seed": 0}).writing():
    pass  # an experiment holding its folder runs a sweep into the same folder
  probe = subprocess.run(
    [sys.executable, "-c", HOLDER.replace("time.sleep(120)", "pass"), str(tmp_path)],
    capture_output=True,
    text=True,
    check=True,
  )
  assert probe.stdout.strip() == "holding"


@pytest.mark.slow  # several processes
def test_the_command_line_refuses_a_folder_another_run_is_writing(held_folder, capsys):
  folder, holder = held_folder
  config = str(Path(__file__).parents[1] / "configs" / "sweep_init_batch_quick.py")
  assert cli.main(["run", config, "--out", str(folder), "--no-progress"]) == 2
  assert f"is being written by process {holder.pid}" in capsys.readouterr().err
  assert not (folder / "results.csv").exists()


def test_a_folder_that_holds_files_but_no_run_is_refused_untouched(tmp_path, capsys):
  """`--out` at a finished tour's folder (a report.html, no config.json) was taken over and its
  report replaced; at a file, or under one, the command line printed a traceback."""
  (tmp_path / "report.html").write_text("the tour's report")
  with pytest.raises(ValueError, match=r"is not empty \(report.html\) and holds no run"):
    RunDir(tmp_path, {"seed": 0}).open()
  config = str(Path(__file__).parents[1] / "configs" / "sweep_init_batch_quick.py")
  assert cli.main(["run", config, "--out", str(tmp_path), "--no-progress"]) == 2
  assert "holds no run" in capsys.readouterr().err
  assert (tmp_path / "report.html").read_text() == "the tour's report"
  assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no lock file left there
  for out in (tmp_path / "report.html", tmp_path / "report.html" / "run"):
    assert cli.main(["run", config, "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("jaxopt-study: error:")


def test_a_killed_writers_temporary_files_are_removed_when_the_folder_is_next_written(tmp_path):
  """A writer killed between writing a file and renaming it leaves `.NAME.XXXX.tmp` behind
  (full size, hidden); the next writer of the folder removes them and nothing else."""
  with RunDir(tmp_path, {"seed": 0}).writing() as run_dir_done:
    assert run_dir_done == 0
  RunDir(tmp_path, {"seed": 0}).save_member("m", {"loss": 0.5})
  stale = [
    tmp_path / ".results.csv.k3j2x9.tmp",
    tmp_path / ".loss.png.tmp.png",
    tmp_path / ".members" / ".m2.json.a1b2.tmp",
  ]
  for path in stale:
    path.write_text("half")
  with RunDir(tmp_path, {"seed": 0}).writing() as done:
    assert done == 1
  assert not any(path.exists() for path in stale)
  assert sorted(p.name for p in tmp_path.iterdir()) == [
    ".lock",
    ".members",
    "config.json",
    "env.json",
  ]


def test_a_folder_whose_writer_was_killed_writing_its_config_is_written_again(tmp_path):
  """Killed while `config.json` was written, a folder holds only the lock and the config's
  temporary file: it was refused as "not empty and holds no run"."""
  (tmp_path / ".lock").write_text("process 1 on host since 2026-12-07\n")
  (tmp_path / ".config.json.uux5bnu0.tmp").write_text('{"se')
  with RunDir(tmp_path, {"seed": 0}).writing() as done:
    assert done == 0
  assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 0}
  assert not (tmp_path / ".config.json.uux5bnu0.tmp").exists()


def test_a_resumed_folder_keeps_the_environments_of_the_runs_before(tmp_path, monkeypatch):
  """`env.json` was rewritten by every run into the folder: a resume from another checkout
  replaced the commit that computed the kept members."""
  environments = iter([{"git_commit": "951fea6"}, {"git_commit": None}, {"git_commit": None}])
  monkeypatch.setattr(results, "environment", lambda: next(environments))
  for _ in range(3):
    RunDir(tmp_path, {"seed": 0}).open()
  assert json.loads((tmp_path / "env.json").read_text()) == {
    "git_commit": None,
    "earlier": [{"git_commit": "951fea6"}],
  }


TOY = """
from jaxopt_study.experiment import Experiment, Results


class Toy(Experiment):
  NAME = "toy"

  def run(self, config, members, progress):
    record, _ = members.get("only", lambda: ({"x": X}, {}))
    return Results([{"member": "only", "x": record["x"]}], [])

  def summarize(self, config, results):
    return {"x": results.table[0]["x"]}

  def plot(self, out_dir):
    return []
"""


def test_a_folder_is_not_resumed_with_edited_experiment_code(tmp_path, monkeypatch):
  """An interrupted run resumed after its experiment's file was edited kept the old code's
  members beside the new code's, in one results.csv."""
  (tmp_path / "experiments").mkdir()
  source = tmp_path / "experiments" / "toy_edited.py"
  source.write_text("X = 1.0\n" + TOY)
  monkeypatch.setenv(registry.HOME_VARIABLE, str(tmp_path))
  prepared = experiment.Prepared(
    ml_collections.ConfigDict({"seed": 0}), registry.load("toy_edited")
  )
  out = tmp_path / "run"
  assert experiment.execute(prepared, out, progress=False).summary == {"x": 1.0}
  assert experiment.execute(prepared, out, progress=False).resumed_members == 1
  source.write_text("X = 2.0\n" + TOY)
  with pytest.raises(ValueError, match=r"other code.*fields experiment_source differ"):
    experiment.execute(prepared, out, progress=False)
  assert read_csv(out / "results.csv") == [{"member": "only", "x": 1.0}]


def test_ctrl_c_says_the_run_can_be_resumed_without_a_traceback(tmp_path, monkeypatch, capsys):
  def interrupt(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(experiment, "execute", interrupt)
  config = str(Path(__file__).parents[1] / "configs" / "sweep_init_batch_quick.py")
  assert cli.main(["run", config, "--out", str(tmp_path / "run"), "--no-progress"]) == 130
  err = capsys.readouterr().err
  assert "interrupted" in err and f"with --out {tmp_path / 'run'} to resume" in err
  assert "Traceback" not in err


def test_an_operating_system_error_names_the_folder_and_the_file(tmp_path, monkeypatch, capsys):
  """A full disk printed "[Errno 28] No space left on device", naming no file."""

  def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device", str(tmp_path / "run" / "results.csv"))

  monkeypatch.setattr(experiment, "execute", disk_full)
  config = str(Path(__file__).parents[1] / "configs" / "sweep_init_batch_quick.py")
  assert cli.main(["run", config, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
  assert capsys.readouterr().err.strip() == (
    f"jaxopt-study: error: cannot write the run folder {tmp_path / 'run'}: No space left on "
    f"device: {tmp_path / 'run' / 'results.csv'}"
  )


def test_an_experiment_and_its_sweep_share_the_inputs_of_one_folder(tmp_path):
  """An experiment that runs a sweep into its own folder records its file's digest there, and
  the sweep its data's: each checks its own fields, and the folder keeps both (the sweep was
  refused, "experiment_source differ", when the experiment's digest came first)."""
  RunDir(tmp_path, {"seed": 0}, {"experiment_source": "Toy 1a"}).open()
  RunDir(tmp_path, {"seed": 0}, {"train_data": "d1", "optimizer": "sgd"}).open()
  inputs = json.loads((tmp_path / "inputs.json").read_text())
  assert inputs == {"experiment_source": "Toy 1a", "train_data": "d1", "optimizer": "sgd"}
  RunDir(tmp_path, {"seed": 0}, {"experiment_source": "Toy 1a"}).open()
  with pytest.raises(ValueError, match=r"other code.*\(fields train_data differ"):
    RunDir(tmp_path, {"seed": 0}, {"train_data": "d2", "optimizer": "sgd"}).open()
  with pytest.raises(ValueError, match=r"\(fields experiment_source differ"):
    RunDir(tmp_path, {"seed": 0}, {"experiment_source": "Toy 2b"}).open()


def test_bfloat16_arrays_are_saved_as_float32_and_read_back_exactly(tmp_path):
  """NumPy's format has no bfloat16: np.savez wrote raw bytes (`|V2`) that nothing could cast
  back, so a finished sweep of a bfloat16 model could not be resumed or read by `spectrum`."""
  params = {"w": jnp.linspace(-3, 3, 7, dtype=jnp.bfloat16), "b": jnp.arange(3.0)}
  write_npz(tmp_path / "p.npz", flatten_arrays(params))
  saved = read_npz(tmp_path / "p.npz")
  assert {k: v.dtype for k, v in saved.items()} == {"['b']": np.float32, "['w']": np.float32}
  back = unflatten_arrays(saved, params)
  assert back["w"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(
    np.asarray(back["w"], np.float32), np.asarray(params["w"], np.float32)
  )
