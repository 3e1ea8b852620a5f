"""The learning-rate schedules experiment (§8.3.1; Loshchilov & Hutter 2017): its quick config
through the CLI, a member against its run alone, the schedules against their closed forms, the
claims against the table."""

import sys

import numpy as np
import pytest
from helpers import deciding_settings
from quick_runs import (
  quick_config_and_table_fixtures,
  quick_run_fixtures,
  refused_field,
)

from jaxopt_study import optim, registry, train
from jaxopt_study.config import build_problem
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, margin, verdict

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

NAME = "lr_schedules"
finished_run, summary = quick_run_fixtures(NAME)


config, table = quick_config_and_table_fixtures(NAME)


def _experiment():
  return sys.modules[type(registry.load(NAME)).__module__]


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  expected = {"results.csv", "history.csv", "summary.json", "report.html", "train_loss.png"}
  assert expected | {"final_loss_by_rate.png"} <= names


def test_every_schedule_follows_its_closed_form(config):
  """ε_k of each builder at ε_0 = 0.5, from the formulas of the module docstring."""
  schedules, steps, f = _experiment().SCHEDULES, config.steps, config.final_fraction
  k = np.arange(steps)
  every = -(-steps // (config.step_drops + 1))
  first = steps // (2**config.sgdr_cycles - 1)  # T_0 (1 + 2 + 4) = steps
  starts = np.asarray([0, first, 3 * first])
  cycle = np.searchsorted(starts, k, side="right") - 1
  length = first * 2.0**cycle
  expected = {
    "constant": np.full(steps, 0.5),
    "step": 0.5 * (f ** (1 / config.step_drops)) ** (k // every),
    "exponential": 0.5 * f ** (k / steps),
    "inverse_time": 0.5 / (1 + (1 / f - 1) * k / steps),
    "linear": 0.5 * (1 - k / steps) + 0.5 * f * k / steps,
    "cosine": 0.25 * (1 + np.cos(np.pi * k / steps)),
    "sgdr": 0.25 * (1 + np.cos(np.pi * (k - starts[cycle]) / length)),
  }
  assert set(expected) == set(schedules)
  for name, values in expected.items():
    schedule = schedules[name](config, 0.5)
    np.testing.assert_allclose(
      [float(schedule(i)) for i in k], values, rtol=2e-5, atol=1e-7, err_msg=name
    )


def test_a_member_equals_its_run_alone(config, table):
  """The SGDR member at ε_0 = 0.3, seed 0: `train.train` alone under the same schedule."""
  row = next(
    r for r in table if r["schedule"] == "sgdr" and r["seed"] == 0 and r["learning_rate"] == 0.3
  )
  schedule = _experiment().SCHEDULES["sgdr"](config, 0.3)
  alone = train.train(
    build_problem(config),
    optim.sgd(schedule),
    steps=config.steps,
    batch_size=config.batch_size,
    eval_every=config.steps,
    seed=0,
    l2_penalty=config.l2_penalty,
  )
  assert alone.history["train_loss"][-1] == pytest.approx(row["final_train_loss"], rel=1e-4)
  assert alone.history["test_error"][-1] == pytest.approx(row["final_test_error"], abs=1e-6)


def _held_out(config, table) -> dict[str, dict[int, dict]]:
  """Per schedule and seed, that seed's row at the base rate whose mean final training loss over
  the *other* seeds is lowest (a rate where one of them diverged is never the best), by brute
  force."""
  rows = {(r["schedule"], r["learning_rate"], r["seed"]): r for r in table}

  def mean_without(name, rate, seed):
    others = [rows[(name, rate, s)] for s in config.seeds if s != seed]
    if any(r["diverged"] for r in others):
      return np.inf
    return np.mean([r["final_train_loss"] for r in others])

  return {
    name: {
      seed: rows[
        (
          name,
          min(
            config.learning_rates,
            key=lambda rate, name=name, seed=seed: mean_without(name, rate, seed),
          ),
          seed,
        )
      ]
      for seed in config.seeds
    }
    for name in config.schedules
  }


def test_the_claims_are_read_off_the_table(config, summary, table):
  """The all-seed best rate (display) from the means over seeds; every judged value from each
  seed at the rate best on the other seeds, recomputed here from results.csv."""
  names = list(config.schedules)
  means = {
    (r["schedule"], r["learning_rate"]): np.mean(
      [
        s["final_train_loss"]
        for s in table
        if s["schedule"] == r["schedule"] and s["learning_rate"] == r["learning_rate"]
      ]
    )
    for r in table
  }
  rates = sorted(config.learning_rates)
  held_out = _held_out(config, table)
  for name in names:
    best = min(rates, key=lambda rate, name=name: means[(name, rate)])
    assert summary["best_learning_rate_by_schedule"][name] == best
    assert summary["best_rate_at_grid_edge"][name] == (best in (rates[0], rates[-1]))
    picked = [row["learning_rate"] for row in held_out[name].values()]
    assert summary["held_out_learning_rates"][name] == {
      str(int(seed)): row["learning_rate"] for seed, row in held_out[name].items()
    }
    assert summary["held_out_rate_at_grid_edge"][name] == any(
      rate in (rates[0], rates[-1]) for rate in picked
    )
    for metric in ("final_train_loss", "final_test_error"):
      values = [row[metric] for row in held_out[name].values()]
      assert summary[f"{metric}_by_schedule"][name] == pytest.approx(np.mean(values))
      assert summary[f"{metric}_by_schedule_se"][name] == pytest.approx(
        np.std(values, ddof=1) / np.sqrt(len(values))
      )
  losses = summary["final_train_loss_by_schedule"]
  for name in names[1:]:
    assert summary["train_loss_ratio_to_constant"][name] == pytest.approx(
      losses[name] / losses["constant"]
    )
    assert summary["compared_at_grid_edge"][name] == (
      summary["held_out_rate_at_grid_edge"][name]
      or summary["held_out_rate_at_grid_edge"]["constant"]
    )
    for metric, key in (("final_test_error", "test_error"), ("final_train_loss", "train_loss")):
      differences = [
        held_out[name][seed][metric] - held_out["constant"][seed][metric] for seed in config.seeds
      ]
      assert summary[f"{key}_minus_constant"][name] == pytest.approx(np.mean(differences))
      assert summary[f"{key}_minus_constant_se"][name] == pytest.approx(
        np.std(differences, ddof=1) / np.sqrt(len(differences))
      )
      assert summary[f"{key}_minus_constant_dof"][name] == len(config.seeds) - 1 == 2
  differences = [
    held_out["sgdr"][seed]["final_test_error"] - held_out["step"][seed]["final_test_error"]
    for seed in config.seeds
  ]
  assert summary["sgdr_minus_step_test_error"] == pytest.approx(np.mean(differences))
  assert summary["sgdr_minus_step_test_error_se"] == pytest.approx(
    np.std(differences, ddof=1) / np.sqrt(len(differences))
  )
  assert summary["sgdr_minus_step_test_error_dof"] == len(config.seeds) - 1
  assert summary["sgdr_or_step_at_grid_edge"] == (
    summary["held_out_rate_at_grid_edge"]["sgdr"] or summary["held_out_rate_at_grid_edge"]["step"]
  )
  assert summary["diverged_members"] == sorted(r["member"] for r in table if r["diverged"])


def test_the_judged_loss_is_the_in_sample_one_only_where_no_pick_moved(summary, table):
  """Leave one seed out changes what is judged exactly where a seed's rate, best on the other
  seeds, is not the rate best on all of them: there the schedule's judged mean loss is not the
  in-sample one (the mean over seeds at the all-seed best rate); elsewhere it is. (In the quick
  run on the machine it was written on, cosine's seed 1 moved.)"""
  for name, by_seed in summary["held_out_learning_rates"].items():
    best = summary["best_learning_rate_by_schedule"][name]
    in_sample = np.mean(
      [r["final_train_loss"] for r in table if r["schedule"] == name and r["learning_rate"] == best]
    )
    judged = summary["final_train_loss_by_schedule"][name]
    if set(by_seed.values()) == {best}:
      assert judged == pytest.approx(in_sample, rel=1e-12), name
    else:
      assert judged != pytest.approx(in_sample, rel=1e-6), name


def test_the_verdicts_follow_from_the_paired_differences(summary):
  """Each verdict judged here from the summary's numbers: a paired difference decides beyond
  t_{0.975, dof} of its standard errors (4.30 for the quick config's 3 seeds), unless a held-out
  rate it compares sits at its grid's edge or its seeds all gave the same difference (error 0, from
  fewer than 6 seeds); one decaying schedule that fails beyond t_{1 − 0.025/k, dof} errors (k
  schedules that can decide: Bonferroni's margin) fails the claim."""

  def judged(value, se, dof, at_edge, settings=1, threshold=0.0):
    if at_edge or se is None or dof is None:
      return None
    if se <= 1e-5 * abs(value) and dof < MIN_DOF_WITHOUT_SPREAD:  # no spread, up to rounding
      return None
    needed = margin(dof) if value < threshold else margin(dof, settings)
    if abs(value - threshold) <= needed * se:
      return None
    return bool(value < threshold)

  def claim(key):
    verdicts = [
      judged(
        summary[key][name],
        summary[f"{key}_se"][name],
        summary[f"{key}_dof"][name],
        summary["compared_at_grid_edge"][name],
        deciding_settings(
          summary[key],
          summary[f"{key}_se"],
          summary[f"{key}_dof"],
          summary["compared_at_grid_edge"],
        ),
      )
      for name in summary[key]
    ]
    return verdict(False if False in verdicts else None if None in verdicts else True)

  assert summary["verdicts"] == {
    "final_train_loss_by_schedule": claim("train_loss_minus_constant"),
    "final_test_error_by_schedule": claim("test_error_minus_constant"),
    "sgdr_minus_step_test_error": verdict(
      judged(
        summary["sgdr_minus_step_test_error"],
        summary["sgdr_minus_step_test_error_se"],
        summary["sgdr_minus_step_test_error_dof"],
        summary["sgdr_or_step_at_grid_edge"],
        threshold=0.005,
      )
    ),
  }


@pytest.mark.parametrize(
  ("field", "value"),
  [
    ("schedules", "['step', 'cosine']"),
    ("learning_rates", "[0.1, 0.3]"),
    ("sgdr_cycles", "4"),
    ("final_fraction", "1.0"),
  ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)
