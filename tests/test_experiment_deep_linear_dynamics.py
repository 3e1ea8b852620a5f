"""The deep linear dynamics experiment (Saxe et al. 2013): its quick config, its claims."""

import math
import sys

import jax
import ml_collections
import numpy as np
import pytest
from quick_runs import CONFIGS, quick_run_fixtures, refused_field

from jaxopt_study import data as data_lib
from jaxopt_study import models, registry
from jaxopt_study.config import load_config
from jaxopt_study.experiment import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Results, verdict

NAME = "deep_linear_dynamics"
finished_run, summary = quick_run_fixtures(NAME)
EXPERIMENT = registry.load(NAME)
MODULE = sys.modules[type(EXPERIMENT).__module__]


@pytest.mark.slow  # runs the quick config end to end
def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 5


def test_full_config_follows_saxe_et_al_protocol():
  """Hidden layers 16× wider than the input/output, ≥ 8 rates per decade around each depth's
  1/depth-scaled best, ≥ 3 seeds: the depth comparison of Saxe et al. (2013) §4."""
  config = load_config(CONFIGS / f"{NAME}.py")
  EXPERIMENT.check(config)
  assert config.width >= 16 * len(config.depth_singular_values)
  assert len(set(config.seeds)) >= 3
  for depth in config.depths:
    rates = np.asarray(MODULE.learning_rates(config, depth))
    assert rates[0] * depth == pytest.approx(config.rate_times_depth[0])
    assert rates[-1] * depth == pytest.approx(config.rate_times_depth[1])
    assert np.max(np.log10(rates[1:] / rates[:-1])) <= 1 / 8 + 1e-12  # ≥ 8 per decade


@pytest.mark.parametrize("per_decade", [8, 9, 10])
def test_rate_grid_has_at_least_the_points_per_decade_asked(per_decade):
  config = ml_collections.ConfigDict({"rate_times_depth": [0.01, 0.75]})
  config.rates_per_decade = per_decade
  rates = np.asarray(MODULE.learning_rates(config, 4))
  decades = math.log10(0.75 / 0.01)
  assert (len(rates) - 1) / decades >= per_decade
  np.testing.assert_allclose(np.diff(np.log(rates)), np.log(rates[1] / rates[0]), rtol=1e-9)


def _depth_table(steps: dict) -> list[dict]:
  """Two mode rows (for the fit) and the runs of a made-up search: steps[(init, depth, rate)] is
  the list of the seeds' steps (None: not reached)."""
  table = [
    {"part": "modes", "singular_value": s, "half_time": 100 / s, "half_time_theory": 100 / s}
    for s in (1.0, 2.0, 4.0)
  ]
  return table + [
    {"part": "run", "init": init, "depth": depth, "learning_rate": rate, "seed": seed}
    | {"steps_to_threshold": value}
    for (init, depth, rate), values in steps.items()
    for seed, value in enumerate(values)
  ]


def _summary(steps: dict) -> dict:
  config = ml_collections.ConfigDict({"depths": [2, 8], "depth_steps": 100, "seeds": [0, 1, 2]})
  config.depth_singular_values = [2.0, 1.0]
  config.rates_per_decade = 8
  summary = EXPERIMENT.summarize(config, Results(_depth_table(steps), []))
  return summary | {"verdicts": EXPERIMENT.verdicts(summary)}


def _search(orthogonal_deep: dict, gaussian_deep: dict) -> dict:
  """Depth 2 best at its grid's middle rate for both inits (10 steps); the deep depth as given."""
  shallow = {0.1: [30, 30, 30], 0.2: [12, 10, 9], 0.4: [None, None, 50]}
  steps = {(init, 2, rate): v for init in ("orthogonal", "gaussian") for rate, v in shallow.items()}
  steps |= {("orthogonal", 8, rate): v for rate, v in orthogonal_deep.items()}
  return steps | {("gaussian", 8, rate): v for rate, v in gaussian_deep.items()}


