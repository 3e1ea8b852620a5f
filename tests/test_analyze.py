"""`jaxopt-study spectrum RUN_DIR` on a finished run, against an independently built Hessian."""

import csv
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_study import analyze, cli, data, losses, models, results, sweep
from jaxopt_study.lab.curves import history_curves

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

QUICK = str(Path(__file__).parents[1] / "configs" / "optimizers_quick.py")
SMALL = ["--set", "steps=40", "--set", "eval_every=20", "--set", "model.width=8", "--no-progress"]


SGD_ONLY = f"""
from jaxopt_study.config import load_config


def get_config():
  config = load_config({QUICK!r})
  config.unlock()
  for name in list(config.optimizers.keys()):
    if name != "sgd":
      del config.optimizers[name]
  config.lock()
  return config
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
  """A finished run of the quick comparison, SGD only (its learning rates, two seeds), width 8."""
  folder = tmp_path_factory.mktemp("spectrum")
  (folder / "experiments").symlink_to(Path(__file__).parents[1] / "experiments")
  (folder / "sgd_only.py").write_text(SGD_ONLY)
  out = folder / "run"
  assert cli.main(["run", str(folder / "sgd_only.py"), "--out", str(out), *SMALL]) == 0
  return out


def test_spectrum_of_a_run_matches_an_independent_hessian(run_dir):
  assert cli.main(["spectrum", str(run_dir), "--member", "sgd@0.3,seed1"]) == 0
  with open(run_dir / "spectrum-exact.csv") as f:
    ours = np.asarray([float(row["eigenvalue"]) for row in csv.DictReader(f)])
  verdict = json.loads((run_dir / "classification-exact.json").read_text())
  assert (run_dir / "spectrum-exact.png").stat().st_size > 0

  config = json.loads((run_dir / "config.json").read_text())
  options = {k: v for k, v in config["model"].items() if k != "name"}
  model = models.functional(models.build_model("mlp", 64, 10, seed=0, **options))
  params, state = results.load_member_state(
    run_dir / "params.npz", "sgd@0.3,seed1", model.params, model.model_state
  )
  digits = data.load_digits()
  flat, unravel = ravel_pytree(params)

  def loss(v):
    logits, _ = model.apply(unravel(v), state, digits.x_train, True)
    return losses.softmax_cross_entropy(logits, digits.y_train)

  reference = np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(flat), np.float64))
  assert ours.shape == (flat.size,)
  scale = np.abs(reference).max()
  np.testing.assert_allclose(ours, reference, atol=1e-4 * scale)
  assert verdict["member"] == "sgd@0.3,seed1"
  assert verdict["lambda_max"] == pytest.approx(reference[-1], rel=1e-3)
  assert verdict["kind"] in {"minimum", "saddle", "degenerate", "not_critical", "plateau"}


WEIGHT_DECAY = """
import ml_collections


def get_config():
  return ml_collections.ConfigDict({
    "seed": 0, "steps": 60, "eval_every": 30, "batch_size": 64, "learning_rate": 0.3,
    "sampling": "epoch", "l2_penalty": 0.05,
    "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
    "model": {"name": "mlp", "width": 8, "depth": 1, "activation": "tanh"},
    "optimizer": {"name": "sgd"},
    "sweep": {"seed": [0]},
  })
