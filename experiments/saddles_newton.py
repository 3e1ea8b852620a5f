"""§8.2.3 saddle points and §8.6.1 Newton's method: Newton is attracted to saddles, saddle-free
Newton escapes them, gradient descent crawls past them (Dauphin et al. 2014).

Near a critical point, Newton's step Δθ = −H⁻¹g (eq. 8.28) rescales each eigen-direction of H by
1/λᵢ: along a direction of negative curvature it moves *towards* the critical point, so a saddle
attracts it as a minimum would (Goodfellow et al. 2016, §8.2.3; Dauphin et al. 2014, §3).
Saddle-free Newton, Δθ = −(|H| + λI)⁻¹g, moves away along those directions; a gradient step
−εg moves away too, but at a rate set by ε|λ_min|, so it escapes slowly from a flat saddle.

Two problems:

* f(x, y) = x² + y⁴/4 − y²/2, saddle at (0, 0) with curvatures 2 and −1, minima (0, ±1) with
  f = −1/4, from near the saddle (`toy.start`): `optim.sgd` (exact gradients), `optim.newton`
  with ``indefinite="solve"`` (the textbook step of eq. 8.28, which the library's default
  ``"shift"`` would replace by a descent step) and `optim.saddle_free_newton` (exact |H|). A run
  has escaped once |y| ≥ `toy.escape_radius` (its distance from the saddle's stable manifold
  y = 0); where each run ends is classified by `hessian.classify`.
* A tanh autoencoder x → W₂ tanh(W₁x + b₁) + b₂ of digits (Dauphin et al. 2014, Fig. 4, on
  MNIST, in spirit), small enough for a dense Hessian at every step, in float64, started from
  small weights near the saddle at the origin and trained by minibatch SGD and by full-batch
  damped Newton and saddle-free Newton with `train.make_train_loop`, in segments; after each
  segment the exact Hessian spectrum (`hessian.classify`) gives the index, the fraction of
  negative eigenvalues.

Claims (`summary.json`): on the 2-D function, `newton_final_distance_to_saddle`,
`newton_final_kind`, `sfn_final_kind`, `sfn_final_distance_to_minimum`,
`steps_to_escape_by_method` (with `sgd_steps_to_escape`, `sfn_steps_to_escape`); on the
autoencoder, `autoencoder_final_loss_by_method`, `final_index_by_method`,
`final_grad_norm_by_method`, `final_kind_by_method`, `num_params`.
"""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, models, optim, report, train
from jaxopt_study.results import (
  ExperimentResults,
  RunDir,
  history_rows,
  member_arrays,
  read_csv,
)

