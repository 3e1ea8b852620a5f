"""Tests of optim/schedules.py: each schedule against its closed form, before and after its end."""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
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
