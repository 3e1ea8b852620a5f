"""Property-based tests (hypothesis) of the public API on bad input (issue 20).

Random values (NaN, ±inf, negative, zero, empty, a wrong type, dtype or shape, huge) go into the
optimizers' constructors and updates, `Problem`, `train.train`, `sweep.run`, the Hessian tools and
the config overrides. Each must give the mathematically right answer (checked against an analytic
one) or raise `ValueError`/`TypeError` naming the argument, never a silent wrong answer and never
an error from deep inside JAX or Orbax. What is valid is written here, from the docstrings, as an
oracle independent of `jaxopt_study.validate`.

Fast tier: few examples (FUZZ_EXAMPLES=500 searches deeper), small shapes, compiled functions
shared between examples (the same loss function objects and parameter layouts), and training or
sweeping stopped at the point where it would compile (every check happens before).
"""

import ast
import inspect
import math
import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from jaxopt_study import config as config_lib
from jaxopt_study import hessian, optim, sweep, train
from jaxopt_study import problem as problem_lib
from jaxopt_study.sweep import runner

# FUZZ_EXAMPLES=500 searches deeper, with new random examples at each run
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(
  max_examples=EXAMPLES,
  deadline=None,
  derandomize="FUZZ_EXAMPLES" not in os.environ,
  database=None,
  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=max(10, EXAMPLES // 10))
NAN, INF = float("nan"), float("inf")
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT32_MAX = 2**31 - 1

# the values a hurried user or a typo gives: floats, ints, and everything that is not a number
NASTY = [NAN, INF, -INF, -1.0, 0.0, -0.0, 1e300, 1e-320, 2.5, 0, 1, -3, 2**40, True, None, "0.1"]
NASTY += [[0.1], (), np.array([0.1, 0.2]), np.float32(NAN), 1 + 1j, np.int8(3)]
NASTY += [jnp.asarray(0.5, jnp.bfloat16), np.float64(0.3)]
VALUES = st.one_of(
  st.sampled_from(NASTY),
  st.floats(allow_nan=True, allow_infinity=True),
  st.integers(min_value=-10, max_value=2**40),
)


def refused(error: BaseException, name: str) -> bool:
  """Whether `error` is the ValueError/TypeError of our checks that names `name`."""
  return isinstance(error, (ValueError, TypeError)) and re.search(
    rf"\b{re.escape(name)}\b", str(error)
  )


def expect(call, name: str, valid: bool):
  """Runs `call`: a valid value must be accepted, an invalid one refused by name."""
  if valid:
    return call()
  with pytest.raises((ValueError, TypeError)) as caught:
    call()
  assert refused(caught.value, name), f"{name}: {caught.value!r} does not name the argument"
  return None


# --- the oracle: what the docstrings say is valid -------------------------------------------------


def real_scalar(v) -> bool:
  if isinstance(v, (bool, np.bool_, str, list, tuple)) or v is None or np.ndim(v) != 0:
    return False
  dtype = np.asarray(v).dtype
  return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)


def finite32(v) -> bool:
  """Finite in float32; a Python int beyond int32 cannot enter a compiled function."""
  if real_scalar(v) and np.asarray(v).dtype.kind in "iu" and abs(int(v)) > INT32_MAX:
    return False
  return real_scalar(v) and math.isfinite(float(v)) and abs(float(v)) <= FLOAT32_MAX


def non_negative(v) -> bool:
  return finite32(v) and float(v) >= 0


def positive(v) -> bool:
  return finite32(v) and float(v) > 0


def unit(low_open=False, high_closed=False):
  def rule(v) -> bool:
    if not real_scalar(v) or math.isnan(float(v)):
      return False
    x = float(v)
    return (x > 0 if low_open else x >= 0) and (x <= 1 if high_closed else x < 1)

  return rule


def integer(low: int, high: float = math.inf, none: bool = False):
  def rule(v) -> bool:
    if v is None:
      return none
    ok = real_scalar(v) and jnp.issubdtype(np.asarray(v).dtype, jnp.integer)
    return ok and low <= int(v) <= high

  return rule


def or_none(rule):
  return lambda v: v is None or rule(v)


HYPERPARAMETERS = {  # optimizer -> argument -> rule; required arguments get the first valid value
  "sgd": {"learning_rate": non_negative},
  "momentum": {"learning_rate": non_negative, "momentum": unit()},
  "nesterov": {"learning_rate": non_negative, "momentum": unit()},
  "adagrad": {"learning_rate": non_negative, "eps": non_negative},
  "rmsprop": {"learning_rate": non_negative, "decay": unit(), "eps": non_negative},
  "rmsprop_nesterov": {
    "learning_rate": non_negative,
    "decay": unit(),
    "momentum": unit(),
    "eps": non_negative,
  },
  "adam": {"learning_rate": non_negative, "b1": unit(), "b2": unit(), "eps": non_negative},
  "adadelta": {"learning_rate": non_negative, "decay": unit(), "eps": positive},
  "delta_bar_delta": {
    "learning_rate": non_negative,
    "kappa": non_negative,
    "phi": unit(high_closed=True),
    "theta": unit(),
  },
  "newton": {"damping": non_negative, "learning_rate": non_negative},
  "saddle_free_newton": {
    "damping": non_negative,
    "learning_rate": non_negative,
    "krylov_dim": integer(1, 3, none=True),
  },
  "critical_point_newton": {
    "damping": positive,
    "min_damping": positive,
    "max_tries": integer(1, INT32_MAX),
  },
  "conjugate_gradient": {
    "learning_rate": or_none(non_negative),
    "restart_every": integer(1, INT32_MAX, none=True),
  },
  "bfgs": {"learning_rate": or_none(non_negative)},
  "lbfgs": {"memory_size": integer(1, INT32_MAX), "learning_rate": or_none(non_negative)},
}
REQUIRED = {"learning_rate": 0.1, "kappa": 0.1, "phi": 0.5, "theta": 0.5, "damping": 0.1}
CONSTRUCTORS = {**optim.OPTIMIZERS, "critical_point_newton": optim.critical_point_newton}
ELEMENTWISE = [n for n in HYPERPARAMETERS if n in optim.OPTIMIZERS and n not in {
  "newton", "saddle_free_newton", "conjugate_gradient", "bfgs", "lbfgs"}]  # fmt: skip
SCALES = jnp.asarray([1.0, 2.0, 3.0])


def bowl(params):
  """f(w) = Σ cᵢ wᵢ², c = (1, 2, 3): ∇f = 2 c w, ∇²f = 2 diag(c)."""
  return jnp.sum(SCALES * params["w"] ** 2)


POINT = {"w": jnp.asarray([1.0, -0.5, 2.0])}


def one_update(tx, params=POINT, grads=None):
  value, grad = jax.value_and_grad(bowl)(params)
  grads = grad if grads is None else grads
  updates, _ = tx.update(grads, tx.init(params), params, value=value, grad=grad, value_fn=bowl)
  return np.asarray(updates["w"])


def test_every_optimizer_has_an_oracle():
  assert set(HYPERPARAMETERS) == set(CONSTRUCTORS)
  for name, ctor in CONSTRUCTORS.items():
    numeric = {p for p in inspect.signature(ctor).parameters} - {
      "adaptive", "indefinite", "variant", "linesearch"}  # fmt: skip
    assert numeric == set(HYPERPARAMETERS[name]), name


def check_constructor(name: str, argument: str, value) -> None:
  """Builds `name` with `argument=value`; if accepted, one update from a finite point is finite
  (for values small enough that the step cannot overflow float32), and sgd's is −ε g exactly."""
  ctor, rules = CONSTRUCTORS[name], HYPERPARAMETERS[name]
  kwargs = {
    k: REQUIRED[k]
    for k, p in inspect.signature(ctor).parameters.items()
    if p.default is inspect.Parameter.empty
  }
  kwargs[argument] = value
  # a memory of that many pairs is valid, and allocates that many vectors
  assume(not (argument == "memory_size" and isinstance(value, int) and 100 < value <= INT32_MAX))
  update = expect(lambda: one_update(ctor(**kwargs)), argument, rules[argument](value))
  if update is None:
    return
  assert update.dtype == np.float32 and update.shape == (3,)
  if value is None or abs(float(value)) <= 1e6:
    assert np.all(np.isfinite(update)), (name, argument, value, update)
  if name == "sgd":
    expected = -np.float32(value) * 2 * np.float32([1.0, 2.0, 3.0]) * np.float32([1, -0.5, 2])
    np.testing.assert_allclose(update, expected, rtol=1e-6)


def options_of(names) -> list[tuple[str, str]]:
  return [(name, argument) for name in sorted(names) for argument in HYPERPARAMETERS[name]]


# what the fuzzing found (issue 20), kept as examples that always run
@FUZZ
@given(option=st.sampled_from(options_of(ELEMENTWISE)), value=VALUES)
@example(option=("sgd", "learning_rate"), value=2**31 + 1)  # OverflowError inside JAX
@example(option=("momentum", "momentum"), value=np.array([0.1, 0.2]))  # broadcasting error
@example(option=("sgd", "learning_rate"), value=1 + 1j)  # a complex step
@example(option=("adadelta", "eps"), value=1e300)  # inf in float32: a NaN step
def test_first_order_hyperparameters_are_valid_or_refused_by_name(option, value):
  name, argument = option
  check_constructor(name, argument, value)


@settings(FEW, max_examples=max(6, EXAMPLES // 20))  # each update compiles its own loops
@given(option=st.sampled_from(options_of(set(HYPERPARAMETERS) - set(ELEMENTWISE))), value=VALUES)
@example(option=("critical_point_newton", "max_tries"), value=2**40)  # int32 overflow
def test_second_order_hyperparameters_are_valid_or_refused_by_name(option, value):
  name, argument = option
  check_constructor(name, argument, value)


BAD_ENTRIES = st.sampled_from([NAN, INF, -INF])


@FUZZ
@given(name=st.sampled_from(ELEMENTWISE), index=st.integers(0, 2), bad=BAD_ENTRIES)
def test_a_non_finite_gradient_entry_spoils_only_its_own_update(name, index, bad):
  """The first-order methods act coordinate by coordinate (Alg. 8.1-8.7): a NaN or ±inf in
  gᵢ gives a non-finite Δθᵢ (never a finite number made up) and leaves the others unchanged."""
  ctor = CONSTRUCTORS[name]
  kwargs = {k: REQUIRED[k] for k in HYPERPARAMETERS[name] if k in REQUIRED}
  tx = ctor(**kwargs)
  clean = one_update(tx)
  grads = {"w": jax.grad(bowl)(POINT)["w"].at[index].set(bad)}
  spoiled = one_update(tx, grads=grads)
  assert not np.isfinite(spoiled[index])
  others = np.arange(3) != index
  np.testing.assert_allclose(spoiled[others], clean[others], rtol=1e-6)


@FEW
@given(name=st.sampled_from(["newton", "saddle_free_newton"]), index=st.integers(0, 2))
def test_a_guarded_second_order_step_is_zero_at_a_non_finite_gradient(name, index):
  tx = CONSTRUCTORS[name](damping=0.1)
  grads = {"w": jax.grad(bowl)(POINT)["w"].at[index].set(NAN)}
  value, grad = jax.value_and_grad(bowl)(POINT)
  updates, state = tx.update(grads, tx.init(POINT), POINT, value=value, grad=grad, value_fn=bowl)
  np.testing.assert_array_equal(updates["w"], 0.0)
  assert int(state.count) == 0


# --- Hessian tools ------------------------------------------------------------------------------


def quadratic(params, curvatures):
  """½ Σᵢ aᵢ θᵢ² over the raveled params: H = diag(a), ∇ = a θ (one loss object for all)."""
  flat = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(params)])
  return 0.5 * jnp.sum(curvatures * flat**2)


def log_barrier(params, curvatures):
  """quadratic + Σ log θᵢ: NaN where a θᵢ < 0, −inf at 0, with an infinite gradient."""
  flat = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(params)])
  return quadratic(params, curvatures) + jnp.sum(jnp.log(flat))


