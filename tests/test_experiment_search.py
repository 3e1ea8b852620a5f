"""The search experiment: its quick config through the CLI, its protocol checked from the files
it wrote (the grid's cell centres, random's draws, coarse-to-fine's rounds and narrowing), its
claims recomputed from results.csv, one trial against the same member trained alone, and bad
configs refused before anything compiles."""

import json
import math
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.model_selection

from jaxopt_study import cli, data, optim, registry, sweep, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import apply_overrides, load_config
from jaxopt_study.experiment import TIE_RTOL, margin, prepare
from jaxopt_study.results import read_csv

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "search_quick.py"
SPACE = {"learning_rate": sweep.log_uniform(1e-4, 1.0), "b1": sweep.uniform(0.0, 0.9)}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("search")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  rows = read_csv(out / "results.csv")
  for row in rows:
    for key in ("budget", "search", "seed", "round", "trial"):
      row[key] = int(row[key])
  summary = json.loads((out / "summary.json").read_text())
  return out, rows, summary


def by_validation(row):
  """A pick's order: the validation error, ties broken by the validation loss."""
  return row["validation_error"], row["validation_loss"]


def trials(rows, method, budget, search):
  if method == "random":
    return [
      r for r in rows if r["method"] == "random" and r["search"] == search and r["trial"] < budget
    ]
  return [
    r for r in rows if r["method"] == method and r["budget"] == budget and r["search"] == search
  ]


@pytest.mark.slow
def test_the_protocol_of_every_method(finished_run):
  """Grid: 4 × 4 cell centres (log10 rates −3.5 … −0.5, β₁ 0.1125 … 0.7875); random: the draws
  of `sample(space, 16, seed)`; coarse-to-fine: round 0 is random's first 8 draws, round 1 lies
  in `narrow` of round 0 (top 3 by validation error, widened 2×)."""
  _, rows, summary = finished_run
  config = load_config(QUICK)
  assert summary["seeds"] == [0, 1, 2]
  for search_index, seed in enumerate(summary["seeds"]):
    grid = trials(rows, "grid", 16, search_index)
    assert len(grid) == 16 and {r["seed"] for r in grid} == {seed}
    lrs = sorted({r["learning_rate"] for r in grid})
    np.testing.assert_allclose(np.log10(lrs), [-3.5, -2.5, -1.5, -0.5], rtol=1e-6)
    np.testing.assert_allclose(sorted({r["b1"] for r in grid}), [0.1125, 0.3375, 0.5625, 0.7875])
    random = sorted(trials(rows, "random", 16, search_index), key=lambda r: r["trial"])
    drawn = sweep.sample(SPACE, 16, seed)[("learning_rate", "b1")]
    np.testing.assert_allclose([(r["learning_rate"], r["b1"]) for r in random], drawn, rtol=1e-12)
    c2f = sorted(trials(rows, "coarse_to_fine", 16, search_index), key=lambda r: r["trial"])
    assert [r["round"] for r in c2f] == [0] * 8 + [1] * 8
    np.testing.assert_allclose(
      [(r["learning_rate"], r["b1"], r["validation_error"]) for r in c2f[:8]],
      [(r["learning_rate"], r["b1"], r["validation_error"]) for r in random[:8]],
      rtol=1e-6,
    )  # the same draws and seed train the same members
    narrowed = sweep.narrow(SPACE, c2f[:8], metric="validation_error", top_k=3, widen=2.0)
    lr, b1 = narrowed["learning_rate"], narrowed["b1"]
    for row in c2f[8:]:
      assert lr.low <= row["learning_rate"] <= lr.high and b1.low <= row["b1"] <= b1.high
  assert config.coarse_to_fine.top_k == 3 and config.coarse_to_fine.widen == 2.0


