"""Random and coarse-to-fine search (`sweep.search`): the draws against their analytic
distributions, joint points in a sweep, the narrowing rule by hand, and a drawn member against
the same member trained alone."""

import functools
import math

import ml_collections
import numpy as np
import pytest
import scipy.stats

from jaxopt_study import data as data_lib
from jaxopt_study import optim, sweep, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import ConfigError
from jaxopt_study.sweep import search

NUM_DRAWS = 20_000
# Kolmogorov's distribution: P(√n D > 1.949) = 0.001, so a correct sampler fails 1 time in 1000.
KS_CRITICAL = 1.949 / math.sqrt(NUM_DRAWS)


def drawn(spec, num=NUM_DRAWS, seed=0) -> np.ndarray:
  """`num` values of one sampled axis, through `sweep.sample`."""
  ((key, points),) = sweep.sample({"x": spec}, num, seed).items()
  assert key == ("x",)
  return np.asarray([p[0] for p in points])


def test_log_uniform_draws_follow_their_cdf():
  """F(x) = log(x/low) / log(high/low) on [low, high]: KS distance and three quantiles."""
  low, high = 1e-4, 1.0
  x = drawn(sweep.log_uniform(low, high))
  assert x.min() >= low and x.max() <= high
  ks = scipy.stats.kstest(x, lambda t: np.log(t / low) / np.log(high / low))
  assert ks.statistic < KS_CRITICAL
  for q in (0.1, 0.5, 0.9):  # the q-quantile is low (high/low)^q: 1e-3.6, 1e-2, 1e-0.4
    np.testing.assert_allclose(np.log10(np.quantile(x, q)), -4 + 4 * q, atol=0.05)
  # the log is uniform: mean and variance of log10 x are −2 and 4²/12
  np.testing.assert_allclose(np.log10(x).mean(), -2.0, atol=0.04)
  np.testing.assert_allclose(np.log10(x).var(), 16 / 12, rtol=0.03)


def test_uniform_draws_follow_their_cdf():
  x = drawn(sweep.uniform(-0.5, 2.0), seed=3)
  assert x.min() >= -0.5 and x.max() <= 2.0
  assert scipy.stats.kstest(x, scipy.stats.uniform(-0.5, 2.5).cdf).statistic < KS_CRITICAL
  np.testing.assert_allclose(np.quantile(x, [0.25, 0.75]), [0.125, 1.375], atol=0.03)


def test_choice_draws_each_value_equally_often():
  values = [16, 32, 64, 128, 256]
  x = drawn(sweep.choice(values), seed=1)
  counts = np.asarray([(x == v).sum() for v in values])
  assert counts.sum() == NUM_DRAWS
  # binomial counts: each within 4 standard deviations of n/5
  std = math.sqrt(NUM_DRAWS * 0.2 * 0.8)
  assert np.all(np.abs(counts - NUM_DRAWS / 5) < 4 * std)
  assert scipy.stats.chisquare(counts).pvalue > 1e-3


def test_numpy_scalars_are_numbers():
  """np.float32 and np.int64 bounds and choices (values read from an array) were refused as "not
  a finite number", though log_uniform took them; choices come back as Python numbers."""
  assert sweep.uniform(np.float32(0.0), np.int64(1)) == sweep.uniform(0.0, 1.0)
  chosen = sweep.choice(list(np.arange(1, 4)))
  assert chosen.values == (1, 2, 3) and all(type(v) is int for v in chosen.values)
  with pytest.raises(ValueError, match=r"np.float32\(nan\) is not a finite number"):
    sweep.choice([np.float32(0.5), np.float32("nan")])


def test_axes_are_drawn_jointly_and_independently():
  """One point per member: B distinct values of every axis (not √B as a grid), uncorrelated."""
  axes = {"learning_rate": sweep.log_uniform(1e-4, 1.0), "b1": sweep.uniform(0.0, 0.9)}
  ((key, points),) = sweep.sample(axes, NUM_DRAWS, 7).items()
  assert key == ("learning_rate", "b1") and len(points) == NUM_DRAWS
  lr, b1 = np.asarray(points).T
  assert len(set(lr)) == len(set(b1)) == NUM_DRAWS
  assert abs(np.corrcoef(np.log(lr), b1)[0, 1]) < 4 / math.sqrt(NUM_DRAWS)