LAYOUTS = [{"w": (3,)}, {"a": (2,), "b": (1,)}, {"w": (1, 3)}]
HESSIAN_TOOLS = {
  "spectrum": lambda loss, p, *a: hessian.spectrum(loss, p, *a),
  "classify": lambda loss, p, *a: hessian.classify(loss, p, *a),
  "hessian_matrix": lambda loss, p, *a: hessian.hessian_matrix(loss, p, *a),
  "density": lambda loss, p, *a: hessian.density(loss, p, *a, num_probes=2, num_steps=3),
  "hutchinson_trace": lambda loss, p, *a: hessian.hutchinson_trace(loss, p, *a, num_probes=2),
  "sharpness": lambda loss, p, *a: hessian.sharpness(loss, p, *a, steps=2),
  "curvature_along_gradient": lambda loss, p, *a: hessian.curvature_along_gradient(loss, p, *a),
  "spectrum_lanczos": lambda loss, p, *a: hessian.spectrum(loss, p, *a, method="lanczos", k=1),
}


def layout_params(layout: dict, values: np.ndarray) -> dict:
  out, start = {}, 0
  for key, shape in layout.items():
    size = math.prod(shape)
    out[key] = jnp.asarray(values[start : start + size].reshape(shape), jnp.float32)
    start += size
  return out


