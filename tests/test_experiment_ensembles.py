"""The ensembles experiment (lecture 7; Huang et al. 2017; §8.7.3): its quick config through the
CLI, its members against runs alone, its claims against its own table."""

import numpy as np
import pytest
from quick_runs import (
  quick_config_and_table_fixtures,
  quick_run_fixtures,
  refused_field,
)

from jaxopt_study import ensembles, optim, train
from jaxopt_study.config import build_problem
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, margin, verdict

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

NAME = "ensembles"
finished_run, summary = quick_run_fixtures(NAME)


config, table = quick_config_and_table_fixtures(NAME)


def _row(table, method, repeat):
  return next(r for r in table if r["method"] == method and r["repeat"] == repeat)


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html", "ensemble_size.png"} <= names


def test_a_single_and_a_snapshot_ensemble_equal_their_runs_alone(config, table):
  """Repeat 1's first single is `train.train` alone under one cosine cycle; its snapshot
  ensemble is `ensembles.snapshot_ensemble` alone: the same test errors as in the vmapped run."""
  problem = build_problem(config)
  single = next(r for r in table if r["method"] == "single" and r["repeat"] == 1)
  schedule = optim.cosine_warm_restarts(config.learning_rate, config.steps)
  alone = train.train(
    problem,
    optim.momentum(schedule, config.momentum),
    steps=config.steps,
    batch_size=config.batch_size,
    seed=int(single["seed"]),
    l2_penalty=config.l2_penalty,
    eval_every=config.steps,
  )
  error = ensembles.ensemble_error(problem, [(alone.params, alone.model_state)])
  assert error == pytest.approx(single["test_error"], abs=1.5 / problem.heldout_data[1].shape[0])
  run = ensembles.snapshot_ensemble(
    problem,
    lambda rate: optim.momentum(rate, config.momentum),
    learning_rate=config.snapshot_learning_rate,
    cycles=config.cycles,
    steps_per_cycle=config.steps // config.cycles,
    batch_size=config.batch_size,
    seed=int(_row(table, "snapshot_ensemble", 1)["seed"]),
    l2_penalty=config.l2_penalty,
  )
  tolerance = 1.5 / problem.heldout_data[1].shape[0]  # one test example flipped by rounding
  assert ensembles.ensemble_error(problem, run.members) == pytest.approx(
    _row(table, "snapshot_ensemble", 1)["test_error"], abs=tolerance
  )
  assert ensembles.ensemble_error(problem, run.members[-1:]) == pytest.approx(
    _row(table, "snapshot_last", 1)["test_error"], abs=tolerance
  )


def test_gains_are_the_means_over_repeats_of_the_table(config, summary, table):
  repeats = range(config.repeats)
  singles = [
    [r["test_error"] for r in table if r["method"] == "single" and r["repeat"] == k]
    for k in repeats
  ]
  assert all(len(s) == config.members for s in singles)

  def gain(values):
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / np.sqrt(values.size)

  expected = {
    "ensemble_gain": [
      min(s) - _row(table, "ensemble", k)["test_error"] for k, s in enumerate(singles)
    ],
    "snapshot_gain": [
      np.mean(s) - _row(table, "snapshot_ensemble", k)["test_error"] for k, s in enumerate(singles)
    ],
    "polyak_gain": [
      _row(table, "polyak_last", k)["test_error"] - _row(table, "polyak_averaged", k)["test_error"]
      for k in repeats
    ],
  }
  for name, values in expected.items():
    mean, se = gain(values)
    assert summary[name] == pytest.approx(mean, abs=1e-12)
    assert summary[f"{name}_se"] == pytest.approx(se, abs=1e-12)
    dof = summary[f"{name}_dof"]
    assert dof == config.repeats - 1 == len(values) - 1
    # positive beyond t_{0.975, dof} standard errors; an error of 0 decides only from 6 repeats
    no_spread = se <= 1e-5 * abs(mean)  # 0 up to float32 rounding
    undecided = (no_spread and dof < MIN_DOF_WITHOUT_SPREAD) or abs(mean) <= margin(dof) * se
    assert summary["verdicts"][name] == verdict(None if undecided else mean > 0)
  curve = summary["ensemble_size_curve"]
  assert curve["independent"][str(config.members)] == pytest.approx(
    summary["test_error_by_method"]["ensemble"]
  )
  assert curve["snapshots"][str(config.cycles)] == pytest.approx(
    summary["test_error_by_method"]["snapshot_ensemble"]
  )
  assert curve["snapshots"]["1"] == pytest.approx(summary["test_error_by_method"]["snapshot_last"])


def test_the_errors_are_fractions_of_the_test_set(config, table):
  """Every test error is a whole number of misclassified held-out digits."""
  size = build_problem(config).heldout_data[1].shape[0]
  counts = np.asarray([row["test_error"] for row in table]) * size
  np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
  assert np.all(counts < 0.2 * size)  # every model learned the digits


@pytest.mark.parametrize(
  ("field", "value"),
  [("cycles", "7"), ("members", "1"), ("polyak_decay", "1.0"), ("snapshot_learning_rate", "0")],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)