def test_depth_ratio_compares_seed_medians_at_each_depths_best_rate():
  """One seed's lucky run does not pick the rate: the median over seeds does, and a rate whose
  median is censored (two of three seeds never reach the threshold) is never the best."""
  summary = _summary(
    _search(
      {0.01: [40, 40, 40], 0.02: [15, 15, 1], 0.04: [14, 16, 17], 0.08: [60, 60, 60]},
      {0.01: [90, 80, 85], 0.02: [2, None, None], 0.04: [None] * 3, 0.08: [None] * 3},
    )
  )
  assert summary["steps_to_threshold_orthogonal"] == {"2": 10, "8": 15}
  assert summary["best_learning_rate_orthogonal"] == {"2": 0.2, "8": 0.02}
  assert summary["depth_time_ratio_orthogonal"] == pytest.approx(1.5)
  assert summary["best_learning_rate_gaussian"]["8"] == 0.01  # 0.02's median is censored
  assert summary["depth_time_ratio_gaussian"] == pytest.approx(8.5)
  assert summary["best_rate_at_grid_edge_gaussian"] == [8]  # 0.01: the bottom of its grid
  assert summary["verdicts"]["depth_time_ratio_orthogonal"] == REPRODUCED
  assert summary["verdicts"]["depth_time_ratio_gaussian"] == INCONCLUSIVE  # refused at the edge


def test_a_best_rate_at_the_top_of_its_grid_is_refused_and_censoring_bounds_the_ratio():
  """The deep orthogonal net's best rate is its grid's largest (the optimum may lie beyond):
  inconclusive, whatever the number; a deep Gaussian net that never reaches the threshold counts
  as the step budget (a lower bound) and is listed as censored."""
  summary = _summary(
    _search(
      {0.01: [80, 80, 80], 0.02: [40, 40, 40], 0.04: [20, 20, 20], 0.08: [11, 11, 11]},
      {0.01: [None] * 3, 0.02: [None] * 3, 0.04: [None] * 3, 0.08: [None] * 3},
    )
  )
  assert summary["depth_time_ratio_orthogonal"] == pytest.approx(1.1)
  assert summary["depth_time_ratio_orthogonal_at_grid_edge"] is True
  assert summary["verdicts"]["depth_time_ratio_orthogonal"] == INCONCLUSIVE
  assert summary["depth_time_ratio_gaussian_censored"] == [8]
  assert summary["depth_time_ratio_gaussian"] == pytest.approx(10.0)  # budget 100 / 10
  assert summary["depth_time_ratio_gaussian_lower_bound"] == pytest.approx(10.0)
  assert summary["verdicts"]["depth_time_ratio_gaussian"] == REPRODUCED  # even the bound is > 1
  slower = _summary(
    _search(
      {0.01: [80, 80, 80], 0.02: [40, 40, 40], 0.04: [25, 25, 25], 0.08: [30, 30, 30]},
      {0.01: [None] * 3, 0.02: [None] * 3, 0.04: [None] * 3, 0.08: [None] * 3},
    )
  )
  assert slower["verdicts"]["depth_time_ratio_orthogonal"] == NOT_REPRODUCED  # 2.5 ≥ 2


def test_a_censored_ratio_under_its_threshold_decides_nothing():
  """The deep orthogonal net never reaches the threshold in 100 steps and the shallow one takes
  60: the time ratio is at least 100/60 < 2, which neither confirms nor refutes "below 2"."""
  shallow = {0.1: [90, 90, 90], 0.2: [60, 60, 60], 0.4: [None, None, 80]}
  steps = {("orthogonal", 2, rate): v for rate, v in shallow.items()}
  steps |= {("gaussian", 2, rate): v for rate, v in shallow.items()}
  steps |= {(init, 8, r): [None] * 3 for init in ("orthogonal", "gaussian") for r in (0.01, 0.02)}
  summary = _summary(steps)
  assert summary["depth_time_ratio_orthogonal_lower_bound"] == pytest.approx(100 / 60)
  assert summary["depth_time_ratio_orthogonal"] is None
  assert summary["verdicts"]["depth_time_ratio_orthogonal"] == INCONCLUSIVE
  assert summary["verdicts"]["depth_time_ratio_gaussian"] == REPRODUCED  # ≥ 100/60 > 1


@pytest.mark.slow  # runs the quick config end to end
def test_mode_half_time_grows_as_inverse_singular_value(summary):
  """Saxe et al. eq. 7: t_half = τ/(2s) ln((s − u₀)/u₀), linear in 1/s up to the logarithm.

  From a small random (not decoupled) init, u₀ is only the mode's initial projection, so the
  theory's slope is matched within a factor 2, and the linear fit explains most of the variance.
  """
  assert summary["mode_time_vs_inverse_s_slope"] > 0
  assert summary["mode_time_vs_inverse_s_r_squared"] > 0.8
  ratio = summary["mode_time_vs_inverse_s_slope"] / summary["mode_time_vs_inverse_s_slope_theory"]
  assert 0.5 < ratio < 2.0