"""


def test_the_spectrum_of_a_run_with_weight_decay_is_that_of_its_penalized_objective(tmp_path):
  """A sweep trained on J + (α/2)‖θ‖² (l2_penalty α): its spectrum and ‖g‖ are those of that
  objective, as results.csv reports its gradient norm (they were those of J without it)."""
  (tmp_path / "decay.py").write_text(WEIGHT_DECAY)
  out = tmp_path / "run"
  assert cli.main(["run", str(tmp_path / "decay.py"), "--out", str(out), "--no-progress"]) == 0
  assert cli.main(["spectrum", str(out)]) == 0
  verdict = json.loads((out / "classification-exact.json").read_text())
  (row,) = results.read_csv(out / "results.csv")
  model = models.functional(
    models.build_model("mlp", 64, 10, seed=0, width=8, depth=1, activation="tanh")
  )
  params, state = results.load_member_state(
    out / "params.npz", row["member"], model.params, model.model_state
  )
  digits = data.load_digits(test_fraction=0.25, split_seed=0)
  flat, unravel = ravel_pytree(params)

  def penalized(v):
    logits, _ = model.apply(unravel(v), state, digits.x_train, True)
    return losses.softmax_cross_entropy(logits, digits.y_train) + 0.025 * jnp.sum(v**2)

  reference = np.linalg.eigvalsh(np.asarray(jax.hessian(penalized)(flat), np.float64))
  assert verdict["l2_penalty"] == 0.05
  assert verdict["grad_norm"] == pytest.approx(row["final_grad_norm"], rel=1e-4)
  gradient = float(jnp.linalg.norm(jax.grad(penalized)(flat)))
  assert verdict["grad_norm"] == pytest.approx(gradient, rel=1e-4)
  assert verdict["lambda_max"] == pytest.approx(reference[-1], rel=1e-3)
  assert verdict["lambda_min"] == pytest.approx(reference[0], abs=1e-3 * reference[-1])


EARLY_STOPPING = (
  WEIGHT_DECAY.replace('"l2_penalty": 0.05', '"early_stopping": "test_error"')
  .replace('"steps": 60, "eval_every": 30', '"steps": 48, "eval_every": 4')
  .replace('"learning_rate": 0.3', '"learning_rate": 1.0')
  .replace('"sweep": {"seed": [0]}', '"sweep": {"learning_rate": [1.0, 3.0]}')
)


def test_a_run_that_stops_early_is_summarized_and_analyzed_at_its_best_evaluations(tmp_path):
  """With early_stopping the run's best member is the one whose kept evaluation is best, and
  `spectrum --best` analyzes the parameters it kept (the final ones were the only ones saved)."""
  assert '"early_stopping": "test_error"' in EARLY_STOPPING
  (tmp_path / "stops.py").write_text(EARLY_STOPPING)
  out = tmp_path / "run"
  assert cli.main(["run", str(tmp_path / "stops.py"), "--out", str(out), "--no-progress"]) == 0
  table = results.read_csv(out / "results.csv")
  summary = json.loads((out / "summary.json").read_text())
  best_row = min(table, key=lambda r: r["best_test_error"])
  assert summary["selected_by"] == "best_test_error"
  assert summary["best_member"] == best_row["member"]
  assert best_row["best_step"] < 48  # its kept evaluation is not its last
  assert cli.main(["spectrum", str(out), "--best"]) == 0
  assert cli.main(["spectrum", str(out)]) == 0
  kept = json.loads((out / "classification-exact-best.json").read_text())
  final = json.loads((out / "classification-exact.json").read_text())
  assert (kept["parameters"], final["parameters"]) == ("best", "final")
  model = models.functional(
    models.build_model("mlp", 64, 10, seed=0, width=8, depth=1, activation="tanh")
  )
  digits = data.load_digits(test_fraction=0.25, split_seed=0)
  for verdict, best in ((kept, True), (final, False)):
    params, state = results.load_member_state(
      out / "params.npz", best_row["member"], model.params, model.model_state, best=best
    )
    logits, _ = model.apply(params, state, digits.x_train, True)
    loss = float(losses.softmax_cross_entropy(logits, digits.y_train))
    assert verdict["loss"] == pytest.approx(loss, rel=1e-5)
    error = float(
      np.mean(model.apply(params, state, digits.x_test, False)[0].argmax(-1) != digits.y_test)
    )
    row_error = best_row["best_test_error" if best else "final_test_error"]
    assert error == pytest.approx(row_error, abs=1e-6)
  assert kept["loss"] != final["loss"]


def test_default_member_is_the_lowest_final_loss(run_dir):
  rows = results.read_csv(run_dir / "results.csv")
  assert analyze.default_member(run_dir) == min(rows, key=lambda r: r["final_train_loss"])["member"]


def test_default_member_is_the_one_the_runs_summary_calls_best(run_dir, tmp_path):
  """A sweep of your own model names its best member by held-out loss (`summary.json`); the
  spectrum command classified another one, the lowest training loss."""
  for name in ("results.csv", "params.npz"):
    shutil.copy(run_dir / name, tmp_path / name)
  rows = results.read_csv(run_dir / "results.csv")
  lowest = min(rows, key=lambda r: r["final_train_loss"])["member"]
  other = next(r["member"] for r in rows if r["member"] != lowest)
  (tmp_path / "summary.json").write_text(json.dumps({"best_member": other}))
  assert analyze.default_member(tmp_path) == other
  (tmp_path / "summary.json").write_text(json.dumps({"best_member": "m9999"}))  # not in the table
  assert analyze.default_member(tmp_path) == lowest


def test_a_folder_without_a_finished_run_is_refused(tmp_path, capsys):
  assert cli.main(["spectrum", str(tmp_path)]) == 2
  assert "config.json" in capsys.readouterr().err
  assert cli.main(["spectrum", str(tmp_path / "missing")]) == 2
  assert "missing: no such folder" in capsys.readouterr().err


def _foreign_folder(folder: Path, table: list[dict], arrays: dict) -> Path:
  """A finished experiment's folder by hand: config.json, results.csv and params.npz."""
  folder.mkdir()
  (folder / "config.json").write_text(json.dumps({"experiment": "elsewhere"}))
  results.write_csv(folder / "results.csv", table)
  np.savez(folder / "params.npz", **arrays)
  return folder


