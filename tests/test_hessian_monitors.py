"""Tests of hessian/monitors.py: curvature along the gradient and Keskar's sharpness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study.hessian import curvature_along_gradient, monitors, sharpness

CURVATURES = np.asarray([0.5, 2.0, 8.0])


def bowl(params, curvatures):
  """½ Σ cᵢ xᵢ²: H = diag(c), g = c ⊙ x; a quadratic, so the second-order model is exact."""
  return 0.5 * jnp.sum(curvatures * params["x"] ** 2)


def test_curvature_along_gradient_of_a_quadratic_is_exact(x64):
  x = np.asarray([1.0, -1.0, 0.5])
  params, c = {"x": jnp.asarray(x)}, jnp.asarray(CURVATURES)
  g = CURVATURES * x
  result = curvature_along_gradient(bowl, params, c, learning_rate=0.1)
  np.testing.assert_allclose(result.g_dot_g, g @ g, rtol=1e-15)
  np.testing.assert_allclose(result.g_hess_g, g @ (CURVATURES * g), rtol=1e-15)
  actual = bowl({"x": jnp.asarray(x - 0.1 * g)}, c) - bowl(params, c)
  np.testing.assert_allclose(result.predicted_change, actual, rtol=1e-13)
  best = curvature_along_gradient(bowl, params, c)  # ε* = gᵀg / gᵀHg, book eq. 4.10
  step = (g @ g) / (g @ (CURVATURES * g))
  np.testing.assert_allclose(best.predicted_change, -0.5 * (g @ g) * step, rtol=1e-14)
  saddle = curvature_along_gradient(bowl, {"x": jnp.ones(3)}, -c)
  assert saddle.g_hess_g < 0 and saddle.predicted_change == -np.inf
  minimum = curvature_along_gradient(bowl, {"x": jnp.zeros(3)}, c)  # once −∞: 0/0 taken as ≤ 0
  assert (minimum.g_dot_g, minimum.g_hess_g, minimum.predicted_change) == (0, 0, 0)


def test_curvature_along_gradient_inside_jit_does_not_recompile(x64):
  traces = []

  def loss(params, curvatures):
    traces.append(1)  # runs once per trace of the loss, not per call
    return bowl(params, curvatures)

  @jax.jit
  def train_step(params, curvatures):
    stats = curvature_along_gradient(loss, params, curvatures, learning_rate=0.05)
    params = {"x": params["x"] - 0.05 * curvatures * params["x"]}
    return params, stats

  params, c = {"x": jnp.asarray([1.0, -1.0, 0.5])}, jnp.asarray(CURVATURES)
  history = []
  for _ in range(4):
    params, stats = train_step(params, c)
    history.append(float(stats.g_dot_g))
  assert len(traces) == 2  # one jit trace: the loss is traced for its gradient and its HVP
  assert history[0] > history[1] > history[2] > history[3]  # descent on a bowl
  curvature_along_gradient(loss, params, c, learning_rate=0.05)  # eagerly: compiles its kernel
  compiled, traced = monitors._curvature_jit._cache_size(), len(traces)
  for rate in (0.1, 0.2, 0.3):  # eagerly in a Python loop: the kernel compiled above is reused
    curvature_along_gradient(loss, {"x": params["x"] * rate}, c, learning_rate=rate)
  assert monitors._curvature_jit._cache_size() == compiled
  assert len(traces) == traced + 3  # one trace per call, the fingerprint of what the loss reads


def test_sharpness_of_a_quadratic_matches_its_closed_form(x64):
  """For ½ Σ cᵢ xᵢ², the box maximum is at the corner sign(x) ⊙ h, h = ε(|x| + 1):
  max f(x + y) − f(x) = Σ cᵢ (|xᵢ| hᵢ + ½ hᵢ²)."""
  x = np.asarray([1.0, -2.0, 0.25])
  eps = 1e-2
  half_width = eps * (np.abs(x) + 1)
  f0 = 0.5 * np.sum(CURVATURES * x**2)
  increase = np.sum(CURVATURES * (np.abs(x) * half_width + 0.5 * half_width**2))
  got = sharpness(bowl, {"x": jnp.asarray(x)}, jnp.asarray(CURVATURES), eps=eps)
  np.testing.assert_allclose(got, 100 * increase / (1 + f0), rtol=1e-12)


def test_sharpness_refuses_a_negative_loss(x64):
  """φ divides by 1 + f(x): at f = −6 it came out negative, at f ≈ −1 a million times too large."""
  params = {"x": jnp.asarray([1.0, -2.0, 0.25])}
  with pytest.raises(ValueError, match=r"sharpness: the loss at params is -6 < 0"):
    sharpness(lambda p, c: bowl(p, c) - 6.0 - bowl(params, c), params, jnp.asarray(CURVATURES))
  assert sharpness(lambda p, c: bowl(p, c) - bowl(params, c), params, jnp.asarray(CURVATURES)) > 0


def test_sharpness_moves_a_coordinate_whose_slope_is_zero(x64):
  """f = (w₀ − 2e-4)² + w₁² at 0: ∂f/∂w₁ = 0 there, and sign(0) = 0 left w₁ at 0, ending on an
  edge (φ = 100 · 1.4e-4 / (1 + f₀)) instead of the best corner (−h, ±h): 100 · 2.4e-4 / ..."""
  c, eps = 2e-4, 1e-3

  def f(params):
    return (params["w"][0] - c) ** 2 + params["w"][1] ** 2

  f0 = c**2
  corners = [(s0 * eps - c) ** 2 + eps**2 for s0 in (-1.0, 1.0)]
  got = sharpness(f, {"w": jnp.zeros(2)}, eps=eps)
  np.testing.assert_allclose(got, 100 * (max(corners) - f0) / (1 + f0), rtol=1e-12)


def test_sharpness_at_a_minimum_starts_from_a_random_corner(x64):
  """At x = 0 the gradient is 0; the random start still reaches a corner: ½ Σ cᵢ ε²."""
  got = sharpness(bowl, {"x": jnp.zeros(3)}, jnp.asarray(CURVATURES), eps=1e-3)
  np.testing.assert_allclose(got, 100 * 0.5 * np.sum(CURVATURES) * 1e-6, rtol=1e-12)
  with pytest.raises(ValueError, match="eps=0"):
    sharpness(bowl, {"x": jnp.zeros(3)}, jnp.asarray(CURVATURES), eps=0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_curvature_along_gradient_of_half_precision_parameters(dtype):
  """gᵀg and gᵀHg of ½ wᵀAw at w = 1 in half precision (exact there: small integers and halves);
  bfloat16 values failed numpy's finiteness check after they were computed."""
  a = np.diag([3.0, -1.0, 0.5, 2.0]).astype(np.float32)

  def loss(p):
    w = p["w"].astype(jnp.float32)
    return 0.5 * w @ a @ w

  result = curvature_along_gradient(loss, {"w": jnp.ones(4, dtype)})
  g = a @ np.ones(4)
  assert float(result.g_dot_g) == g @ g == 14.25
  assert float(result.g_hess_g) == g @ a @ g == 34.125
