"""§8.7.6 "Continuation methods and curriculum learning": smoothed losses and easy-to-hard orders.

(a) Continuation. A series of objectives J_i(θ) = E_{θ'~N(θ, σ_i² I)} J(θ') with σ_0 > σ_1 > … > 0
blurs away the small local minima of J first and brings them back gradually (the book's
eq. for J^(i)); each stage starts where the previous one ended. The blur is in closed form here:

* `cosine_bowl`, Rastrigin's function J(θ) = Σ_d θ_d² + A(1 − cos 2πθ_d), a minimum near every
  integer point and the global one at 0: since E[cos 2πθ'] = e^(−2π²σ²) cos 2πθ and
  E[θ'²] = θ² + σ², J_σ(θ) = Σ_d θ_d² + σ² + A(1 − e^(−2π²σ²) cos 2πθ_d);
* `narrow_well`, a deep narrow Gaussian well (the global minimum) beside a shallow broad one on a
  weak bowl, J(θ) = ½q‖θ‖² − Σ_w a_w exp(−‖θ − c_w‖²/(2s_w²)): blurring a Gaussian of width s
  gives (s²/(s² + σ²))^(d/2) exp(−‖θ − c‖²/(2(s² + σ²))), so under a large σ the narrow well
  all but vanishes and the blurred minimum sits in the broad well, "a local rather than a global
  minimum of the original cost function", the book's second way for continuation to fail.

Gradient descent (`optim.sgd` by `train.descend`) runs `steps_per_stage` steps on each J_{σ_i}
(the last σ is 0, J itself); plain gradient descent runs the same number of steps on J; both start
from the same uniform points of [−box, box]^d. A run found the global minimum θ* if it ends within
`global_radius` of it (θ* refined by gradient descent from the well's centre). The closed forms
are checked against Monte Carlo averages of J(θ + σε) (`smoothing_mc_max_z`, in standard errors).

(b) Curriculum learning (Bengio et al. 2009). An MLP on digits is trained by SGD
(`train.make_train_loop(...).update`) for the same steps under three orders: `random` (every
minibatch drawn uniformly from the training set), `easy_to_hard` (drawn uniformly from a pool of
the easiest examples that grows linearly from `start_fraction` of the set to all of it at
`ramp_fraction` of the steps) and `hard_to_easy` (the same with the hardest first). Easiness is the
margin z_y − max_{j≠y} z_j of a logistic-regression reference trained on the same training set.
Every seed draws one initialization and one stream of draws for all three orders, so the
differences are paired.

Claims (`summary.json`): per surface, `continuation_final_loss` vs `plain_final_loss` (mean J at
the end) and `continuation_global_fraction` vs `plain_global_fraction`, their difference
`continuation_minus_plain_global_fraction` with its standard error, paired by start (both methods
run from the same starts: each start's difference of outcomes, `reached/SURFACE/METHOD` in
params.npz); `curriculum_final_loss`
vs `random_order_final_loss` (full training-set NLL at the end, mean over seeds),
`curriculum_test_error` vs `random_order_test_error`, their paired differences with standard
errors, and the same for `anti_curriculum_*` (hard to easy). Beside each standard error `_se`,
its degrees of freedom `_dof` (one less than the starts or the seeds): a claim holds beyond
t_{0.975, dof} standard errors of its paired differences from 0.
"""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import optim, report, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import curves, digits_tasks, verdicts
from jaxopt_study.results import history_rows, read_npz

ORDERS = ("random", "easy_to_hard", "hard_to_easy")
CLAIM_PREFIX = {
  "random": "random_order",
  "easy_to_hard": "curriculum",
  "hard_to_easy": "anti_curriculum",
}
METHODS = ("continuation", "plain")  # the order of `surface_runs`'s schedules


# (a) Continuation: the surfaces.


class SmoothedSurface(NamedTuple):
  """A loss and its Gaussian blur in closed form, and where its global minimum is.

  `fn(theta, sigma)` is J_σ(θ) = E_{θ'~N(θ, σ²I)} J(θ'), with J_0 = J; `minimizer_guess(dim)`
  is a point in the basin of the global minimum, refined by gradient descent.
  """

  fn: Callable[[jax.Array, jax.Array], jax.Array]
  minimizer_guess: Callable[[int], jax.Array]


