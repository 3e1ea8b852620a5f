"""The failure modes on the quick config, each against what the lecture and the book state, with
independent references where one exists (the class prior's entropy, float64 loops, Adam's closed
form), and the verdicts judged by hand from the numbers."""

import chex
import jax
import numpy as np
import pytest
from helpers import deciding_settings
from landscape_helpers import assert_refused, load_experiment, run_config, run_quick, summary

from jaxopt_study import experiment, registry
from jaxopt_study.experiment import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, verdict
from jaxopt_study.lab import digits_tasks
from jaxopt_study.results import read_csv

NAME = "failure_modes"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


@pytest.mark.slow  # runs the quick config end to end
def test_zero_and_constant_init_never_break_symmetry(finished_run):
  """§8.4: units that start equal get equal gradients, so they stay identical after training."""
  claims, config = summary(finished_run), run_config(finished_run)
  assert claims["zero_init_distinct_units"] == [1, 1]
  assert claims["constant_init_distinct_units"] == [1, 1]
  assert claims["random_init_distinct_units"] == [config.symmetry.width] * 2


@pytest.mark.slow  # runs the quick config end to end
def test_a_zero_initialized_tanh_net_learns_only_the_class_prior(finished_run):
  """With every kernel 0, tanh(0) = 0 and ∂L/∂W = 0 for every kernel: only the output bias learns,
  and the best it can do is the entropy of the training labels."""
  claims, config = summary(finished_run), run_config(finished_run)
  labels = np.asarray(digits_tasks.load(config.data).y_train)
  prior = np.bincount(labels, minlength=10) / labels.size
  entropy = -np.sum(prior * np.log(prior))
  loss = claims["final_train_loss_by_init"]
  assert loss["zeros"] == pytest.approx(entropy, abs=2e-3)
  assert loss["random"] < 0.5 * loss["constant"] < loss["zeros"]


@pytest.mark.slow  # runs the quick config end to end
def test_sigmoid_inputs_give_single_sign_weight_gradients(finished_run):
  """∂L/∂W_ij = h_i δ_j with h_i > 0: one sign per unit per example after a sigmoid layer."""
  same = summary(finished_run)["same_sign_fraction"]
  batch = str(run_config(finished_run).zigzag.batch_size)
  assert same["sigmoid"]["1"]["mean"] == 1.0
  assert same["tanh"]["1"]["mean"] < 0.05
  assert same["sigmoid"][batch]["mean"] < 1.0  # a minibatch mixes the signs of δ_j


@pytest.mark.slow  # runs the quick config end to end
def test_a_large_step_kills_relus_for_good(finished_run):
  claims = summary(finished_run)
  dead = claims["dead_relu_fraction"]
  rates = sorted(dead, key=float)
  assert dead[rates[0]]["mean"] == 0.0
  assert dead[rates[-1]]["mean"] > 0.1
  assert claims["revived_first_layer_units"] == 0


@pytest.mark.slow  # runs the quick config end to end
def test_small_weights_make_backpropagated_gradients_vanish_with_depth(finished_run):
  ratios = summary(finished_run)["tanh_gradient_ratio_first_last"]
  small = ratios["0.5"]
  depths = sorted(small, key=int)
  means = [small[d]["mean"] for d in depths]
  assert all(b < a for a, b in zip(means, means[1:], strict=False))
  assert means[-1] < 1e-3
  assert ratios["1"][depths[-1]]["mean"] > 100 * means[-1]  # Glorot's scale keeps it far larger


@pytest.mark.slow  # runs the quick config end to end
def test_gradient_descent_zigzags_where_momentum_does_not(finished_run):
  """Against float64 loops: GD's y_t = y₀(1 − εκ)^t flips sign at every step when εκ > 1."""
  claims, quad = summary(finished_run), run_config(finished_run).quadratic
  eps, kappa, steps = quad.learning_rate, quad.kappa, quad.steps
  x0, y0 = quad.start
  x, y = x0 * (1 - eps) ** steps, y0 * (1 - eps * kappa) ** steps
  assert claims["quadratic_final_loss"]["gradient_descent"] == pytest.approx(
    0.5 * (x**2 + kappa * y**2), rel=1e-3
  )
  assert claims["sign_flip_fraction"]["gradient_descent"] == 1.0
  assert claims["sign_flip_fraction"]["momentum"] < 0.5
  ratio = claims["path_length_ratio"]
  assert ratio["gradient_descent"] > 1.5 * ratio["momentum"]


