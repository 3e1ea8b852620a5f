"""The edge-of-stability experiment: its quick config through the CLI, checked against a dense
Hessian and against its own history, and its verdicts judged by hand from that history.

Cohen et al. (2021) publish λ_max rising to 2/η and hovering there under full-batch gradient
descent. The checks are of the measurement, not of the phenomenon: the monitor's last λ_max of a
member is the top eigenvalue ARPACK finds at the saved final parameters, the first
losses are those of an independent full-batch loop, and the claims and the verdicts are what the
history says.
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.linalg
from jax.flatten_util import ravel_pytree

from jaxopt_study import cli, data, losses, models, registry, results
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "edge_of_stability_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("edge_of_stability")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


def digits_loss(config: dict, loss: str):
  """(model, flat params at init, loss of flat params), float64, written from the data up."""
  digits = data.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  count = config["data"]["num_examples"]
  x = np.asarray(digits.x_train[:count], np.float64)
  labels = np.asarray(digits.y_train[:count])
  options = {k: v for k, v in config["model"].items() if k != "name"}
  model = models.functional(models.build_model("mlp", 64, 10, seed=config["seed"], **options))

  def objective(params):
    outputs, _ = model.apply(params, model.model_state, x, True)
    if loss == "mse":
      return 0.5 * jnp.mean(jnp.sum((outputs - jax.nn.one_hot(labels, 10)) ** 2, axis=-1))
    return losses.softmax_cross_entropy(outputs, labels)

  return model, objective


def top_eigenvalue(objective, params) -> float:
  """The largest eigenvalue of the float64 Hessian of `objective` at `params`, by ARPACK
  (`scipy.sparse.linalg.eigsh`, converged to 1e-10) on Hessian-vector products, the usual
  out-of-loop measurement the monitor replaces."""
  flat, unravel = ravel_pytree(jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), params))
  gradient = jax.grad(lambda v: objective(unravel(v)))
  hvp = jax.jit(lambda v: jax.jvp(gradient, (flat,), (v,))[1])
  operator = scipy.sparse.linalg.LinearOperator(
    (flat.size, flat.size), matvec=lambda v: np.asarray(hvp(jnp.asarray(v))), dtype=np.float64
  )
  return float(scipy.sparse.linalg.eigsh(operator, k=1, which="LA", tol=1e-10)[0][0])


def test_the_last_lambda_max_is_the_top_eigenvalue_at_the_final_parameters(finished_run):
  config = json.loads((finished_run / "config.json").read_text())
  curves = read_curves(finished_run / "history.csv", "lambda_max")
  for row in read_csv(finished_run / "results.csv"):
    if row["method"] == "adam":
      continue
    with jax.enable_x64(True):
      model, objective = digits_loss(config, row["loss"])
      params, _ = results.load_member_state(
        finished_run / "params.npz", row["member"], model.params, model.model_state
      )
      exact = top_eigenvalue(objective, params)
    steps, values = curves[row["member"]]
    assert steps[-1] == config["steps"]
    assert values[-1] == pytest.approx(exact, rel=1e-3), row["member"]


def test_the_first_loss_is_that_of_the_initialization(finished_run):
  """The loss recorded at step 0 is the float64 loss of the seed's initialization."""
  config = json.loads((finished_run / "config.json").read_text())
  losses_at = read_curves(finished_run / "history.csv", "train_loss")
  for row in read_csv(finished_run / "results.csv"):
    with jax.enable_x64(True):
      model, objective = digits_loss(config, row["loss"])  # drawn with the init scale
      initial = float(objective(model.params))
    steps, values = losses_at[row["member"]]
    assert steps[0] == 0
    assert values[0] == pytest.approx(initial, rel=1e-5), row["member"]


def judged(holds: list[bool | None]) -> str:
  """Every member must hold; one failure fails the claim; else one undecided member leaves it
  undecided."""
  if False in holds:
    return "not reproduced"
  return "inconclusive" if None in holds else "reproduced"