COSINE_AMPLITUDE = 2.0  # A of Rastrigin's function: local minima out to |θ_d| ≈ 12
BOWL_CURVATURE = 0.3  # q of the narrow-well surface
# (depth a, centre (c, c, 0, …), width s) of the narrow deep well, then of the broad shallow one
WELLS = ((4.0, 2.0, 0.4), (1.5, -1.5, 1.5))


def cosine_bowl(theta: jax.Array, sigma: jax.Array) -> jax.Array:
  """Rastrigin's function blurred by N(0, σ²I): Σ_d θ_d² + σ² + A(1 − e^(−2π²σ²) cos 2πθ_d)."""
  damping = jnp.exp(-2 * jnp.pi**2 * sigma**2)
  terms = theta**2 + sigma**2 + COSINE_AMPLITUDE * (1 - damping * jnp.cos(2 * jnp.pi * theta))
  return jnp.sum(terms)


def _well_centre(dim: int, value: float) -> np.ndarray:
  """(value, value, 0, …, 0) in `dim` dimensions (a constant: no device work)."""
  centre = np.zeros(dim, np.float32)
  centre[:2] = value
  return centre


def narrow_well(theta: jax.Array, sigma: jax.Array) -> jax.Array:
  """½q(‖θ‖² + dσ²) − Σ_w a_w (s_w²/(s_w² + σ²))^(d/2) exp(−‖θ − c_w‖²/(2(s_w² + σ²)))."""
  dim = theta.shape[-1]
  value = 0.5 * BOWL_CURVATURE * (jnp.sum(theta**2) + dim * sigma**2)
  for depth, centre, width in WELLS:
    variance = width**2 + sigma**2
    distance = jnp.sum((theta - _well_centre(dim, centre)) ** 2)
    value -= depth * (width**2 / variance) ** (dim / 2) * jnp.exp(-distance / (2 * variance))
  return value


SURFACES = {
  "cosine_bowl": SmoothedSurface(cosine_bowl, lambda dim: np.zeros(dim, np.float32)),
  "narrow_well": SmoothedSurface(narrow_well, lambda dim: _well_centre(dim, WELLS[0][1])),
}


# Both parts.