@pytest.mark.slow  # runs the quick config end to end
def test_adam_without_bias_correction_takes_a_first_step_too_large(finished_run):
  """Kingma & Ba (2015), §3: the first uncorrected step is (1 − ρ₁)/√(1 − ρ₂) times larger."""
  claims = summary(finished_run)
  assert claims["first_step_ratio_closed_form"] == pytest.approx(0.1 / np.sqrt(0.001))
  assert claims["first_step_ratio_without_correction"] == pytest.approx(
    claims["first_step_ratio_closed_form"], rel=2e-3
  )


def _judged(value, error, dof, threshold, *, sign, ratio=False, settings=1) -> bool | None:
  """value < threshold (sign −1) or > (sign 1), by hand: with no error, on the value; with one,
  beyond t_{0.975, dof} errors (Bonferroni's t_{1 − 0.025/settings, dof} the failing way), on
  the log scale for a ratio; None within them, or from an error of 0 (up to float32 rounding)
  with fewer than 6 values."""
  distance = sign * (np.log(value / threshold) if ratio else value - threshold)
  if error is None:
    return bool(distance > 0)
  if error <= 1e-5 * abs(value) and dof < experiment.MIN_DOF_WITHOUT_SPREAD:
    return None
  spread = error / value if ratio else error
  needed = experiment.margin(dof) if distance > 0 else experiment.margin(dof, settings)
  if abs(distance) <= needed * spread * (1 + experiment.TIE_RTOL):
    return None
  return bool(distance > 0)


def _all_of(parts: list[tuple]) -> bool | None:
  """A claim of several parts, each (value, error, dof, threshold, sign, ratio), by hand: the
  failing margin corrected for the parts that can decide (`helpers.deciding_settings`; a part
  judged on its value always can)."""
  settings = max(
    1,
    sum(
      1 if error is None else deciding_settings({"v": value}, error, dof, ratio=ratio, at_least=0)
      for value, error, dof, _, _, ratio in parts
    ),
  )
  judged = [
    _judged(value, error, dof, threshold, sign=sign, ratio=ratio, settings=settings)
    for value, error, dof, threshold, sign, ratio in parts
  ]
  if False in judged:
    return False
  return None if None in judged else True


def _by_seed(rows: list[dict], **match) -> dict[int, dict]:
  """seed -> the row of `rows` whose fields equal `match`."""
  return {r["seed"]: r for r in rows if all(r[k] == v for k, v in match.items())}