def test_the_same_seed_gives_the_same_points_and_budgets_nest():
  axes = {"learning_rate": sweep.log_uniform(1e-3, 1.0), "momentum": sweep.choice([0.0, 0.9])}
  first, again = sweep.sample(axes, 16, 5), sweep.sample(axes, 16, 5)
  assert first == again
  assert sweep.sample(axes, 16, 6) != first
  key = ("learning_rate", "momentum")
  assert sweep.sample(axes, 64, 5)[key][:16] == first[key]


def test_draws_are_the_quantile_functions_of_numpys_uniforms():
  """An independent draw: u from the same PCG64 stream, x = low (high/low)^u, low + u (high −
  low) and values[⌊u k⌋]."""
  axes = {
    "a": sweep.log_uniform(0.01, 10.0),
    "b": sweep.uniform(1.0, 3.0),
    "c": sweep.choice([5, 7, 9]),
  }
  points = sweep.sample(axes, 50, 11)[("a", "b", "c")]
  u = np.random.default_rng(11).random((50, 3))
  a, b, c = (np.asarray(column) for column in zip(*points, strict=True))
  np.testing.assert_allclose(a, 0.01 * 1000.0 ** u[:, 0], rtol=1e-12)
  np.testing.assert_allclose(b, 1 + 2 * u[:, 1], rtol=1e-12)
  np.testing.assert_array_equal(c, np.asarray([5, 7, 9])[(u[:, 2] * 3).astype(int)])


def test_listed_axes_cross_the_points_in_a_sweep():
  """`sweep.check` takes a sample: each point with each seed, the point's values together."""
  problem = tiny_problem()
  axes = sweep.sample(
    {
      "learning_rate": sweep.log_uniform(1e-3, 1.0),
      "momentum": sweep.uniform(0.0, 0.9),
      "seed": [0, 1],
    },
    3,
    0,
  )
  assert list(axes) == [("learning_rate", "momentum"), "seed"]
  plan = sweep.check(problem, momentum_sgd, axes, steps=4, eval_every=2, batch_size=16)
  points = axes[("learning_rate", "momentum")]
  got = [(m.values["learning_rate"], m.values["momentum"], m.values["seed"]) for m in plan.members]
  assert got == [(*p, s) for p in points for s in (0, 1)]
  assert plan.members[3].hyperparams == {"learning_rate": points[1][0], "momentum": points[1][1]}


def test_grid_of_the_same_space_is_cell_centres():
  axes = {
    "learning_rate": sweep.log_uniform(1e-4, 1.0),
    "b1": sweep.uniform(0.0, 0.8),
    "c": sweep.choice([1, 2]),
    "seed": [3],
  }
  grid = sweep.as_grid(axes, 4)
  np.testing.assert_allclose(np.log10(grid["learning_rate"]), [-3.5, -2.5, -1.5, -0.5])
  np.testing.assert_allclose(grid["b1"], [0.1, 0.3, 0.5, 0.7])
  assert grid["c"] == [1, 2] and grid["seed"] == [3]