def where_of(tool: str) -> str:
  return "spectrum" if tool == "spectrum_lanczos" else tool


@FUZZ
@given(
  tool=st.sampled_from(sorted(HESSIAN_TOOLS)),
  layout=st.sampled_from(LAYOUTS),
  position=st.integers(0, 2),
  bad=BAD_ENTRIES,
)
def test_hessian_tools_refuse_a_non_finite_parameter_naming_its_leaf(tool, layout, position, bad):
  values = np.asarray([0.5, 1.0, 2.0])
  values[position] = bad
  params = layout_params(layout, values)
  first = next(k for k in sorted(params) if not np.all(np.isfinite(params[k])))
  with pytest.raises(ValueError, match=rf"{where_of(tool)}: params\['{first}'\] is not finite"):
    HESSIAN_TOOLS[tool](quadratic, params, jnp.ones(3))


@FEW
@given(tool=st.sampled_from(sorted(HESSIAN_TOOLS)), position=st.integers(0, 2))
def test_hessian_tools_refuse_a_point_where_the_loss_is_not_finite(tool, position):
  values = np.asarray([0.5, 1.0, 2.0])
  values[position] = -1.0  # log(−1) = NaN
  params = layout_params(LAYOUTS[0], values)
  with pytest.raises(ValueError, match=f"{where_of(tool)}: the loss at params is nan"):
    HESSIAN_TOOLS[tool](log_barrier, params, jnp.ones(3))