def test_the_claims_and_verdicts_are_what_the_history_says(finished_run):
  """Each member's claims recomputed from its history (sharpness and training loss), and each
  verdict judged here by hand from them: T reached after step 0; λ/T within 10% of 1; sharpening
  (λ at the measurement before T's over λ at step 0) > 1; the loss lower at the end than at T and
  rising at least once after T."""
  config = json.loads((finished_run / "config.json").read_text())
  summary = json.loads((finished_run / "summary.json").read_text())
  table = read_csv(finished_run / "results.csv")
  losses_at = read_curves(finished_run / "history.csv", "train_loss")
  claims = (
    "lambda_max_over_threshold",
    "steps_to_threshold",
    "progressive_sharpening",
    "adam_preconditioned_over_threshold",
    "loss_decreased",
  )
  holds: dict[str, list[bool | None]] = {claim: [] for claim in claims}
  for row in table:
    member, is_adam = row["member"], row["method"] == "adam"
    metric = row["sharpness_metric"]
    steps, values = np.asarray(read_curves(finished_run / "history.csv", metric)[member])
    steps, values = steps[np.isfinite(values)], values[np.isfinite(values)]
    b1 = config["adam"]["b1"]
    adam_limit = (2 + 2 * b1) / ((1 - b1) * row["learning_rate"])  # Cohen et al. (2022)
    limit = adam_limit if is_adam else 2 / row["learning_rate"]
    assert row["threshold"] == pytest.approx(limit)
    assert summary["threshold"][member] == pytest.approx(limit)
    reached = np.nonzero(values >= 0.9 * limit)[0]
    ratio_claim = "adam_preconditioned_over_threshold" if is_adam else "lambda_max_over_threshold"
    if reached.size == 0 or reached[0] == 0:  # never reached, or at T from the start: undecided
      assert summary[ratio_claim][member] is None
      assert summary["loss_decreased"][member] is None
      holds[ratio_claim].append(None)
      holds["loss_decreased"].append(None)
      if not is_adam:
        assert summary["steps_to_threshold"][member] == (steps[0] if reached.size else None)
        assert summary["progressive_sharpening"][member] is None
        holds["steps_to_threshold"].append(False)
        holds["progressive_sharpening"].append(None)
      continue
    first = reached[0]
    ratio = np.median(values[first:] / limit)
    assert summary[ratio_claim][member] == pytest.approx(ratio)
    holds[ratio_claim].append(bool(abs(ratio - 1) <= 0.1))
    loss_steps, loss_values = np.asarray(losses_at[member])
    after = loss_values[loss_steps >= steps[first]]
    rises = int(np.sum(np.diff(after) > 0))
    assert summary["loss_decreased"][member] == bool(after[-1] < after[0])
    assert summary["loss_increases_after_threshold"][member] == rises
    holds["loss_decreased"].append(bool(after[-1] < after[0] and rises > 0))
    if not is_adam:
      assert summary["steps_to_threshold"][member] == steps[first]
      holds["steps_to_threshold"].append(bool(steps[first] > 0))
      if first == 1:  # no measurement between the start and T: the rise below T is unknown
        assert summary["progressive_sharpening"][member] is None
        holds["progressive_sharpening"].append(None)
        continue
      sharpening = values[first - 1] / values[0]  # both below 0.9 T: nothing forces > 1
      assert summary["progressive_sharpening"][member] == pytest.approx(sharpening)
      holds["progressive_sharpening"].append(bool(sharpening > 1))
  assert len(holds["loss_decreased"]) == len(table)
  assert summary["verdicts"] == {claim: judged(h) for claim, h in holds.items()}


def test_figures_and_monitor_history_are_written(finished_run):
  for method in ("gd_mse", "gd_cross_entropy", "adam"):
    assert (finished_run / f"edge_of_stability_{method}.png").stat().st_size > 0
  assert cli.main(["spectrum", str(finished_run), "--curvature"]) == 0
  assert (finished_run / "curvature-history.png").stat().st_size > 0


def test_bad_config_is_refused(tmp_path, capsys):
  out = tmp_path / "x"
  code = cli.main(["run", str(QUICK), "--out", str(out), "--set", "data.num_examples=5000"])
  assert code == 2
  assert "data.num_examples" in capsys.readouterr().err
  assert not out.exists()


def test_a_member_at_the_threshold_from_the_start_leaves_its_claims_undecided():
  """λ at 0.9 T or above at step 0 did not rise to T: only `steps_to_threshold` (0) is said;
  the same curve shifted to start below T gives every measure, computed by hand. Sharpening is
  λ before T over λ at step 0 (λ at T over it was > 1 by construction), None with nothing
  measured in between."""
  edge_measures = sys.modules[type(registry.load("edge_of_stability")).__module__].edge_measures
  steps = [0, 10, 20, 30, 40]
  losses = ([0, 10, 20, 30, 40], [1.0, 0.8, 0.9, 0.5, 0.4])
  at_start = edge_measures((steps, [0.95, 1.0, 1.02, 0.99, 1.01]), losses, 1.0)
  assert at_start["steps_to_threshold"] == 0
  assert at_start["max_sharpness_over_threshold"] == pytest.approx(1.02)
  for name in ("sharpness_over_threshold", "progressive_sharpening", "loss_decreased"):
    assert at_start[name] is None
  rising = edge_measures((steps, [0.5, 0.7, 0.95, 0.99, 1.01]), losses, 1.0)
  assert rising["steps_to_threshold"] == 20
  assert rising["sharpness_over_threshold"] == pytest.approx(np.median([0.95, 0.99, 1.01]))
  assert rising["progressive_sharpening"] == pytest.approx(0.7 / 0.5)  # before T, not at it
  assert rising["loss_decreased"] is True and rising["loss_increases_after_threshold"] == 0
  flat = edge_measures((steps, [0.5, 0.45, 0.95, 0.99, 1.01]), losses, 1.0)
  assert flat["progressive_sharpening"] == pytest.approx(0.9)  # jumped to T: not a rise
  jumped = edge_measures((steps, [0.5, 0.95, 1.02, 0.99, 1.01]), losses, 1.0)
  assert jumped["steps_to_threshold"] == 10 and jumped["progressive_sharpening"] is None