@pytest.mark.slow  # runs the quick config end to end
def test_the_verdicts_follow_from_the_numbers(finished_run):
  """Each verdict judged here by hand from the rows of results.csv: what each seed's net draws
  (tanh's same-sign fraction, the dead-unit growth paired by seed, the gradient ratio at the
  deepest net and, paired by seed, its fall from the shallowest) by its mean over seeds, its
  standard error and degrees of freedom computed here with numpy, within t_{0.975, dof} errors;
  what holds by construction or draws nothing (equal units, a sigmoid's one sign, no revival,
  the quadratic, Adam's closed form) on its value."""
  claims, config = summary(finished_run), run_config(finished_run)
  rows = read_csv(finished_run / "results.csv")
  seeds = list(config.seeds)
  assert len(seeds) >= 6  # an error of 0 (every seed the same fraction) decides from 6 seeds

  def part(name: str) -> list[dict]:
    return [r for r in rows if r["part"] == name]

  def mean_se_dof(values) -> tuple[float, float, int]:
    values = np.asarray(values, np.float64)
    return values.mean(), values.std(ddof=1) / np.sqrt(values.size), values.size - 1

  def check(key: str, values, nested: tuple[str, ...] = ()) -> tuple[float, float, int]:
    """The summary's mean (at `key` or `key.nested...mean`), `_se` and `_dof` against numpy's."""
    mean, se, dof = mean_se_dof(values)
    value, error, dofs = claims[key], claims[f"{key}_se"], claims[f"{key}_dof"]
    for name in nested:
      value, error, dofs = value[name], error[name], dofs[name]
    value = value["mean"] if nested else value
    assert value == pytest.approx(mean, rel=1e-9, abs=1e-12), key
    assert error == pytest.approx(se, rel=1e-9, abs=1e-12), key
    assert dofs == dof == len(seeds) - 1, key
    return mean, se, dof

  zigzag = part("zigzag")
  sigmoid = [
    r["same_sign_fraction"]
    for r in _by_seed(zigzag, activation="sigmoid", examples_per_gradient=1).values()
  ]
  tanh = check(
    "same_sign_fraction",
    [
      r["same_sign_fraction"]
      for r in _by_seed(zigzag, activation="tanh", examples_per_gradient=1).values()
    ],
    ("tanh", "1"),
  )
  assert claims["sigmoid_same_sign_shortfall"] == pytest.approx(1 - np.mean(sigmoid), abs=1e-12)

  dead = part("dead_relu")
  rates = sorted({r["learning_rate"] for r in dead})
  low, high = _by_seed(dead, learning_rate=rates[0]), _by_seed(dead, learning_rate=rates[-1])
  growth = [high[s]["dead_fraction"] - low[s]["dead_fraction"] for s in seeds]
  assert claims["dead_relu_growth_by_seed"] == pytest.approx(
    {str(s): g for s, g in zip(seeds, growth, strict=True)}
  )
  growth = check("dead_relu_growth", growth)
  revived = sum(r["revived_first_layer_units"] for r in dead)
  assert claims["revived_first_layer_units"] == revived

  vanishing = part("vanishing")
  small = min(r["init_scale"] for r in vanishing)
  depths = sorted({r["depth"] for r in vanishing})
  deepest = _by_seed(vanishing, init_scale=small, depth=depths[-1])
  shallowest = _by_seed(vanishing, init_scale=small, depth=depths[0])
  ratio_deepest = check(
    "tanh_small_init_ratio_deepest", [deepest[s]["ratio_first_last"] for s in seeds]
  )
  logs = np.log([deepest[s]["ratio_first_last"] / shallowest[s]["ratio_first_last"] for s in seeds])
  fall = np.exp(logs.mean())
  fall_se = fall * logs.std(ddof=1) / np.sqrt(logs.size)
  key = "tanh_small_init_ratio_deepest_over_shallowest"
  assert claims[key] == pytest.approx(fall, rel=1e-9)
  assert claims[f"{key}_se"] == pytest.approx(fall_se, rel=1e-9)
  assert claims[f"{key}_dof"] == len(seeds) - 1
  assert claims[f"{key}_by_seed"] == pytest.approx(
    {str(s): v for s, v in zip(seeds, np.exp(logs), strict=True)}, rel=1e-9
  )

  path, flips = claims["path_length_ratio"], claims["sign_flip_fraction"]
  distinct = set(claims["zero_init_distinct_units"]) | set(claims["constant_init_distinct_units"])
  rel_error = abs(
    claims["first_step_ratio_without_correction"] / claims["first_step_ratio_closed_form"] - 1
  )
  expected = {
    "zero_init_distinct_units": distinct == {1},
    "same_sign_fraction": _all_of(
      [(1 - np.mean(sigmoid), None, None, 1e-12, -1, False), (*tanh, 0.5, -1, False)]
    ),
    "dead_relu_fraction": _all_of(
      [(*growth, 0.0, 1, False), (revived, None, None, 0.5, -1, False)]
    ),
    "tanh_gradient_ratio_first_last": _all_of(
      [
        (*ratio_deepest, 0.1, -1, False),
        (fall, fall_se, len(seeds) - 1, 1.0, -1, True),
      ]
    ),
    "path_length_ratio": path["gradient_descent"] > path["momentum"]
    and flips["gradient_descent"] > flips["momentum"],
    "first_step_ratio_without_correction": rel_error < 0.01,
  }
  assert claims["verdicts"] == {claim: verdict(holds) for claim, holds in expected.items()}


def _claims(**changes) -> dict:
  """A summary with every key the criteria judge, each claim holding beyond its margin, with
  `changes` applied (a key "a__b" sets claims["a"]["b"])."""
  claims = {
    "equal_init_max_distinct_units": 1,
    "sigmoid_same_sign_shortfall": 0.0,
    "same_sign_fraction": {"tanh": {"1": {"mean": 0.0, "std": 0.0, "n": 6}}},
    "same_sign_fraction_se": {"tanh": {"1": 0.0}},
    "same_sign_fraction_dof": {"tanh": {"1": 5}},
    "dead_relu_growth": 0.2,
    "dead_relu_growth_se": 0.01,
    "dead_relu_growth_dof": 5,
    "revived_first_layer_units": 0,
    "tanh_small_init_ratio_deepest": 1e-5,
    "tanh_small_init_ratio_deepest_se": 1e-6,
    "tanh_small_init_ratio_deepest_dof": 5,
    "tanh_small_init_ratio_deepest_over_shallowest": 1e-4,
    "tanh_small_init_ratio_deepest_over_shallowest_se": 1e-5,
    "tanh_small_init_ratio_deepest_over_shallowest_dof": 5,
    "path_length_ratio_gd_over_momentum": 2.0,
    "sign_flip_fraction_gd_minus_momentum": 0.8,
    "first_step_ratio_rel_error": 1e-3,
  }
  for path, value in changes.items():
    *parents, leaf = path.split("__")
    node = claims
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return claims