@FUZZ
@given(
  tool=st.sampled_from(sorted(HESSIAN_TOOLS)),
  params=st.sampled_from(
    [
      ({}, ValueError, "params has no arrays"),
      ({"w": jnp.zeros((0,))}, ValueError, r"params has no entries"),
      ({"w": jnp.arange(3)}, TypeError, r"params\['w'\] has dtype int32"),
      ({"w": jnp.ones(3, bool)}, TypeError, r"params\['w'\] has dtype bool"),
      ({"w": jnp.ones(3, jnp.complex64)}, TypeError, r"params\['w'\] has dtype complex64"),
    ]
  ),
)
def test_hessian_tools_refuse_params_without_curvature_naming_the_argument(tool, params):
  tree, error, match = params
  with pytest.raises(error, match=f"{where_of(tool)}: {match}"):
    HESSIAN_TOOLS[tool](quadratic, tree, jnp.ones(3))


CURVATURES = st.lists(
  st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 3.0]), min_size=3, max_size=3
).map(lambda a: np.asarray(a, np.float32))


@FEW
@given(curvatures=CURVATURES, point=st.lists(st.floats(-2, 2, width=32), min_size=3, max_size=3))
def test_hessian_tools_give_the_analytic_answer_at_a_finite_point(curvatures, point):
  """½ Σ aᵢ θᵢ²: H = diag(a), so the spectrum is sorted(a), tr H = Σ a exactly for every
  Rademacher probe, gᵀg = Σ (aθ)², gᵀHg = Σ a³θ²; at θ = 0 the kind follows the signs of a."""
  params = {"w": jnp.asarray(point, jnp.float32)}
  a = jnp.asarray(curvatures)
  spectrum = hessian.spectrum(quadratic, params, a)
  np.testing.assert_allclose(spectrum.eigenvalues, np.sort(curvatures), rtol=1e-6)
  np.testing.assert_allclose(hessian.hessian_matrix(quadratic, params, a), np.diag(curvatures))
  trace = hessian.hutchinson_trace(quadratic, params, a, num_probes=2)
  np.testing.assert_allclose(trace.trace, curvatures.sum(), rtol=1e-6, atol=1e-6)
  along = hessian.curvature_along_gradient(quadratic, params, a)
  theta = np.asarray(point, np.float64)
  np.testing.assert_allclose(along.g_dot_g, np.sum((curvatures * theta) ** 2), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(along.g_hess_g, np.sum(curvatures**3 * theta**2), rtol=1e-5, atol=1e-6)
  kind = hessian.classify(quadratic, {"w": jnp.zeros(3)}, a).kind
  signs = frozenset(np.sign(curvatures).tolist())
  assert kind == {frozenset({1.0}): "minimum", frozenset({-1.0}): "maximum"}.get(signs, "saddle")


def lanczos_spectrum(**options):
  return hessian.spectrum(quadratic, POINT, SCALES, method="lanczos", **options)


HESSIAN_OPTIONS = {  # (tool, option) -> (call with the value, the rule for a valid value), N = 3
  ("spectrum", "k"): (lambda v: lanczos_spectrum(k=v), integer(1, 3)),
  ("spectrum", "num_steps"): (
    lambda v: lanczos_spectrum(k=1, num_steps=v),
    integer(1, 3, none=True),
  ),
  ("spectrum", "chunk_size"): (
    lambda v: hessian.spectrum(quadratic, POINT, SCALES, chunk_size=v),
    integer(1, none=True),
  ),
  ("spectrum", "max_seconds"): (
    lambda v: hessian.spectrum(quadratic, POINT, SCALES, max_seconds=v),
    lambda v: real_scalar(v) and (float(v) == INF or positive(v)),  # inf: no limit
  ),
  ("hessian_matrix", "chunk_size"): (
    lambda v: hessian.hessian_matrix(quadratic, POINT, SCALES, chunk_size=v),
    integer(1, none=True),
  ),
  ("density", "num_probes"): (
    lambda v: hessian.density(quadratic, POINT, SCALES, num_probes=v, num_steps=2),
    integer(1),
  ),
  ("density", "num_steps"): (
    lambda v: hessian.density(quadratic, POINT, SCALES, num_probes=1, num_steps=v),
    integer(1, 3),
  ),
  ("density", "sigma"): (
    lambda v: hessian.density(quadratic, POINT, SCALES, num_probes=1, num_steps=2, sigma=v),
    or_none(positive),
  ),
  ("hutchinson_trace", "num_probes"): (
    lambda v: hessian.hutchinson_trace(quadratic, POINT, SCALES, num_probes=v),
    integer(2),
  ),
  ("sharpness", "eps"): (
    lambda v: hessian.sharpness(quadratic, POINT, SCALES, eps=v, steps=1),
    positive,
  ),
  ("sharpness", "steps"): (
    lambda v: hessian.sharpness(quadratic, POINT, SCALES, steps=v),
    integer(1),
  ),
  ("classify", "probe_radius"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, probe_radius=v),
    positive,
  ),
  ("classify", "num_probes"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, method="lanczos", num_probes=v),
    integer(1),
  ),
  ("classify", "max_seconds"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, max_seconds=v),
    lambda v: real_scalar(v) and (float(v) == INF or positive(v)),
  ),
  ("hessian_matrix", "max_seconds"): (
    lambda v: hessian.hessian_matrix(quadratic, POINT, SCALES, max_seconds=v),
    lambda v: real_scalar(v) and (float(v) == INF or positive(v)),
  ),
  ("classify", "num_directions"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, num_directions=v),
    integer(1),
  ),
  ("classify", "grad_tol"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, grad_tol=v),
    or_none(non_negative),
  ),
  ("classify", "eig_tol"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, eig_tol=v),
    or_none(non_negative),
  ),
  ("classify", "flat_tol"): (
    lambda v: hessian.classify(quadratic, POINT, SCALES, flat_tol=v),
    or_none(non_negative),
  ),
  ("curvature_along_gradient", "learning_rate"): (
    lambda v: hessian.curvature_along_gradient(quadratic, POINT, SCALES, learning_rate=v),
    or_none(non_negative),
  ),
  ("lanczos", "num_steps"): (lambda v: hessian.lanczos(lambda x: SCALES * x, 3, v), integer(1, 3)),
}