TITLE = "Chapter 8.2.3 / 8.6.1: Newton is attracted to saddles, saddle-free Newton escapes"
SECTION = "8.2.3"
DESCRIPTION = (
  "Left: f(x, y) = x² + y⁴/4 − y²/2 from near its saddle (0, 0): the textbook Newton step "
  "(eq. 8.28, H solved as it is) jumps onto the saddle, saddle-free Newton (Dauphin et al. 2014, "
  "|H| = V|Λ|Vᵀ) leaves it along the negative curvature and ends at a minimum (0, ±1), gradient "
  "descent leaves it too but only geometrically, by the factor 1 + ε|λ_min| per step. Right: a "
  "small tanh autoencoder of digits from small weights (near the saddle at the origin), trained "
  "by minibatch SGD and by full-batch damped Newton and saddle-free Newton with the exact "
  "Hessian; the index is the fraction of negative Hessian eigenvalues (exact spectrum) along "
  "each run. Dauphin et al. show this on MNIST with far larger nets. At the quick scale (16-4-16, "
  "N = 148, 20 steps) it reproduces: saddle-free Newton ends lower (1.53 vs 3.89) at a smaller "
  "index (0.014 vs 0.22). At the full scale (64-8-64, N = 1096, 100 steps, λ = 0.1 fixed) it "
  "does not: Newton still stops at a larger index (0.20 vs 0.15) but saddle-free Newton, "
  "without the line search over λ of Dauphin et al., oscillates between losses 23 and 30 and "
  "ends at 25.2, above Newton's 24.1 and SGD's 17.1."
)
PUBLISHED = {
  "newton_final_distance_to_saddle": "→ 0: Newton's method converges to the saddle "
  "(Goodfellow et al. 2016, §8.2.3; Dauphin et al. 2014, §3)",
  "sfn_final_kind": "minimum: saddle-free Newton is repelled by saddles (Dauphin et al. 2014, §5)",
  "sgd_steps_to_escape": "more than saddle-free Newton's: gradient descent escapes, slowly "
  "(Dauphin et al. 2014, Fig. 4; Goodfellow et al. 2016, §8.2.3)",
  "autoencoder_final_loss_by_method": "saddle-free Newton < damped Newton, and below SGD's "
  "plateau (Dauphin et al. 2014, Fig. 4, deep autoencoder on MNIST)",
  "final_index_by_method": "Newton stops at points of larger index than saddle-free Newton "
  "(Dauphin et al. 2014, Fig. 4 / §7)",
}
TOY_METHODS = ("sgd", "newton", "saddle_free_newton")
AE_METHODS = ("sgd", "newton", "saddle_free_newton")
MINIMA = np.asarray([[0.0, 1.0], [0.0, -1.0]])


def saddle_function(x: Any, y: Any) -> Any:
  """f(x, y) = x² + y⁴/4 − y²/2 (numpy or jax arrays)."""
  return x**2 + y**4 / 4 - y**2 / 2


def _toy_loss(params: jax.Array) -> jax.Array:
  return saddle_function(params[0], params[1])


def _toy_optimizer(name: str, hyper: dict) -> optax.GradientTransformation:
  if name == "newton":
    return optim.newton(damping=hyper["damping"], indefinite="solve")
  return {"sgd": optim.sgd, "saddle_free_newton": optim.saddle_free_newton}[name](**hyper)


def _ae_optimizer(name: str, hyper: dict) -> optax.GradientTransformation:
  if name == "sgd":
    return optim.sgd(hyper["learning_rate"])
  if name == "newton":
    return optim.newton(damping=hyper["damping"], indefinite="solve")
  return optim.saddle_free_newton(damping=hyper["damping"])


def _require(condition: bool, field: str, value: Any, must: str) -> None:
  if not condition:
    raise ValueError(f"{field}={value!r}: must be {must}")


