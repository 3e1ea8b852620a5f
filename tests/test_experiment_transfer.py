"""The transfer-learning experiment: its quick config, its members against runs alone, its claims.

The members of the experiment's two vmapped programs (pretraining; every method × n × seed on
subsets repeated to one length) are checked against `train.train` of one member alone, on the
subset itself, from `models.transfer` of the net pretrained alone; the claims are checked
against results.csv.
"""

import sys

import numpy as np
import pytest
from helpers import deciding_settings
from quick_runs import (
  quick_config_and_table_fixtures,
  quick_run_fixtures,
  refused_field,
)

from jaxopt_study import Problem, models, optim, registry, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, TIE_RTOL, margin, verdict
from jaxopt_study.lab import digits_tasks
from jaxopt_study.lab.curves import read_curves

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

NAME = "transfer"
METHODS = ("head_only", "fine_tune", "scratch")
PAIR_KEYS = (  # the paired differences per n
  "scratch_minus_head_only_by_n",
  "scratch_minus_fine_tune_by_n",
  "head_only_minus_fine_tune_by_n",
)
finished_run, summary = quick_run_fixtures(NAME)


config, table = quick_config_and_table_fixtures(NAME)


def _errors(table, method: str, n: int) -> np.ndarray:
  rows = sorted(
    (r for r in table if r["method"] == method and r["examples_per_class"] == n),
    key=lambda r: r["seed"],
  )
  return np.asarray([r["final_test_error"] for r in rows])


def test_writes_every_file_and_one_row_per_member(finished_run, table, config):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html"} <= names
  assert "test_error_by_n.png" in names
  members = {(r["method"], r["examples_per_class"], r["seed"]) for r in table}
  seeds = range(config.seed, config.seed + config.num_seeds)
  assert members == {(m, n, s) for m in METHODS for n in config.examples_per_class for s in seeds}
  assert len(table) == len(members)


def test_head_only_members_never_move_the_hidden_layers(table, summary):
  for row in table:
    if row["method"] == "head_only":
      assert row["hidden_max_change"] == 0.0
    else:
      assert row["hidden_max_change"] > 1e-3
  assert summary["head_only_hidden_max_change"] == 0.0


def test_members_equal_their_runs_alone(finished_run, table, config):
  """Seed 0 at the smallest n: pretrained alone by `train.train`, transferred, and trained alone
  on its subset (not repeated) with the whole subset as the batch. The same computation up to
  float32 summation order, so each final test error agrees within one held-out example."""
  helpers = sys.modules[type(registry.load(NAME)).__module__]  # the experiment's module
  digits = digits_tasks.load(config.data)
  source = helpers.split(digits, config.source_classes)
  target = helpers.split(digits, config.target_classes)
  options = {k: v for k, v in config.model.items() if k not in ("name", "init_scale")}
  source_problem = problem_lib.builtin("mlp", source, **options)
  seed, n = config.seed, config.examples_per_class[0]
  pretrained = train.train(
    source_problem,
    optim.adam(config.pretrain_learning_rate),
    steps=config.pretrain_steps,
    batch_size=config.batch_size,
    eval_every=config.pretrain_steps,
    seed=seed,
  )
  pretrain_error = read_curves(finished_run / "history.csv", "test_error")[f"pretrain@seed{seed}"]
  assert pretrained.history["test_error"][-1] == pytest.approx(
    pretrain_error[1][-1], abs=1.0 / len(source.y_test) + 1e-6
  )
  one_example = 1.0 / len(target.y_test) + 1e-6
  t = models.transfer(
    source_problem.module(pretrained.params, pretrained.model_state), len(config.target_classes)
  )
  subset = helpers.per_class_subset(target, seed, n, 1)
  for method, model in (("head_only", t.model), ("fine_tune", t.model), ("scratch", None)):
    base = problem_lib.builtin("mlp", target, **options)
    problem = Problem(
      model=model or base.model,
      loss=base.loss,
      train_data=subset.train,
      heldout_data=subset.heldout,
      metrics=base.metrics,
    )
    inner = optim.adam(config.learning_rates[method])
    result = train.train(
      problem,
      t.optimizer(inner) if method == "head_only" else inner,
      steps=config.steps,
      batch_size=n * len(config.target_classes),
      eval_every=config.steps,
      seed=seed,
    )
    (row,) = [
      r for r in table if (r["method"], r["examples_per_class"], r["seed"]) == (method, n, seed)
    ]
    assert result.history["test_error"][-1] == pytest.approx(
      row["final_test_error"], abs=one_example
    ), method
    assert result.history["train_loss"][-1] == pytest.approx(
      row["final_train_loss"], rel=1e-2, abs=1e-4
    ), method