@FUZZ
@given(option=st.sampled_from(sorted(HESSIAN_OPTIONS)), value=VALUES)
@example(option=("classify", "eig_tol"), value=NAN)  # accepted: every eigenvalue "zero"
@example(option=("classify", "num_directions"), value="0.1")  # accepted, unchecked
@example(option=("density", "num_probes"), value=INF)  # OverflowError from int()
@example(option=("spectrum", "max_seconds"), value=NAN)  # accepted: never too slow
def test_hessian_options_out_of_range_are_refused_by_name(option, value):
  """A valid value is covered by the analytic test above (each new value would compile)."""
  call, rule = HESSIAN_OPTIONS[option]
  assume(not rule(value))
  with pytest.raises((ValueError, TypeError)) as caught:
    call(value)
  assert refused(caught.value, option[1]), f"{option}={value!r}: {caught.value!r}"


# --- Problem, train.train, sweep.run --------------------------------------------------------------

X = np.linspace(-1, 1, 24, dtype=np.float32).reshape(8, 3)
Y = np.arange(8) % 2


class Compiling(Exception):
  """Raised where training would start compiling: every check has passed by then."""


def tiny_problem(**overrides) -> problem_lib.Problem:
  from flax import nnx

  fields = {
    "model": lambda rngs: nnx.Linear(3, 2, rngs=rngs),
    "loss": lambda model, batch: jnp.mean(
      optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1])
    ),  # fmt: skip
    "train_data": (X, Y),
  }
  return problem_lib.Problem(**{**fields, **overrides})