@pytest.mark.parametrize(
  "changes, claim, expected",
  [
    ({}, "same_sign_fraction", REPRODUCED),
    # every seed's tanh fraction 0: an error of 0 from 3 seeds cannot tell chance from a rule
    ({"same_sign_fraction_dof__tanh__1": 2}, "same_sign_fraction", INCONCLUSIVE),
    # 0.3 ± 0.05 below 0.5 with 6 seeds: 4 errors, beyond t_{0.975, 5} = 2.57
    (
      {"same_sign_fraction__tanh__1__mean": 0.3, "same_sign_fraction_se__tanh__1": 0.05},
      "same_sign_fraction",
      REPRODUCED,
    ),
    # but not with 3 seeds: within t_{0.975, 2} = 4.30
    (
      {
        "same_sign_fraction__tanh__1__mean": 0.3,
        "same_sign_fraction_se__tanh__1": 0.05,
        "same_sign_fraction_dof__tanh__1": 2,
      },
      "same_sign_fraction",
      INCONCLUSIVE,
    ),
    ({"sigmoid_same_sign_shortfall": 0.01}, "same_sign_fraction", NOT_REPRODUCED),
    ({}, "dead_relu_fraction", REPRODUCED),
    ({"dead_relu_growth": 0.02}, "dead_relu_fraction", INCONCLUSIVE),  # 2 errors
    ({"dead_relu_growth": -0.1}, "dead_relu_fraction", NOT_REPRODUCED),
    ({"dead_relu_growth_se": None}, "dead_relu_fraction", INCONCLUSIVE),  # one seed
    ({"revived_first_layer_units": 1}, "dead_relu_fraction", NOT_REPRODUCED),
    ({}, "tanh_gradient_ratio_first_last", REPRODUCED),
    (  # 0.09 ± 0.01 below 0.1: 1 error
      {"tanh_small_init_ratio_deepest": 0.09, "tanh_small_init_ratio_deepest_se": 0.01},
      "tanh_gradient_ratio_first_last",
      INCONCLUSIVE,
    ),
    # a ratio on the log scale: 0.9 ± 0.1 is |log 0.9| = 0.105 < 2.57 · 0.1 / 0.9 from 1
    (
      {
        "tanh_small_init_ratio_deepest_over_shallowest": 0.9,
        "tanh_small_init_ratio_deepest_over_shallowest_se": 0.1,
      },
      "tanh_gradient_ratio_first_last",
      INCONCLUSIVE,
    ),
    (
      {"tanh_small_init_ratio_deepest_over_shallowest": 2.0},
      "tanh_gradient_ratio_first_last",
      NOT_REPRODUCED,
    ),
  ],
)
def test_what_each_seed_draws_is_judged_with_its_error_bar(changes, claim, expected):
  """The criteria on made-up summaries: the seeds' error bars widen the margins (t_{0.975, dof}),
  an error of 0 decides only from six seeds, and the parts that hold by construction decide on
  their value."""
  assert registry.load(NAME).verdicts(_claims(**changes))[claim] == expected


def test_zero_and_constant_kernels_draw_nothing():
  """Symmetry's claim is judged on its value: a zero or constant net is the same for every seed."""
  module = load_experiment(NAME)
  for kernel_init in (jax.nn.initializers.zeros, jax.nn.initializers.constant(0.05)):
    nets = [module._mlp(8, 2, "tanh", kernel_init, seed).params for seed in (0, 1)]
    chex.assert_trees_all_equal(*nets)


@pytest.mark.slow  # runs the CLI
@pytest.mark.parametrize(
  "override, culprit",
  [
    ("zigzag.batch_size=7", "zigzag.batch_size"),
    ("quadratic.kappa=0.5", "quadratic.kappa"),
    ("dead_relu.learning_rates=[]", "dead_relu.learning_rates"),
    ("vanishing.num_examples=100000", "vanishing.num_examples"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
