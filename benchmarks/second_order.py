"""Quasi-Newton, conjugate-gradient and Newton optimizers against scipy.optimize and optax.lbfgs.

Issue 3's benchmark. Target: our `bfgs`, `lbfgs`, `conjugate_gradient` and `newton` need, in
geometric mean over the problems, no more function+gradient evaluations than their scipy
counterparts (BFGS, L-BFGS-B, CG, and trust-exact for Newton) to reach
‖g‖ ≤ 1e-6 · max(1, ‖g₀‖).

Problems (float64 unless said):
* Rosenbrock Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)² in 2, 10 and 100 dimensions from the standard
  start (−1.2, 1, −1.2, 1, ...); x* = (1, ..., 1), f* = 0 (Moré, Garbow & Hillstrom 1981, #1).
* Extended Powell singular in 20 dimensions from (3, −1, 0, 1, ...); x* = 0, f* = 0, and the
  Hessian is singular there, so every method converges only linearly at the end (MGH #13).
* 10-class softmax (multinomial) logistic regression on the 1347 standardized training digits,
  (λ/2)‖θ‖² with λ = 1e-3 on every weight AND bias (the bias penalty removes the softmax's shift
  invariance, so the problem is strictly convex); 650 parameters; θ* from scipy's trust-exact
  run to ‖g‖ ≤ 1e-13.
* A 64-16-10 tanh MLP (`models.build_model`, seed 0) on the same digits, full batch, float32,
  cross-entropy plus (λ/2)‖θ‖² with λ = 1e-3; 1210 parameters. It is not convex: no x* or f* is
  known, and methods may stop at different critical points, so the final loss is reported.

Counting. Every problem's function is wrapped by `counted`, which fires a `jax.debug.callback`
that increments a host counter each time a forward pass actually executes, jitted or not, inside
`lax.while_loop` or not: one count per evaluation of f, of ∇f or of both together (one
`value_and_grad` counts once). scipy is given the same counted value-and-gradient; its Hessians
(trust-exact) and Hessian-vector products (Newton-CG) come from an uncounted function and are
counted separately, by call, as scipy's `nhev` does. Each method runs until the criterion on the
2-norm of the gradient at its current iterate is met (scipy: a `callback` raising
`StopIteration`, its own tolerances set to 0) or `--max-steps` iterations. Our optimizers and
optax's run in a jitted `lax.while_loop`; the counting run and the timed run are separate (same
iterates: the count is checked equal), so the callback costs no time in the timed run.
Wall time: the median over `--rounds` runs after one compiling run (scipy: its jitted
value-and-gradient, Hessian and HVP compiled first), including scipy's per-call Python and
dispatch overhead (about 1 ms per call here), which is part of using scipy on a JAX function.
scipy runs with one BLAS thread (`threadpoolctl`): on this shared 2-core machine multithreaded
OpenBLAS spins at its barriers and made L-BFGS-B's tiny linear algebra 10x slower.

    python benchmarks/second_order.py            # prints a Markdown table for benchmarks/RESULTS.md
"""

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (float64 must be enabled first)
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy  # noqa: E402
import scipy.optimize  # noqa: E402
import threadpoolctl  # noqa: E402

from jaxopt_study import data as data_lib  # noqa: E402
from jaxopt_study import hessian, losses, models, optim  # noqa: E402
from jaxopt_study.optim import second_order  # noqa: E402

RELATIVE_TOLERANCE = 1e-6


class Problem(NamedTuple):
  name: str
  fn: Callable[[jax.Array], jax.Array]  # flat parameters -> scalar loss
  x0: np.ndarray
  x_star: np.ndarray | None  # known minimizer, or None
  f_star: float | None


class Outcome(NamedTuple):
  evaluations: int  # function+gradient evaluations (one value_and_grad = 1)
  hessians: int | None  # Hessians (dense) or Hessian-vector products, where the method uses any
  iterations: int
  seconds: float
  grad_norm: float
  reached: bool
  x: np.ndarray
  f: float


class Counter:
  """A host-side count of executed evaluations."""

  def __init__(self):
    self.count = 0

  def tick(self, _) -> None:
    self.count += 1