@pytest.mark.parametrize(
  ("make", "culprit"),
  [
    (lambda: sweep.log_uniform(0.0, 1.0), "log_uniform: low=0.0 must be finite and > 0"),
    (lambda: sweep.log_uniform(1.0, 1.0), "log_uniform: low=1.0 must be < high=1.0"),
    (lambda: sweep.log_uniform(1e-3, float("inf")), "high=inf"),
    (lambda: sweep.uniform(1.0, 0.0), "uniform: low=1.0 must be < high=0.0"),
    (lambda: sweep.uniform(float("nan"), 1.0), "uniform: low=nan must be a finite number"),
    (lambda: sweep.uniform(True, 2.0), "uniform: low=True must be a finite number"),
    (lambda: sweep.choice([]), "choice: values=[] must be a non-empty list"),
    (lambda: sweep.choice("ab"), "choice: values='ab' must be a non-empty list"),
    (lambda: sweep.choice([1, 2, 1]), "a value is repeated"),
    (lambda: sweep.choice([1, "a"]), "'a' is not a finite number"),
    (lambda: sweep.sample({"lr": [0.1, 1.0]}, 4, 0), "sample: no axis is sampled"),
    (lambda: sweep.sample({"lr": sweep.uniform(0, 1)}, 0, 0), "sample: num_samples=0"),
    (lambda: sweep.sample({"lr": sweep.uniform(0, 1)}, 4, -1), "sample: seed=-1"),
    (lambda: sweep.sample([("lr", 1)], 4, 0), "sample: axes=[('lr', 1)] must map"),
    (lambda: sweep.as_grid({"lr": sweep.uniform(0, 1)}, 0), "as_grid: per_axis=0"),
    (lambda: search.from_config({"normal": [0, 1]}), "'normal' is not a sampled axis"),
    (lambda: search.from_config({"uniform": [0, 1, 2]}), "uniform: [0, 1, 2] must be [low, high]"),
    (lambda: search.from_config([0.1, 1.0]), "a sampled axis is one of"),
  ],
)
def test_bad_specs_are_refused_with_a_clear_message(make, culprit):
  with pytest.raises(ValueError, match=None) as raised:
    make()
  assert culprit in str(raised.value)


@pytest.mark.parametrize(
  ("axes", "culprit"),
  [
    ({"learning_rate": sweep.log_uniform(1e-3, 1.0)}, "draw its values first with sweep.sample"),
    ({("learning_rate", "momentum"): [(0.1, 0.5), (0.2,)]}, "must be a tuple of 2 values"),
    ({("learning_rate", "momentum"): [(0.1, 0.5)], "momentum": [0.9]}, "'momentum' is given twice"),
    ({("learning_rate", "learning_rate"): [(0.1, 0.2)]}, "a name is repeated"),
    ({("learning_rate", "beta"): [(0.1, 0.5)]}, "unknown sweep axis 'beta'"),
    (
      {("learning_rate", "momentum"): [(0.1, 0.5), (0.2, 1.5)]},
      "sweep axis ('learning_rate', 'momentum') at (0.2, 1.5): momentum: momentum=1.5 must be",
    ),
    ({("learning_rate", "momentum"): [(0.1, float("nan"))]}, "axis 'momentum': momentum=nan"),
    ({("learning_rate", "seed"): [(0.1, -1)]}, "seed=-1"),
    ({(): [()]}, "an axis is a name, or a tuple of names"),
  ],
)
def test_bad_joint_axes_are_refused_before_compiling(axes, culprit):
  with pytest.raises(ValueError) as raised:
    sweep.check(tiny_problem(), momentum_sgd, axes, steps=4, eval_every=2, batch_size=16)
  assert culprit in str(raised.value)


def test_a_joint_axis_may_repeat_a_point():
  """Random draws of a choice axis repeat; each draw is its own member."""
  axes = {("learning_rate", "momentum"): [(0.1, 0.5), (0.1, 0.5)]}
  plan = sweep.check(tiny_problem(), momentum_sgd, axes, steps=4, eval_every=2, batch_size=16)
  assert [m.name for m in plan.members] == ["m0000", "m0001"]


def rows_of(lrs, b1s, errors):
  return [{"learning_rate": a, "b1": b, "err": e} for a, b, e in zip(lrs, b1s, errors, strict=True)]


