"""`jaxopt_study.lab.grids`: learning-rate grids refused with the field named, before compiling;
a grid trained as one vmapped program; the best row per group."""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, train
from jaxopt_study.lab import grids


def _grids(**optimizers) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(optimizers)


def test_accepts_good_grids():
  grids.check_learning_rate_grids(
    _grids(
      sgd={"learning_rate": [0.1, 1.0]},
      adam={"learning_rate": [1e-3], "b1": 0.9},
      newton={"learning_rate": [1.0], "damping": [1e-2, 1e-1], "adaptive": True},
    ),
    "test",
  )


@pytest.mark.parametrize(
  ("optimizers", "allowed", "message"),
  [
    ({"nope": {"learning_rate": [0.1]}}, None, "test: optimizers.nope is not"),
    ({"adam": {"learning_rate": [0.1]}}, ("sgd",), "test: optimizers.adam is not"),
    ({"sgd": {"learning_rate": []}}, None, "test: optimizers.sgd.learning_rate=[]"),
    ({"sgd": {"learning_rate": 0.1}}, None, "test: optimizers.sgd.learning_rate=0.1"),
    ({"sgd": {"learning_rate": [-1.0]}}, None, "test: optimizers.sgd: sgd: learning_rate=-1.0"),
    ({"rmsprop": {"learning_rate": [0.1], "decay": 1.5}}, None, "decay=1.5"),
    ({"sgd": {"learning_rate": [0.1], "bogus": 1}}, None, "test: optimizers.sgd"),
    ({"newton": {"learning_rate": [1.0], "damping": []}}, None, "optimizers.newton.damping=[]"),
    ({"newton": {"learning_rate": [1.0], "damping": [0.1, -1.0]}}, None, "damping=-1.0"),
    ({"newton": {"learning_rate": [1.0], "damping": [0.0], "adaptive": True}}, None, "damping=0.0"),
  ],
)
def test_refuses_bad_grids_naming_the_field(optimizers, allowed, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    grids.check_learning_rate_grids(_grids(**optimizers), "test", allowed)


def test_best_rows_picks_the_lowest_finite_metric_per_group():
  table = [
    {"method": "gd", "lr": 0.1, "loss": 2.0},
    {"method": "gd", "lr": 0.3, "loss": float("nan")},
    {"method": "gd", "lr": 0.2, "loss": 1.0},
    {"method": "cd", "lr": 0.1, "loss": 3.0},
    {"method": "cd", "lr": 0.2, "loss": 3.0},
    {"method": "bad", "lr": 0.1, "loss": float("inf")},
    {"method": "bad", "lr": 0.2, "loss": ""},  # an empty CSV cell
  ]
  best = grids.best_rows(table, "method", "loss")
  assert set(best) == {"gd", "cd"}
  assert best["gd"]["lr"] == 0.2
  assert best["cd"]["lr"] == 0.1  # a tie keeps the first row


def test_best_rows_groups_by_several_columns():
  table = [
    {"method": "a", "mu": 0.9, "loss": 2.0},
    {"method": "a", "mu": 0.9, "loss": 1.0},
    {"method": "a", "mu": 0.0, "loss": 3.0},
    {"method": "b", "mu": 0.9, "loss": 4.0},
  ]
  best = grids.best_rows(table, ("method", "mu"), "loss")
  assert {key: row["loss"] for key, row in best.items()} == {
    ("a", 0.9): 1.0,
    ("a", 0.0): 3.0,
    ("b", 0.9): 4.0,
  }


def test_best_at_edge_flags_a_best_rate_the_grid_does_not_bracket():
  table = [
    {"method": "gd", "learning_rate": 0.1, "loss": 2.0},
    {"method": "gd", "learning_rate": 0.2, "loss": 1.0},  # interior best
    {"method": "gd", "learning_rate": 0.4, "loss": 3.0},
    {"method": "cd", "learning_rate": 0.1, "loss": 3.0},
    {"method": "cd", "learning_rate": 0.2, "loss": 2.0},
    {"method": "cd", "learning_rate": 0.4, "loss": 1.0},  # best at the top of its grid
    {"method": "nd", "learning_rate": 0.1, "loss": 1.0},  # best at the bottom
    {"method": "nd", "learning_rate": 0.2, "loss": float("nan")},
  ]
  assert grids.best_at_edge(table, "method", "loss") == {"gd": False, "cd": True, "nd": True}


def test_steps_to_reach_interpolates_the_crossing():
  steps, values = [0, 10, 20, 30], [8.0, 4.0, 1.0, 0.5]
  assert grids.steps_to_reach(steps, values, 2.0) == pytest.approx(10 + 10 * 2.0 / 3.0)
  # in log value: 4 -> 1 is two halvings, 4 -> 2 the first of them
  assert grids.steps_to_reach(steps, values, 2.0, log=True) == pytest.approx(15.0)
  assert grids.steps_to_reach(steps, values, 8.0) == 0.0  # there from the start
  assert grids.steps_to_reach(steps, values, 0.1) is None  # censored
  assert grids.steps_to_reach(steps, [8.0, float("nan"), 0.1, 0.1], 2.0) is None  # diverged


def test_numpy_scalars_count_as_numbers_not_as_diverged():
  """A user's own table of np.float32 / np.int64 values: the same picks as with Python numbers
  (they were all read as missing, so the worst finite row or an edge was picked)."""
  python = [
    {"method": "gd", "learning_rate": 0.1, "seed": 0, "loss": 0.9},
    {"method": "gd", "learning_rate": 0.2, "seed": 0, "loss": 0.3},
    {"method": "gd", "learning_rate": 0.4, "seed": 0, "loss": 0.5},
  ]
  numpy = [{**row, "loss": np.float32(row["loss"])} for row in python[:2]]
  numpy.append({**python[2], "loss": np.int64(5)})
  for table in (python, numpy):
    assert grids.best_rows(table, "method", "loss")["gd"]["learning_rate"] == 0.2
    assert grids.best_at_edge(table, "method", "loss") == {"gd": False}
    medians = grids.seed_medians(table, ("method", "learning_rate"), "loss")
    assert [m["num_finite"] for m in medians] == [1, 1, 1]


def test_steps_to_reach_and_stay_skips_a_crossing_the_curve_climbs_back_from():
  """An unstable run passes below the target and climbs back: with `stay=True` its time is the
  crossing after which it stays below (interpolated as without), None where it ends above."""
  steps, bouncing = [0, 10, 20, 30, 40], [8.0, 1.0, 4.0, 1.0, 0.5]
  assert grids.steps_to_reach(steps, bouncing, 2.0) == pytest.approx(10 * 6.0 / 7.0)
  assert grids.steps_to_reach(steps, bouncing, 2.0, stay=True) == pytest.approx(20 + 10 * 2 / 3)
  assert grids.steps_to_reach(steps[:3], [8.0, 1.0, 4.0], 2.0, stay=True) is None  # ends above
  assert grids.steps_to_reach(steps[:3], [1.0, 0.5, 0.2], 2.0, stay=True) == 0.0  # always below
  assert grids.steps_to_reach(steps[:3], [1.0, float("nan"), 0.2], 2.0, stay=True) is None
  monotone = [8.0, 4.0, 2.0, 1.0, 0.5]
  for target in (8.0, 3.0, 0.7, 0.1):
    for log in (False, True):
      assert grids.steps_to_reach(steps, monotone, target, log=log, stay=True) == (
        grids.steps_to_reach(steps, monotone, target, log=log)
      )


def test_steps_to_reach_a_curve_that_reaches_zero_in_log_value():
  """log(0) is undefined: a value of exactly 0 crosses the target linearly; a target ≤ 0 has no
  log and is refused."""
  assert grids.steps_to_reach([0, 10], [4.0, 0.0], 1.0, log=True) == pytest.approx(7.5)
  with pytest.raises(ValueError, match="target=0.0 must be > 0"):
    grids.steps_to_reach([0, 10], [4.0, 0.0], 0.0, log=True)


def test_best_by_median_picks_each_groups_best_median_rate_and_flags_edges():
  """Depth 2: rate 0.2's median (10) beats 0.1's (20) and 0.4's (inf: two of three seeds never
  got there); depth 4: the best median is at the top rate, an edge."""
  table = [
    {"depth": d, "learning_rate": lr, "seed": s, "steps": v}
    for d, lr, values in [
      (2, 0.1, [20, 19, 30]),
      (2, 0.2, [10, 12, 9]),
      (2, 0.4, [5, None, None]),
      (4, 0.1, [50, 60, 55]),
      (4, 0.2, [40, 45, 41]),
      (4, 0.4, [30, 31, 33]),
    ]
    for s, v in enumerate(values)
  ]
  medians, best, at_edge = grids.best_by_median(table, ("depth",), "steps")
  assert medians == grids.seed_medians(table, ("depth", "learning_rate"), "steps")
  assert {k: (row["learning_rate"], row["steps"]) for k, row in best.items()} == {
    (2,): (0.2, 10.0),
    (4,): (0.4, 31.0),
  }
  assert at_edge == {(2,): False, (4,): True}


def test_seed_medians_count_a_censored_seed_as_infinite():
  table = [
    {"depth": 2, "learning_rate": 0.1, "seed": 0, "steps": 30.0},
    {"depth": 2, "learning_rate": 0.1, "seed": 1, "steps": 50.0},
    {"depth": 2, "learning_rate": 0.1, "seed": 2, "steps": None},  # never got there
    {"depth": 2, "learning_rate": 0.2, "seed": 0, "steps": None},
    {"depth": 2, "learning_rate": 0.2, "seed": 1, "steps": float("nan")},
    {"depth": 2, "learning_rate": 0.2, "seed": 2, "steps": 10.0},
  ]
  medians = grids.seed_medians(table, ("depth", "learning_rate"), "steps")
  assert medians == [
    {"depth": 2, "learning_rate": 0.1, "steps": 50.0, "num_finite": 2},
    {"depth": 2, "learning_rate": 0.2, "steps": float("inf"), "num_finite": 1},
  ]
  assert grids.best_rows(medians, "depth", "steps")[2]["learning_rate"] == 0.1
  assert grids.best_at_edge(medians, "depth", "steps") == {2: True}  # 0.1: the grid's bottom


def test_held_out_rows_pick_each_seeds_rate_from_the_other_seeds():
  """Depth 2: leaving seed 0 out, rate 0.2's others (12, 9; median 10.5) beat 0.1's (19, 30);
  leaving seed 1 out, 0.4's others (5, 6) win; leaving seed 2 out, 0.4's (5, inf: median inf)
  lose to 0.2's (10, 12). Depth 4: seed 0's others have medians inf at 0.1 and 30.5 at 0.4; seed
  1's inf at both (no row); seed 2's 52.5 at 0.1 and inf at 0.4. Two rates: both edges."""
  table = [
    {"depth": d, "learning_rate": lr, "seed": s, "steps": v}
    for d, lr, values in [
      (2, 0.1, [20, 19, 30]),
      (2, 0.2, [10, 12, 9]),
      (2, 0.4, [5, None, 6]),
      (4, 0.1, [50, 55, None]),
      (4, 0.4, [float("nan"), 31, 30]),
    ]
    for s, v in enumerate(values)
  ]
  picks, at_edge = grids.held_out_rows(table, ("depth",), "steps")
  chosen = {k: {s: row["learning_rate"] for s, row in rows.items()} for k, rows in picks.items()}
  assert chosen == {(2,): {0: 0.2, 1: 0.4, 2: 0.2}, (4,): {0: 0.4, 2: 0.1}}
  assert picks[(2,)][1] is table[7]  # the held-out seed's own row at the picked rate
  assert at_edge == {(2,): True, (4,): True}
  inside = [
    {"depth": 2, "learning_rate": lr, "seed": s, "steps": v}
    for lr, v in [(0.1, 20), (0.2, 10), (0.4, 30)]
    for s in (0, 1)
  ]
  assert grids.held_out_rows(inside, ("depth",), "steps")[1] == {(2,): False}


def test_held_out_rows_are_unbiased_where_picking_on_the_judged_seeds_is_not():
  """Twenty rates of equal worth and pure noise: the best median over the seeds that picked it
  is biased below 0 (the winner's curse); the held-out seeds' mean is not (within 3 standard
  errors of 0, over the independent groups)."""
  rng = np.random.default_rng(0)
  seeds, rates, groups = range(6), [0.01 * (i + 1) for i in range(20)], range(200)
  table = [
    {"g": g, "learning_rate": lr, "seed": s, "loss": float(rng.normal())}
    for g in groups
    for lr in rates
    for s in seeds
  ]
  picks, _ = grids.held_out_rows(table, ("g",), "loss")
  held_out = [np.mean([row["loss"] for row in picks[(g,)].values()]) for g in groups]
  medians = grids.seed_medians(table, ("g", "learning_rate"), "loss")
  in_sample = [row["loss"] for row in grids.best_rows(medians, "g", "loss").values()]
  assert all(len(picks[(g,)]) == len(seeds) for g in groups)
  assert abs(np.mean(held_out)) < 3 * np.std(held_out, ddof=1) / np.sqrt(len(groups))
  assert np.mean(in_sample) < -0.5  # E[min of 20 medians of 6 normals] is about -0.8


def test_held_out_rows_search_several_columns_together():
  """Rate × block size: the best combination of the other seeds' (0.2, 4); another block size
  at the middle rate (0.2, 1) is an edge of the block sizes though not of the rates."""
  table = [
    {"m": "cd", "learning_rate": lr, "k": k, "seed": s, "loss": v + s}
    for lr, k, v in [(0.1, 1, 5), (0.2, 1, 3), (0.4, 1, 6), (0.1, 4, 4), (0.2, 4, 1), (0.4, 4, 7)]
    for s in (0, 1, 2)
  ] + [{"m": "cd", "learning_rate": 0.2, "k": 8, "seed": s, "loss": 9.0} for s in (0, 1, 2)]
  picks, at_edge = grids.held_out_rows(table, ("m",), "loss", ("learning_rate", "k"))
  assert {s: (r["learning_rate"], r["k"]) for s, r in picks[("cd",)].items()} == dict.fromkeys(
    (0, 1, 2), (0.2, 4)
  )
  assert at_edge == {("cd",): False}
  worse = [{**r, "loss": r["loss"] + 10 * (r["k"] == 4)} for r in table]
  picks, at_edge = grids.held_out_rows(worse, ("m",), "loss", ("learning_rate", "k"))
  assert {(r["learning_rate"], r["k"]) for r in picks[("cd",)].values()} == {(0.2, 1)}
  assert at_edge == {("cd",): True}


def test_held_out_rows_leave_out_a_group_with_one_seed():
  table = [{"g": 0, "learning_rate": lr, "seed": 3, "loss": lr} for lr in (0.1, 0.2, 0.3)]
  assert grids.held_out_rows(table, ("g",), "loss") == ({}, {})


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_train_vmapped_matches_each_member_trained_alone():
  """Every member of the vmapped grid ends where `train.make_train_fn` alone takes it."""
  digits = data_lib.load_digits()
  data = data_lib.Dataset(digits.x_train[:200], digits.y_train[:200], digits.x_test, digits.y_test)
  model = models.functional(models.build_model("mlp", 64, 10, width=8, depth=1, seed=3))
  constructor = optax.inject_hyperparams(optim.momentum)
  options = {"steps": 12, "batch_size": 32, "eval_every": 4}
  mus, rates = jnp.asarray([0.0, 0.9]), jnp.asarray([0.1, 0.03])
  states, histories = grids.train_vmapped(
    model,
    lambda mu, lr: constructor(learning_rate=lr, momentum=mu),
    [mus, rates],
    data,
    seed=5,
    **options,
  )
  for i, (mu, lr) in enumerate(zip(mus, rates, strict=True)):
    train_fn = train.make_train_fn(model, optim.momentum(lr, mu), **options)
    alone, history = jax.jit(train_fn)(model.params, model.model_state, data, jax.random.key(5))
    np.testing.assert_allclose(histories["train_loss"][i], history["train_loss"], rtol=1e-5)
    for ours, theirs in zip(
      jax.tree.leaves(states.params), jax.tree.leaves(alone.params), strict=True
    ):
      np.testing.assert_allclose(ours[i], theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_train_vmapped_over_seeds_matches_each_seed_trained_alone():
  """Seed i's members end where `train_vmapped` takes them from seed i's own initialization and
  minibatch order: the seeds neither share an initialization nor a minibatch order."""
  digits = data_lib.load_digits()
  data = data_lib.Dataset(digits.x_train[:200], digits.y_train[:200], digits.x_test, digits.y_test)
  seeds = [3, 11]
  seed_models = [
    models.functional(models.build_model("mlp", 64, 10, width=8, depth=1, seed=s)) for s in seeds
  ]
  constructor = optax.inject_hyperparams(optim.sgd)
  options = {"steps": 12, "batch_size": 32, "eval_every": 4}
  rates = jnp.asarray([0.1, 0.3, 1.0])
  states, histories = grids.train_vmapped_over_seeds(
    seed_models, lambda lr: constructor(learning_rate=lr), [rates], data, seeds=seeds, **options
  )
  assert histories["train_loss"].shape == (2, 3, 4)
  for i, (seed, model) in enumerate(zip(seeds, seed_models, strict=True)):
    alone_states, alone = grids.train_vmapped(
      model, lambda lr: constructor(learning_rate=lr), [rates], data, seed=seed, **options
    )
    np.testing.assert_allclose(histories["train_loss"][i], alone["train_loss"], rtol=1e-5)
    for ours, theirs in zip(
      jax.tree.leaves(states.params), jax.tree.leaves(alone_states.params), strict=True
    ):
      np.testing.assert_allclose(ours[i], theirs, rtol=1e-5, atol=1e-6)
  assert not np.allclose(histories["train_loss"][0], histories["train_loss"][1])


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_train_vmapped_over_seeds_trains_each_seed_on_its_own_data():
  """With a list of datasets, seed i's members train on dataset i: they end where `train_vmapped`
  takes them on that dataset alone."""
  digits = data_lib.load_digits()
  datasets = [
    data_lib.Dataset(
      digits.x_train[a : a + 100], digits.y_train[a : a + 100], digits.x_test, digits.y_test
    )
    for a in (0, 100)
  ]
  model = models.functional(models.build_model("mlp", 64, 10, width=8, depth=1, seed=2))
  constructor = optax.inject_hyperparams(optim.sgd)
  options = {"steps": 10, "batch_size": 100, "eval_every": 5}
  rates = jnp.asarray([0.1, 0.5])
  states, histories = grids.train_vmapped_over_seeds(
    [model, model],
    lambda lr: constructor(learning_rate=lr),
    [rates],
    datasets,
    seeds=[4, 4],
    **options,
  )
  for i, data in enumerate(datasets):
    alone_states, alone = grids.train_vmapped(
      model, lambda lr: constructor(learning_rate=lr), [rates], data, seed=4, **options
    )
    np.testing.assert_allclose(histories["train_loss"][i], alone["train_loss"], rtol=1e-5)
    for ours, theirs in zip(
      jax.tree.leaves(states.params), jax.tree.leaves(alone_states.params), strict=True
    ):
      np.testing.assert_allclose(ours[i], theirs, rtol=1e-5, atol=1e-6)
  assert not np.allclose(histories["train_loss"][0], histories["train_loss"][1])
  with pytest.raises(ValueError, match="2 datasets for 1 seeds"):
    grids.train_vmapped_over_seeds([model], optim.sgd, [rates], datasets, seeds=[0])


def test_train_vmapped_over_seeds_wants_one_model_per_seed():
  model = models.functional(models.build_model("mlp", 64, 10, width=8, depth=1, seed=0))
  with pytest.raises(ValueError, match="1 models for 2 seeds"):
    grids.train_vmapped_over_seeds([model], optim.sgd, [jnp.ones(1)], None, seeds=[0, 1])


def test_seed_rows_at_the_best_median_are_in_seed_order():
  table = [
    {"opt": "a", "learning_rate": 0.1, "seed": 1, "loss": 3.0},
    {"opt": "a", "learning_rate": 0.3, "seed": 1, "loss": 1.0},
    {"opt": "a", "learning_rate": 0.3, "seed": 0, "loss": 2.0},
    {"opt": "a", "learning_rate": 0.1, "seed": 0, "loss": 0.5},
  ]
  _, best, _ = grids.best_by_median(table, ("opt",), "loss")
  rows = grids.seed_rows_at(table, best, ("opt",))
  assert [(r["learning_rate"], r["seed"]) for r in rows[("a",)]] == [(0.3, 0), (0.3, 1)]


def test_curves_over_column_are_the_medians_per_label_in_increasing_column():
  """A grid listed as [1.0, 0.1] is drawn from 0.1 to 1.0 (in row order a U became a zig-zag)."""
  medians = [
    {"net": "a", "learning_rate": 1.0, "steps": 10.0},
    {"net": "b", "learning_rate": 0.1, "steps": None},
    {"net": "a", "learning_rate": 0.1, "steps": 30.0},
  ]
  series = grids.curves_over_column(medians, lambda row: row["net"], "steps")
  assert series == {"a": ([0.1, 1.0], [30.0, 10.0]), "b": ([0.1], [None])}


def test_history_at_rate_keeps_the_members_of_the_best_rate_only():
  table = [
    {"member": "m0", "learning_rate": 0.1, "seed": 0},
    {"member": "m1", "learning_rate": 0.3, "seed": 0},
    {"member": "m2", "learning_rate": 0.3, "seed": 1},
  ]
  curves = {m: ([0, 10], [1.0 + i, 0.5 + i]) for i, m in enumerate(("m0", "m1", "m2"))}
  rows = grids.history_at_rate(table, {"learning_rate": 0.3}, curves, "x", "acc", lambda v: -v)
  assert rows == [
    {"member": "x seed 0", "step": 0, "metric": "acc", "value": -2.0},
    {"member": "x seed 0", "step": 10, "metric": "acc", "value": -1.5},
    {"member": "x seed 1", "step": 0, "metric": "acc", "value": -3.0},
    {"member": "x seed 1", "step": 10, "metric": "acc", "value": -2.5},
  ]
  assert grids.history_at_rate(table, None, curves, "x", "acc") == []


def test_could_flip_names_the_side_a_wider_grid_could_move_across_one():
  """A wider grid only lowers a best loss: a lower numerator lowers the ratio, a lower denominator
  raises it. Which side's edges matter depends on the claim and on whether it holds now."""
  num, den = ["cd_k1", "cd_k10"], ["gd"]
  assert grids.could_flip(0.9, num, den, claim="below") == den  # holds: only GD could break it
  assert grids.could_flip(1.0, num, den, claim="below") == num  # fails: a block method could fix it
  assert grids.could_flip(1.2, num, den, claim="below") == num
  assert (
    grids.could_flip(1.2, num, den, claim="above") == num
  )  # holds: the numerator could break it
  assert (
    grids.could_flip(1.0, num, den, claim="above") == den
  )  # fails: the denominator could fix it
  for unknown in (None, float("nan")):
    assert grids.could_flip(unknown, num, den, claim="above") == num + den
  with pytest.raises(ValueError, match="claim='less'"):
    grids.could_flip(0.5, num, den, claim="less")
