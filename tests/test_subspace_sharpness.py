"""Tests of lab/subspace_sharpness.py: Keskar et al.'s (C_ε, A)-sharpness against the exact
maximum of a convex quadratic over the box, found by enumerating its corners."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_study.lab.subspace_sharpness import random_directions, subspace_sharpness

RNG = np.random.default_rng(3)
N = 7
SQUARE = RNG.standard_normal((N, N))
CURVATURE = SQUARE @ SQUARE.T / N + 0.1 * np.eye(N)  # positive definite: f is convex
CENTRE = RNG.standard_normal(N)
POINT = RNG.standard_normal(N)


def as_params(theta):
  """θ ∈ ℝ⁷ as a pytree of two leaves (in float64 under the `x64` fixture)."""
  return {"a": jnp.asarray(theta[:3]), "b": jnp.asarray(theta[3:].reshape(2, 2))}


def quadratic(params, curvature, centre, scale=1.0):
  """f(θ) = s (½ (θ − c)ᵀ H (θ − c) + 1) on the raveled parameters θ."""
  theta = ravel_pytree(params)[0] - centre
  return scale * (0.5 * theta @ curvature @ theta + 1.0)


def exact_sharpness(x, directions, eps, curvature=CURVATURE, centre=CENTRE, scale=1.0):
  """100 (max over the corners of C_ε of f(x + A z) − f(x)) / (1 + f(x)), written from the
  paper's eq. (3) with A⁺ from `np.linalg.pinv`: a convex f is largest at a corner of the box."""
  f = lambda theta: scale * (0.5 * (theta - centre) @ curvature @ (theta - centre) + 1.0)  # noqa: E731
  half_width = eps * (np.abs(np.linalg.pinv(directions) @ x) + 1.0)
  corners = itertools.product((-1.0, 1.0), repeat=directions.shape[1])
  top = max(f(x + directions @ (half_width * np.asarray(c))) for c in corners)
  return 100.0 * (top - f(x)) / (1.0 + f(x))


@pytest.mark.parametrize("num_directions", [1, 3, 5])
@pytest.mark.parametrize("eps", [1e-3, 5e-4])
def test_subspace_sharpness_is_the_best_corner_of_the_box(x64, num_directions, eps):
  key = jax.random.key(11)
  directions = random_directions(key, N, num_directions)
  got = subspace_sharpness(
    quadratic,
    as_params(POINT),
    jnp.asarray(CURVATURE),
    jnp.asarray(CENTRE),
    eps=eps,
    num_directions=num_directions,
    key=key,
  )
  np.testing.assert_allclose(got, exact_sharpness(POINT, directions, eps), rtol=1e-6)


def test_a_negative_loss_is_refused(x64):
  """φ divides by 1 + f(x): a negative loss inflated it or made it negative."""
  args = (jnp.asarray(CURVATURE), jnp.asarray(CENTRE))
  with pytest.raises(ValueError, match=r"subspace_sharpness: the loss at params is -2 < 0"):
    subspace_sharpness(quadratic, as_params(CENTRE), *args, -2.0)


def test_a_loss_near_zero_is_still_maximized(x64):
  """With f ≈ 1e-6 every change of f is below scipy's default stopping tolerance 2.2e-9 · max(|f|,
  1), as for a network trained to a training loss of 1e-6; the maximum must still be found."""
  key = jax.random.key(2)
  got = subspace_sharpness(
    quadratic,
    as_params(POINT),
    jnp.asarray(CURVATURE),
    jnp.asarray(CENTRE),
    1e-6,
    eps=1e-3,
    num_directions=5,
    key=key,
  )
  exact = exact_sharpness(POINT, random_directions(key, N, 5), 1e-3, scale=1e-6)
  np.testing.assert_allclose(got, exact, rtol=1e-6)


def test_full_space_is_the_box_of_the_parameters(x64):
  got = subspace_sharpness(
    quadratic,
    as_params(POINT),
    jnp.asarray(CURVATURE),
    jnp.asarray(CENTRE),
    eps=1e-2,
    num_directions=None,
  )
  np.testing.assert_allclose(got, exact_sharpness(POINT, np.eye(N), 1e-2), rtol=1e-6)


def test_at_a_minimum_it_starts_from_a_random_corner(x64):
  """At θ = c the gradient is zero; the ascent still reaches the best corner."""
  key = jax.random.key(5)
  got = subspace_sharpness(
    quadratic,
    as_params(CENTRE),
    jnp.asarray(CURVATURE),
    jnp.asarray(CENTRE),
    eps=1e-3,
    num_directions=4,
    key=key,
  )
  exact = exact_sharpness(CENTRE, random_directions(key, N, 4), 1e-3)
  assert exact > 0
  np.testing.assert_allclose(got, exact, rtol=1e-6)


def tilted_bowl_with_a_narrow_peak(params):
  """0.01 (‖x‖² + x₁ + x₂) + exp(−‖x − (1, −1)‖² / 0.1): at 0 the ascent leads to the corner
  (1, 1), f = 0.04; the corner (1, −1) holds a narrow peak, f = 1.02."""
  x = params["x"]
  peak = jnp.exp(-jnp.sum((x - jnp.array([1.0, -1.0])) ** 2) / 0.1)
  return 0.01 * (jnp.sum(x**2) + jnp.sum(x)) + peak


def test_starts_from_random_corners_find_a_narrow_peak_a_start_at_zero_misses(x64):
  """Near a trained network's minimum the box holds narrow peaks (one example pushed across its
  decision boundary) that L-BFGS-B from z = 0 rarely reaches: φ was the local maximum's."""
  params, key = {"x": jnp.zeros(2)}, jax.random.key(0)
  f0 = float(tilted_bowl_with_a_narrow_peak(params))
  options = dict(eps=1.0, num_directions=None, key=key)
  one = subspace_sharpness(tilted_bowl_with_a_narrow_peak, params, **options)
  many = subspace_sharpness(tilted_bowl_with_a_narrow_peak, params, num_starts=8, **options)
  np.testing.assert_allclose(one, 100 * (0.04 - f0) / (1 + f0), rtol=1e-7)
  np.testing.assert_allclose(many, 100 * (1.02 - f0) / (1 + f0), rtol=1e-7)


def test_directions_are_standard_normal_and_follow_the_key():
  a = random_directions(jax.random.key(0), 4000, 100)
  assert a.shape == (4000, 100)
  assert abs(a.mean()) < 0.01 and abs(a.std() - 1.0) < 0.01
  np.testing.assert_array_equal(a, random_directions(jax.random.key(0), 4000, 100))
  assert not np.array_equal(a, random_directions(jax.random.key(1), 4000, 100))


@pytest.mark.parametrize(
  "options, name",
  [
    ({"eps": 0.0}, "eps"),
    ({"num_directions": 0}, "num_directions"),
    ({"num_directions": N + 1}, "num_directions"),
    ({"num_directions": 2.0}, "num_directions"),
    ({"max_iterations": 0}, "max_iterations"),
    ({"num_starts": 0}, "num_starts"),
  ],
)
def test_bad_options_are_refused_by_name(options, name):
  with pytest.raises(ValueError, match=name):
    subspace_sharpness(
      quadratic, as_params(POINT), jnp.asarray(CURVATURE), jnp.asarray(CENTRE), **options
    )