@pytest.mark.slow  # trains a two-layer net for 60 steps, compiled
def test_mode_strengths_follow_full_batch_gradient_descent():
  """Part (a) descends ½ mean ‖x W₁W₂ − y‖² on the whole training set (`train.descend`): its
  u_α(t) = v_αᵀ W₁W₂ u_α match gradient descent on the same kernels written out in float64,
  through the sigmoid of both modes (float32 rounding only)."""
  rate, steps, s = 0.1, 60, [3.0, 1.0]
  config = ml_collections.ConfigDict(
    {"seed": 0, "dim": 4, "singular_values": s, "mode_init_scale": 0.05}
    | {"mode_learning_rate": rate, "mode_steps": steps}
  )
  data = data_lib.whitened_linear_regression(jax.random.key(0), 16, 4, 4, s)
  path, _, _ = MODULE.mode_strengths(config, data)
  net = models.build_model(
    "deep_linear", 4, 4, seed=0, width=4, depth=2, init="glorot_normal", init_scale=0.05
  )
  w1, w2 = (np.asarray(layer.kernel[...], np.float64) for layer in net.layers)
  x, y = np.asarray(data.x_train, np.float64), np.asarray(data.y_train, np.float64)
  u, _, vt = np.linalg.svd(np.asarray(data.y_train.T @ data.x_train) / len(x))
  left, right = u[:, :2].astype(np.float64), vt[:2].T.astype(np.float64)
  expected = []
  for _ in range(steps + 1):
    expected.append(np.einsum("ia,ij,ja->a", right, w1 @ w2, left))
    residual = (x @ w1 @ w2 - y) / len(x)
    w1, w2 = w1 - rate * x.T @ residual @ w2.T, w2 - rate * (x @ w1).T @ residual
  assert path[-1] == pytest.approx(s, rel=0.01)  # both modes learned
  np.testing.assert_allclose(path, expected, rtol=1e-5)


@pytest.mark.slow  # runs the quick config end to end
def test_depth_slows_gaussian_init_more_than_orthogonal(summary):
  """Saxe et al. §4: at each depth's best rate (bracketed by its grid, medians over 3 seeds),
  orthogonal init learns in a time that grows less with depth than a scaled Gaussian init's
  (the paper: not at all; the full config's verdict says whether it stays under 2×)."""
  assert summary["num_seeds"] >= 3 and summary["rates_per_decade"] >= 8
  for init in ("orthogonal", "gaussian"):
    assert summary[f"best_rate_at_grid_edge_{init}"] == []
    assert not summary[f"depth_time_ratio_{init}_censored"]
  assert summary["depth_time_ratio_gaussian"] > 1.5 * summary["depth_time_ratio_orthogonal"]


@pytest.mark.slow  # runs the quick config end to end
def test_verdicts_judge_every_claim(summary):
  """Gaussian init slows with depth (reproduced); orthogonal init is judged flat if its time less
  than doubles, and the mode slope if within 20% of the theory's."""
  assert summary["mode_time_slope_rel_error"] == pytest.approx(
    abs(
      summary["mode_time_vs_inverse_s_slope"] / summary["mode_time_vs_inverse_s_slope_theory"] - 1
    )
  )
  assert summary["verdicts"] == {
    "mode_time_vs_inverse_s_slope": verdict(summary["mode_time_slope_rel_error"] < 0.2),
    "depth_time_ratio_orthogonal": verdict(summary["depth_time_ratio_orthogonal"] < 2),
    "depth_time_ratio_gaussian": verdict(summary["depth_time_ratio_gaussian"] > 1),
  }


@pytest.mark.slow  # starts the CLI
@pytest.mark.parametrize(
  ("field", "value"),
  [
    ("singular_values", [1.0]),
    ("depths", [2]),
    ("loss_threshold", 1.5),
    ("num_examples", 2),
    ("width", 8),  # not ≫ the 4 outputs
    ("seeds", [0, 1]),
    ("seeds", [0, 0, 1]),
    ("rates_per_decade", 4),
    ("rate_times_depth", [0.5, 0.1]),
  ],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