def test_narrow_by_hand():
  """Top 3 of 5 by error: learning rates 1e-3, 1e-2, 3e-3 span log10 [−3, −2], widened 2× about
  −2.5 to [−3.5, −1.5]; b1 0.2, 0.4, 0.3 span [0.2, 0.4], widened to [0.1, 0.5]."""
  axes = {"learning_rate": sweep.log_uniform(1e-4, 1.0), "b1": sweep.uniform(0.0, 0.9), "seed": [0]}
  rows = rows_of(
    [0.5, 1e-3, 1e-2, 1e-4, 3e-3], [0.8, 0.2, 0.4, 0.0, 0.3], [0.3, 0.02, 0.05, 0.6, 0.03]
  )
  new = sweep.narrow(axes, rows, metric="err", top_k=3, widen=2.0)
  assert isinstance(new["learning_rate"], search.LogUniform)
  np.testing.assert_allclose(
    np.log10([new["learning_rate"].low, new["learning_rate"].high]), [-3.5, -1.5], rtol=1e-12
  )
  np.testing.assert_allclose([new["b1"].low, new["b1"].high], [0.1, 0.5], rtol=1e-12)
  assert new["seed"] == [0]
  # widen 1 is the span itself; widen 4 over the top 2 (1e-3, 3e-3): log10 span [−3, −2.523],
  # centre −2.761, half-width 4·0.477/2 = 0.954 -> [−3.716, −1.807], inside [−4, 0]
  assert sweep.narrow(axes, rows, metric="err", top_k=3, widen=np.float32(2.0)) == new
  tight = sweep.narrow(axes, rows, metric="err", top_k=3, widen=1.0)
  assert (tight["learning_rate"].low, tight["learning_rate"].high) == pytest.approx((1e-3, 1e-2))
  wide = sweep.narrow(axes, rows, metric="err", top_k=2, widen=4.0)
  centre, half = (-3 + math.log10(3e-3)) / 2, 2 * (math.log10(3e-3) + 3)
  np.testing.assert_allclose(
    np.log10([wide["learning_rate"].low, wide["learning_rate"].high]),
    [centre - half, centre + half],
    rtol=1e-12,
  )


def test_a_maximized_metric_narrows_around_its_highest_values():
  """An accuracy (1 − the error of `test_narrow_by_hand`) with maximize=True narrows to the
  same axes as the error does; without it, around the worst members (as it once did silently
  for a metric in higher_is_better)."""
  axes = {"learning_rate": sweep.log_uniform(1e-4, 1.0), "b1": sweep.uniform(0.0, 0.9)}
  errors = [0.3, 0.02, 0.05, 0.6, 0.03]
  by_error = rows_of([0.5, 1e-3, 1e-2, 1e-4, 3e-3], [0.8, 0.2, 0.4, 0.0, 0.3], errors)
  by_accuracy = [row | {"err": 1 - row["err"]} for row in by_error]
  expected = sweep.narrow(axes, by_error, metric="err", top_k=3)
  assert sweep.narrow(axes, by_accuracy, metric="err", top_k=3, maximize=True) == expected
  assert sweep.narrow(axes, by_accuracy, metric="err", top_k=3) != expected
  order = [r["learning_rate"] for r in search.ranked(by_accuracy, "err", maximize=True)]
  assert order == [1e-3, 3e-3, 1e-2, 0.5, 1e-4]


def test_narrow_cuts_at_the_range_keeps_choices_and_ranks_diverged_last():
  axes = {"b1": sweep.uniform(0.0, 0.9), "c": sweep.choice([1, 2, 3, 4])}
  rows = [
    {"b1": 0.85, "c": 4, "err": 0.1},
    {"b1": 0.7, "c": 2, "err": 0.2},
    {"b1": 0.0, "c": 1, "err": float("nan")},  # diverged: never among the best
    {"b1": 0.1, "c": 3, "err": 0.9},
  ]
  new = sweep.narrow(axes, rows, metric="err", top_k=2, widen=3.0)
  # span [0.7, 0.85] widened 3× about 0.775: [0.55, 1.0], cut at 0.9
  assert (new["b1"].low, new["b1"].high) == pytest.approx((0.55, 0.9))
  assert new["c"] == search.Choice((2, 4))
  same = [{"b1": 0.3, "c": 1, "err": 0.1}, {"b1": 0.3, "c": 1, "err": 0.2}]
  assert sweep.narrow(axes, same, metric="err", top_k=2)["b1"] == axes["b1"]  # zero span: kept