@pytest.mark.slow
def test_the_claims_are_what_the_table_says(finished_run):
  """Best found, the test error of each search's pick (its trial of lowest validation error),
  paired differences with standard errors, distinct values and variance shares, recomputed from
  results.csv by hand."""
  _, rows, summary = finished_run
  methods = ("grid", "random", "coarse_to_fine")
  picks = {m: [min(trials(rows, m, 16, s), key=by_validation) for s in range(3)] for m in methods}
  best = {m: np.asarray([r["validation_error"] for r in picks[m]]) for m in methods}
  test = {m: np.asarray([r["test_error"] for r in picks[m]]) for m in methods}
  for method, values in best.items():
    assert values.tolist() == [
      min(r["validation_error"] for r in trials(rows, method, 16, s)) for s in range(3)
    ]
    assert summary["best_found_by_budget"][method]["16"] == pytest.approx(values.mean())
    assert summary["best_found_by_budget_se"][method]["16"] == pytest.approx(
      values.std(ddof=1) / math.sqrt(3)
    )
    assert summary["test_error_of_best_by_budget"][method]["16"] == pytest.approx(
      test[method].mean()
    )
  # the claims judge the test errors of the picks; the validation errors are shown beside
  for suffix, values in (("", test), ("_validation", best)):
    difference = values["grid"] - values["random"]
    assert summary[f"grid_minus_random{suffix}"] == pytest.approx(difference.mean())
    assert summary[f"grid_minus_random{suffix}_se"] == pytest.approx(
      difference.std(ddof=1) / math.sqrt(3)
    )
    assert summary[f"random_minus_coarse_to_fine{suffix}"] == pytest.approx(
      (values["random"] - values["coarse_to_fine"]).mean()
    )
  # each difference is judged beyond t_{0.975, dof} errors over the 3 searches: dof 2, t = 4.30
  for key in ("grid_minus_random", "random_minus_coarse_to_fine"):
    assert summary[f"{key}_dof"] == 3 - 1
  for claim, key in (
    ("best_found_by_budget", "grid_minus_random"),
    ("random_minus_coarse_to_fine", "random_minus_coarse_to_fine"),
  ):
    value, se = summary[key], summary[f"{key}_se"]
    if se == 0 or abs(value) <= margin(2) * se * (1 + TIE_RTOL):
      expected = "inconclusive"  # (an error of 0 with dof 2 decides nothing either)
    else:
      expected = "reproduced" if value > 0 else "not reproduced"
    assert summary["verdicts"][claim] == expected, (claim, value, se)
  assert summary["distinct_values_by_budget"]["grid"]["16"] == 4
  assert summary["distinct_values_by_budget"]["random"]["16"] == 16
  # functional ANOVA over search 0's grid, rows the learning rate: shares of the total variance
  shares = {"learning_rate": [], "b1": []}
  for s in range(3):
    grid = sorted(trials(rows, "grid", 16, s), key=lambda r: (r["learning_rate"], r["b1"]))
    errors = np.asarray([r["validation_error"] for r in grid]).reshape(4, 4)
    shares["learning_rate"].append(errors.mean(axis=1).var() / errors.var())
    shares["b1"].append(errors.mean(axis=0).var() / errors.var())
  for axis, values in shares.items():
    assert summary["variance_share_by_axis"][axis] == pytest.approx(np.mean(values))
  for key, axis in (("important_share", "learning_rate"), ("other_share", "b1")):
    assert summary[key] == pytest.approx(np.mean(shares[axis]))
    assert summary[f"{key}_se"] == pytest.approx(np.std(shares[axis], ddof=1) / math.sqrt(3))
    assert summary[f"{key}_dof"] == 2
  important = summary["important_share"] - 0.5 > margin(2) * summary["important_share_se"]
  other = 0.1 - summary["other_share"] > margin(2) * summary["other_share_se"]
  assert (summary["verdicts"]["variance_share_by_axis"] == "reproduced") == (important and other)
  assert summary["important_share"] + summary["other_share"] <= 1 + 1e-9
  assert set(summary["verdicts"]) == {
    "best_found_by_budget",
    "variance_share_by_axis",
    "random_minus_coarse_to_fine",
  }