def _is_int(value: Any, low: int = 1) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_float(value: Any, low: float, strict: bool) -> bool:
  number = isinstance(value, int | float) and not isinstance(value, bool)
  return number and (value > low if strict else value >= low)


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before any data is loaded or compiled."""
  toy = config.toy
  start = toy.start
  _require(isinstance(start, list | tuple) and len(start) == 2, "toy.start", start, "a pair [x, y]")
  _require(start[1] != 0, "toy.start", start, "off the stable manifold y = 0 of the saddle")
  _require(_is_int(toy.steps), "toy.steps", toy.steps, "an integer ≥ 1")
  _require(_is_float(toy.escape_radius, 0, True), "toy.escape_radius", toy.escape_radius, "> 0")
  _require(
    _is_float(toy.sgd.learning_rate, 0, True),
    "toy.sgd.learning_rate",
    toy.sgd.learning_rate,
    "> 0",
  )
  for name in ("newton", "saddle_free_newton"):
    damping = toy[name].damping
    _require(_is_float(damping, 0, False), f"toy.{name}.damping", damping, "≥ 0")
  _require(config.data.name == "digits", "data.name", config.data.name, "'digits'")
  num_train = data_lib.load_digits(config.data.test_fraction, config.data.split_seed).x_train.shape[
    0
  ]
  num_examples = config.data.num_examples
  _require(
    _is_int(num_examples) and num_examples <= num_train,
    "data.num_examples",
    num_examples,
    f"an integer in [1, {num_train}]",
  )
  _require(config.data.pool in (1, 2, 4, 8), "data.pool", config.data.pool, "1, 2, 4 or 8")
  _require(config.model.depth == 1, "model.depth", config.model.depth, "1 (one hidden layer)")
  _require(config.model.activation == "tanh", "model.activation", config.model.activation, "tanh")
  inputs = (8 // config.data.pool) ** 2
  models.build_model(config.model.name, inputs, inputs, seed=config.seed, **_model_options(config))
  for name in AE_METHODS:
    _require(name in config.optimizers, "optimizers", list(config.optimizers), f"to have {name}")
    hyper = config.optimizers[name]
    for field in ("steps", "eval_every"):
      _require(_is_int(hyper[field]), f"optimizers.{name}.{field}", hyper[field], "an integer ≥ 1")
    if name == "sgd":
      rate, batch = hyper.learning_rate, hyper.batch_size
      _require(_is_float(rate, 0, True), "optimizers.sgd.learning_rate", rate, "> 0")
      _require(
        _is_int(batch) and batch <= num_examples,
        "optimizers.sgd.batch_size",
        batch,
        f"an integer in [1, data.num_examples={num_examples}]",
      )
    else:
      damping = hyper.damping
      _require(_is_float(damping, 0, True), f"optimizers.{name}.damping", damping, "> 0")


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Runs the three methods on both problems (finished members kept in `run_dir`)."""
  del progress  # six short members: no progress bar
  check(config)
  table, history, arrays = [], [], {}
  with jax.enable_x64(True):
    jobs = [(f"toy-{name}", lambda n=name: _run_toy(config, n)) for name in TOY_METHODS]
    autoencoder = _Autoencoder(config)
    jobs += [(f"ae-{name}", lambda n=name: autoencoder.run(n)) for name in AE_METHODS]
    for member, job in jobs:
      saved = run_dir.load_member(member) if run_dir else None
      if saved is None:
        saved, member_params = job()
        if run_dir:
          run_dir.save_member(member, saved, member_params)
      else:
        member_params = run_dir.load_member_arrays(member)
      table.append(saved["row"])
      history.extend(saved["history"])
      arrays.update(member_params)
  return ExperimentResults(table, history, _summarize(table), arrays)


def _escape_step(ys: np.ndarray, radius: float) -> int | None:
  """The first step k with |y_k| ≥ radius, or None."""
  escaped = np.flatnonzero(np.abs(ys) >= radius)
  return int(escaped[0]) if escaped.size else None


def _run_toy(config: ml_collections.ConfigDict, name: str) -> tuple[dict, dict]:
  """One method on the 2-D function: every iterate, and the kind of its last point."""
  toy = config.toy
  tx = optax.with_extra_args_support(_toy_optimizer(name, toy[name].to_dict()))

  def step(carry, _):
    params, state = carry
    value, grad = jax.value_and_grad(_toy_loss)(params)
    updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=_toy_loss)
    params = optax.apply_updates(params, updates)
    return (params, state), params

  start = jnp.asarray(toy.start, jnp.float64)
  _, path = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=toy.steps))(start)
  points = np.concatenate([np.asarray(start)[None], np.asarray(path)])
  losses_along = np.asarray(saddle_function(points[:, 0], points[:, 1]))
  final = points[-1]
  verdict = hessian.classify(_toy_loss, jnp.asarray(final))
  member = f"toy-{name}"
  rows = history_rows(
    member,
    {
      "step": np.arange(points.shape[0]),
      "x": points[:, 0],
      "y": points[:, 1],
      "loss": losses_along,
    },
  )
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
    "steps_to_escape": _escape_step(points[:, 1], toy.escape_radius),
  }
  return {"row": row, "history": rows}, {}


