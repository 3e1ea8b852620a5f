"""`jaxopt_study.lab.landscape`: lines in parameter space, path lengths, the §8.2.7 surfaces, and
critical points from many starts (Newton for ∇f = 0, symmetric copies)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study import hessian
from jaxopt_study.lab import landscape


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


def _saddle(p):
  """x² + y⁴/4 − y²/2: a saddle at (0, 0), minima at (0, ±1) with f = −1/4, mirror images."""
  return p["x"] ** 2 + p["y"] ** 4 / 4 - p["y"] ** 2 / 2


def test_critical_points_from_finds_saddles_and_minima_and_marks_copies(x64):
  starts = {"x": jnp.asarray([0.3, 0.2, -0.2, 0.2]), "y": jnp.asarray([0.05, 0.9, -1.2, -0.04])}
  ends, norms, points = landscape.critical_points_from(_saddle, starts, steps=12)
  np.testing.assert_allclose(ends["x"], 0.0, atol=1e-14)
  np.testing.assert_allclose(ends["y"], [0.0, 1.0, -1.0, 0.0], atol=1e-14)
  assert norms.shape == (4, 13) and norms[:, 0] == pytest.approx(
    [np.hypot(2 * x, y**3 - y) for x, y in zip(starts["x"], starts["y"], strict=True)]
  )
  assert norms[:, -1] == pytest.approx([p.grad_norm for p in points], abs=1e-15)
  assert [p.kind for p in points] == ["saddle", "minimum", "minimum", "saddle"]
  assert [p.index for p in points] == [0.5, 0.0, 0.0, 0.5]
  # (0, −1) is the mirror image of (0, 1), and the last start found the first one's saddle
  assert landscape.repeats_of(points) == [None, None, 1, 0]


def test_critical_points_from_reports_a_stalled_run_as_not_critical(x64):
  """x³/3 + x has no critical point: Newton stops near the gradient-flat x = 0, ‖g‖ ≈ 1."""
  starts = {"x": jnp.asarray([0.5, -0.3])}
  _, norms, points = landscape.critical_points_from(lambda p: p["x"] ** 3 / 3 + p["x"], starts, 20)
  assert [p.kind for p in points] == ["not_critical", "not_critical"]
  assert all(1.0 <= p.grad_norm < 1.1 for p in points)
  assert np.all(np.diff(norms, axis=1) <= 0)
  assert landscape.repeats_of(points) == [None, None]


def test_repeats_of_compares_the_loss_relatively_and_the_index_exactly():
  def point(kind, n_negative, loss):
    return hessian.CriticalPoint(
      kind, n_negative / 4, n_negative, 0, 4 - n_negative, -1.0, 1.0, 1.0, 0.0, 0.0, loss
    )

  points = [
    point("saddle", 1, 2.0),
    point("saddle", 1, 2.0 * (1 + 5e-10)),  # equal within 1e-9 (1 + |f|)
    point("saddle", 2, 2.0),  # another index
    point("saddle", 1, 2.0 * (1 + 1e-8)),  # another loss
    point("not_critical", 1, 2.0),
    point("minimum", 0, 1.0),
  ]
  assert landscape.repeats_of(points) == [None, 0, None, None, None, None]
  assert landscape.repeats_of(points, rel_tol=1e-7) == [None, 0, None, 0, None, None]