@pytest.mark.slow
def test_a_trial_equals_its_member_trained_alone(finished_run):
  """The best random trial of search 1: Adam at its rate and β₁, trained alone by train.train."""
  _, rows, _ = finished_run
  config = load_config(QUICK)
  row = min(trials(rows, "random", 16, 1), key=lambda r: r["validation_error"])
  digits = data.load_digits()  # the held-out quarter: the test set
  x_train, x_valid, y_train, y_valid = sklearn.model_selection.train_test_split(
    np.asarray(digits.x_train),
    np.asarray(digits.y_train),
    test_size=0.25,
    random_state=0,
    stratify=np.asarray(digits.y_train),
  )
  assert len(x_train) + len(x_valid) == 1347 and len(digits.x_test) == 450
  inner = data.Dataset(*map(jnp.asarray, (x_train, y_train, x_valid, y_valid)))
  model = config.model.to_dict()
  problem = problem_lib.builtin(model.pop("name"), inner, **model)
  alone = train.train(
    problem,
    optim.adam(row["learning_rate"], b1=row["b1"]),
    steps=config.steps,
    eval_every=config.eval_every,
    batch_size=config.batch_size,
    seed=row["seed"],
  )
  assert alone.history["test_error"][-1] == pytest.approx(row["validation_error"], abs=1e-6)
  assert alone.history["test_loss"][-1] == pytest.approx(row["validation_loss"], rel=1e-5)
  assert alone.history["train_loss"][-1] == pytest.approx(row["train_loss"], rel=1e-5)
  logits = problem.module(alone.params, alone.model_state)(digits.x_test)
  test_error = np.mean(np.argmax(np.asarray(logits), axis=1) != np.asarray(digits.y_test))
  assert row["test_error"] == pytest.approx(test_error, abs=1e-6)


@pytest.mark.parametrize(
  ("change", "culprit"),
  [
    ("budgets=[15]", "budget 15 must be a square"),
    ("budgets=[9]", "a multiple of coarse_to_fine.rounds=2"),
    ("budgets=[36, 16]", "must be increasing"),
    ("coarse_to_fine.top_k=9", "fewer than coarse_to_fine.top_k=9"),
    ("coarse_to_fine.widen=0.5", "coarse_to_fine.widen=0.5 must be >= 1"),
    ("important=b2", "important='b2' is not one of"),
    ("num_searches=0", "num_searches=0"),
    ("validation_fraction=1.0", "validation_fraction=1.0"),
    ("space.b1.uniform=[0.0, 1.5]", "sweep axis ('learning_rate', 'b1', 'seed')"),
  ],
)
def test_bad_configs_are_refused_before_compiling(change, culprit):
  with pytest.raises(ValueError) as raised:
    prepare(QUICK, [change])
  assert culprit in str(raised.value)


def test_the_quick_config_is_the_full_one_on_a_budget():
  full, quick = load_config(ROOT / "configs" / "search.py"), load_config(QUICK)
  assert quick.budgets == [16] and quick.num_searches < full.num_searches
  assert quick.space.to_dict() == full.space.to_dict()
  assert apply_overrides(quick, []).important == "learning_rate"


def test_a_flat_error_surface_has_no_variance_shares():
  """A search whose grid errors are all equal (every trial diverged) once gave both axes a share
  of 0, which read "not reproduced"; it is left out, and with every search flat the shares are
  NaN and the claim inconclusive."""
  experiment = registry.load("search")
  module = sys.modules[type(experiment).__module__]
  config = load_config(QUICK)
  budget, names = max(config.budgets), list(module.search_space(config))
  side = math.isqrt(budget)

  def table(errors_of):
    return [
      {"method": "grid", "budget": budget, "search": s, "trial": t, "validation_error": e}
      for s in range(config.num_searches)
      for t, e in enumerate(errors_of(s))
    ]

  flat = module.variance_shares(config, table(lambda s: [math.nan] * budget))
  assert all(math.isnan(v) for v in flat.values())
  assert module.variance_shares_by_search(config, table(lambda s: [math.nan] * budget)) == {
    name: [] for name in names
  }
  summary = {
    f"{key}{suffix}": value
    for key, share in (("important_share", flat[names[0]]), ("other_share", flat[names[1]]))
    for suffix, value in (("", share), ("_se", None), ("_dof", None))
  }
  assert experiment.CRITERIA["variance_share_by_axis"](summary) is None
  rows = np.repeat(np.arange(side, dtype=float), side)  # the error varies along the first axis
  mixed = module.variance_shares(config, table(lambda s: rows if s else [0.5] * budget))
  assert mixed[names[0]] == pytest.approx(1.0) and mixed[names[1]] == pytest.approx(0.0)
