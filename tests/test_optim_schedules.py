"""Tests of optim/schedules.py: each schedule against its closed form, before and after its end."""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_study import optim

STEPS = np.arange(0, 41)  # past every transition below


def values(schedule):
  """ε_k for k in STEPS, the count given as Optax gives it: an int32 array, under jit."""
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(STEPS, jnp.int32)))


def test_linear_decay(x64):
  eps0, eps_tau, tau = 0.5, 0.005, 25
  alpha = np.minimum(STEPS / tau, 1.0)  # eq. 8.14, then constant ε_τ after τ
  expected = (1 - alpha) * eps0 + alpha * eps_tau
  np.testing.assert_allclose(values(optim.linear_decay(eps0, eps_tau, tau)), expected, rtol=1e-14)
  assert values(optim.linear_decay(eps0, eps_tau, tau)).dtype == np.float64


def test_step_decay(x64):
  expected = 0.3 * 0.5 ** np.floor(STEPS / 7)
  np.testing.assert_allclose(values(optim.step_decay(0.3, 0.5, 7)), expected, rtol=1e-14)


def test_exponential_decay(x64):
  expected = 0.3 * 0.9 ** (STEPS / 4)
  np.testing.assert_allclose(values(optim.exponential_decay(0.3, 0.9, 4)), expected, rtol=1e-14)
  np.testing.assert_allclose(
    values(optim.exponential_decay(0.3, 0.9)), 0.3 * 0.9**STEPS, rtol=1e-14
  )


def test_inverse_time_decay(x64):
  expected = 0.3 / (1 + 0.25 * STEPS)
  np.testing.assert_allclose(values(optim.inverse_time_decay(0.3, 0.25)), expected, rtol=1e-15)


def test_float32_without_x64():
  assert values(optim.inverse_time_decay(0.3, 0.25)).dtype == np.float32
  np.testing.assert_allclose(
    values(optim.linear_decay(0.5, 0.05, 10))[[0, 5, 10, 40]], [0.5, 0.275, 0.05, 0.05], rtol=1e-6
  )


@pytest.mark.parametrize(
  ("constructor", "args", "match"),
  [
    (optim.linear_decay, (-1.0, 0.1, 5), "linear_decay: init_value=-1.0 must be"),
    (optim.linear_decay, (1.0, -0.1, 5), "end_value"),
    (optim.linear_decay, (1.0, 0.1, 0), "transition_steps=0 must be an integer >= 1"),
    (optim.linear_decay, (1.0, 0.1, 2.5), "transition_steps=2.5"),
    (optim.step_decay, (1.0, 0.0, 5), r"decay_factor=0.0 must be in \(0, 1\]"),
    (optim.step_decay, (1.0, 1.5, 5), "decay_factor"),
    (optim.step_decay, (1.0, 0.5, -1), "step_size"),
    (optim.exponential_decay, (1.0, 2.0), "decay_rate"),
    (optim.exponential_decay, (1.0, 0.5, 0), "transition_steps"),
    (optim.inverse_time_decay, (1.0, -0.1), "decay_rate"),
    (optim.inverse_time_decay, (float("nan"), 0.1), "init_value"),
  ],
)
def test_bad_arguments_raise(constructor, args, match):
  with pytest.raises(ValueError, match=match):
    constructor(*args)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
  init_value=st.floats(0.0, 10.0),
  decay_rate=st.floats(0.0, 10.0),
  k=st.integers(0, 10**6),
)
def test_inverse_time_decay_is_positive_and_non_increasing(init_value, decay_rate, k):
  schedule = optim.inverse_time_decay(init_value, decay_rate)
  now, later = float(schedule(k)), float(schedule(k + 1))
  assert 0.0 <= later <= now <= init_value * (1 + 1e-6)


def _sgdr_reference(k, max_value, first, factor, min_value):
  """Loshchilov & Hutter's eq. 5, walking the cycles one by one."""
  start, length = 0, first
  while k >= start + length:
    start, length = start + length, length * factor
  return min_value + 0.5 * (max_value - min_value) * (1 + np.cos(np.pi * (k - start) / length))


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_cosine_warm_restarts_follows_eq_5_cycle_by_cycle(x64, factor):
  schedule = jax.jit(optim.schedules.cosine_warm_restarts(0.5, 7, factor, min_value=0.01))
  for k in range(200):
    assert float(schedule(k)) == pytest.approx(_sgdr_reference(k, 0.5, 7, factor, 0.01), abs=1e-12)
  ends = optim.schedules.cycle_ends(7, factor, 200)
  assert ends[:2] == ([6, 13] if factor == 1 else [6, 6 + 7 * factor])
  for i, end in enumerate(ends):  # a snapshot at the bottom of each cycle, a restart after it
    length = 7 * factor**i
    bottom = 0.01 + 0.5 * 0.49 * (1 - np.cos(np.pi / length))  # cos(π (T − 1) / T)
    assert float(schedule(end)) == pytest.approx(bottom, abs=1e-12)
    assert float(schedule(end + 1)) == pytest.approx(0.5)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_cosine_warm_restarts_restarts_on_time_in_float32(factor):
  """In float32 a float power T_0 T_mult^i rounded above the integer it stands for, and the
  restart step of T_mult = 4 got ε_min (the end of the cycle before it) instead of ε_max."""
  schedule = jax.jit(optim.schedules.cosine_warm_restarts(1.0, 5, factor, min_value=0.01))
  k = np.arange(3000)
  expected = [_sgdr_reference(i, 1.0, 5, factor, 0.01) for i in k]
  np.testing.assert_allclose(jax.vmap(schedule)(k), expected, rtol=1e-5, atol=1e-6)
  for end in optim.schedules.cycle_ends(5, factor, 3000):
    assert float(schedule(end + 1)) == 1.0