def test_the_claims_are_what_the_table_says(table, summary, config):
  sizes = config.examples_per_class
  for method in METHODS:
    for n in sizes:
      errors = _errors(table, method, n)
      assert summary["test_error_by_n"][method][str(n)] == pytest.approx(errors.mean())
      assert summary["test_error_by_n_se"][method][str(n)] == pytest.approx(
        errors.std(ddof=1) / np.sqrt(errors.size)
      )
  for first, second in (("scratch", "head_only"), ("scratch", "fine_tune")):
    for n in sizes:
      difference = _errors(table, first, n) - _errors(table, second, n)
      key = f"{first}_minus_{second}_by_n"
      assert summary[key][str(n)] == pytest.approx(difference.mean())
      assert summary[f"{key}_se"][str(n)] == pytest.approx(
        difference.std(ddof=1) / np.sqrt(difference.size)
      )
  smallest, largest = sizes[0], sizes[-1]
  gain = {n: _errors(table, "head_only", n) - _errors(table, "fine_tune", n) for n in sizes}
  growth = gain[largest] - gain[smallest]
  assert summary["fine_tune_gain_growth"] == pytest.approx(growth.mean())
  # every paired difference is over all seeds: its t margin's degrees of freedom are seeds − 1
  dof = config.num_seeds - 1
  for key in PAIR_KEYS:
    assert summary[f"{key}_dof"] == {str(n): dof for n in sizes}
  assert summary["scratch_minus_head_only_at_smallest_n_dof"] == dof
  assert summary["fine_tune_gain_growth_dof"] == dof

  def judged(value, error, settings=1):
    """Beyond t_{0.975, dof} errors of 0 (4.30 for the quick config's 3 seeds), or, against the
    claim, t_{1 − 0.025/k, dof} for one of k settings that can decide (Bonferroni); an error of
    0 (every seed's difference alike, test errors being counts) decides nothing below dof 5."""
    if error <= 1e-5 * abs(value) and dof < MIN_DOF_WITHOUT_SPREAD:  # 0, up to float rounding
      return verdict(None)
    needed = margin(dof) if value > 0 else margin(dof, settings)
    return verdict(None if abs(value) <= needed * error * (1 + TIE_RTOL) else value > 0)

  at_smallest = _errors(table, "scratch", smallest) - _errors(table, "head_only", smallest)
  key = "scratch_minus_fine_tune_by_n"
  count = deciding_settings(summary[key], summary[f"{key}_se"], dof)
  per_n = [judged(summary[key][str(n)], summary[f"{key}_se"][str(n)], count) for n in sizes]
  combined = (
    "not reproduced"
    if "not reproduced" in per_n
    else "inconclusive"
    if "inconclusive" in per_n
    else "reproduced"
  )
  assert summary["verdicts"] == {
    "head_only_beats_scratch_at_few_examples": judged(
      at_smallest.mean(), at_smallest.std(ddof=1) / np.sqrt(at_smallest.size)
    ),
    "fine_tune_beats_scratch": combined,
    "fine_tune_gain_grows_with_n": judged(growth.mean(), growth.std(ddof=1) / np.sqrt(growth.size)),
  }
  assert 0.0 <= summary["pretrain_test_error"] < 0.05  # the source task is learned


@pytest.mark.parametrize(
  ("field", "value"),
  [
    ("target_classes", "[4, 5, 6]"),
    ("examples_per_class", "[7, 11, 13, 17]"),
    ("examples_per_class", "[50, 5]"),
    ("num_seeds", "1"),
    ("learning_rates.head_only", "0.0"),
  ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field.split(".")[0] in refused_field(tmp_path, capsys, NAME, field, value)
