"""The regularization experiment: its quick config through the CLI, a member against its run
alone, the sharpness against an independent Lanczos-free estimate, the equal-loss control against
the history and a run of its own, and the summary against the table."""

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_study import cli, experiment, hessian, optim, registry, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import load_config
from jaxopt_study.results import read_csv

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "regularization_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("regularization")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


def experiment_module():
  """The module of the registered experiment (its `regularized_problem`, `member_state`, ...)."""
  return sys.modules[type(registry.load("regularization")).__module__]


def run_alone(config, seed: int, method: str, **options):
  """`method`'s member of `seed` trained by `train.train` alone (the config's steps and
  evaluations unless `options` say otherwise): (problem, its model state, the result)."""
  module = experiment_module()
  problem = module.regularized_problem(config)
  params, state = problem_lib.pure(problem).initial(seed)
  state = module.member_state(config, state, method)
  settings = {"steps": config.steps, "eval_every": config.eval_every} | options
  result = train.train(
    problem,
    optim.adam(config.learning_rate),
    batch_size=config.batch_size,
    seed=seed,
    params=params,
    model_state=state,
    **settings,
  )
  return problem, state, result


def none_train_loss(history: list[dict], seed: int) -> dict[int, float]:
  """step -> the `none` member's training loss of `seed`, from the run's history rows."""
  return {
    r["step"]: r["value"]
    for r in history
    if r["member"] == f"none/seed{seed}" and r["metric"] == "train_loss"
  }


@pytest.mark.slow
def test_a_member_equals_train_train_with_its_model_state(finished_run):
  """The vmapped program's dropout member is `train.train` of the problem with that state."""
  config = load_config(QUICK)
  method = "dropout" if "dropout" in config.methods else config.methods[-1]
  _, _, alone = run_alone(config, config.seeds[1], method)
  (row,) = [
    r
    for r in read_csv(finished_run / "results.csv")
    if r["method"] == method and r["seed"] == config.seeds[1]
  ]
  np.testing.assert_allclose(row["final_train_loss"], alone.history["train_loss"][-1], rtol=1e-4)
  np.testing.assert_allclose(row["final_test_error"], alone.history["test_error"][-1], atol=1e-6)


@pytest.mark.slow
def test_sharpness_is_the_top_eigenvalue_by_power_iteration(finished_run):
  """The Lanczos λ_max of the 'none' member at seed 0, against 300 steps of power iteration on
  the float32 HVP of the eval-mode NLL (the top eigenvalue dominates: λ_max > 0 there)."""
  config = load_config(QUICK)
  problem, _, result = run_alone(config, config.seeds[0], "none")
  loss_fn = experiment_module().eval_nll(problem)
  x, y = problem.train_data
  flat, unravel = ravel_pytree(result.params)
  grad = jax.grad(lambda v: loss_fn(unravel(v), result.model_state, x, y))
  hvp = jax.jit(lambda v: jax.jvp(grad, (flat,), (v,))[1])
  v = jax.random.normal(jax.random.key(0), flat.shape)
  for _ in range(300):
    w = hvp(v)
    v = w / jnp.linalg.norm(w)
  power = float(jnp.vdot(v, hvp(v)))
  (row,) = [
    r
    for r in read_csv(finished_run / "results.csv")
    if r["method"] == "none" and r["seed"] == config.seeds[0]
  ]
  np.testing.assert_allclose(row["sharpness"], power, rtol=2e-2)


