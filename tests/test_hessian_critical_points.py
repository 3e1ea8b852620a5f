"""Tests of hessian/critical_points.py: spectra and the classification of critical points."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study import hessian
from jaxopt_study.hessian import classify, spectrum


def quadratic(x, a):
  """x ↦ ½ xᵀ A x: its Hessian is A everywhere and 0 is critical. One function with A as data,
  so that the tests below share their compiled programs."""
  return 0.5 * x @ a @ x


def diagonal(*curvatures):
  return jnp.diag(jnp.asarray(curvatures, jnp.float64))


def rosenbrock(p):
  return (1.0 - p["x"]) ** 2 + 100.0 * (p["y"] - p["x"] ** 2) ** 2


def test_bowl_spectrum_is_its_diagonal_in_ascending_order(x64):
  result = spectrum(quadratic, jnp.asarray([1.0, -1.0, 0.5]), diagonal(3.0, 0.5, 10.0))
  np.testing.assert_allclose(result.eigenvalues, [0.5, 3.0, 10.0], rtol=1e-15)
  assert result.eigenvectors is None and result.num_params == 3
  np.testing.assert_allclose(result.loss, 0.5 * (3 + 0.5 + 2.5), rtol=1e-15)
  np.testing.assert_allclose(result.grad_norm, np.linalg.norm([3.0, -0.5, 5.0]), rtol=1e-15)


def test_spectrum_of_a_symmetric_matrix_with_eigenvectors_and_selection(x64):
  a = np.random.default_rng(0).normal(size=(7, 7))
  a = a + a.T
  data = (jnp.zeros(7), jnp.asarray(a))
  expected = np.linalg.eigvalsh(a)
  full = spectrum(quadratic, *data, eigenvectors=True)
  np.testing.assert_allclose(full.eigenvalues, expected, rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(a @ full.eigenvectors, full.eigenvectors * expected, atol=1e-12)
  top = spectrum(quadratic, *data, k=2, eigenvectors=True)
  np.testing.assert_allclose(top.eigenvalues, expected[-2:], rtol=1e-13)
  assert top.eigenvectors.shape == (7, 2)
  both = spectrum(quadratic, *data, k=2, which="both")
  np.testing.assert_allclose(both.eigenvalues, expected[[0, 1, 5, 6]], rtol=1e-13)
  lowest = spectrum(quadratic, *data, method="lanczos", k=1, which="smallest", num_steps=7)
  np.testing.assert_allclose(lowest.eigenvalues, expected[:1], rtol=1e-12)
  ends = spectrum(quadratic, *data, method="lanczos", k=2, which="both", num_steps=7)
  np.testing.assert_allclose(ends.eigenvalues, expected[[0, 1, 5, 6]], rtol=1e-12)
  ritz = spectrum(quadratic, *data, method="lanczos", k=1, num_steps=7, eigenvectors=True)
  np.testing.assert_allclose(
    np.abs(ritz.eigenvectors[:, 0]), np.abs(full.eigenvectors[:, -1]), atol=1e-10
  )


def test_spectrum_argument_errors():
  x, a = np.zeros(2, np.float32), np.eye(2, dtype=np.float32)
  with pytest.raises(ValueError, match="method='newton'"):
    spectrum(quadratic, x, a, method="newton")
  with pytest.raises(ValueError, match="pass k"):
    spectrum(quadratic, x, a, method="lanczos")
  with pytest.raises(ValueError, match=r"k=3: must be an integer in \[1, N=2\]"):
    spectrum(quadratic, x, a, k=3)
  with pytest.raises(ValueError, match="which='top'"):
    spectrum(quadratic, x, a, k=1, which="top")


def test_rosenbrock_minimum_hessian_and_condition_number(x64):
  """∇²f(1, 1) = [[802, −400], [−400, 200]]: λ = 501 ± √(301² + 400²), κ ≈ 2508."""
  point = classify(rosenbrock, {"x": jnp.asarray(1.0), "y": jnp.asarray(1.0)})
  root = np.sqrt(301.0**2 + 400.0**2)
  assert point.kind == "minimum" and point.index == 0.0 and point.n_positive == 2
  np.testing.assert_allclose(point.lambda_min, 501.0 - root, rtol=1e-12)
  np.testing.assert_allclose(point.lambda_max, 501.0 + root, rtol=1e-12)
  np.testing.assert_allclose(point.condition_number, (501.0 + root) / (501.0 - root), rtol=1e-6)
  np.testing.assert_allclose(point.condition_number, 2508.0096, rtol=1e-6)
  assert point.grad_norm == 0.0 and point.loss == 0.0


@pytest.mark.parametrize("signs", list(itertools.product([1.0, -1.0], repeat=3)))
def test_every_index_of_a_diagonal_quadratic(x64, signs):
  curvatures = np.asarray(signs) * np.asarray([1.0, 2.5, 4.0])
  point = classify(quadratic, jnp.zeros(3), diagonal(*curvatures))
  n_negative = int(np.sum(curvatures < 0))
  expected_kind = {0: "minimum", 3: "maximum"}.get(n_negative, "saddle")
  assert point.kind == expected_kind
  assert point.index == n_negative / 3 and point.n_negative == n_negative
  assert point.n_zero == 0 and point.n_positive == 3 - n_negative
  np.testing.assert_allclose(point.condition_number, 4.0, rtol=1e-15)


def test_a_saddle_with_a_zero_eigenvalue_is_still_a_saddle(x64):
  point = classify(quadratic, jnp.zeros(3), diagonal(2.0, 0.0, -1.0))
  assert point.kind == "saddle" and point.index == pytest.approx(1 / 3)
  assert (point.n_negative, point.n_zero, point.n_positive) == (1, 1, 1)
  assert point.condition_number == np.inf


def test_cap_is_a_maximum(x64):
  point = classify(lambda p: -jnp.sum(p["w"] ** 2) - 3.0, {"w": jnp.zeros((2, 2))})
  assert point.kind == "maximum" and point.index == 1.0 and point.lambda_max == -2.0


def test_monkey_saddle_and_half_flat_bowl_are_degenerate(x64):
  monkey = classify(lambda p: p[0] ** 3 - 3 * p[0] * p[1] ** 2, jnp.zeros(2))
  assert monkey.kind == "degenerate" and monkey.n_zero == 2 and monkey.lambda_max == 0.0
  half_flat = classify(lambda p: p[0] ** 2 + p[1] ** 4, jnp.zeros(2))  # second-order inconclusive
  assert half_flat.kind == "degenerate" and (half_flat.n_zero, half_flat.n_positive) == (1, 1)


def test_constant_loss_is_a_plateau(x64):
  point = classify(lambda p: 0.0 * jnp.sum(p) + 2.5, jnp.ones(5))
  assert point.kind == "plateau" and point.n_zero == 5 and point.loss == 2.5


def test_quartic_in_float32_is_degenerate_unless_the_probes_are_too_close():
  """1 + Σ x⁴ changes by r⁴ = 1e-4 at the default probe radius, far above float32 rounding
  of 1; at r = 1e-3 the change, 1e-12, is below it and the point looks like a plateau."""
  loss = lambda p: 1.0 + jnp.sum(p**4)  # noqa: E731
  assert classify(loss, jnp.zeros(3, jnp.float32)).kind == "degenerate"
  assert classify(loss, jnp.zeros(3, jnp.float32), probe_radius=1e-3).kind == "plateau"


def test_a_float64_leaf_beside_float32_ones_keeps_float32_tolerances(x64):
  """The tolerances came from ε of the promoted dtype (float64), so float32 rounding noise read
  as negative eigenvalues ((w·a)², convex, became a saddle) and an exact float32 least-squares
  solution as not critical. With the float64 leaf b (+ b², at its minimum 0) the verdicts are
  those of the float32 leaves alone."""
  a = jnp.asarray([1.0, -2.0, 0.5, 3.0, 1.5], jnp.float32)
  x = jax.random.normal(jax.random.key(0), (20, 3), jnp.float32)
  y = x @ jnp.asarray([1.0, -1.0, 2.0], jnp.float32) + 0.1 * jnp.arange(20, dtype=jnp.float32)
  w = jnp.linalg.lstsq(x, y)[0]
  for loss, point in (
    (lambda p: jnp.dot(p["w"], a) ** 2, {"w": jnp.zeros(5, jnp.float32)}),
    (lambda p: 0.5 * jnp.mean((x @ p["w"] - y) ** 2), {"w": w}),
  ):
    alone = classify(loss, point)
    mixed = classify(lambda p, loss=loss: loss(p) + p["b"] ** 2, point | {"b": jnp.zeros(())})
    assert alone.kind in ("degenerate", "minimum") and mixed.kind == alone.kind
    assert (mixed.n_negative, mixed.n_zero) == (alone.n_negative, alone.n_zero)
    assert mixed.count_tol > 1e-9  # float32's, not float64's 2e-14


def test_a_loss_not_finite_at_the_flatness_probes_warns():
  """NaN beyond r = 0.05 around a flat point: the probes cannot tell a plateau, and say so (the
  point was called degenerate silently)."""
  loss = lambda p: jnp.where(jnp.sum(p**2) > 0.05**2, jnp.nan, 1.0 + 0.0 * jnp.sum(p))  # noqa: E731
  with pytest.warns(UserWarning, match="not finite at 8 of 8 flatness probes"):
    point = classify(loss, jnp.zeros(3), num_directions=4)
  assert point.kind == "degenerate"
  assert classify(loss, jnp.zeros(3), probe_radius=0.01).kind == "plateau"


def test_large_gradient_is_not_critical_with_its_index_reported(x64):
  point = classify(quadratic, jnp.ones(3), diagonal(1.0, -2.0, 3.0))
  assert point.kind == "not_critical" and point.index == pytest.approx(1 / 3)
  np.testing.assert_allclose(point.grad_norm, np.sqrt(1 + 4 + 9), rtol=1e-15)
  np.testing.assert_allclose(point.hessian_grad_norm, np.sqrt(1 + 16 + 81), rtol=1e-15)
  near = jnp.asarray([1e-3, 0.0, 0.0])
  assert classify(quadratic, near, diagonal(1.0, 2.0, 3.0), grad_tol=1e-2).kind == "minimum"


def test_gradient_flat_point(x64):
  """f(x, y) = x + y² at 0: g = (1, 0) ≠ 0, H = diag(0, 2), H g = 0 (Frye et al. 2021)."""
  point = classify(lambda p: p[0] + p[1] ** 2, jnp.zeros(2))
  assert point.kind == "not_critical" and point.grad_norm == 1.0
  assert point.hessian_grad_norm == 0.0 and (point.n_zero, point.n_positive) == (1, 1)


def test_eig_tol_decides_what_counts_as_zero(x64):
  a = diagonal(1.0, 1e-9, -1e-9)
  assert classify(quadratic, jnp.zeros(3), a).kind == "saddle"  # 1e-9 ≫ N ε max|λ| ≈ 7e-16
  assert classify(quadratic, jnp.zeros(3), a, eig_tol=1e-6).kind == "degenerate"


def test_lanczos_method_on_80_parameters_or_fewer_is_the_exact_method(x64):
  """N ≤ 80: a Lanczos run would take N steps, as many HVPs as the dense Hessian, so the exact
  eigenvalues are counted (SLQ's random weights gave an index of 0.2 to 0.3 for 0.25, and counts
  (2, 0, 1) for the eigenvalues {−1, 0, 2}), whatever the key."""
  rng = np.random.default_rng(0)
  basis, _ = np.linalg.qr(rng.normal(size=(60, 60)))
  negative = np.concatenate([-rng.uniform(1, 2, 15), rng.uniform(1, 5, 45)])
  for curvatures in (rng.uniform(1.0, 5.0, 60), negative):
    a = jnp.asarray((basis * curvatures) @ basis.T)
    exact = classify(quadratic, jnp.zeros(60), a)
    for seed in range(3):
      lanczos = classify(quadratic, jnp.zeros(60), a, method="lanczos", key=jax.random.key(seed))
      assert lanczos == exact
  assert exact.kind == "saddle" and exact.n_negative == 15
  lanczos = classify(quadratic, jnp.zeros(3), diagonal(-1.0, 0.0, 2.0), method="lanczos")
  assert (lanczos.n_negative, lanczos.n_zero, lanczos.n_positive) == (1, 1, 1)


def test_lanczos_counts_are_the_exact_counts_at_its_resolution(x64):
  """N = 400 > 80 steps, with a cluster of 100 eigenvalues in [−1e-3, 1e-3] (40 of them 0): at
  the rounding tolerance the cluster's one node was counted whole as negative or positive (the
  index of a digits MLP doubled); the counts are now signed at the quadrature's resolution, and
  equal the exact counts at that tolerance within the SLQ's noise."""
  rng = np.random.default_rng(1)
  cluster = np.concatenate([rng.uniform(-1e-3, 1e-3, 60), np.zeros(40)])
  curvatures = np.concatenate([-rng.uniform(0.05, 1.0, 30), cluster, rng.uniform(0.05, 5, 270)])
  basis, _ = np.linalg.qr(rng.normal(size=(400, 400)))
  a = jnp.asarray((basis * curvatures) @ basis.T)
  approx = classify(quadratic, jnp.zeros(400), a, method="lanczos")
  assert approx.count_tol == pytest.approx((curvatures.max() - curvatures.min()) / 80, rel=1e-6)
  exact = classify(quadratic, jnp.zeros(400), a, eig_tol=approx.count_tol)
  assert approx.kind == exact.kind == "saddle"
  np.testing.assert_allclose(approx.lambda_min, exact.lambda_min, rtol=1e-6)
  np.testing.assert_allclose(approx.lambda_max, exact.lambda_max, rtol=1e-6)
  assert approx.condition_number == np.inf  # zero eigenvalues counted
  for field in ("n_negative", "n_zero", "n_positive"):
    assert abs(getattr(approx, field) - getattr(exact, field)) <= 8, field  # 2% of N
  assert classify(quadratic, jnp.zeros(400), a).count_tol < 1e-10  # exact: rounding only
  apart = np.concatenate([-rng.uniform(1, 2, 30), rng.uniform(1, 5, 70)])  # none near zero
  saddle = classify(quadratic, jnp.zeros(100), jnp.asarray(np.diag(apart)), method="lanczos")
  assert saddle.kind == "saddle" and saddle.n_zero == 0
  assert np.isnan(saddle.condition_number)  # a saddle's smallest |λ| is not computed


