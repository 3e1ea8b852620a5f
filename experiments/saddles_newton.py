"""§8.2.3 saddle points and §8.6.1 Newton's method: Newton is attracted to saddles, saddle-free
Newton escapes them, gradient descent crawls past them (Dauphin et al. 2014).

Near a critical point, Newton's step Δθ = −H⁻¹g (eq. 8.28) rescales each eigen-direction of H by
1/λᵢ: along a direction of negative curvature it moves *towards* the critical point, so a saddle
attracts it as a minimum would (Goodfellow et al. 2016, §8.2.3; Dauphin et al. 2014, §3).
Saddle-free Newton, Δθ = −(|H| + λI)⁻¹g, moves away along those directions; a gradient step
−εg moves away too, but at a rate set by ε|λ_min|, so it escapes slowly from a flat saddle.

Two problems:

* f(x, y) = x² + y⁴/4 − y²/2, saddle at (0, 0) with curvatures 2 and −1, minima (0, ±1) with
  f = −1/4, from near the saddle (`toy.start`), by `train.descend`: `optim.sgd` (exact
  gradients), `optim.newton` with ``indefinite="solve"`` (the textbook step of eq. 8.28, which
  the library's default ``"shift"`` would replace by a descent step) and
  `optim.saddle_free_newton` (exact |H|). A run has escaped once |y| ≥ `toy.escape_radius` (its
  distance from the saddle's stable manifold y = 0); where each run ends is classified by
  `hessian.classify`.
* A tanh autoencoder x → W₂ tanh(W₁x + b₁) + b₂ of digits (Dauphin et al. 2014, Fig. 4, on
  MNIST, in spirit), small enough for a dense Hessian at every step, in float64, started from
  small weights near the saddle at the origin and trained by minibatch SGD and by full-batch
  damped Newton (λ fixed) and saddle-free Newton (λ searched at every step over the config's
  candidates for the lowest loss, Dauphin et al.'s Algorithm 1) with `train.make_train_loop`, in
  segments; after each
  segment the exact Hessian spectrum (`hessian.classify`) gives the index, the fraction of
  negative eigenvalues. Each seed of `seeds` draws the initial weights (and SGD's minibatch
  order; the data are the same for every seed), and the three methods start from the same
  weights on a seed; the training is `vmap`ped over the seeds, the spectra taken seed by seed.

Claims (`summary.json`): on the 2-D function, `newton_final_distance_to_saddle`,
`newton_final_kind`, `sfn_final_kind`, `sfn_final_distance_to_minimum`, `steps_to_escape_by_method`
(with `sgd_steps_to_escape`, `sfn_steps_to_escape` and their ratio `sgd_over_sfn_steps_to_escape`:
where SGD has not escaped by the end of its run, a lower bound, the run's length over saddle-free
Newton's steps, with `sgd_escape_censored`); on the autoencoder, over the seeds and paired by
seed, `autoencoder_final_loss_by_method` (the geometric mean over seeds of each method's final
loss; per seed `autoencoder_final_loss_by_seed`), judged by `sfn_over_other_final_loss`,
saddle-free Newton's over each other method's, the geometric mean over seeds of the per-seed
ratios (`verdicts.paired_ratio_by_seed`) with its delta-method standard error
`sfn_over_other_final_loss_se` and degrees of freedom `sfn_over_other_final_loss_dof` (seeds −
1), on the log scale; `final_index_by_method` (means over seeds; per seed `final_index_by_seed`),
judged by `newton_minus_sfn_final_index`, the mean over seeds of the per-seed difference, with
`newton_minus_sfn_final_index_se` and `_dof`; `final_grad_norm_by_method` (means),
`final_kind_by_method` (per seed), `num_params`, `num_seeds`. These two hold beyond t_{0.975, dof}
standard errors of their threshold (ratio < 1 for every other method; difference > 0), fail
beyond t_{1 − 0.025/k, dof} on the other side (k, the settings that can decide: Bonferroni's
margin, `experiment.margin`) and are inconclusive in between. The 2-D function's claims are
deterministic and judged on their values.
"""

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, models, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import digits_tasks, verdicts
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import history_rows, member_arrays, read_csv

METHODS = ("sgd", "newton", "saddle_free_newton")
MINIMA = np.asarray([[0.0, 1.0], [0.0, -1.0]])


