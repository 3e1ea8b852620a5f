"""The regularization experiment: its quick config through the CLI, a member against its run
alone, the sharpness against an independent Lanczos-free estimate, and the summary against the
table."""

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_study import cli, optim, registry, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import load_config
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs the experiment end to end

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


def test_a_member_equals_train_train_with_its_model_state(finished_run):
  """The vmapped program's dropout member is `train.train` of the problem with that state."""
  config = load_config(QUICK)
  module = experiment_module()
  problem = module.regularized_problem(config)
  params, state = problem_lib.pure(problem).initial(config.seeds[1])
  method = "dropout" if "dropout" in config.methods else config.methods[-1]
  alone = train.train(
    problem,
    optim.adam(config.learning_rate),
    steps=config.steps,
    batch_size=config.batch_size,
    eval_every=config.eval_every,
    seed=config.seeds[1],
    params=params,
    model_state=module.member_state(config, state, method),
  )
  (row,) = [
    r
    for r in read_csv(finished_run / "results.csv")
    if r["method"] == method and r["seed"] == config.seeds[1]
  ]
  np.testing.assert_allclose(row["final_train_loss"], alone.history["train_loss"][-1], rtol=1e-4)
  np.testing.assert_allclose(row["final_test_error"], alone.history["test_error"][-1], atol=1e-6)


def test_sharpness_is_the_top_eigenvalue_by_power_iteration(finished_run):
  """The Lanczos λ_max of the 'none' member at seed 0, against 300 steps of power iteration on
  the float32 HVP of the eval-mode NLL (the top eigenvalue dominates: λ_max > 0 there)."""
  config = load_config(QUICK)
  module = experiment_module()
  problem = module.regularized_problem(config)
  pure = problem_lib.pure(problem)
  params, state = pure.initial(config.seeds[0])
  state = module.member_state(config, state, "none")
  result = train.train(
    problem,
    optim.adam(config.learning_rate),
    steps=config.steps,
    batch_size=config.batch_size,
    eval_every=config.eval_every,
    seed=config.seeds[0],
    params=params,
    model_state=state,
  )
  loss_fn = module.eval_nll(problem)
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


def test_the_summary_is_the_table_paired_by_seed(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  table = read_csv(finished_run / "results.csv")
  config = load_config(QUICK)
  assert {r["method"] for r in table} == set(config.methods)
  assert len(table) == len(config.methods) * len(config.seeds)
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
  assert set(summary["verdicts"]) == set(registry.load("regularization").CRITERIA)
  assert all((finished_run / name).is_file() for name in ("test_error.png", "by_method.png"))


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