def test_given_eigenvalues_replace_building_the_hessian(x64):
  a = jnp.asarray([[2.0, 1.0, 0.0], [1.0, -3.0, 0.5], [0.0, 0.5, 1.0]])
  built = classify(quadratic, jnp.zeros(3), a)
  given = classify(quadratic, jnp.zeros(3), a, eigenvalues=spectrum(quadratic, jnp.zeros(3), a)[0])
  assert built == given and built.kind == "saddle" and built.n_negative == 1
  other = classify(quadratic, jnp.zeros(3), a, eigenvalues=np.asarray([1.0, 2.0, 3.0]))
  assert other.kind == "minimum"  # the given values are used, not a rebuilt H
  with pytest.raises(ValueError, match="all 3 eigenvalues"):
    classify(quadratic, jnp.zeros(3), a, eigenvalues=np.ones(2))
  with pytest.raises(ValueError, match="method='exact'"):
    classify(quadratic, jnp.zeros(3), a, method="lanczos", eigenvalues=np.ones(3))


def _log_loss(params):
  """Σ w² + log w₀: finite where w₀ > 0, NaN where w₀ < 0."""
  return jnp.sum(params["w"] ** 2) + jnp.log(params["w"][0])


@pytest.mark.parametrize(
  ("point", "message"),
  [
    ([np.inf, 1.0], r"classify: params\['w'\] is not finite"),
    ([np.nan, 1.0], r"classify: params\['w'\] is not finite"),
    ([-1.0, 1.0], "classify: the loss at params is nan"),
    ([0.0, 1.0], "classify: the loss at params is -inf"),
  ],
)
def test_a_point_that_cannot_be_evaluated_gets_no_kind(x64, point, message):
  """Issue 20: `sum(w²) + log(w₀)` at w₀ = inf was reported a minimum, at NaN not critical."""
  with pytest.raises(ValueError, match=message):
    hessian.classify(_log_loss, {"w": jnp.asarray(point)})