def choice(*choices: Any) -> validate.Rule:
  """The rule that a config field is one of `choices`."""
  return functools.partial(validate.require_choice, choices=list(choices))


class SaddlesNewton(Experiment):
  """Three methods from near a saddle: a 2-D function and a small digits autoencoder."""

  NAME = "saddles_newton"
  TITLE = "Chapter 8.2.3 / 8.6.1: Newton is attracted to saddles, saddle-free Newton escapes"
  SECTION = "8.2.3"
  DESCRIPTION = (
    "Left: f(x, y) = x² + y⁴/4 − y²/2 from near its saddle (0, 0): the textbook Newton step "
    "(eq. 8.28, H solved as it is) jumps onto the saddle, saddle-free Newton (Dauphin et al. "
    "2014, |H| = V|Λ|Vᵀ) leaves it along the negative curvature and ends at a minimum (0, ±1), "
    "gradient descent leaves it too but only geometrically, by the factor 1 + ε|λ_min| per step. "
    "Right: a small tanh autoencoder of digits from small weights (near the saddle at the "
    "origin), trained by minibatch SGD and by full-batch damped Newton and saddle-free Newton "
    "with the exact Hessian, from several initializations (seeds), compared seed by seed; the "
    "index is the fraction of negative Hessian eigenvalues (exact spectrum) along each run. "
    "Dauphin et al. show this on MNIST with far larger nets; saddle-free Newton here takes unit "
    "steps with the damping λ searched at every step, as in their Algorithm 1 (the candidate "
    "step with the lowest loss), and Newton keeps its λ fixed."
  )
  PUBLISHED = {
    "newton_final_distance_to_saddle": "→ 0: Newton's method converges to the saddle "
    "(Goodfellow et al. 2016, §8.2.3; Dauphin et al. 2014, §3)",
    "sfn_final_kind": "minimum: saddle-free Newton is repelled by saddles (Dauphin et al. 2014, "
    "§5)",
    "sgd_steps_to_escape": "more than saddle-free Newton's: gradient descent escapes, slowly "
    "(Dauphin et al. 2014, Fig. 4; Goodfellow et al. 2016, §8.2.3)",
    "autoencoder_final_loss_by_method": "saddle-free Newton < damped Newton, and below SGD's "
    "plateau (Dauphin et al. 2014, Fig. 4, deep autoencoder on MNIST)",
    "final_index_by_method": "Newton stops at points of larger index than saddle-free Newton "
    "(Dauphin et al. 2014, Fig. 4 / §7)",
  }
  # "→ 0" and "minimum" within 1e-3 of the point (the saddle and the minima are 1 apart). The
  # autoencoder's two: beyond t_{0.975, dof} standard errors over the seeds, paired by seed.
  CRITERIA = {
    "newton_final_distance_to_saddle": below("newton_final_distance_to_saddle", 1e-3),
    "sfn_final_kind": below("sfn_final_distance_to_minimum", 1e-3),
    "sgd_steps_to_escape": above("sgd_over_sfn_steps_to_escape", 1.0),
    "autoencoder_final_loss_by_method": below(
      "sfn_over_other_final_loss", 1.0, standard_error="sfn_over_other_final_loss_se", ratio=True
    ),
    "final_index_by_method": above(
      "newton_minus_sfn_final_index", 0.0, standard_error="newton_minus_sfn_final_index_se"
    ),
  }
  FIELDS = {
    "seeds": validate.seeds(min_length=2),  # an error bar over seeds needs two or more
    "toy.steps": validate.require_positive_int,
    "toy.escape_radius": validate.require_positive,
    "toy.sgd.learning_rate": validate.require_positive,
    "toy.newton.damping": validate.require_non_negative,
    "toy.saddle_free_newton.damping": validate.require_non_negative,
    "data.name": choice("digits"),
    "data.pool": choice(1, 2, 4, 8),
    "model.depth": choice(1),  # one hidden layer
    "model.activation": choice("tanh"),
    "optimizers.sgd.learning_rate": validate.require_positive,
    **{
      f"optimizers.{name}.{field}": validate.require_positive_int
      for name in METHODS
      for field in ("steps", "eval_every")
    },
    "optimizers.newton.damping": validate.require_positive,
    "optimizers.saddle_free_newton.damping": validate.each(validate.require_positive),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    start = config.toy.start
    if not isinstance(start, list | tuple) or len(start) != 2 or start[1] == 0:
      raise ValueError(
        f"{self.NAME}: toy.start={start!r} must be a pair [x, y] off the saddle's stable "
        "manifold y = 0"
      )
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    num_examples = config.data.num_examples
    validate.require_int("data.num_examples", num_examples, self.NAME, low=1, high=num_train)
    batch_size = config.optimizers.sgd.batch_size
    field = "optimizers.sgd.batch_size"
    validate.require_int(field, batch_size, self.NAME, low=1, high=num_examples)
    inputs = (8 // config.data.pool) ** 2
    models.build_model(
      in_features=inputs, out_features=inputs, seed=config.seeds[0], **config.model.to_dict()
    )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Runs the three methods on both problems (six short members, kept in the run folder; an
    autoencoder member holds every seed)."""
    table, history, arrays = [], [], {}
    with jax.enable_x64(True):
      autoencoder = Autoencoder(config)
      jobs = {f"toy-{name}": functools.partial(run_toy, config, name) for name in METHODS}
      jobs |= {f"ae-{name}": functools.partial(autoencoder.run, name) for name in METHODS}
      for member, job in jobs.items():
        record, member_params = members.get(member, job)
        table.extend(record["rows"])
        history.extend(record["history"])
        arrays.update(member_params)
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    toy = {r["method"]: r for r in results.table if r["problem"] == "toy"}
    sfn = toy["saddle_free_newton"]
    # SGD still at the saddle after its run: its time to escape is censored, at least the run's
    # length, so the ratio is at least that over saddle-free Newton's (the claim is "more")
    censored = toy["sgd"]["steps_to_escape"] is None
    sgd_escape = toy["sgd"]["steps"] if censored else toy["sgd"]["steps_to_escape"]
    sfn_escape = sfn["steps_to_escape"]
    return {
      "newton_final_point": [toy["newton"]["final_x"], toy["newton"]["final_y"]],
      "newton_final_distance_to_saddle": toy["newton"]["distance_to_saddle"],
      "newton_final_kind": toy["newton"]["final_kind"],
      "sfn_final_point": [sfn["final_x"], sfn["final_y"]],
      "sfn_final_kind": sfn["final_kind"],
      "sfn_final_distance_to_minimum": sfn["distance_to_minimum"],
      "sgd_final_kind": toy["sgd"]["final_kind"],
      "steps_to_escape_by_method": {m: r["steps_to_escape"] for m, r in toy.items()},
      "sgd_steps_to_escape": toy["sgd"]["steps_to_escape"],
      "sfn_steps_to_escape": sfn["steps_to_escape"],
      "sgd_over_sfn_steps_to_escape": None if sfn_escape is None else sgd_escape / sfn_escape,
      "sgd_escape_censored": censored,
    } | autoencoder_summary([r for r in results.table if r["problem"] == "autoencoder"])

  def plot(self, out_dir: Path) -> list[Path]:
    """Draws the figures from the saved `history.csv`."""
    rows = read_csv(out_dir / "history.csv")

    def curves(problem: str, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
      """method (autoencoder: "METHOD seed S") -> (steps, values) of `metric` for the members of
      `problem` ("toy" or "ae")."""
      return {
        member.split("-", 1)[1].replace("@seed", " seed "): (np.asarray(steps), np.asarray(values))
        for member, (steps, values) in history_curves(rows, metric).items()
        if member.startswith(f"{problem}-")
      }

    toy_loss = {m: (steps, values + 0.25) for m, (steps, values) in curves("toy", "loss").items()}
    figures = [
      trajectories_plot(curves("toy", "x"), curves("toy", "y"), out_dir / "toy_trajectories.png"),
      report.line_plot(
        toy_loss,
        out_dir / "toy_loss.png",
        title="f(x, y) − f* on x² + y⁴/4 − y²/2 (saddle at f − f* = 1/4)",
        xlabel="step",
        ylabel="f − f*",
        logy=True,
      ),
    ]
    for metric, ylabel, logy in (
      ("train_loss", "training loss ½‖x̂ − x‖² (full batch)", True),
      ("index", "index (fraction of negative eigenvalues)", False),
      ("grad_norm", "‖∇L‖ (full batch)", True),
    ):
      figures.append(
        report.line_plot(
          {m: (steps + 1, values) for m, (steps, values) in curves("ae", metric).items()},
          out_dir / f"autoencoder_{metric}.png",
          title=f"tanh autoencoder of digits: {metric} (each seed)",
          xlabel="step + 1",
          ylabel=ylabel,
          logx=True,
          logy=logy,
        )
      )
    return figures


def autoencoder_summary(rows: list[dict]) -> dict:
  """The autoencoder's claims over the seeds (one row per method and seed), paired by seed.

  Saddle-free Newton's final loss over each other method's: the geometric mean over seeds of the
  per-seed ratios, its delta-method standard error and degrees of freedom
  (`verdicts.paired_ratio_by_seed`); Newton's final index less saddle-free Newton's: the mean
  over seeds of the per-seed differences, its standard error and degrees of freedom. Per method,
  the final loss is the geometric mean over seeds (so the ratio of two is the paired ratio) and
  the index and gradient norm the means; the per-seed values are kept beside them (seed keys
  as strings, as JSON has them). A seed whose final loss is not finite leaves the ratio None
  (undecided): a diverged run is no measurement of where the method stops.
  """
  by_seed: dict[str, dict[int, dict]] = {}
  for row in rows:
    by_seed.setdefault(row["method"], {})[int(row["seed"])] = row

  def column(method: str, field: str) -> dict[int, Any]:
    return {seed: row[field] for seed, row in sorted(by_seed[method].items())}

  def as_json(values: dict[int, Any]) -> dict[str, Any]:
    return {str(seed): value for seed, value in values.items()}

  final_loss = {m: column(m, "final_loss") for m in by_seed}
  final_index = {m: column(m, "final_index") for m in by_seed}
  others = [m for m in by_seed if m != "saddle_free_newton"]
  ratios = {
    m: verdicts.paired_ratio_by_seed(final_loss["saddle_free_newton"], final_loss[m])
    for m in others
  }
  seeds = sorted(set(final_index["newton"]) & set(final_index["saddle_free_newton"]))
  gaps = [final_index["newton"][s] - final_index["saddle_free_newton"][s] for s in seeds]
  gap, gap_se = verdicts.mean_and_standard_error(gaps)
  return {
    "num_params": rows[0]["num_params"],
    "num_seeds": len({seed for method in by_seed.values() for seed in method}),
    "autoencoder_final_loss_by_method": {
      m: verdicts.geometric_mean(list(v.values())) for m, v in final_loss.items()
    },
    "autoencoder_final_loss_by_seed": {m: as_json(v) for m, v in final_loss.items()},
    "sfn_over_other_final_loss": {m: ratio for m, (ratio, _, _) in ratios.items()},
    "sfn_over_other_final_loss_se": {m: se for m, (_, se, _) in ratios.items()},
    "sfn_over_other_final_loss_dof": {m: dof for m, (_, _, dof) in ratios.items()},
    "final_index_by_method": {m: float(np.mean(list(v.values()))) for m, v in final_index.items()},
    "final_index_by_seed": {m: as_json(v) for m, v in final_index.items()},
    "newton_minus_sfn_final_index": gap,
    "newton_minus_sfn_final_index_se": gap_se,
    "newton_minus_sfn_final_index_dof": verdicts.dof(gaps),
    "final_grad_norm_by_method": {
      m: float(np.mean(list(column(m, "final_grad_norm").values()))) for m in by_seed
    },
    "final_kind_by_method": {m: as_json(column(m, "final_kind")) for m in by_seed},
  }


def saddle_function(x: Any, y: Any) -> Any:
  """f(x, y) = x² + y⁴/4 − y²/2 (numpy or jax arrays)."""
  return x**2 + y**4 / 4 - y**2 / 2


def toy_loss(params: jax.Array) -> jax.Array:
  return saddle_function(params[0], params[1])


def optimizer(name: str, hyper: dict) -> optax.GradientTransformation:
  """`name` of `METHODS` with the config's hyperparameters; Newton solves with H as it is."""
  if name == "sgd":
    return optim.sgd(hyper["learning_rate"])
  if name == "newton":
    return optim.newton(damping=hyper["damping"], indefinite="solve")
  return optim.saddle_free_newton(damping=hyper["damping"])


def escape_step(ys: np.ndarray, radius: float) -> int | None:
  """The first step k with |y_k| ≥ radius, or None."""
  escaped = np.flatnonzero(np.abs(ys) >= radius)
  return int(escaped[0]) if escaped.size else None


def run_toy(config: ml_collections.ConfigDict, name: str) -> tuple[dict, dict]:
  """One method on the 2-D function (full-batch `train.descend`): every iterate, and the kind of
  its last point."""
  toy = config.toy
  tx = optimizer(name, toy[name].to_dict())
  start = jnp.asarray(toy.start, jnp.float64)
  descent = jax.jit(
    lambda p: train.descend(toy_loss, p, tx, steps=toy.steps, record=lambda params, _: params)
  )(start)
  points = np.asarray(descent.records)
  losses_along = np.asarray(saddle_function(points[:, 0], points[:, 1]))
  final = points[-1]
  verdict = hessian.classify(toy_loss, jnp.asarray(final))
  member = f"toy-{name}"
  curves = {
    "step": np.arange(points.shape[0]),
    "x": points[:, 0],
    "y": points[:, 1],
    "loss": losses_along,
  }
  row = {
    "member": member,
    "problem": "toy",
    "method": name,
    "steps": toy.steps,
    "final_loss": float(losses_along[-1]),
    "final_grad_norm": verdict.grad_norm,
    "final_kind": verdict.kind,
    "final_index": verdict.index,
    "final_x": float(final[0]),
    "final_y": float(final[1]),
    "distance_to_saddle": float(np.linalg.norm(final)),
    "distance_to_minimum": float(np.min(np.linalg.norm(MINIMA - final, axis=1))),
    "steps_to_escape": escape_step(points[:, 1], toy.escape_radius),
  }
  return {"rows": [row], "history": history_rows(member, curves)}, {}


class Autoencoder:
  """The digits autoencoder problem: its data, one model per seed of `config.seeds` (one
  architecture, that seed's initialization) and the full-batch loss (float64)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.seeds = list(config.seeds)
    digits = digits_tasks.load(config.data, jnp.float64)
    self.x = pool(digits.x_train[: config.data.num_examples], config.data.pool)
    x_test = pool(digits.x_test, config.data.pool)
    self.data = data_lib.Dataset(self.x, self.x, x_test, x_test)  # targets = inputs
    inputs = self.x.shape[1]
    self.seed_models = [
      models.functional(
        models.build_model(
          in_features=inputs,
          out_features=inputs,
          seed=seed,
          param_dtype=jnp.float64,
          **config.model.to_dict(),
        )
      )
      for seed in self.seeds
    ]
    self.model = self.seed_models[0]  # `apply` is every seed's

  def loss(self, params: Any, x: jax.Array) -> jax.Array:
    """Mean over examples of ½‖x̂ − x‖² (`losses.mean_squared_error`)."""
    outputs, _ = self.model.apply(params, self.model.model_state, x, False)
    return losses.mean_squared_error(outputs, x)

  def run(self, name: str) -> tuple[dict, dict]:
    """Trains every seed with one method, in segments of `eval_every` steps; the index after each.

    `train.make_train_loop` in segments (one minibatch order and optimizer state throughout),
    `vmap`ped over the seeds: seed s starts from its model's parameters and draws the minibatches
    of `jax.random.key(s)`. The exact spectrum between segments, seed by seed, needs the
    parameters reached, which `train.train` does not return.
    """
    hyper = self.config.optimizers[name].to_dict()
    batch_size = hyper.get("batch_size", self.x.shape[0])  # Newton methods: full batch
    loop = train.make_train_loop(
      self.model, optimizer(name, hyper), batch_size=batch_size, loss="mse"
    )
    segment = jax.jit(jax.vmap(loop.run, in_axes=(0, None, 0, None, None)))
    keys = jax.vmap(jax.random.key)(jnp.asarray(self.seeds, jnp.uint32))
    state = jax.vmap(loop.init)(
      digits_tasks.stack([m.params for m in self.seed_models]),
      digits_tasks.stack([m.model_state for m in self.seed_models]),
    )
    lengths = np.diff(train.eval_steps(hyper["steps"], hyper["eval_every"]), prepend=0)
    curves: list[dict[str, list]] = [
      {k: [] for k in ("step", "train_loss", "grad_norm", "index", "lambda_min", "lambda_max")}
      for _ in self.seeds
    ]
    for length in lengths:
      state, metrics = segment(state, self.data, keys, None, jnp.asarray([length], jnp.int32))
      for i, seed_curves in enumerate(curves):
        verdict = hessian.classify(self.loss, _seed(state.params, i), self.x)
        seed_curves["step"].append(int(state.step[i]))
        seed_curves["train_loss"].append(float(metrics["train_loss"][i, 0]))
        seed_curves["grad_norm"].append(float(metrics["grad_norm"][i, 0]))
        seed_curves["index"].append(verdict.index)
        seed_curves["lambda_min"].append(verdict.lambda_min)
        seed_curves["lambda_max"].append(verdict.lambda_max)
        seed_curves["verdict"] = verdict  # the last one's, at the end of the run
    rows, history, arrays = [], [], {}
    num_params = int(sum(leaf.size for leaf in jax.tree.leaves(self.model.params)))
    for i, (seed, seed_curves) in enumerate(zip(self.seeds, curves, strict=True)):
      member = ae_member(name, seed)
      verdict = seed_curves.pop("verdict")
      rows.append(
        {
          "member": member,
          "problem": "autoencoder",
          "method": name,
          "seed": seed,
          "steps": hyper["steps"],
          "final_loss": seed_curves["train_loss"][-1],
          "final_grad_norm": verdict.grad_norm,
          "final_kind": verdict.kind,
          "final_index": verdict.index,
          "final_lambda_min": verdict.lambda_min,
          "num_params": num_params,
        }
      )
      history.extend(history_rows(member, seed_curves))
      arrays |= member_arrays(member, _seed(state.params, i), _seed(state.model_state, i))
    return {"rows": rows, "history": history}, arrays


def ae_member(method: str, seed: int) -> str:
  """The autoencoder member of one method and seed ("ae-METHOD@seedS")."""
  return f"ae-{method}@seed{seed}"


def _seed(tree: Any, i: int) -> Any:
  """Seed i's slice of a pytree stacked over the seeds."""
  return jax.tree.map(lambda leaf: leaf[i], tree)


def pool(x: jax.Array, factor: int) -> jax.Array:
  """Average-pools flattened 8×8 images by `factor` (1: unchanged)."""
  side = 8 // factor
  return x.reshape(x.shape[0], side, factor, side, factor).mean(axis=(2, 4)).reshape(x.shape[0], -1)


def trajectories_plot(xs: dict, ys: dict, path: Path) -> Path:
  """Contours of f with each method's iterates (method -> (steps, values) of x and of y), the
  saddle and the two minima."""
  fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
  grid_x, grid_y = np.meshgrid(np.linspace(-0.8, 0.8, 201), np.linspace(-1.6, 1.6, 241))
  contours = ax.contour(
    grid_x, grid_y, saddle_function(grid_x, grid_y), levels=np.linspace(-0.25, 1.2, 16)
  )
  ax.clabel(contours, fontsize=6)
  styles = iter([("o", "-", 3), ("s", "--", 6), ("^", ":", 4)])  # Newton's path under the others
  for method, (marker, line, size) in zip(xs, styles, strict=False):
    x, y = xs[method][1], ys[method][1]
    keep = (np.abs(x) < 2) & (np.abs(y) < 2)  # a jump far out stays off the picture
    ax.plot(x[keep], y[keep], marker=marker, ls=line, ms=size, lw=1, label=method, mfc="none")
  ax.plot([0], [0], "kx", ms=9, label="saddle (0, 0)")
  ax.plot(MINIMA[:, 0], MINIMA[:, 1], "k*", ms=10, label="minima (0, ±1)")
  ax.set(title="iterates on f(x, y) = x² + y⁴/4 − y²/2", xlabel="x", ylabel="y")
  ax.set_xlim(-0.8, 0.8)
  ax.set_ylim(-1.6, 1.6)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return report.save_figure(fig, path)