def counted(fn: Callable[[jax.Array], jax.Array], counter: Counter) -> Callable:
  """`fn` with a host callback that counts each executed forward pass (see the module docstring)."""

  def wrapped(x: jax.Array) -> jax.Array:
    jax.debug.callback(counter.tick, x.ravel()[0])
    return fn(x)

  return wrapped


def rosenbrock(x: jax.Array) -> jax.Array:
  return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def powell_singular(x: jax.Array) -> jax.Array:
  a, b, c, d = (x[i::4] for i in range(4))
  return jnp.sum((a + 10 * b) ** 2 + 5 * (c - d) ** 2 + (b - 2 * c) ** 4 + 10 * (a - d) ** 4)


def logistic_regression(l2: float = 1e-3) -> Problem:
  digits = data_lib.load_digits(dtype=jnp.float64)
  x, y = digits.x_train, digits.y_train
  num_features, num_classes = x.shape[1], 10

  def fn(theta):
    w = theta[: num_features * num_classes].reshape(num_features, num_classes)
    b = theta[num_features * num_classes :]
    return losses.softmax_cross_entropy(x @ w + b, y) + 0.5 * l2 * jnp.sum(theta**2)

  x0 = np.zeros((num_features + 1) * num_classes)
  value_and_grad = jax.jit(jax.value_and_grad(fn))
  reference = scipy.optimize.minimize(
    lambda t: tuple(np.asarray(v, np.float64) for v in value_and_grad(t)),
    x0,
    jac=True,
    hess=jax.jit(jax.hessian(fn)),
    method="trust-exact",
    options={"gtol": 1e-13, "maxiter": 200},
  )
  grad_norm = float(np.linalg.norm(value_and_grad(reference.x)[1]))
  if grad_norm > 1e-10:  # ‖θ − θ*‖ ≤ ‖g‖ / λ: the reference is good to 1e-7 or better
    raise RuntimeError(f"logistic regression reference: ‖g‖ = {grad_norm:.1e}, not converged")
  return Problem("logreg-digits-650", fn, x0, reference.x, float(reference.fun))


def mlp(l2: float = 1e-3, width: int = 16) -> Problem:
  digits = data_lib.load_digits(dtype=jnp.float32)
  model = models.functional(
    models.build_model("mlp", 64, 10, width=width, depth=1, activation="tanh", seed=0)
  )
  flat0, unravel = jax.flatten_util.ravel_pytree(model.params)

  def fn(theta):
    theta = theta.astype(jnp.float32)
    logits, _ = model.apply(unravel(theta), model.model_state, digits.x_train, False)
    return losses.softmax_cross_entropy(logits, digits.y_train) + 0.5 * l2 * jnp.sum(theta**2)

  return Problem(f"mlp-digits-{flat0.size} (f32)", fn, np.asarray(flat0), None, None)