def test_a_non_finite_gradient_is_named_by_its_leaf(x64):
  def loss(params):
    return jnp.sum(params["a"] ** 2) + jnp.sum(jnp.sqrt(jnp.abs(params["b"])))

  params = {"a": jnp.ones(2), "b": jnp.asarray([0.0, 1.0])}  # d√|b|/db is infinite at b = 0
  for tool in (hessian.spectrum, hessian.classify, hessian.hutchinson_trace):
    with pytest.raises(ValueError, match=r"the gradient at params is not finite in params\['b'\]"):
      tool(loss, params)


@pytest.mark.parametrize(
  ("params", "error", "message"),
  [
    ({}, ValueError, "spectrum: params has no arrays"),
    ({"w": jnp.zeros((0, 3))}, ValueError, r"spectrum: params has no entries"),
    ({"w": jnp.arange(3)}, TypeError, r"spectrum: params\['w'\] has dtype int"),
  ],
)
def test_empty_zero_size_and_integer_parameters_are_refused_by_name(params, error, message):
  with pytest.raises(error, match=message):
    hessian.spectrum(lambda p: sum(jnp.sum(x) for x in jax.tree.leaves(p)), params)


def _half_precision_net(dtype):
  """A 195-parameter tanh net in `dtype` with its loss (in float32) and data."""
  from flax import nnx

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.a = nnx.Linear(8, 16, param_dtype=dtype, dtype=dtype, rngs=rngs)
      self.b = nnx.Linear(16, 3, param_dtype=dtype, dtype=dtype, rngs=rngs)

    def __call__(self, x):
      return self.b(jnp.tanh(self.a(x)))

  def loss(model, x, y):
    logits = model(x).astype(jnp.float32)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(64, 8)), dtype)
  return Net(nnx.Rngs(0)), loss, x, jnp.asarray(rng.integers(0, 3, 64))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_lanczos_and_classify_work_in_float32(dtype):
  """The Krylov work runs in float32 around the model's own HVPs: the Lanczos ends equal the
  exact spectrum's to the HVPs' precision (in bfloat16 they came out 3x too small), the exact ends
  equal those of the float32 Hessian of the same rounded point, and a saddle is classified a
  saddle (with N ε of bfloat16 above 1, every eigenvalue was counted zero: "plateau")."""
  from flax import nnx

  model, loss, x, y = _half_precision_net(dtype)
  eps = float(jnp.finfo(dtype).eps)
  exact = spectrum(loss, model, x, y).eigenvalues
  scale = float(np.abs(exact).max())
  ends = spectrum(loss, model, x, y, method="lanczos", k=2, which="both").eigenvalues
  np.testing.assert_allclose(ends, np.concatenate([exact[:2], exact[-2:]]), atol=eps * scale)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  flat, unravel = jax.flatten_util.ravel_pytree(
    jax.tree.map(lambda p: p.astype(jnp.float32), params)
  )

  def float32_loss(theta):
    rounded = jax.tree.map(lambda p: p.astype(dtype), unravel(theta))
    return loss(nnx.merge(graphdef, rounded, rest), x, y)

  reference = np.linalg.eigvalsh(np.asarray(jax.hessian(float32_loss)(flat), np.float64))
  np.testing.assert_allclose(exact[[0, -1]], reference[[0, -1]], atol=4 * eps * scale)
  for method in ("exact", "lanczos"):
    point = classify(loss, model, x, y, method=method, grad_tol=1e3)  # not critical: no matter
    assert point.kind == "saddle", (method, point)
    assert point.n_negative > 10 and point.n_positive > 10, (method, point)
  point = classify(loss, model, x, y, grad_tol=1e3)
  assert point.count_tol == pytest.approx(np.sqrt(195) * eps * scale, rel=1e-3)