class _Autoencoder:
  """The digits autoencoder problem: its data, model and full-batch loss (float64)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    digits = data_lib.load_digits(config.data.test_fraction, config.data.split_seed, jnp.float64)
    self.x = _pool(digits.x_train[: config.data.num_examples], config.data.pool)
    x_test = _pool(digits.x_test, config.data.pool)
    self.data = data_lib.Dataset(self.x, self.x, x_test, x_test)  # targets = inputs
    inputs = self.x.shape[1]
    self.model = models.functional(
      models.build_model(
        config.model.name,
        inputs,
        inputs,
        seed=config.seed,
        param_dtype=jnp.float64,
        **_model_options(config),
      )
    )

  def loss(self, params: Any, x: jax.Array) -> jax.Array:
    """Mean over examples of ½‖x̂ − x‖² (`losses.mean_squared_error`)."""
    outputs, _ = self.model.apply(params, self.model.model_state, x, False)
    return losses.mean_squared_error(outputs, x)

  def run(self, name: str) -> tuple[dict, dict]:
    """Trains with one method, in segments of `eval_every` steps; the index after each."""
    hyper = self.config.optimizers[name].to_dict()
    batch_size = hyper.get("batch_size", self.x.shape[0])  # Newton methods: full batch
    loop = train.make_train_loop(
      self.model, _ae_optimizer(name, hyper), batch_size=batch_size, loss="mse"
    )
    segment = jax.jit(loop.run)
    key = jax.random.key(self.config.seed)
    state = loop.init(self.model.params, self.model.model_state)
    lengths = np.diff(train.eval_steps(hyper["steps"], hyper["eval_every"]), prepend=0)
    curves: dict[str, list] = {
      k: [] for k in ("step", "train_loss", "grad_norm", "index", "lambda_min", "lambda_max")
    }
    for length in lengths:
      state, metrics = segment(state, self.data, key, None, jnp.asarray([length], jnp.int32))
      verdict = hessian.classify(self.loss, state.params, self.x)
      curves["step"].append(int(state.step))
      curves["train_loss"].append(float(metrics["train_loss"][0]))
      curves["grad_norm"].append(float(metrics["grad_norm"][0]))
      curves["index"].append(verdict.index)
      curves["lambda_min"].append(verdict.lambda_min)
      curves["lambda_max"].append(verdict.lambda_max)
    member = f"ae-{name}"
    row = {
      "member": member,
      "problem": "autoencoder",
      "method": name,
      "steps": hyper["steps"],
      "final_loss": curves["train_loss"][-1],
      "final_grad_norm": verdict.grad_norm,
      "final_kind": verdict.kind,
      "final_index": verdict.index,
      "final_lambda_min": verdict.lambda_min,
      "num_params": int(sum(leaf.size for leaf in jax.tree.leaves(self.model.params))),
    }
    arrays = member_arrays(member, state.params, state.model_state)
    return {"row": row, "history": history_rows(member, curves)}, arrays


def _pool(x: jax.Array, factor: int) -> jax.Array:
  """Average-pools flattened 8×8 images by `factor` (1: unchanged)."""
  side = 8 // factor
  return x.reshape(x.shape[0], side, factor, side, factor).mean(axis=(2, 4)).reshape(x.shape[0], -1)


def _model_options(config: ml_collections.ConfigDict) -> dict:
  options = config.model.to_dict()
  del options["name"]
  return options


def _summarize(table: list[dict]) -> dict:
  toy = {r["method"]: r for r in table if r["problem"] == "toy"}
  ae = {r["method"]: r for r in table if r["problem"] == "autoencoder"}
  return {
    "newton_final_point": [toy["newton"]["final_x"], toy["newton"]["final_y"]],
    "newton_final_distance_to_saddle": toy["newton"]["distance_to_saddle"],
    "newton_final_kind": toy["newton"]["final_kind"],
    "sfn_final_point": [toy["saddle_free_newton"]["final_x"], toy["saddle_free_newton"]["final_y"]],
    "sfn_final_kind": toy["saddle_free_newton"]["final_kind"],
    "sfn_final_distance_to_minimum": toy["saddle_free_newton"]["distance_to_minimum"],
    "sgd_final_kind": toy["sgd"]["final_kind"],
    "steps_to_escape_by_method": {m: r["steps_to_escape"] for m, r in toy.items()},
    "sgd_steps_to_escape": toy["sgd"]["steps_to_escape"],
    "sfn_steps_to_escape": toy["saddle_free_newton"]["steps_to_escape"],
    "num_params": next(iter(ae.values()))["num_params"],
    "autoencoder_final_loss_by_method": {m: r["final_loss"] for m, r in ae.items()},
    "final_index_by_method": {m: r["final_index"] for m, r in ae.items()},
    "final_grad_norm_by_method": {m: r["final_grad_norm"] for m, r in ae.items()},
    "final_kind_by_method": {m: r["final_kind"] for m, r in ae.items()},
  }


def _curves(out_dir: Path) -> dict[str, dict[str, tuple[list, list]]]:
  """member -> metric -> (steps, values), from `history.csv`."""
  curves: dict[str, dict[str, tuple[list, list]]] = {}
  for row in read_csv(out_dir / "history.csv"):
    steps, values = curves.setdefault(row["member"], {}).setdefault(row["metric"], ([], []))
    steps.append(row["step"])
    values.append(row["value"])
  return curves


def plot(out_dir: Path) -> list[Path]:
  """Draws the figures from the saved `history.csv`."""
  curves = _curves(out_dir)
  figures = [_trajectories_plot(curves, out_dir / "toy_trajectories.png")]
  figures.append(
    report.line_plot(
      {m: (c["loss"][0], np.asarray(c["loss"][1]) + 0.25) for m, c in _by_method(curves, "toy")},
      out_dir / "toy_loss.png",
      title="f(x, y) − f* on x² + y⁴/4 − y²/2 (saddle at f − f* = 1/4)",
      xlabel="step",
      ylabel="f − f*",
      logy=True,
    )
  )

  def shifted(metric: str) -> dict[str, tuple[np.ndarray, list]]:
    return {m: (np.asarray(c[metric][0]) + 1, c[metric][1]) for m, c in _by_method(curves, "ae")}

  for metric, ylabel, logy in (
    ("train_loss", "training loss ½‖x̂ − x‖² (full batch)", True),
    ("index", "index (fraction of negative eigenvalues)", False),
    ("grad_norm", "‖∇L‖ (full batch)", True),
  ):
    figures.append(
      report.line_plot(
        shifted(metric),
        out_dir / f"autoencoder_{metric}.png",
        title=f"tanh autoencoder of digits: {metric}",
        xlabel="step + 1",
        ylabel=ylabel,
        logx=True,
        logy=logy,
      )
    )
  return figures


def _by_method(curves: dict, problem: str) -> list[tuple[str, dict]]:
  return [(m.split("-", 1)[1], c) for m, c in curves.items() if m.startswith(f"{problem}-")]


def _trajectories_plot(curves: dict, path: Path) -> Path:
  """Contours of f with each method's iterates, the saddle and the two minima."""
  fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
  xs, ys = np.meshgrid(np.linspace(-0.8, 0.8, 201), np.linspace(-1.6, 1.6, 241))
  contours = ax.contour(xs, ys, saddle_function(xs, ys), levels=np.linspace(-0.25, 1.2, 16))
  ax.clabel(contours, fontsize=6)
  styles = iter([("o", "-", 3), ("s", "--", 6), ("^", ":", 4)])  # Newton's path under the others
  for (method, c), (marker, line, size) in zip(_by_method(curves, "toy"), styles, strict=False):
    x, y = np.asarray(c["x"][1]), np.asarray(c["y"][1])
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