def test_an_experiment_folder_without_member_parameters_is_refused_by_name(tmp_path, capsys):
  """fig8_2's table names `init_to_solution/seed0` while params.npz keys its arrays `seed0`, and
  minibatch_noise's table has no member column: spectrum ended in a TypeError or KeyError."""
  table = [
    {"member": "init_to_solution/seed0", "final_train_loss": 0.5},
    {"member": "solution_to_solution/seed0_seed1", "final_train_loss": None},
  ]
  arrays = {"seed0/params['w']": np.ones(3), "seed1/params['w']": np.ones(3)}
  folder = _foreign_folder(tmp_path / "f82", table, arrays)
  assert results.read_csv(folder / "results.csv")[1]["final_train_loss"] is None
  assert analyze.saved_members(folder) == ["seed0", "seed1"]
  assert cli.main(["spectrum", str(folder)]) == 2
  assert "params.npz holds those of seed0, seed1 (--member NAME)" in capsys.readouterr().err
  assert cli.main(["spectrum", str(folder), "--member", "init_to_solution/seed0"]) == 2
  error = capsys.readouterr().err
  assert "member 'init_to_solution/seed0' has no saved parameters" in error
  folder = _foreign_folder(
    tmp_path / "mbn", [{"batch_size": 8, "sigma": 0.1}], {"bias": np.ones(2)}
  )
  assert cli.main(["spectrum", str(folder)]) == 2
  assert "results.csv has no member column" in capsys.readouterr().err


def test_a_config_spectrum_cannot_rebuild_is_refused_in_one_line(tmp_path, capsys):
  """An experiment's config.json that names no one problem (edge_of_stability's data block) ended
  in "load_digits() got an unexpected keyword argument" from deep inside."""
  table = [{"member": "gd@0.1", "final_train_loss": 0.5}]
  folder = _foreign_folder(tmp_path / "eos", table, {"gd@0.1/params['w']": np.ones(3)})
  config = {"experiment": "edge_of_stability", "data": {"name": "digits", "num_examples": 9}}
  (folder / "config.json").write_text(json.dumps(config))
  assert cli.main(["spectrum", str(folder)]) == 2
  error = capsys.readouterr().err
  assert "(experiment 'edge_of_stability') does not name one problem that spectrum" in error


