"""`jaxopt_study.landscape`: lines in parameter space, path lengths, and the §8.2.7 surfaces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study import hessian, landscape


def test_path_length_of_an_l_shaped_path():
  points = np.asarray([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
  assert landscape.path_length(points) == pytest.approx(7.0)
  assert np.linalg.norm(points[-1] - points[0]) == pytest.approx(5.0)


def test_interpolate_and_loss_along_line_against_a_loop(x64):
  start = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}
  end = {"w": jnp.asarray([3.0, 0.0]), "b": jnp.asarray(-1.5)}
  alphas = [-0.5, 0.0, 0.25, 1.0, 1.5]

  def loss(p):
    return jnp.sum(p["w"] ** 2) + jnp.sin(p["b"])

  expected = []
  for a in alphas:
    w = (1 - a) * np.asarray([1.0, -2.0]) + a * np.asarray([3.0, 0.0])
    b = (1 - a) * 0.5 + a * -1.5
    expected.append(np.sum(w**2) + np.sin(b))
  np.testing.assert_allclose(landscape.loss_along_line(loss, start, end, alphas), expected)
  assert landscape.parameter_distance(start, end) == pytest.approx(np.sqrt(4 + 4 + 4))


def test_permuting_hidden_units_keeps_the_function(x64):
  """§8.2.2: the same network with its hidden units relabelled computes the same outputs."""
  from jaxopt_study import models

  model = models.functional(
    models.build_model("mlp", 5, 3, width=6, depth=2, activation="tanh", param_dtype=jnp.float64)
  )
  x = jax.random.normal(jax.random.key(0), (7, 5), jnp.float64)
  permuted = landscape.permute_hidden_units(model.params, np.random.default_rng(1))
  before, _ = model.apply(model.params, model.model_state, x, True)
  after, _ = model.apply(permuted, model.model_state, x, True)
  np.testing.assert_allclose(after, before, rtol=1e-12)
  assert landscape.parameter_distance(model.params, permuted) > 0.1


def test_the_mountain_minimizer_is_a_minimum(x64):
  surface = landscape.SURFACES["mountain"]
  # The minimizer is stored to 8 digits, so its gradient is ~1e-8, not float64's √ε.
  point = hessian.classify(surface.fn, jnp.asarray(surface.minimizer), grad_tol=1e-6)
  assert point.kind == "minimum"
  assert point.grad_norm < 1e-6
  assert point.loss == pytest.approx(0.05726, abs=1e-5)


def test_the_plateau_is_flat_at_its_start(x64):
  surface = landscape.SURFACES["plateau"]
  start = jnp.asarray(surface.start)
  radius = float(jnp.linalg.norm(start))
  gradient = jax.grad(surface.fn)(start)
  # |∇f| = r e^{−r²/2} for f = 1 − e^{−r²/2}
  assert float(jnp.linalg.norm(gradient)) == pytest.approx(radius * np.exp(-(radius**2) / 2))
  assert float(jnp.linalg.norm(gradient)) < 1e-4