DATA = st.sampled_from(
  [
    ((), "train_data"),
    (None, "train_data"),
    ("digits", "train_data"),
    ((np.float32(1.0),), "train_data"),
    ((X, Y[:5]), "train_data"),
    ((X[:0], Y[:0]), "train_data"),
    (([1.0, 2.0], Y), "train_data"),
    ((np.where(np.arange(24).reshape(8, 3) == 7, np.nan, X), Y), r"train_data\[0\]"),
    ((np.where(np.arange(24).reshape(8, 3) == 0, np.inf, X), Y), r"train_data\[0\]"),
    ((X, np.where(np.arange(8) == 3, np.nan, Y.astype(np.float32))), r"train_data\[1\]"),
  ]
)


@FUZZ
@given(bad=DATA, field=st.sampled_from(["train_data", "heldout_data"]))
@example(bad=((X, np.where(np.arange(8) == 3, np.nan, Y.astype(np.float32))), r"train_data\[1\]"),
         field="train_data")  # NaN data: accepted, every loss NaN  # fmt: skip
def test_problem_refuses_bad_data_by_name(bad, field):
  data, match = bad
  if data is None and field == "heldout_data":
    return  # no held-out data: valid
  match = match.replace("train_data", field)
  with pytest.raises((ValueError, TypeError), match=match):
    tiny_problem(**{field: data})