@pytest.mark.slow
def test_the_summary_is_the_table_paired_by_seed(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  table = read_csv(finished_run / "results.csv")
  config = load_config(QUICK)
  module = experiment_module()
  control = sorted((r for r in table if r["method"] == module.CONTROL), key=lambda r: r["seed"])
  table = [r for r in table if r["method"] != module.CONTROL]
  assert {r["method"] for r in table} == set(config.methods)
  assert len(table) == len(config.methods) * len(config.seeds)
  assert [r["seed"] for r in control] == sorted(config.seeds)  # one control per seed
  for method in config.methods:
    rows = sorted((r for r in table if r["method"] == method), key=lambda r: r["seed"])
    errors = [r["final_test_error"] for r in rows]
    gaps = [r["final_test_error"] - r["final_train_error"] for r in rows]
    np.testing.assert_allclose(summary["test_error_by_method"][method], np.mean(errors))
    np.testing.assert_allclose(summary["train_test_gap_by_method"][method], np.mean(gaps))
    se = np.std(errors, ddof=1) / math.sqrt(len(errors))
    np.testing.assert_allclose(summary["test_error_by_method_se"][method], se, atol=1e-12)
    if method != "none":
      base = sorted((r for r in table if r["method"] == "none"), key=lambda r: r["seed"])
      pairs = zip(rows, base, strict=True)
      change = np.mean([r["final_test_error"] - b["final_test_error"] for r, b in pairs])
      np.testing.assert_allclose(summary["test_error_change_vs_none"][method], change, atol=1e-9)
  # the paired changes hold the methods run, so "< 0 for every method" is judged on those; a
  # method not run (the quick config has no DropConnect) is undecided, not a null that leaves
  # the every-method claim forever inconclusive
  run = set(config.methods) - {"none"}
  for key in ("test_error_change_vs_none", "train_test_gap_change_vs_none"):
    assert set(summary[key]) == set(summary[f"{key}_se"]) == set(summary[f"{key}_dof"]) == run
  # every paired change is over all seeds: the t margin's degrees of freedom are seeds − 1
  for key in (
    "test_error_change_vs_none",
    "train_test_gap_change_vs_none",
    "log_sharpness_ratio_vs_none",
  ):
    assert summary[f"{key}_dof"] == dict.fromkeys(run, len(config.seeds) - 1)
  assert summary["dropout_log_sharpness_ratio_at_equal_loss_dof"] == len(config.seeds) - 1
  assert "dropconnect" not in run
  assert summary["verdicts"]["dropconnect_test_error_change"] == "inconclusive"
  dropout = sorted((r for r in table if r["method"] == "dropout"), key=lambda r: r["seed"])
  assert summary["matched_step_none"] == {f"{r['seed']:g}": r["steps"] for r in control}
  sharpness = [r["sharpness"] for r in control]
  np.testing.assert_allclose(summary["none_sharpness_at_dropout_loss"], np.mean(sharpness))
  ratios = [np.log(d["sharpness"] / c["sharpness"]) for d, c in zip(dropout, control, strict=True)]
  np.testing.assert_allclose(summary["dropout_log_sharpness_ratio_at_equal_loss"], np.mean(ratios))
  se = np.std(ratios, ddof=1) / math.sqrt(len(ratios))
  np.testing.assert_allclose(summary["dropout_log_sharpness_ratio_at_equal_loss_se"], se)
  assert set(summary["verdicts"]) == set(registry.load("regularization").CRITERIA)
  assert all((finished_run / name).is_file() for name in ("test_error.png", "by_method.png"))


@pytest.mark.slow
def test_every_method_of_a_seed_starts_from_the_same_parameters(finished_run):
  """Paired by seed: at step 0, in eval mode, every method's held-out error is the plain net's
  (the regularizers' expectations are the identity, stochastic depth's p_l aside)."""
  history = read_csv(finished_run / "history.csv")
  config = load_config(QUICK)
  start = {
    r["member"]: r["value"] for r in history if r["step"] == 0 and r["metric"] == "test_error"
  }
  for seed in config.seeds:
    values = {m: start[f"{m}/seed{seed}"] for m in config.methods if m != "stochastic_depth"}
    assert len(set(values.values())) == 1, values


@pytest.mark.slow
def test_the_equal_loss_control_is_nones_run_where_it_first_reaches_dropouts_loss(finished_run):
  """Per seed: the target is dropout's final eval-mode training NLL; `none`'s history crosses it
  first at the recorded evaluation step, where the control's own run (the plain net) has the
  history's loss; s* lies in the `eval_every` steps up to it. For the first seed, against
  `train.train` of the regularized problem with `none`'s state, evaluated at every step: the
  history at the evaluations, s* the first step at or below the target after the last evaluation
  above it, the control's loss there, and its sharpness measured as the end points are."""
  config = load_config(QUICK)
  module = experiment_module()
  table = read_csv(finished_run / "results.csv")
  history = read_csv(finished_run / "history.csv")
  rows = {(r["method"], r["seed"]): r for r in table}
  for seed in config.seeds:
    dropout, none, control = (rows[m, seed] for m in ("dropout", "none", module.CONTROL))
    curve = none_train_loss(history, seed)
    target = dropout["eval_train_nll"]
    assert control["target_train_nll"] == target
    # `none`'s train-mode loss is its eval-mode NLL: its regularizers are neutral
    np.testing.assert_allclose(none["eval_train_nll"], curve[config.steps], rtol=1e-5)
    eval_step = int(control["eval_step"])
    assert curve[eval_step] <= target
    assert all(value > target for step, value in curve.items() if step < eval_step)
    assert control["history_train_loss"] == curve[eval_step]
    np.testing.assert_allclose(control["window_train_loss"], curve[eval_step], rtol=1e-5)
    assert eval_step - config.eval_every < control["steps"] <= eval_step
    assert control["final_train_loss"] <= target
    np.testing.assert_allclose(control["eval_train_nll"], control["final_train_loss"], rtol=1e-5)

  seed = config.seeds[0]
  control = rows[module.CONTROL, seed]
  matched = int(control["steps"])
  problem, state, alone = run_alone(config, seed, "none", steps=matched, eval_every=1)
  losses = alone.history["train_loss"]
  curve = none_train_loss(history, seed)
  for step in range(0, matched + 1, config.eval_every):
    np.testing.assert_allclose(losses[step], curve[step], rtol=1e-5)
  window_start = int(control["eval_step"]) - config.eval_every
  assert losses[matched] <= control["target_train_nll"]
  assert np.all(losses[max(window_start + 1, 0) : matched] > control["target_train_nll"])
  np.testing.assert_allclose(control["final_train_loss"], losses[matched], rtol=1e-5)
  x, y = problem.train_data
  top = hessian.spectrum(
    module.eval_nll(problem),
    alone.params,
    state,
    x,
    y,
    method="lanczos",
    k=1,
    num_steps=config.lanczos_steps,
  ).eigenvalues[-1]
  np.testing.assert_allclose(control["sharpness"], float(top), rtol=1e-3)


def test_matched_step_is_the_first_evaluation_at_or_below_the_target():
  """An evaluation step, not an interpolated one; None when the curve never gets there or a
  non-finite value comes first."""
  module = experiment_module()
  steps = np.array([0, 100, 200, 300])
  losses = np.array([2.3, 0.5, 0.1, 0.05])
  assert module.matched_step(steps, losses, 0.3) == 200  # interpolated: 150
  assert module.matched_step(steps, losses, 0.5) == 100  # at the target counts
  assert module.matched_step(steps, losses, 3.0) == 0
  assert module.matched_step(steps, losses, 0.01) is None
  assert module.matched_step(steps, np.array([2.3, np.nan, 0.1, 0.05]), 0.3) is None


def _table(dropout, control, steps):
  """Dropout and control rows, one per seed (their sharpness, and the control's s*), with the
  fields the equal-loss summary reads."""
  module = experiment_module()
  rows = []
  for seed, (d, c, s) in enumerate(zip(dropout, control, steps, strict=True)):
    rows.append({"method": "dropout", "seed": seed, "sharpness": d, "eval_train_nll": 0.1 + seed})
    rows.append(
      {
        "method": module.CONTROL,
        "seed": seed,
        "sharpness": c,
        "steps": s,
        "final_train_loss": 0.09 + seed,
      }
    )
  return rows


def test_the_equal_loss_ratio_is_the_mean_log_ratio_paired_by_seed():
  module = experiment_module()
  summary = module.equal_loss_summary(_table([2.0, 3.0], [4.0, 5.0], [300, 400]))
  ratios = [math.log(2.0 / 4.0), math.log(3.0 / 5.0)]
  assert summary["matched_step_none"] == {"0": 300, "1": 400}
  assert summary["dropout_train_nll_eval"] == {"0": 0.1, "1": 1.1}
  assert summary["none_train_loss_at_matched_step"] == {"0": 0.09, "1": 1.09}
  np.testing.assert_allclose(summary["none_sharpness_at_dropout_loss"], 4.5)
  np.testing.assert_allclose(summary["none_sharpness_at_dropout_loss_se"], 0.5)
  np.testing.assert_allclose(summary["dropout_log_sharpness_ratio_at_equal_loss"], np.mean(ratios))
  se = abs(ratios[0] - ratios[1]) / 2  # std (ddof = 1) / √2 of two values
  np.testing.assert_allclose(summary["dropout_log_sharpness_ratio_at_equal_loss_se"], se)
  assert summary["dropout_log_sharpness_ratio_at_equal_loss_dof"] == 1
  assert summary["none_sharpness_at_dropout_loss_dof"] == 1
  judge = registry.load("regularization").CRITERIA["dropout_log_sharpness_ratio_at_equal_loss"]
  # mean −0.60 ± 0.091: 6.6 errors below 0, within t_{0.975, 1} = 12.7 of two seeds
  assert abs(np.mean(ratios)) < experiment.margin(1) * se
  assert judge(summary) is None
  # a third seed: mean −0.60 ± 0.053, beyond t_{0.975, 2} = 4.30 errors
  summary = module.equal_loss_summary(_table([2.0, 3.0, 2.5], [4.0, 5.0, 4.6], [300, 400, 350]))
  ratios.append(math.log(2.5 / 4.6))
  se = np.std(ratios, ddof=1) / math.sqrt(3)
  np.testing.assert_allclose(summary["dropout_log_sharpness_ratio_at_equal_loss_se"], se)
  assert summary["dropout_log_sharpness_ratio_at_equal_loss_dof"] == 2
  assert abs(np.mean(ratios)) > experiment.margin(2) * se
  assert judge(summary) is True


def test_a_seed_without_a_matched_step_makes_the_equal_loss_claim_inconclusive():
  """`none` never got down to dropout's loss in seed 1: NaN there, no value made up, and the
  claim cannot be judged; the same without a dropout member."""
  module = experiment_module()
  judge = registry.load("regularization").CRITERIA["dropout_log_sharpness_ratio_at_equal_loss"]
  summary = module.equal_loss_summary(_table([2.0, 3.0], [4.0, math.nan], [300, math.nan]))
  assert math.isnan(summary["matched_step_none"]["1"])
  assert math.isnan(summary["dropout_log_sharpness_ratio_at_equal_loss"])
  assert judge(summary) is None
  summary = module.equal_loss_summary([])
  assert summary["dropout_log_sharpness_ratio_at_equal_loss"] is None
  assert summary["matched_step_none"] == {}
  assert judge(summary) is None