class ContinuationCurriculum(Experiment):
  """Gradient descent through blurred losses against plain descent; digits MLPs trained on
  easy-to-hard, random and hard-to-easy minibatches."""

  NAME = "continuation_curriculum"
  TITLE = "Chapter 8.7.6: continuation (smoothed losses) and curriculum learning"
  SECTION = "8.7.6"
  DESCRIPTION = (
    "(a) Gradient descent through a series of Gaussian-blurred losses J_σ (closed form, σ "
    "decreasing to 0) against plain gradient descent on J from the same starts. On Rastrigin's "
    "cosine bowl the blur removes the local minima, and continuation is expected to reach the "
    "global minimum from far more starts than plain descent. On a narrow deep well beside a "
    "broad shallow one the blurred minimum tracks to the broad well, the failure the book "
    "describes: there continuation can find the global minimum less often than plain descent. "
    "(b) A digits MLP trained on easy-to-hard minibatches (margin of a logistic-regression "
    "reference), random ones and hard-to-easy ones, the same steps and seeds; the curriculum's "
    "effect is the paired difference from the random order, with its standard error over seeds."
  )
  PUBLISHED = {
    "continuation_global_fraction": "continuation can find the global minimum where local "
    "descent does not, if the blurred minimum tracks to it (Goodfellow et al. 2016, §8.7.6; "
    "Mobahi & Fisher 2015)",
    "curriculum_test_error": "easy-to-hard ordering speeds training and can generalize better "
    "(Bengio et al. 2009); often no gain in practice (§8.7.6 notes stochastic curricula work "
    "best)",
  }
  # Continuation is judged where the blurred minimum tracks to the global one (the cosine bowl;
  # the narrow well is the book's failure case); the curriculum by its paired held-out gain.
  CRITERIA = {
    "continuation_global_fraction": above(
      "continuation_minus_plain_global_fraction.cosine_bowl",
      0.0,
      standard_error="continuation_minus_plain_global_fraction_se.cosine_bowl",
    ),
    "curriculum_test_error": below(
      "curriculum_minus_random_test_error",
      0.0,
      standard_error="curriculum_minus_random_test_error_se",
    ),
  }
  FIELDS = {
    "continuation.surfaces": validate.each(validate.require_choice, choices=list(SURFACES)),
    **dict.fromkeys(
      [f"continuation.{k}" for k in ("dim", "num_starts", "steps_per_stage", "mc_samples")]
      + [f"curriculum.{k}" for k in ("reference_steps", "steps", "batch_size", "eval_every")],
      validate.require_positive_int,
    ),
    **dict.fromkeys(
      [f"continuation.{k}" for k in ("box", "learning_rate", "global_radius")],
      validate.require_positive,
    ),
    "continuation.sigmas": validate.each(validate.require_non_negative),
    "curriculum.num_seeds": functools.partial(validate.require_int, low=2),  # standard errors
    **dict.fromkeys(
      ["curriculum.start_fraction", "curriculum.ramp_fraction"],
      functools.partial(validate.require_unit_interval, include_zero=False, include_one=True),
    ),
    "curriculum.orders": validate.each(validate.require_choice, choices=ORDERS),
    **dict.fromkeys(
      ["curriculum.learning_rate", "curriculum.reference_learning_rate"],
      validate.require_non_negative,
    ),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """σ decreasing to 0, the orders the claims compare, a minibatch the data holds, a net that
    builds."""
    sigmas = list(config.continuation.sigmas)
    if sigmas[-1] != 0 or any(a < b for a, b in zip(sigmas, sigmas[1:], strict=False)):
      raise ValueError(
        f"{self.NAME}: continuation.sigmas={sigmas!r} must not increase and must end with 0 "
        "(J itself)"
      )
    if "cosine_bowl" not in config.continuation.surfaces:
      raise ValueError(
        f"{self.NAME}: continuation.surfaces={list(config.continuation.surfaces)!r} must hold "
        "'cosine_bowl', the surface the continuation claim is judged on"
      )
    cur = config.curriculum
    if not {"random", "easy_to_hard"} <= set(cur.orders):
      raise ValueError(
        f"{self.NAME}: curriculum.orders={list(cur.orders)!r} must hold 'random' and "
        "'easy_to_hard' (and optionally 'hard_to_easy')"
      )
    num_train = digits_tasks.load(cur.data).x_train.shape[0]
    validate.require_int("curriculum.batch_size", cur.batch_size, self.NAME, low=1, high=num_train)
    try:
      digits_tasks.mlp(config.seed, **cur.model)
    except ValueError as error:
      raise ValueError(f"{self.NAME}: curriculum.model: {error}") from error

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Both parts, a few vmapped programs (seconds): nothing to resume."""
    table, history, arrays = continuation(config)
    cur_table, cur_history = curriculum(config)
    return Results(table + cur_table, history + cur_history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Per surface and method, the mean final J and the share of runs at the global minimum; per
    order, the final NLL and held-out error, with paired differences from the random order."""
    rows = [r for r in results.table if r["part"] == "continuation"]
    by = {(r["surface"], r["method"]): r for r in rows}
    surfaces = list(config.continuation.surfaces)
    claims = {
      f"{method}_{claim}": {name: by[(name, method)][claim] for name in surfaces}
      for claim in ("final_loss", "global_fraction")
      for method in METHODS
    }
    # Both methods run from the same starts: the difference of their outcomes, start by start
    differences = {
      name: np.subtract(
        results.arrays[f"reached/{name}/continuation"], results.arrays[f"reached/{name}/plain"]
      )
      for name in surfaces
    }
    paired = {name: verdicts.mean_and_standard_error(d) for name, d in differences.items()}
    claims["continuation_minus_plain_global_fraction"] = {n: d for n, (d, _) in paired.items()}
    claims["continuation_minus_plain_global_fraction_se"] = {n: e for n, (_, e) in paired.items()}
    claims["continuation_minus_plain_global_fraction_dof"] = {
      name: verdicts.dof(d) for name, d in differences.items()
    }
    claims["global_minimum_loss"] = {
      name: by[(name, "plain")]["global_minimum_loss"] for name in surfaces
    }
    claims["global_minimum_is_lowest"] = all(
      row["global_minimum_loss"] <= row["lowest_final_loss"] + 1e-4 for row in rows
    )
    claims["smoothing_mc_max_z"] = max(row["smoothing_mc_max_z"] for row in rows)
    return claims | curriculum_claims(results.table)

  def plot(self, out_dir: Path) -> list[Path]:
    """The blurred losses along the diagonal, mean J per stage, and curriculum curves per order."""
    arrays = read_npz(out_dir / "params.npz")
    history = out_dir / "history.csv"
    figures = []
    for name in SURFACES:
      series = {
        key.rsplit("/", 1)[1]: (arrays["slice_t"], values)
        for key, values in arrays.items()
        if key.startswith(f"slice/{name}/")
      }
      if series:
        figures.append(
          report.line_plot(
            series,
            out_dir / f"smoothed_{name}.png",
            title=f"{name}: J_σ along the diagonal θ = (t, t, 0, …)",
            xlabel="t",
            ylabel="J_σ(θ)",
          )
        )
    figures.append(
      report.line_plot(
        curves.read_curves(history, "mean_loss"),
        out_dir / "continuation_loss.png",
        title="mean J(θ) over starts at the end of each stage",
        xlabel="step",
        ylabel="mean J",
      )
    )

    def order_means(metric: str) -> digits_tasks.Curves:
      return curves.mean_by_prefix(curves.read_curves(history, metric))

    return figures + digits_tasks.metric_figures(
      out_dir,
      (("train_loss", "NLL", True), ("test_error", "0-1 error", False)),
      order_means,
      file="curriculum_{metric}.png",
      title="digits MLP: {metric} by minibatch order, mean over seeds",
    )


# (a) Continuation: the descents.


def descend_stages(
  fn: Callable, start: jax.Array, sigmas: jax.Array, steps_per_stage: int, learning_rate: float
) -> tuple[jax.Array, jax.Array]:
  """Gradient descent (Algorithm 8.1, full gradient) on J_{σ_0}, then J_{σ_1}, …: the end point,
  and J (σ = 0) at the end of every stage."""

  def stage(theta, sigma):
    descent = train.descend(
      lambda theta: fn(theta, sigma),
      theta,
      optim.sgd(learning_rate),
      steps=steps_per_stage,
      every=steps_per_stage,
      record=lambda theta, _: fn(theta, 0.0),
    )
    return descent.params, descent.records[-1]

  return jax.lax.scan(stage, start, sigmas)


def surface_runs(
  config: ml_collections.ConfigDict, name: str, points: np.ndarray, line: np.ndarray
) -> tuple[np.ndarray, ...]:
  """One compiled program: every point under the continuation and the plain schedules (ends
  (2, P, d) and J at every stage end (2, P, stages)), and J_σ along the diagonal for every σ."""
  cc = config.continuation
  fn = SURFACES[name].fn
  schedules = np.stack([np.asarray(cc.sigmas), np.zeros(len(cc.sigmas))]).astype(np.float32)

  def program(points, schedules, sigmas):
    def runs(stage_sigmas):
      return jax.vmap(
        lambda start: descend_stages(fn, start, stage_sigmas, cc.steps_per_stage, cc.learning_rate)
      )(points)

    ends, values = jax.vmap(runs)(schedules)
    diagonal = jnp.outer(line, _well_centre(cc.dim, 1.0))  # θ = (t, t, 0, …)
    slices = jax.vmap(jax.vmap(fn, (0, None)), (None, 0))(diagonal, sigmas)
    return ends, values, slices

  outputs = jax.jit(program)(points, schedules, np.asarray(cc.sigmas, np.float32))
  return tuple(np.asarray(output) for output in outputs)


def continuation(config: ml_collections.ConfigDict) -> tuple[list, list, dict]:
  """(a): per surface and method, a table row (mean, median and lowest final J, the share of
  runs at the global minimum, the Monte Carlo check of J_σ), the mean J at every stage end, and
  J_σ along the diagonal for every σ."""
  cc = config.continuation
  rng = np.random.default_rng(config.seed)
  starts = rng.uniform(-cc.box, cc.box, (cc.num_starts, cc.dim)).astype(np.float32)
  stage_ends = cc.steps_per_stage * np.arange(1, len(cc.sigmas) + 1)
  line = np.linspace(-cc.box, cc.box, 201, dtype=np.float32)
  arrays = {"slice_t": line}
  table, history = [], []
  for name in cc.surfaces:
    # Run 0 starts at the guess: plain descent from there refines the global minimizer θ*.
    points = np.concatenate([SURFACES[name].minimizer_guess(cc.dim)[None], starts])
    ends, values, slices = surface_runs(config, name, points, line)
    minimizer, optimum = ends[1, 0], float(values[1, 0, -1])
    max_z = monte_carlo_max_z(config, SURFACES[name].fn)
    for i, method in enumerate(METHODS):
      reached = np.linalg.norm(ends[i, 1:] - minimizer, axis=-1) < cc.global_radius
      arrays[f"reached/{name}/{method}"] = reached.astype(np.float32)  # 1: at the global minimum
      final = values[i, 1:, -1]
      row = {
        "member": f"{name}/{method}",
        "part": "continuation",
        "surface": name,
        "method": method,
        "final_loss": float(final.mean()),
        "median_final_loss": float(np.median(final)),
        "global_fraction": float(reached.mean()),
        "global_minimum_loss": optimum,
        "lowest_final_loss": float(final.min()),
        "smoothing_mc_max_z": max_z,
      }
      table.append(row)
      history.extend(
        history_rows(row["member"], {"step": stage_ends, "mean_loss": values[i, 1:].mean(axis=0)})
      )
    for sigma, values_on_line in zip(cc.sigmas, slices, strict=True):
      arrays[f"slice/{name}/sigma={sigma:g}"] = values_on_line
  return table, history, arrays


def monte_carlo_max_z(config: ml_collections.ConfigDict, fn: Callable) -> float:
  """max over σ > 0 and 8 random points of |J_σ(θ) − MC mean| / MC standard error, the MC mean
  over `mc_samples` draws of J(θ + σε), ε ~ N(0, I)."""
  cc = config.continuation
  rng = np.random.default_rng([config.seed, 1])
  points = rng.uniform(-cc.box, cc.box, (8, cc.dim)).astype(np.float32)
  noise = rng.standard_normal((cc.mc_samples, cc.dim)).astype(np.float32)
  sigmas = np.asarray([s for s in cc.sigmas if s > 0], np.float32)

  def z_score(point, sigma):
    samples = jax.vmap(lambda e: fn(point + sigma * e, 0.0))(noise)
    standard_error = jnp.std(samples) / np.sqrt(cc.mc_samples)
    return jnp.abs(jnp.mean(samples) - fn(point, sigma)) / jnp.maximum(standard_error, 1e-12)

  z = jax.jit(jax.vmap(jax.vmap(z_score, (0, None)), (None, 0)))(points, sigmas)
  return float(np.max(z))


# (b) Curriculum.


def margins(config: ml_collections.ConfigDict, data: data_lib.Dataset) -> tuple[np.ndarray, float]:
  """Margins z_y − max_{j≠y} z_j of a logistic-regression reference on the training set (full-
  batch gradient descent, `train.train`), and the reference's held-out error."""
  cur = config.curriculum
  reference = digits_tasks.mlp(config.seed, depth=0)
  result = train.train(
    problem_lib.builtin("mlp", data, depth=0),
    optim.sgd(cur.reference_learning_rate),
    seed=config.seed,
    steps=cur.reference_steps,
    batch_size=data.x_train.shape[0],
    eval_every=cur.reference_steps,
  )
  logits, _ = reference.apply(result.params, result.model_state, data.x_train, False)
  true = jnp.take_along_axis(logits, data.y_train[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(data.y_train, 10, dtype=bool), -jnp.inf, logits)
  return np.asarray(true - others.max(axis=1)), float(result.history["test_error"][-1])


def pool_sizes(config: ml_collections.ConfigDict, num_examples: int) -> np.ndarray:
  """How many of the (ordered) examples each step draws from: f_t n with f_t rising linearly from
  `start_fraction` to 1 at `ramp_fraction` of the steps (Bengio et al. 2009's growing set)."""
  cur = config.curriculum
  t = np.arange(cur.steps)
  fraction = np.minimum(
    1.0, cur.start_fraction + (1 - cur.start_fraction) * t / (cur.ramp_fraction * cur.steps)
  )
  return np.maximum(1, np.ceil(fraction * num_examples)).astype(np.int32)


def curriculum(config: ml_collections.ConfigDict) -> tuple[list, list]:
  """(b): per order and seed, a table row (final NLL and held-out error, NLL when the pool has
  grown to the whole set) and the training curves; one row for the reference's held-out error."""
  cur = config.curriculum
  data = digits_tasks.load(cur.data)
  num_train = data.x_train.shape[0]
  easiness, reference_error = margins(config, data)
  easy_first = np.argsort(-easiness, kind="stable")
  growing = pool_sizes(config, num_train)
  schedule = {
    "random": (np.arange(num_train), np.full(cur.steps, num_train, np.int32)),
    "easy_to_hard": (easy_first, growing),
    "hard_to_easy": (easy_first[::-1], growing),
  }
  orders = list(cur.orders)
  seeds = [config.seed + i for i in range(cur.num_seeds)]
  net, params = digits_tasks.mlps([seed for _ in orders for seed in seeds], **cur.model)
  loop = train.make_train_loop(net, optim.sgd(cur.learning_rate), batch_size=cur.batch_size)
  eval_at = train.eval_steps(cur.steps, cur.eval_every)
  bounds = jnp.asarray(np.stack([np.concatenate([[0], eval_at[:-1]]), eval_at], axis=1), jnp.int32)

  def member(params, order, pool, key):
    def one_step(t, state):
      draw = jax.random.randint(jax.random.fold_in(key, t), (cur.batch_size,), 0, pool[t])
      idx = order[draw]
      return loop.update(state, (data.x_train[idx], data.y_train[idx]), None)

    def block(state, bound):
      state = jax.lax.fori_loop(bound[0], bound[1], one_step, state)
      return state, loop.evaluate(state.params, state.model_state, data)

    return jax.lax.scan(block, loop.init(params, net.model_state), bounds)[1]

  order_arrays = jnp.asarray(np.stack([schedule[o][0] for o in orders for _ in seeds]), jnp.int32)
  pools = jnp.asarray(np.stack([schedule[o][1] for o in orders for _ in seeds]))
  keys = jnp.stack([jax.random.key(seed) for _ in orders for seed in seeds])
  histories = jax.jit(jax.vmap(member))(params, order_arrays, pools, keys)
  histories = {k: np.asarray(v).reshape(len(orders), len(seeds), -1) for k, v in histories.items()}
  ramp_end = int(np.searchsorted(eval_at, cur.ramp_fraction * cur.steps))
  table = [{"member": "reference", "part": "reference", "test_error": reference_error}]
  history = []
  for i, order in enumerate(orders):
    for j, seed in enumerate(seeds):
      member_history = {k: v[i, j] for k, v in histories.items()}
      history.extend(history_rows(f"{order}/seed={seed}", {"step": eval_at, **member_history}))
      table.append(
        {
          "member": f"{order}/seed={seed}",
          "part": "curriculum",
          "order": order,
          "seed": seed,
          "final_loss": float(member_history["train_loss"][-1]),
          "test_error": float(member_history["test_error"][-1]),
          "test_loss": float(member_history["test_loss"][-1]),
          "loss_at_ramp_end": float(member_history["train_loss"][ramp_end]),
        }
      )
  return table, history


def curriculum_claims(table: list[dict]) -> dict:
  """Means over seeds per order, and paired differences from `random` with standard errors."""
  rows = [r for r in table if r["part"] == "curriculum"]
  claims = {
    "reference_test_error": next(r for r in table if r["part"] == "reference")["test_error"]
  }

  def column(order: str, name: str) -> np.ndarray:
    # float32, the precision the training loop reported in: seeds in order, paired across orders
    return np.asarray([r[name] for r in rows if r["order"] == order], np.float32)

  for order in dict.fromkeys(r["order"] for r in rows):
    prefix = CLAIM_PREFIX[order]
    for name in ("final_loss", "test_error"):
      final = column(order, name)
      claims[f"{prefix}_{name}"] = float(final.mean())
      if order != "random":
        difference = final - column("random", name)
        claims[f"{prefix}_minus_random_{name}"] = float(difference.mean())
        claims[f"{prefix}_minus_random_{name}_se"] = float(
          difference.std(ddof=1) / np.sqrt(difference.size)
        )
        claims[f"{prefix}_minus_random_{name}_dof"] = verdicts.dof(difference)
    claims[f"{prefix}_loss_at_ramp_end"] = float(column(order, "loss_at_ramp_end").mean())
  return claims
