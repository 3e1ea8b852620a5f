"""The lab pieces of the small teaching experiments (issue 18): one-dimensional risks and the
interval projection, verdicts, per-unit statistics of an MLP and Adam without bias correction,
each against a plain reference."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_study import optim, train
from jaxopt_study.experiment import verdict
from jaxopt_study.lab import adam_variants, digits_tasks, one_dim, unit_stats, verdicts


def test_risk_and_empirical_risk_match_their_formulas_in_numpy_and_jax():
  x = np.linspace(-1.0, 2.0, 7)
  np.testing.assert_allclose(one_dim.risk(x), x * np.cos(np.pi * x), rtol=1e-15)
  ripple = x * np.cos(np.pi * x) + 0.2 * np.cos(5 * np.pi * x)
  np.testing.assert_allclose(one_dim.empirical_risk(x), ripple, rtol=1e-14, atol=1e-15)
  assert one_dim.risk(x).dtype == np.float64
  np.testing.assert_allclose(
    jax.grad(one_dim.risk)(0.5), np.cos(0.5 * np.pi) - 0.5 * np.pi, rtol=1e-6
  )


def test_grid_extrema_of_a_cosine():
  points = one_dim.grid(-1.0, 3.0, 4001)
  values = np.cos(np.pi * points)
  np.testing.assert_allclose(one_dim.interior_minima(values, points), [1.0], atol=1e-12)
  np.testing.assert_allclose(one_dim.interior_maxima(values, points), [0.0, 2.0], atol=1e-12)
  assert one_dim.grid_argmin(values, points) == pytest.approx(-1.0)
  with pytest.raises(ValueError, match="low < high"):
    one_dim.grid(1.0, 0.0, 10)


def test_stay_in_interval_projects_every_step():
  """Descent on f(x) = −x stops at the upper end; a projected step is clip(θ + u) − θ."""
  tx = optax.chain(optim.sgd(0.3), one_dim.stay_in_interval(-1.0, 2.0))
  end = train.descend(lambda x: -x, jnp.float32(0.0), tx, steps=20).params
  assert float(end) == 2.0
  with pytest.raises(ValueError, match="low"):
    one_dim.stay_in_interval(1.0, 1.0)


def test_verdicts_and_error_bars():
  assert verdict(True) == "reproduced"
  assert verdict(False) == "not reproduced"
  assert verdict(None) == "inconclusive"
  stats = verdicts.mean_and_std([1.0, 2.0, 3.0])
  assert stats == {"mean": 2.0, "std": 1.0, "n": 3}
  assert verdicts.mean_and_std([4.0])["std"] == 0.0
  with pytest.raises(ValueError, match="non-empty"):
    verdicts.mean_and_std([])
  mean, error = verdicts.mean_and_standard_error([1.0, 2.0, 3.0])
  assert mean == 2.0 and error == pytest.approx(1.0 / np.sqrt(3))
  assert verdicts.mean_and_standard_error([4.0]) == (4.0, None)
  nothing, no_error = verdicts.mean_and_standard_error([])
  assert np.isnan(nothing) and no_error is None
  with pytest.raises(ValueError, match=r"one per seed; got shape \(2, 2\)"):
    verdicts.mean_and_standard_error([[1.0, 2.0], [3.0, 4.0]])


def test_paired_ratio_is_the_geometric_mean_of_per_seed_ratios_with_the_error_of_its_log():
  logs = np.log([2.0, 4.0, 2.5])  # 0.4 / 0.2, 0.4 / 0.1, 0.4 / 0.16
  ratio, error = verdicts.paired_ratio([0.4, 0.4, 0.4], [0.2, 0.1, 0.16])
  assert ratio == pytest.approx(np.exp(logs.mean()))
  assert error == pytest.approx(ratio * logs.std(ddof=1) / np.sqrt(3))
  assert verdicts.paired_ratio([3.0], [2.0]) == (pytest.approx(1.5), None)
  for numerator, denominator in (([0.4, 0.4], [0.2, None]), ([0.4, 0.4], [0.2, 0.0])):
    assert verdicts.paired_ratio(numerator, denominator) == (None, None)
  assert verdicts.paired_ratio([0.4, float("nan")], [0.2, 0.2]) == (None, None)
  # a geometric mean over seeds: (1 · 4 · 16)^(1/3) = 4; NaN with a diverged seed
  assert verdicts.geometric_mean([1.0, 4.0, 16.0]) == pytest.approx(4.0)
  for diverged in (float("nan"), float("inf"), 0.0):
    assert np.isnan(verdicts.geometric_mean([1.0, diverged]))
  # one seed's ratio: None where paired_ratio would take none (a loss underflowed to 0)
  assert verdicts.ratio(0.4, 0.16) == pytest.approx(2.5)
  for pair in ((0.4, 0.0), (0.0, 0.4), (None, 0.2), (0.4, float("inf")), (-0.4, 0.2)):
    assert verdicts.ratio(*pair) is None
  # {seed: value} maps: the seeds both hold, in seed order (seed 7 has no partner)
  by_seed = verdicts.paired_ratio_by_seed(
    {2: 0.4, 0: 0.4, 1: 0.4, 7: 9.0}, {1: 0.1, 0: 0.2, 2: 0.16}
  )
  assert by_seed == (pytest.approx(ratio), pytest.approx(error), 2)
  assert verdicts.paired_ratio_by_seed({0: 1.0}, {1: 1.0}) == (None, None, None)
  assert verdicts.paired_ratio_by_seed({0: 1.0, 1: 2.0}, {0: 1.0, 1: 0.0}) == (None, None, None)


def test_the_jackknife_error_of_the_mean_is_the_standard_error_of_the_mean():
  """For the mean, the leave-one-out means' jackknife error is s/√n exactly (Efron & Tibshirani
  1993, ch. 11); None with one value or a missing one."""
  values = np.asarray([1.0, 4.0, 2.0, 7.0])
  left_out = [np.delete(values, i).mean() for i in range(values.size)]
  expected = values.std(ddof=1) / np.sqrt(values.size)
  assert verdicts.jackknife_standard_error(left_out) == pytest.approx(expected)
  assert verdicts.jackknife_standard_error([0.5]) is None
  assert verdicts.jackknife_standard_error([0.5, None]) is None


def test_distinct_units_counts_equal_columns():
  kernel = np.asarray([[1.0, 1.0, 2.0], [0.5, 0.5, 0.5]])
  bias = np.asarray([0.0, 0.0, 0.0])
  assert unit_stats.distinct_units(kernel, bias) == 2
  assert unit_stats.distinct_units(np.zeros((3, 4)), np.zeros(4)) == 1
  assert unit_stats.distinct_units(kernel, np.asarray([0.0, 1e-3, 0.0])) == 3


def test_same_sign_fraction_counts_units_whose_column_has_one_sign():
  grads = np.asarray([[1.0, -1.0, 0.0], [2.0, 1.0, -3.0]])  # columns: (+,+), (−,+), (0,−)
  assert float(unit_stats.same_sign_fraction(jnp.asarray(grads))) == pytest.approx(2 / 3)


@pytest.mark.slow  # about 10 s on the shared 2-core CPU: builds and differentiates a net eagerly
def test_dead_units_and_backpropagated_norms_against_a_plain_forward_pass():
  model = digits_tasks.mlp(0, width=8, depth=2, activation="relu")
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(64, 64)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, size=64), jnp.int32)
  params = model.params
  w1, b1 = params["hidden"][0]["kernel"][...], params["hidden"][0]["bias"][...]
  z1 = np.asarray(x) @ np.asarray(w1) + np.asarray(b1)
  dead = unit_stats.dead_units(params, x)
  np.testing.assert_array_equal(np.asarray(dead[0]), np.all(z1 <= 0, axis=0))
  # ‖∂L/∂z₂‖ of the summed loss: δ₂ = (softmax − onehot) W_outᵀ ⊙ relu'(z₂), one row per example.
  h1 = np.maximum(z1, 0)
  w2, b2 = (np.asarray(params["hidden"][1][k][...]) for k in ("kernel", "bias"))
  z2 = h1 @ w2 + b2
  w3, b3 = (np.asarray(params["output"][k][...]) for k in ("kernel", "bias"))
  logits = np.maximum(z2, 0) @ w3 + b3
  probs = np.exp(logits - logits.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  delta2 = (probs - np.eye(10)[np.asarray(y)]) @ w3.T * (z2 > 0)
  norms = unit_stats.backpropagated_norms(params, x, y, jax.nn.relu)
  assert float(norms[1]) == pytest.approx(np.linalg.norm(delta2), rel=1e-4)


def test_uncorrected_adam_matches_algorithm_8_7_without_its_correction_lines():
  """A float64 loop of m, r without ŝ, r̂ against the transformation, and the first-step ratio."""
  grads = [np.asarray([0.3, -2.0]), np.asarray([0.1, 1.0]), np.asarray([-0.5, 0.2])]
  tx = adam_variants.uncorrected_adam(0.01)
  state = tx.init(jnp.zeros(2))
  m, r = np.zeros(2), np.zeros(2)
  for g in grads:
    update, state = tx.update(jnp.asarray(g, jnp.float32), state)
    m, r = 0.9 * m + 0.1 * g, 0.999 * r + 0.001 * g**2
    np.testing.assert_allclose(update, -0.01 * m / (np.sqrt(r) + 1e-8), rtol=1e-5)
  corrected = optim.adam(0.01)
  first, _ = corrected.update(jnp.asarray(grads[0], jnp.float32), corrected.init(jnp.zeros(2)))
  uncorrected, _ = tx.update(jnp.asarray(grads[0], jnp.float32), tx.init(jnp.zeros(2)))
  np.testing.assert_allclose(
    uncorrected / first, adam_variants.uncorrected_step_ratio(1), rtol=1e-5
  )
  assert adam_variants.uncorrected_step_ratio(1) == pytest.approx(0.1 / np.sqrt(0.001))
  with pytest.raises(ValueError, match="b2"):
    adam_variants.scale_by_uncorrected_adam(b2=1.5)
  with pytest.raises(ValueError, match=r"eps=0.0 must be finite and > 0"):  # it gave NaN at g = 0
    adam_variants.uncorrected_adam(0.01, eps=0.0)