def _rosenbrock(n: int) -> Problem:
  return Problem(f"rosenbrock-{n}", rosenbrock, np.tile([-1.2, 1.0], n // 2), np.ones(n), 0.0)


PROBLEMS: dict[str, Callable[[], Problem]] = {
  "rosenbrock-2": lambda: _rosenbrock(2),
  "rosenbrock-10": lambda: _rosenbrock(10),
  "rosenbrock-100": lambda: _rosenbrock(100),
  "powell-20": lambda: Problem(
    "powell-20", powell_singular, np.tile([3.0, -1.0, 0.0, 1.0], 5), np.zeros(20), 0.0
  ),
  "logreg": logistic_regression,
  "mlp": mlp,
}


def _tolerance(problem: Problem) -> float:
  g0 = np.linalg.norm(np.asarray(jax.grad(problem.fn)(jnp.asarray(problem.x0))))
  return RELATIVE_TOLERANCE * max(1.0, float(g0))


def _dtype(problem: Problem) -> Any:
  return jnp.float32 if "f32" in problem.name else jnp.float64


# scipy.optimize ---------------------------------------------------------------------------------

SCIPY_METHODS = {
  "scipy BFGS": ("BFGS", {"gtol": 0.0}),
  "scipy L-BFGS-B": ("L-BFGS-B", {"gtol": 0.0, "ftol": 0.0, "maxfun": 10**6, "maxls": 50}),
  "scipy CG": ("CG", {"gtol": 0.0}),
  "scipy Newton-CG": ("Newton-CG", {"xtol": 1e-300}),
  "scipy trust-exact": ("trust-exact", {"gtol": 0.0}),
}


class ScipyFunctions(NamedTuple):
  """Jitted, compiled callables for scipy: value and gradient (counted or not), Hessian, HVP."""

  value_and_grad: Callable
  hessian: Callable
  hvp: Callable
  counter: Counter | None


def scipy_functions(problem: Problem, counter: Counter | None) -> ScipyFunctions:
  fn = counted(problem.fn, counter) if counter else problem.fn
  x0 = jnp.asarray(problem.x0, _dtype(problem))
  functions = ScipyFunctions(
    jax.jit(jax.value_and_grad(fn)),
    jax.jit(jax.hessian(problem.fn)),
    jax.jit(lambda x, v: jax.jvp(jax.grad(problem.fn), (x,), (v,))[1]),
    counter,
  )
  jax.block_until_ready(
    (functions.value_and_grad(x0), functions.hessian(x0), functions.hvp(x0, x0))
  )  # compiled outside the timing
  return functions


def run_scipy(problem: Problem, method: str, max_steps: int, functions: ScipyFunctions) -> Outcome:
  """One scipy.optimize.minimize run, stopped by the gradient criterion at an accepted iterate."""
  scipy_name, options = SCIPY_METHODS[method]
  dtype = _dtype(problem)
  tol = _tolerance(problem)
  grad_at: dict[bytes, float] = {}  # ‖g‖ at each evaluated point, so the stop test costs nothing
  hessians, iterations = [0], [0]

  def fun(x):
    value, grad = functions.value_and_grad(jnp.asarray(x, dtype))
    grad = np.asarray(grad, np.float64)
    grad_at[x.tobytes()] = float(np.linalg.norm(grad))
    return float(value), grad

  def stop(intermediate_result):
    iterations[0] += 1
    # Every accepted iterate of these five methods has been evaluated through `fun` (checked on
    # Rosenbrock); a miss would raise KeyError rather than be evaluated uncounted.
    if grad_at[intermediate_result.x.tobytes()] <= tol:
      raise StopIteration

  def hess(x):
    hessians[0] += 1
    return np.asarray(functions.hessian(jnp.asarray(x, dtype)), np.float64)

  def hessp(x, v):
    hessians[0] += 1
    return np.asarray(functions.hvp(jnp.asarray(x, dtype), jnp.asarray(v, dtype)), np.float64)

  extra = {"trust-exact": {"hess": hess}, "Newton-CG": {"hessp": hessp}}.get(scipy_name, {})
  if functions.counter:
    functions.counter.count = 0
  with threadpoolctl.threadpool_limits(1, "blas"):
    start = time.perf_counter()
    result = scipy.optimize.minimize(
      fun,
      np.asarray(problem.x0, np.float64),
      jac=True,
      method=scipy_name,
      callback=stop,
      options={**options, "maxiter": max_steps},
      **extra,
    )
    seconds = time.perf_counter() - start
  value, grad = functions.value_and_grad(jnp.asarray(result.x, dtype))
  norm = float(np.linalg.norm(np.asarray(grad)))
  return Outcome(
    functions.counter.count - 1 if functions.counter else -1,  # less the final check above
    hessians[0] if extra else None,
    iterations[0],
    seconds,
    norm,
    norm <= tol,
    np.asarray(result.x),
    float(value),
  )


# Optax-style transformations --------------------------------------------------------------------


def _keeps_value_and_grad(state: Any) -> bool:
  """Whether `state` has the `value` and `grad` fields `optax.value_and_grad_from_state` reads."""
  try:
    optax.tree_utils.tree_get(state, "value")
    optax.tree_utils.tree_get(state, "grad")
  except KeyError:
    return False
  return True


def _stalled(state: Any) -> jax.Array:
  """Whether the state's line search found no decrease in the working precision (False if none)."""
  stalled = optax.tree_utils.tree_get(state, "stalled")
  return jnp.asarray(False) if stalled is None else stalled


def make_loop(tx: optax.GradientTransformationExtraArgs, fn: Callable, tol: float, max_steps: int):
  """A jitted solve: `update(grad, state, params, value=, grad=, value_fn=)` until ‖g‖ ≤ tol.

  The value and gradient at the new iterate come from `optax.value_and_grad_from_state`: reused
  when the state holds them at the new point (a line search's, an adaptive Newton's trial
  point), evaluated once otherwise. The solve also stops when our line search flags that no
  trial decreased f (`optim.linesearch.is_stalled`), as scipy stops on "precision loss"; that
  run counts as not reached.
  """
  value_and_grad = jax.value_and_grad(fn)
  from_state = optax.value_and_grad_from_state(fn)

  def cond(carry):
    _, state, _, grad, step = carry
    return (jnp.linalg.norm(grad) > tol) & (step < max_steps) & ~_stalled(state)

  def body(carry):
    params, state, value, grad, step = carry
    updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    params = optax.apply_updates(params, updates)
    if _keeps_value_and_grad(state):
      value, grad = from_state(params, state=state)
    else:
      value, grad = value_and_grad(params)
    return params, state, value, grad, step + 1

  @jax.jit
  def solve(x0):
    value, grad = value_and_grad(x0)
    params, _, value, grad, steps = jax.lax.while_loop(
      cond, body, (x0, tx.init(x0), value, grad, jnp.asarray(0))
    )
    return params, value, grad, steps

  return solve


class Method(NamedTuple):
  make: Callable[[], optax.GradientTransformationExtraArgs]
  dense_hessian: bool  # builds the dense Hessian of value_fn at every update


def _hessian_build_count(problem: Problem) -> int:
  """Counted evaluations fired by one dense Hessian build of the Newton methods.

  `newton` builds H from chunks of HVPs (`hessian.dense.traced_hessian`); the counting callback
  fires once per chunk (the primal of a vmapped HVP is not batched). The benchmark counts these
  as Hessians, not as function+gradient evaluations, so it measures what one build fires and
  subtracts that for each update.
  """
  counter = Counter()
  fn = counted(problem.fn, counter)
  x0 = jnp.asarray(problem.x0, _dtype(problem))
  build = jax.jit(lambda x: hessian.traced_hessian(second_order.loss_problem(fn, x, {}, "bench")))
  jax.block_until_ready(build(x0))
  return counter.count


def run_optax(problem: Problem, method: Method, max_steps: int, rounds: int) -> Outcome:
  """The counting run, then `rounds` timed runs of the uncounted solve (after compiling it)."""
  tol = _tolerance(problem)
  x0 = jnp.asarray(problem.x0, _dtype(problem))
  counter = Counter()
  tx = method.make()
  params, value, grad, steps = make_loop(tx, counted(problem.fn, counter), tol, max_steps)(x0)
  jax.block_until_ready(params)
  evaluations, hessians = counter.count, None
  if method.dense_hessian:
    hessians = int(steps)
    evaluations -= _hessian_build_count(problem) * hessians
  solve = make_loop(tx, problem.fn, tol, max_steps)
  timed = jax.block_until_ready(solve(x0))
  if int(timed[3]) != int(steps):
    raise RuntimeError(f"counting run took {int(steps)} steps, timed run {int(timed[3])}")
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    jax.block_until_ready(solve(x0))
    times.append(time.perf_counter() - start)
  norm = float(np.linalg.norm(np.asarray(grad)))
  return Outcome(
    evaluations,
    hessians,
    int(steps),
    statistics.median(times),
    norm,
    norm <= tol,
    np.asarray(params),
    float(value),
  )


METHODS: dict[str, Method] = {
  "optax.lbfgs": Method(optax.lbfgs, False),
  "ours bfgs": Method(optim.bfgs, False),
  "ours lbfgs": Method(optim.lbfgs, False),
  "ours cg (PR+)": Method(optim.conjugate_gradient, False),
  "ours newton": Method(optim.newton, True),
  "ours newton LM": Method(lambda: optim.newton(damping=1e-3, adaptive=True), True),
}
# Each of ours against its scipy counterpart (and optax.lbfgs, for reference, against L-BFGS-B).
COUNTERPARTS = {
  "ours bfgs": "scipy BFGS",
  "ours lbfgs": "scipy L-BFGS-B",
  "ours cg (PR+)": "scipy CG",
  "ours newton": "scipy trust-exact",
  "ours newton LM": "scipy trust-exact",
  "optax.lbfgs": "scipy L-BFGS-B",
}


# Table ------------------------------------------------------------------------------------------


def _row(problem: Problem, method: str, outcome: Outcome) -> dict:
  error = {}
  if problem.x_star is not None:
    error["dist"] = float(np.linalg.norm(outcome.x - problem.x_star))
    error["gap"] = outcome.f - problem.f_star
  return {
    "problem": problem.name,
    "method": method,
    "evals": outcome.evaluations,
    "hessians": outcome.hessians,
    "iterations": outcome.iterations,
    "ms": 1e3 * outcome.seconds,
    "grad_norm": outcome.grad_norm,
    "reached": outcome.reached,
    "f": outcome.f,
    **error,
  }


def _markdown(rows: list[dict]) -> str:
  lines = [
    "| problem | method | f+g evals | Hessians / HVPs | iterations | wall (ms) | final ‖g‖ | "
    "reached | f − f* (or f) | ‖x − x*‖ |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    gap = f"{r['gap']:.1e}" if "gap" in r else f"f = {r['f']:.4g}"
    dist = f"{r['dist']:.1e}" if "dist" in r else "—"
    hessians = "—" if r["hessians"] is None else str(r["hessians"])
    lines.append(
      f"| {r['problem']} | {r['method']} | {r['evals']} | {hessians} | {r['iterations']} | "
      f"{r['ms']:.1f} | {r['grad_norm']:.1e} | {'yes' if r['reached'] else 'NO'} | {gap} | {dist} |"
    )
  return "\n".join(lines)


def _geometric_means(rows: list[dict], pairs: dict[str, str]) -> str:
  """Geometric-mean evaluations of each of our methods and of its scipy counterpart."""
  lines = ["| ours | scipy | problems | ours (geo-mean evals) | scipy (geo-mean evals) | met |"]
  lines.append("|---|---|---|---|---|---|")
  by_key = {(r["problem"], r["method"]): r for r in rows}
  for ours, theirs in pairs.items():
    common = [
      p for (p, m) in by_key if m == ours and (p, theirs) in by_key and by_key[p, ours]["reached"]
    ]
    if not common:
      continue
    mean = {
      name: math.exp(statistics.fmean(math.log(by_key[p, name]["evals"]) for p in common))
      for name in (ours, theirs)
    }
    unreached = sum(not by_key[p, ours]["reached"] for (p, m) in by_key if m == ours)
    met = "yes" if mean[ours] <= mean[theirs] else "no"
    lines.append(
      f"| {ours} | {theirs} | {len(common)} (+{unreached} not reached) | {mean[ours]:.1f} | "
      f"{mean[theirs]:.1f} | {met} |"
    )
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=3, help="timed runs per method (median)")
  parser.add_argument("--max-steps", type=int, default=20000, help="iteration cap per run")
  parser.add_argument("--problems", nargs="*", help=f"substrings of {', '.join(PROBLEMS)}")
  args = parser.parse_args()
  print(
    f"# {platform.processor() or platform.machine()}, jax {jax.__version__}, "
    f"optax {optax.__version__}, scipy {scipy.__version__}, {jax.devices()[0].platform}"
  )
  rows = []
  for key, build in PROBLEMS.items():
    if args.problems and not any(s in key for s in args.problems):
      continue
    problem = build()
    counting, timing = scipy_functions(problem, Counter()), scipy_functions(problem, None)
    for method in SCIPY_METHODS:
      outcome = run_scipy(problem, method, args.max_steps, counting)
      times = [
        run_scipy(problem, method, args.max_steps, timing).seconds for _ in range(args.rounds)
      ]
      rows.append(_row(problem, method, outcome._replace(seconds=statistics.median(times))))
      print(_markdown(rows[-1:]).splitlines()[-1], flush=True)
    for name, method in METHODS.items():
      rows.append(_row(problem, name, run_optax(problem, method, args.max_steps, args.rounds)))
      print(_markdown(rows[-1:]).splitlines()[-1], flush=True)
  print()
  print(_markdown(rows))
  print()
  print(_geometric_means(rows, COUNTERPARTS))


if __name__ == "__main__":
  main()