def test_k_without_lanczos_is_refused_before_building_the_hessian(run_dir, capsys, monkeypatch):
  """`--k 3` alone once built and diagonalized the dense Hessian, then failed in classify with
  "eigenvalues: shape (6,) given with method='exact'"."""
  monkeypatch.setattr(analyze, "_problem_of", lambda *_: pytest.fail("the problem was rebuilt"))
  assert cli.main(["spectrum", str(run_dir), "--k", "3"]) == 2
  assert "k=3: the number of Ritz values per end is for method='lanczos'" in capsys.readouterr().err


def test_best_with_curvature_is_refused(tmp_path, capsys):
  """--curvature draws the history, which has no parameters to pick: --best was ignored."""
  assert cli.main(["spectrum", str(tmp_path), "--best", "--curvature"]) == 2
  assert "--best picks the parameters a spectrum is taken at" in capsys.readouterr().err


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory) -> tuple[Path, sweep.SweepResult]:
  """Two learning rates of a width-4 digits MLP, 20 full-batch steps, the curvature monitor at
  steps 0, 10 and 20 (evaluations every 5: the rows at 5 and 15 are NaN), final parameters
  kept (no early stopping)."""
  config = ml_collections.ConfigDict(
    {
      "seed": 0,
      "steps": 20,
      "batch_size": 1347,
      "learning_rate": 0.1,
      "eval_every": 5,
      "early_stopping": None,
      "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
      "model": {"name": "mlp", "width": 4, "depth": 1, "activation": "tanh"},
      "optimizer": {"name": "sgd"},
      "sweep": {"learning_rate": [0.1, 1.0]},
      "curvature_every": 10,
      "curvature": {"lanczos_steps": 20, "probes": 2},
    }
  )
  out = tmp_path_factory.mktemp("monitored") / "run"
  return out, sweep.run_config(config, out)


def test_spectrum_draws_the_curvature_monitor_of_a_run(monitored_run, capsys):
  """The figure's curves are the sweep's measured rows (NaN rows left out), and the monitor's
  last λ_max is the top eigenvalue `spectrum` computes at the saved final parameters."""
  run, result = monitored_run
  member = "m0001"
  assert cli.main(["spectrum", str(run), "--member", member]) == 0
  figure = run / analyze.CURVATURE_FIGURE
  assert str(figure) in capsys.readouterr().out
  assert figure.stat().st_size > 0
  curves = analyze.curvature_history(run)
  assert set(curves) == {"lambda_max", "hessian_trace", "g_hess_g", "g_dot_g"}
  for metric, by_member in curves.items():
    for name, (steps, values) in history_curves(result.history, metric).items():
      assert np.isnan(values).sum() == 2  # steps 5 and 15
      assert by_member[name][0] == [0, 10, 20] == [steps[i] for i in (0, 2, 4)]
      np.testing.assert_array_equal(by_member[name][1], np.asarray(values)[[0, 2, 4]])
  with open(run / "spectrum-exact.csv") as f:
    top = max(float(row["eigenvalue"]) for row in csv.DictReader(f))
  assert curves["lambda_max"][member][1][-1] == pytest.approx(top, rel=1e-3)


def test_spectrum_curvature_only_needs_the_history(monitored_run, tmp_path, capsys):
  """--curvature draws one member from history.csv alone (no parameters, no config)."""
  folder = tmp_path / "history-only"
  folder.mkdir()
  shutil.copy(monitored_run[0] / "history.csv", folder / "history.csv")
  assert cli.main(["spectrum", str(folder), "--curvature", "--member", "m0000"]) == 0
  assert (folder / analyze.CURVATURE_FIGURE).stat().st_size > 0
  assert not (folder / "spectrum-exact.csv").exists()
  assert list(analyze.curvature_history(folder, members=["m0000"])["lambda_max"]) == ["m0000"]
  assert cli.main(["spectrum", str(folder), "--curvature", "--member", "m0009"]) == 2
  assert "m0009" in capsys.readouterr().err


def test_spectrum_curvature_without_a_monitor_is_refused(run_dir, capsys):
  assert cli.main(["spectrum", str(run_dir), "--curvature"]) == 2
  assert "curvature_every" in capsys.readouterr().err
  assert not (run_dir / analyze.CURVATURE_FIGURE).exists()