def test_triangular_cycle_is_smiths_triangle_wave(x64):
  schedule = jax.jit(optim.schedules.triangular_cycle(0.1, 0.7, 5))
  k = np.arange(60)
  expected = np.interp(k % 10, [0, 5, 10], [0.1, 0.7, 0.1])  # rise over s steps, fall over s
  np.testing.assert_allclose([float(schedule(i)) for i in k], expected, atol=1e-12)


@pytest.mark.parametrize(
  "constructor, args, match",
  [
    ("cosine_warm_restarts", (0.1, 10, 1, 0.5), "max_value"),
    ("cosine_warm_restarts", (0.1, 0), "first_period"),
    ("cosine_warm_restarts", (0.1, 10, 0), "period_factor"),
    ("triangular_cycle", (0.5, 0.1, 3), "max_value"),
    ("triangular_cycle", (0.1, 0.5, 0), "half_period"),
  ],
)
def test_cyclic_schedules_refuse_bad_arguments(constructor, args, match):
  with pytest.raises(ValueError, match=match):
    getattr(optim.schedules, constructor)(*args)


@pytest.mark.parametrize(
  "build",
  [
    lambda rate: optim.cosine_warm_restarts(rate, 7, 2, min_value=0.01),
    lambda rate: optim.triangular_cycle(0.01, rate, 5),
  ],
)
def test_cyclic_schedules_take_a_traced_rate_as_a_sweep_gives_it(build):
  """Under `optax.inject_hyperparams` (a sweep's rate axis) the rate is traced: the schedule is
  built inside `jit` and gives the rates of the schedule built from the concrete value."""
  traced = jax.jit(lambda rate, k: build(rate)(k))
  for k in (0, 3, 6, 7, 20):
    assert float(traced(0.5, k)) == pytest.approx(float(build(0.5)(k)), rel=1e-6)


def test_choose_schedule_picks_each_candidate_also_when_traced(x64):
  """The chosen schedule's ε_k for every index, concrete (2 or 2.0, as a sweep passes it) and
  traced under vmap (one program for every index)."""
  candidates = [
    lambda k: 0.3,
    optim.step_decay(0.5, 0.1, 4),
    optim.cosine_warm_restarts(0.7, 5, 2),
  ]
  k = np.arange(20)
  expected = np.stack([[float(s(i)) for i in k] for s in candidates])
  for index in (0, 1, 2, 2.0):
    chosen = optim.choose_schedule(candidates, index)
    np.testing.assert_allclose([float(chosen(i)) for i in k], expected[int(index)], atol=1e-12)
  traced = jax.jit(jax.vmap(lambda i: jax.vmap(optim.choose_schedule(candidates, i))(k)))
  np.testing.assert_allclose(traced(jnp.asarray([2.0, 0.0, 1.0])), expected[[2, 0, 1]], atol=1e-12)


@pytest.mark.parametrize(("index", "match"), [(3, r"\[0, 2\]"), (1.5, "integer"), (-1, "index")])
def test_choose_schedule_refuses_an_index_out_of_range(index, match):
  with pytest.raises(ValueError, match=match):
    optim.choose_schedule([lambda k: 0.1] * 3, index)


@pytest.mark.parametrize("make", [optim.exponential_decay, optim.step_decay])
def test_a_traced_decay_rate_gives_optaxs_values(make, x64):
  """A sweep axis over γ (traced) failed in Optax's `if decay_rate == 0`; vmapped over γ the
  schedules give `optax.exponential_decay`'s values."""
  staircase = make is optim.step_decay
  rates = jnp.asarray([0.5, 0.9])
  traced = jax.vmap(lambda rate: jax.vmap(make(0.3, rate, 4))(jnp.arange(20)))(rates)
  for row, rate in zip(traced, rates, strict=True):
    theirs = optax.exponential_decay(0.3, 4, float(rate), staircase=staircase)
    np.testing.assert_allclose(row, [theirs(k) for k in range(20)], rtol=1e-14)