@FUZZ
@given(field=st.sampled_from(["model", "loss", "init"]), value=st.sampled_from([None, 3, "f", []]))
def test_problem_refuses_what_is_not_a_function_by_name(field, value):
  with pytest.raises((ValueError, TypeError), match=field):
    tiny_problem(**{field: value})


TRAIN_ARGUMENTS = {  # argument -> rule (num_train = 8)
  "steps": integer(1, INT32_MAX),
  "batch_size": integer(1, 8),
  "eval_every": integer(1, INT32_MAX, none=True),  # None: 50 evaluations
  "patience": integer(1, INT32_MAX, none=True),
  "seed": integer(0, 2**32 - 1),
  "init_scale": non_negative,
  "l2_penalty": non_negative,
  "sampling": lambda v: isinstance(v, str) and v in ("epoch", "replacement"),
}


@pytest.fixture
def stop_before_compiling(monkeypatch):
  def stop(*args, **kwargs):
    raise Compiling

  monkeypatch.setattr(train, "make_train_fn", stop)
  monkeypatch.setattr(runner, "_run_plan", stop)


@FUZZ
@given(argument=st.sampled_from(sorted(TRAIN_ARGUMENTS)), value=VALUES)
@example(argument="seed", value=2**32)  # jax.random.key keeps 32 bits: seed 0's stream
@example(argument="seed", value=np.int8(3))  # valid, refused by nnx.Rngs
@example(argument="patience", value=2**31)  # int32 overflow
def test_train_arguments_are_refused_by_name_before_compiling(
  argument, value, stop_before_compiling
):
  valid = TRAIN_ARGUMENTS[argument](value)
  kwargs = {"steps": 4, "batch_size": 4, "eval_every": 2, argument: value}
  if argument == "patience" and value is not None:
    kwargs["early_stopping"] = "train_loss"
  if valid:
    with pytest.raises(Compiling):
      train.train(tiny_problem(), optim.sgd(0.1), **kwargs)
  else:
    expect(lambda: train.train(tiny_problem(), optim.sgd(0.1), **kwargs), argument, False)


SWEEP_ARGUMENTS = {
  "steps": integer(1, INT32_MAX),
  "eval_every": integer(1, INT32_MAX),
  "batch_size": integer(1, 8),
  "init_scale": non_negative,
  "seed": integer(0, 2**32 - 1),
  "memory_budget": integer(1, none=True),
  "checkpoint_every": lambda v: v is None or (integer(1, INT32_MAX)(v) and int(v) % 2 == 0),
  "divergence_factor": lambda v: (
    (real_scalar(v) and float(v) == INF) or (finite32(v) and float(v) > 1)
  ),
  "l2_penalty": non_negative,
}