def test_narrow_never_centres_on_diverged_members():
  """Two finite members among the top 3: the span is theirs (it spanned the diverged 0.8, 0.9
  and kept the whole range); one member flagged diverged with a finite metric is left out too;
  fewer than two usable members leave every axis as it was."""
  axes = {"lr": sweep.log_uniform(1e-4, 1.0), "c": sweep.choice([1, 2, 3])}
  rows = [
    {"lr": 1e-3, "c": 1, "loss": 0.1},
    {"lr": 2e-3, "c": 2, "loss": 0.2},
    {"lr": 0.9, "c": 3, "loss": float("nan")},
    {"lr": 0.8, "c": 3, "loss": float("inf")},
  ]
  new = sweep.narrow(axes, rows, metric="loss", top_k=3)
  np.testing.assert_allclose(
    np.log([new["lr"].low, new["lr"].high]),
    [np.log(1e-3) - np.log(2) / 2, np.log(2e-3) + np.log(2) / 2],
    rtol=1e-12,
  )
  assert new["c"] == search.Choice((1, 2))
  flagged = [{**rows[0], "diverged": True}, *rows[1:]]
  assert sweep.narrow(axes, flagged, metric="loss", top_k=3) == axes


@pytest.mark.parametrize(
  ("options", "culprit"),
  [
    ({"top_k": 1}, "top_k=1 must be an integer >= 2"),
    ({"top_k": 6}, "top_k=6 is more than the 5 members"),
    ({"widen": 0.5}, "widen=0.5 must be a finite number >= 1"),
    ({"metric": "loss"}, "metric 'loss' is not a column"),
  ],
)
def test_narrow_refuses_bad_arguments(options, culprit):
  axes = {"learning_rate": sweep.log_uniform(1e-4, 1.0), "b1": sweep.uniform(0.0, 0.9)}
  rows = rows_of([0.5, 1e-3, 1e-2, 1e-4, 3e-3], [0.8, 0.2, 0.4, 0.0, 0.3], [0.3] * 5)
  with pytest.raises(ValueError) as raised:
    sweep.narrow(axes, rows, **({"metric": "err"} | options))
  assert culprit in str(raised.value)


@pytest.mark.parametrize(
  ("options", "culprit"),
  [
    ({"metric": "final_test_accuracy"}, "metric='final_test_accuracy' must be one of"),
    ({"rounds": 0}, "rounds=0"),
    ({"seeds": [0, 0]}, "a seed is repeated"),
    ({"seed": 3}, "pass seeds"),
    ({"top_k": 5}, "top_k=5 is more than the 4 members"),
    ({"widen": float("inf")}, "widen=inf"),
  ],
)
def test_coarse_to_fine_refuses_bad_arguments_before_compiling(options, culprit):
  arguments = {
    "num_samples": 4,
    "rounds": 2,
    "metric": "final_test_error",
    "steps": 4,
    "eval_every": 2,
    "batch_size": 16,
  } | options
  axes = {"learning_rate": sweep.log_uniform(1e-3, 1.0), "momentum": sweep.uniform(0.0, 0.9)}
  with pytest.raises(ValueError) as raised:
    sweep.coarse_to_fine(tiny_problem(), momentum_sgd, axes, **arguments)
  assert culprit in str(raised.value)


def search_config(**fields) -> ml_collections.ConfigDict:
  config = {
    "seed": 0,
    "steps": 4,
    "batch_size": 16,
    "learning_rate": 0.1,
    "eval_every": 2,
    "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
    "model": {"name": "mlp", "width": 4, "depth": 1},
    "optimizer": {"name": "momentum", "momentum": 0.9},
    "sweep": {
      "learning_rate": {"log_uniform": [1e-3, 1.0]},
      "momentum": {"uniform": [0.0, 0.9]},
      "batch_size": [16, 32],
    },
    "search": {"num_samples": 5, "seed": 4},
  } | fields
  return ml_collections.ConfigDict(config)


