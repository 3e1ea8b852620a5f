"""The optimizer comparison (§8.5.4): its quick config through the CLI, its claims against an
independent float64 optimum of the convex problem (scikit-learn), its cost accounting."""

import csv
import json
import sys

import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field
from sklearn.linear_model import LogisticRegression

from jaxopt_study import cli, models, registry, results
from jaxopt_study import data as data_lib
from jaxopt_study.config import load_config
from jaxopt_study.experiment import Results, margin, verdict
from jaxopt_study.results import read_csv, read_npz

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "optimizer_comparison"
finished_run, summary = quick_run_fixtures(NAME)


@pytest.fixture(scope="module")
def config(finished_run) -> dict:
  return json.loads((finished_run / "config.json").read_text())


@pytest.fixture(scope="module")
def sklearn_optimum(config) -> tuple[float, np.ndarray]:
  """(J*, Θ*) of L2-regularized multinomial logistic regression, from scikit-learn in float64.

  Ours: J = mean NLL + (α/2)‖θ‖² over weights and biases. scikit-learn minimizes
  C Σ NLL + ½‖W‖² (without an intercept, so a column of ones carries the penalized bias): the
  same minimizer when C = 1 / (n α).
  """
  alpha = config["problems"]["logistic_regression"]["l2_penalty"]
  data = data_lib.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  x = np.asarray(data.x_train, np.float64)
  y = np.asarray(data.y_train)
  n = len(y)
  ones = np.hstack([x, np.ones((n, 1))])
  model = LogisticRegression(C=1 / (n * alpha), fit_intercept=False, tol=1e-12, max_iter=10_000)
  theta = model.fit(ones, y).coef_.T  # (65, 10): weights, then the bias row
  logits = ones @ theta
  logits -= logits.max(axis=1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  value = -np.mean(log_p[np.arange(n), y]) + 0.5 * alpha * np.sum(theta**2)
  return float(value), theta


def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json", "params.npz"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 3  # the quick config has one problem


def test_the_reference_optimum_agrees_with_scikit_learn(summary, sklearn_optimum):
  """The experiment's float64 optimum (scipy on a numpy objective) against scikit-learn's."""
  reference = summary["reference_optimum_loss"]["logistic_regression"]
  assert reference == pytest.approx(sklearn_optimum[0], rel=1e-9)


def test_newton_reaches_the_optimum_of_the_convex_problem(
  config, finished_run, summary, sklearn_optimum
):
  """§8.6.1: on a strictly convex problem Newton's method reaches the minimum in a few steps
  (here ≤ 12 full-batch steps, to float32 rounding), where 300 minibatch steps of SGD or Adam at
  their best grid rates remain ≥ 100 times farther from it."""
  optimum, theta = sklearn_optimum
  final = summary["final_loss_by_optimizer"]["logistic_regression"]
  assert abs(final["newton"] - optimum) < 1e-5 * optimum
  steps = summary["steps_to_optimum_by_optimizer"]["logistic_regression"]
  assert steps["newton"] is not None and steps["newton"] <= 12
  assert steps["sgd"] is None and steps["adam"] is None
  gaps = summary["gap_to_optimum_by_optimizer"]["logistic_regression"]
  assert min(gaps["sgd"], gaps["adam"]) > 100 * abs(gaps["newton"])
  assert summary["best_optimizer"]["logistic_regression"] == "newton"
  member = summary["best_member_by_optimizer"]["logistic_regression"]["newton"]
  template = models.functional(models.build_model("mlp", 64, 10, depth=0))
  params, _ = results.member_state(
    read_npz(finished_run / "params.npz"), member, template.params, template.model_state
  )
  found = np.vstack([params["output"]["kernel"], params["output"]["bias"][None]]).astype(float)
  # J is α-strongly convex, so ‖Θ − Θ*‖ ≤ ‖∇J(Θ)‖ / α. Newton ends where float32 rounding of the
  # gradient (~1e-6 here) stops it; in directions of curvature near α that is ~1e-3 in Θ.
  gradient = _float64_gradient(config, found)
  assert np.linalg.norm(gradient) < 1e-5
  alpha = config["problems"]["logistic_regression"]["l2_penalty"]
  assert np.linalg.norm(found - theta) <= np.linalg.norm(gradient) / alpha
  assert np.linalg.norm(found - theta) < 1e-3 * np.linalg.norm(theta)


def test_the_spectrum_command_classifies_a_member_of_its_own_problem(
  config, finished_run, summary, sklearn_optimum
):
  """`jaxopt-study spectrum` on this run folder (it was refused: the config names `problems`,
  not one `model`): Newton's final point on logistic regression is a minimum of the penalized
  objective, every eigenvalue that of the float64 Hessian written out by hand,
  H = (1/n) Σᵢ x̃ᵢx̃ᵢᵀ ⊗ (diag pᵢ − pᵢpᵢᵀ) + αI (so λ_min ≥ α)."""
  member = summary["best_member_by_optimizer"]["logistic_regression"]["newton"]
  assert cli.main(["spectrum", str(finished_run), "--member", member]) == 0
  verdict = json.loads((finished_run / "classification-exact.json").read_text())
  with open(finished_run / "spectrum-exact.csv") as f:
    ours = np.asarray([float(row["eigenvalue"]) for row in csv.DictReader(f)])
  template = models.functional(models.build_model("mlp", 64, 10, depth=0))
  params, _ = results.member_state(
    read_npz(finished_run / "params.npz"), member, template.params, template.model_state
  )
  theta = np.vstack([params["output"]["kernel"], params["output"]["bias"][None]]).astype(float)
  alpha = config["problems"]["logistic_regression"]["l2_penalty"]
  data = data_lib.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  x = np.hstack([np.asarray(data.x_train, np.float64), np.ones((len(data.y_train), 1))])
  logits = x @ theta
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  blocks = np.einsum("ic,ck->ick", p, np.eye(10)) - np.einsum("ic,ik->ick", p, p)
  hessian = np.einsum("ia,ib,ick->acbk", x, x, blocks).reshape(650, 650) / len(x)
  reference = np.linalg.eigvalsh(hessian + alpha * np.eye(650))
  np.testing.assert_allclose(ours, reference, atol=1e-5 * reference.max())
  assert verdict["member"] == member and verdict["kind"] == "minimum"
  assert verdict["l2_penalty"] == alpha and verdict["lambda_min"] >= alpha * (1 - 1e-4)
  assert cli.main(["spectrum", str(finished_run), "--member", "logistic_regression:nope"]) == 2


def test_verdicts_judge_newton_and_the_best_first_order_method(summary, config):
  """Newton, the only one of Newton, BFGS and L-BFGS in the quick config, reaches the optimum
  within a few dozen steps and ends there; the best first-order method (SGD or Adam) decides the
  rest."""
  assert summary["newton_bfgs_steps_to_optimum"] == {
    "logistic_regression/newton": summary["steps_to_optimum_by_optimizer"]["logistic_regression"][
      "newton"
    ]
  }
  gap = summary["gap_to_optimum_by_optimizer"]["logistic_regression"]["newton"]
  optimum = summary["reference_optimum_loss"]["logistic_regression"]
  assert summary["newton_bfgs_relative_gap_to_optimum"] == {
    "logistic_regression/newton": pytest.approx(gap / optimum)
  }
  losses = summary["final_loss_by_optimizer"]["logistic_regression"]
  adaptive = losses["adam"] < losses["sgd"]
  assert summary["best_first_order_is_adaptive_rate"] == {"logistic_regression": float(adaptive)}
  edge = summary["best_at_grid_edge"]["logistic_regression"]
  assert set(edge) <= {"sgd", "adam"}  # the quick config's Newton tries one damping only
  assert summary["first_order_best_at_grid_edge"] == {"logistic_regression": bool(edge)}
  # judged on the log scale of the ratio's delta-method error, beyond t_{0.975, dof} errors
  # (4.30 for the quick config's 3 evaluation seeds)
  ratio = summary["adaptive_over_other_final_loss"]["logistic_regression"]
  se = summary["adaptive_over_other_final_loss_se"]["logistic_regression"]
  dof = summary["adaptive_over_other_final_loss_dof"]["logistic_regression"]
  assert dof == len(config["evaluation_seeds"]) - 1 == 2
  beyond_the_seeds = abs(np.log(ratio)) > margin(dof) * se / ratio
  assert summary["verdicts"] == {
    "best_optimizer": verdict(ratio < 1 if beyond_the_seeds and not edge else None),
    "steps_to_optimum_by_optimizer": "reproduced",
    "gap_to_optimum_by_optimizer": "reproduced",
  }


def test_a_newton_run_that_never_reaches_the_optimum_fails_the_claim():
  """A Newton or BFGS run of ≥ FEW_DOZEN steps that never reaches the optimum counts as
  FEW_DOZEN + 1 and is not reproduced; it was None, inconclusive, so the claim could not fail.
  A shorter run (the quick config's 12 steps) that does not reach it stays undecided."""
  experiment = registry.load("optimizer_comparison")
  module = sys.modules[type(experiment).__module__]
  few = module.FEW_DOZEN
  assert module._or_failed(None, few) == few + 1 and module._or_failed(None, few - 1) is None
  assert module._or_failed(7, few) == 7
  judge = experiment.CRITERIA["steps_to_optimum_by_optimizer"]
  for steps, expected in ((few + 1, False), (few, True), (None, None)):
    assert judge({"newton_bfgs_steps_to_optimum": {"p/newton": steps}}) is expected


def test_full_batch_methods_run_from_every_seed_unless_the_problem_starts_at_zero():
  """On the MLP every seed is its own initialization, so Newton, saddle-free Newton, CG, BFGS and
  L-BFGS run from each (their final objectives are medians over seeds, like the first-order
  methods'); logistic regression starts from θ = 0, where every seed's full-batch run is the same
  run, so they run from the first seed only. First-order methods always sweep the seeds."""
  experiment = registry.load(NAME)
  module = sys.modules[type(experiment).__module__]
  full = load_config(registry.config_path(NAME))
  assert full.problems.logistic_regression.model.init_scale == 0.0
  assert full.problems.mlp.model.get("init_scale", 1.0) != 0.0
  for name in full.optimizers:
    for problem in full.problems:
      axes = module.sweep_config(full, problem, name, 1000).sweep
      seeded = name not in module.FULL_BATCH or problem == "mlp"
      assert axes.get("seed") == (list(full.seeds) if seeded else None), (problem, name)


def _float64_gradient(config, theta: np.ndarray) -> np.ndarray:
  """∇J at Θ (65 × 10: weights, then the bias row) in float64, J as in `sklearn_optimum`."""
  alpha = config["problems"]["logistic_regression"]["l2_penalty"]
  data = data_lib.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  x, y = np.asarray(data.x_train, np.float64), np.asarray(data.y_train)
  ones = np.hstack([x, np.ones((len(y), 1))])
  logits = ones @ theta
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  p[np.arange(len(y)), y] -= 1.0
  return ones.T @ p / len(y) + alpha * theta


def test_every_optimizer_descends_up_to_its_best_rate(finished_run, summary):
  """Every member at or below its optimizer's best rate, every seed, ends below its starting
  objective; every member stays finite. Above the best rate a grid reaches past the stability
  limit (it must, to bracket the best), where a run may oscillate and end where it started: such
  members, and only they, are listed in `members_not_descending`."""
  rows = [r for r in read_csv(finished_run / "results.csv") if r["phase"] == "selection"]
  assert summary["seeds"] == [0, 1]
  assert len(rows) == 2 * (7 + 7) + 1  # SGD's and Adam's 7 rates × 2 seeds, Newton's one damping
  best = summary["best_hyperparameters_by_optimizer"]["logistic_regression"]
  not_descending = set(summary["members_not_descending"])
  for row in rows:
    assert np.isfinite(row["final_train_loss"])
    descends = row["final_train_loss"] < row["initial_train_loss"]
    assert descends == (row["member"] not in not_descending)
    if row["learning_rate"] <= best[row["optimizer"]]["learning_rate"]:
      assert descends, row["member"]


def _seed_losses(rows, problem, name, phase="selection"):
  """{learning rate: final objectives in seed order} of one optimizer's grid on one problem (the
  selection seeds'), or of its runs again from the evaluation seeds (`phase="evaluation"`)."""
  grid = {}
  for r in sorted(rows, key=lambda r: r["seed"]):
    if (r["problem"], r["optimizer"], r["phase"]) == (problem, name, phase):
      grid.setdefault(r["learning_rate"], []).append(r["final_train_loss"])
  return grid


def test_claims_are_each_problems_best_grid_points(finished_run, summary):
  """Recomputed from results.csv: each optimizer's best rate has the lowest median over seeds."""
  rows = read_csv(finished_run / "results.csv")
  for problem, losses in summary["final_loss_by_optimizer"].items():
    assert set(losses) == {"sgd", "adam", "newton"}
    for name, loss in losses.items():
      medians = {lr: np.median(v) for lr, v in _seed_losses(rows, problem, name).items()}
      assert loss == pytest.approx(min(medians.values()), rel=1e-12)
      best = summary["best_hyperparameters_by_optimizer"][problem][name]["learning_rate"]
      assert medians[best] == min(medians.values())
    assert summary["best_optimizer"][problem] == min(losses, key=losses.get)


def test_the_judged_ratio_pairs_adam_and_sgd_by_seed(finished_run, summary, config):
  """Adam over SGD (the quick config's only adaptive-rate and other first-order methods), each at
  its best rate: the geometric mean over seeds of the per-seed ratio of final objectives, with
  ratio · s/√n of the log ratios as its error and the seeds less one as that error's degrees of
  freedom; judged on the two run again from the evaluation seeds, the selection seeds' ratio
  beside it."""
  rows = read_csv(finished_run / "results.csv")
  best = summary["best_hyperparameters_by_optimizer"]["logistic_regression"]
  evaluated = [r for r in rows if r["phase"] == "evaluation"]
  seeds = config["evaluation_seeds"]
  assert {(r["optimizer"], r["learning_rate"], r["seed"]) for r in evaluated} == {
    (k, best[k]["learning_rate"], seed) for k in ("adam", "sgd") for seed in seeds
  }
  assert summary["best_adaptive_rate_optimizer"] == {"logistic_regression": "adam"}
  assert summary["best_other_optimizer"] == {"logistic_regression": "sgd"}
  for phase, key, paired_seeds in (
    ("evaluation", "adaptive_over_other_final_loss", seeds),
    ("selection", "adaptive_over_other_final_loss_on_selection_seeds", config["seeds"]),
  ):
    pair = [
      np.array(_seed_losses(rows, "logistic_regression", k, phase)[best[k]["learning_rate"]])
      for k in ("adam", "sgd")
    ]
    logs = np.log(pair[0] / pair[1])
    ratio = np.exp(logs.mean())
    assert summary[key]["logistic_regression"] == pytest.approx(ratio, rel=1e-9)
    assert summary[f"{key}_se"]["logistic_regression"] == pytest.approx(
      ratio * logs.std(ddof=1) / np.sqrt(logs.size), rel=1e-9
    )
    assert summary[f"{key}_dof"] == {"logistic_regression": logs.size - 1}
    assert logs.size == len(paired_seeds)


def test_costs_are_reported_with_the_losses(summary, config):
  """Full-batch Newton: one pass over the data per step; SGD and Adam: steps × batch / n passes,
  and their steps are far cheaper (each Newton step builds a dense Hessian)."""
  n = data_lib.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"]).x_train
  minibatch = config["minibatch"]
  for problem in summary["final_loss_by_optimizer"]:
    steps = summary["steps_by_optimizer"][problem]
    epochs = summary["epochs_by_optimizer"][problem]
    seconds = summary["seconds_by_optimizer"][problem]
    assert steps == {
      "sgd": minibatch["steps"],
      "adam": minibatch["steps"],
      "newton": config["full_batch"]["steps"],
    }
    assert epochs["newton"] == steps["newton"]
    for name in ("sgd", "adam"):
      assert epochs[name] == pytest.approx(steps[name] * minibatch["batch_size"] / n.shape[0])
      assert seconds["newton"] / steps["newton"] > seconds[name] / steps[name]


@pytest.mark.parametrize(
  ("field", "value", "named"),
  [
    ("data.name", "'mnist'", "data.name"),
    ("problems.logistic_regression.l2_penalty", "0.0", "problems.logistic_regression"),
    ("problems.logistic_regression.l2_penalty", "-1.0", "problems.logistic_regression"),
    ("full_batch.steps", "0", "full_batch.steps"),
    ("minibatch.batch_size", "100000", "minibatch.batch_size"),
    ("optimum_rtol", "0.0", "optimum_rtol"),
    ("optimizers.sgd.learning_rate", "[]", "optimizers.sgd.learning_rate"),
    ("optimizers.newton.damping", "[-1.0]", "optimizers.newton"),
    ("evaluation_seeds", "[1, 100]", "evaluation_seeds=[1, 100] share [1] with seeds"),
  ],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value, named):
  assert named in refused_field(tmp_path, capsys, NAME, field, value)


def test_a_best_point_at_the_edge_of_any_swept_axis_is_flagged():
  """Newton's best damping at the end of its grid is flagged like a best learning rate there; only
  a first-order edge leaves the best-optimizer verdict (which compares first-order methods)
  undecided. Hand-made runs of the MLP problem."""
  experiment = registry.load(NAME)
  config = load_config(registry.config_path(NAME))
  config.unlock()
  del config.problems["logistic_regression"]
  config.optimizers = {
    "sgd": {"learning_rate": [0.1, 0.3, 1.0]},
    "newton": {"learning_rate": [1.0], "damping": [0.01, 0.1, 1.0], "adaptive": True},
  }

  def rows(optimizer, axis, losses):
    made = []
    for value, loss in losses.items():
      for seed in (0, 1):
        point = f"{axis}={value:g}"
        made.append(
          {
            "member": f"mlp:{optimizer}:{point},seed={seed}",
            "problem": "mlp",
            "optimizer": optimizer,
            "phase": "selection",
            "learning_rate": value if axis == "learning_rate" else 1.0,
            "damping": value if axis == "damping" else None,
            "seed": seed,
            "point": point,
            "steps": 10,
            "epochs": 1.0,
            "seconds": 0.1,
            "final_train_loss": loss + 0.01 * seed,
            "initial_train_loss": 2.3,
            "final_test_error": 0.1,
            "diverged": False,
          }
        )
    return made

  newton = rows("newton", "damping", {0.01: 0.3, 0.1: 0.2, 1.0: 0.1})  # best: the largest damping
  summary = experiment.summarize(
    config, Results(rows("sgd", "learning_rate", {0.1: 0.5, 0.3: 0.4, 1.0: 0.6}) + newton, [])
  )
  assert summary["best_at_grid_edge"] == {"mlp": ["newton"]}
  assert summary["grid_edge_axes"] == {"mlp": {"newton": ["damping"]}}
  assert summary["first_order_best_at_grid_edge"] == {"mlp": False}
  summary = experiment.summarize(
    config, Results(rows("sgd", "learning_rate", {0.1: 0.5, 0.3: 0.6, 1.0: 0.4}) + newton, [])
  )
  assert summary["best_at_grid_edge"] == {"mlp": ["newton", "sgd"]}
  assert summary["grid_edge_axes"]["mlp"]["sgd"] == ["learning_rate"]
  assert summary["first_order_best_at_grid_edge"] == {"mlp": True}
  # no adaptive-rate method ran: no ratio, no error, no degrees of freedom on either seed set
  key = "adaptive_over_other_final_loss"
  for name in (key, f"{key}_on_selection_seeds"):
    for suffix in ("", "_se", "_dof"):
      assert summary[name + suffix] == {"mlp": None}
  assert experiment.verdicts(summary)["best_optimizer"] == "inconclusive"