@FUZZ
@given(argument=st.sampled_from(sorted(SWEEP_ARGUMENTS)), value=VALUES)
@example(argument="memory_budget", value=0)  # taken for the default
@example(argument="memory_budget", value=NAN)  # accepted
@example(argument="checkpoint_every", value=0)  # taken for the default
@example(argument="divergence_factor", value=np.int8(3))  # valid, refused
def test_sweep_arguments_are_refused_by_name_before_compiling(
  argument, value, stop_before_compiling
):
  kwargs = {"steps": 4, "eval_every": 2, "batch_size": 4, argument: value}
  call = lambda: sweep.run(tiny_problem(), optim.sgd, {"learning_rate": [0.1]}, **kwargs)  # noqa: E731
  if SWEEP_ARGUMENTS[argument](value):
    with pytest.raises(Compiling):
      call()
  else:
    expect(call, argument, False)


@FUZZ
@given(
  axis=st.sampled_from(["learning_rate", "batch_size", "init_scale", "seed"]),
  values=st.one_of(
    st.lists(st.sampled_from([NAN, INF, -1.0, 0, 0.5, 3, 99, "a", None, True]), max_size=3),
    st.sampled_from([(), "abc", 0.1, None, np.array([0.1, 0.2])]),
  ),
)
def test_sweep_axes_are_refused_by_name_before_compiling(axis, values, stop_before_compiling):
  rules = {
    "learning_rate": non_negative,
    "batch_size": integer(1, 8),
    "init_scale": non_negative,
    "seed": integer(0, 2**32 - 1),
  }
  valid = (
    isinstance(values, list)
    and values
    and all(rules[axis](v) for v in values)
    and len({repr(v) for v in values}) == len(values)
  )
  kwargs = {"steps": 4, "eval_every": 2, "batch_size": 4, "learning_rate": 0.1}
  kwargs.pop(axis, None)
  call = lambda: sweep.run(tiny_problem(), optim.sgd, {axis: values}, **kwargs)  # noqa: E731
  if valid:
    with pytest.raises(Compiling):
      call()
  else:
    expect(call, axis, False)


# --- config overrides -----------------------------------------------------------------------------

BASE = ml_collections.ConfigDict(
  {
    "steps": 10,
    "learning_rate": 0.1,
    "name": "x",
    "flag": False,
    "model": {"width": 4},
    "sweep": {"seed": [0, 1]},
  }  # fmt: skip
)
TEXTS = st.one_of(
  st.sampled_from(
    [
      "nan",
      "inf",
      "-1",
      "0",
      "1e400",
      "",
      "[]",
      "[1,",
      "True",
      "None",
      "'a'",
      "1.5",
      "[0.1, 0.2]",
      "{}",
      "__import__('os')",
      "3",
      "-0.0",
    ]
  ),  # fmt: skip
  st.text(max_size=6),
)
KEYS = st.sampled_from(
  [
    "steps",
    "learning_rate",
    "name",
    "flag",
    "model.width",
    "model",
    "model.depth",
    "nope",
    "sweep.seed",
    "sweep.learning_rate",
    "steps.x",
    "",
    ".",
  ]  # fmt: skip
)


@FUZZ
@given(key=KEYS, text=TEXTS)
def test_config_overrides_parse_to_the_field_type_or_are_refused_by_name(key, text):
  try:
    config = config_lib.apply_overrides(BASE, [f"{key}={text}"])
  except config_lib.ConfigError as error:
    assert key in str(error) or f"{key}={text}" in str(error)
    return
  value = config
  for part in key.split("."):
    value = value[part]
  if key.startswith("sweep."):
    assert isinstance(value, list) and value
    return
  old = BASE
  for part in key.split("."):
    old = old[part]
  if value is None and old is not None:  # an optional setting switched off: --set FIELD=None
    assert ast.literal_eval(text) is None and not isinstance(old, ml_collections.ConfigDict)
    return
  assert type(value) is type(old), (key, text, value)
  try:
    expected = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    expected = text
  assert value == expected or (value != value and expected != expected)