def test_a_config_draws_its_sampled_axes():
  plan = sweep.check_config(search_config())
  points = sweep.sample(
    {"learning_rate": sweep.log_uniform(1e-3, 1.0), "momentum": sweep.uniform(0.0, 0.9)}, 5, 4
  )[("learning_rate", "momentum")]
  got = [
    (m.values["learning_rate"], m.values["momentum"], m.values["batch_size"]) for m in plan.members
  ]
  assert got == [(*p, b) for p in points for b in (16, 32)]


@pytest.mark.parametrize(
  ("fields", "culprit"),
  [
    ({"search": None}, "sweep.learning_rate is sampled: add a search block"),
    ({"search": {"seed": 1}}, "search.num_samples"),
    ({"search": {"num_samples": 3, "sed": 1}}, "search has no option sed"),
    ({"search": {"num_samples": 0}}, "search: sample: num_samples=0"),
    ({"sweep": {"learning_rate": [0.1, 0.2]}}, "search: the config's sweep has no sampled axis"),
    ({"sweep": {"learning_rate": {"log_uniform": [1.0, 0.1]}}}, "sweep.learning_rate: log_uniform"),
  ],
)
def test_bad_search_configs_are_refused(fields, culprit):
  with pytest.raises(ConfigError) as raised:
    sweep.check_config(search_config(**fields))
  assert culprit in str(raised.value)


@functools.cache
def tiny_problem() -> problem_lib.Problem:
  return problem_lib.builtin("mlp", data_lib.load_digits(), width=8, depth=1, activation="tanh")


def momentum_sgd(learning_rate, momentum):
  return optim.momentum(learning_rate, momentum=momentum)


@pytest.mark.slow  # trains a two-round search and a member alone
def test_coarse_to_fine_rounds_and_a_member_alone():
  """Two searches side by side, two rounds of 4 draws: round 0 is `sample(axes, 4, seed)`, round
  1 draws from `narrow` of the search's own round-0 rows, inside its bounds; a drawn member's
  history equals `train.train` of that member alone."""
  problem = tiny_problem()
  axes = {"learning_rate": sweep.log_uniform(1e-3, 1.0), "momentum": sweep.uniform(0.0, 0.9)}
  options = {"steps": 24, "eval_every": 8, "batch_size": 64}
  rounds = sweep.coarse_to_fine(
    problem,
    momentum_sgd,
    axes,
    num_samples=4,
    rounds=2,
    seeds=(3, 8),
    metric="final_test_loss",
    top_k=2,
    widen=1.5,
    **options,
  )
  first, second = rounds
  for seed in (3, 8):
    rows = [r for r in first.result.table if r["seed"] == seed]
    drawn_points = [(r["learning_rate"], r["momentum"]) for r in rows]
    assert drawn_points == sweep.sample(axes, 4, seed)[("learning_rate", "momentum")]
    narrowed = sweep.narrow(axes, rows, metric="final_test_loss", top_k=2, widen=1.5)
    assert second.axes[seed] == narrowed
    lr, momentum = narrowed["learning_rate"], narrowed["momentum"]
    assert (lr.high / lr.low) < 1e3 and momentum.high - momentum.low < 0.9
    for row in (r for r in second.result.table if r["seed"] == seed):
      assert lr.low <= row["learning_rate"] <= lr.high
      assert momentum.low <= row["momentum"] <= momentum.high

  row = second.result.table[5]
  alone = train.train(
    problem, momentum_sgd(row["learning_rate"], row["momentum"]), seed=row["seed"], **options
  )
  ours = {
    (r["metric"], r["step"]): r["value"]
    for r in second.result.history
    if r["member"] == row["member"]
  }
  for metric in train.METRICS:
    expected = np.asarray(alone.history[metric])
    got = np.asarray([ours[(metric, int(s))] for s in alone.history["step"]])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
