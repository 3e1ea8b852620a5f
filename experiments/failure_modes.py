"""Classic failure modes of activations, initialization and optimizers, each watched happening.

The lecture on activation functions and initialization that accompanies chapter 8 (Stanford
CS231n, "Training neural networks I–II"; LeCun et al. 1998, "Efficient BackProp"; Goodfellow et
al. 2016, §8.4 and §8.5) lists what goes wrong; each part here makes one of them happen on the
digits (or on a 2-D quadratic) and measures it:

1. Zero or constant initialization (§8.4: "the initial parameters need to break symmetry"): every
   hidden unit of a layer computes the same function and gets the same gradient, so after
   training they are still identical. Measured: `distinct_units` of each hidden layer after
   full-batch gradient descent, for zero, constant and random (Glorot) kernels.
2. Sigmoid outputs are not zero-centred: with inputs h_i > 0, one example's gradient on a unit's
   incoming weights ∂L/∂W_ij = h_i δ_j has one sign for every i, so the weights can only all grow
   or all shrink together (zig-zag updates). Measured: `same_sign_fraction` of the second layer's
   units, per example and per minibatch, sigmoid against tanh, at initialization.
3. Dead ReLUs: one large gradient step can push a unit's pre-activation below 0 on every training
   example; it then passes no gradient and never recovers. Measured: the share of dead hidden
   units after one full-batch step of size ε, for a grid of ε, and whether any first-layer unit
   revives during further training at a moderate rate.
4. Vanishing gradients in deep tanh nets with small weights (§8.2.5, §8.4): the back-propagated
   gradient ‖∂L/∂z₁‖ / ‖∂L/∂z_D‖ (first over last hidden layer's pre-activations, Glorot & Bengio
   2010, §4.2.2) at initialization, against depth, for two scales of the Glorot normal
   initialization. (The weight gradients ‖∂L/∂W_l‖ = ‖h_{l−1}ᵀ δ_l‖ do not show it: with small
   weights the activations h shrink forwards as fast as δ shrinks backwards.)
5. Gradient descent zig-zags across an ill-conditioned valley, momentum does not (§8.3.2, Fig.
   8.5): f(x, y) = (x² + κy²)/2, gradient descent at a rate ε near 2/κ, where y changes sign at
   every step, against momentum (Algorithm 8.2, α = 0.9) with the same terminal step ε/(1 − α)
   along a steady gradient, i.e. rate ε(1 − α): the velocity averages the alternating y-gradients
   out. Measured: path length over distance travelled, the share of steps that flip the sign of
   y, and the loss after the same number of steps (not a speed contest: momentum's rate here is
   not tuned for speed).
6. Adam without its bias correction (Algorithm 8.7; Kingma & Ba 2015, §3): the first update is
   (1 − ρ₁)/√(1 − ρ₂) times the corrected one (`lab.adam_variants`). Measured on the digits MLP:
   the ratio of the first steps' norms, and the loss over the first steps of each.

Claims (`summary.json`): `zero_init_distinct_units`, `constant_init_distinct_units`,
`random_init_distinct_units`, `same_sign_fraction` (mean ± std over seeds; `same_sign_fraction_se`
and `_dof` beside, as nested), `dead_relu_fraction` (by ε, mean ± std over seeds),
`revived_first_layer_units`, `tanh_gradient_ratio_first_last` (by scale and depth),
`path_length_ratio`, `sign_flip_fraction`, `quadratic_final_loss`,
`first_step_ratio_without_correction` and its closed form. For the verdicts:
`equal_init_max_distinct_units` (the most distinct units of any layer after zero or constant
initialization), `sigmoid_same_sign_shortfall` (1 − the per-example fraction after a sigmoid
layer), `dead_relu_growth` (the dead share at the largest ε minus that at the smallest, paired by
seed: the mean over seeds, `_se`, `_dof`, `_by_seed`), `tanh_small_init_ratio_deepest` (the mean
over seeds of the gradient ratio at the smallest init scale and the deepest net, `_se`, `_dof`)
and `tanh_small_init_ratio_deepest_over_shallowest` (the geometric mean over seeds of each seed's
deepest over shallowest ratio at that scale, `verdicts.paired_ratio_by_seed`: `_se`, `_dof`,
`_by_seed`), `path_length_ratio_gd_over_momentum`, `sign_flip_fraction_gd_minus_momentum` and
`first_step_ratio_rel_error` (against the closed form).

`CRITERIA` judge them into `verdicts`: zero and constant initialization leave one distinct unit
per layer; after a sigmoid layer every unit's per-example gradients share one sign, after tanh
fewer than half do; the largest step kills more units than the smallest and none revives; at the
small scale the ratio falls with depth to < 0.1 at the deepest net; gradient descent's path is
longer and flips y's sign more often than momentum's; the first uncorrected step is within 1% of
its closed form. What each seed's initialization draws (tanh's same-sign fraction, the dead-unit
growth, the gradient ratios) is judged by its mean over seeds, inconclusive within t_{0.975, dof}
standard errors of its threshold (a ratio on the log scale); an error of 0 (every seed the same
fraction) decides only from 6 seeds or more (`experiment.MIN_DOF_WITHOUT_SPREAD`), so the configs
run six. What holds by construction or draws nothing is judged on its value: equal units stay
equal (zero and constant kernels draw nothing), a sigmoid's outputs are > 0, a first-layer unit
dead on every training example gets no gradient and cannot revive, the quadratic has a fixed
start, and the first Adam step is checked against its closed form.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
from flax import nnx
from jax import flatten_util

from jaxopt_study import init, models, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, all_of, below
from jaxopt_study.lab import adam_variants, digits_tasks, landscape, unit_stats, verdicts
from jaxopt_study.results import history_rows, read_csv

INITS = ("zeros", "constant", "random")
POSITIVE_INT = validate.require_positive_int


class FailureModes(Experiment):
  """Six small demonstrations of what goes wrong with activations, initialization and steps."""

  NAME = "failure_modes"
  TITLE = "Failure modes of activations, initialization and optimizers, watched happening"
  SECTION = "8.4"
  DESCRIPTION = (
    "The lecture's list of failure modes, each measured: zero or constant initialization leaves "
    "every hidden unit of a layer identical after training (symmetry is never broken, §8.4); a "
    "sigmoid layer's positive outputs give each unit above it single-sign weight gradients per "
    "example (zig-zag updates), tanh's do not; one large step kills ReLUs for good; with small "
    "weights, deep tanh nets' first layers get vanishing gradients; gradient descent zig-zags "
    "across an ill-conditioned valley where momentum travels straight; Adam without bias "
    "correction takes a first step (1 − ρ₁)/√(1 − ρ₂) times too large."
  )
  PUBLISHED = {
    "zero_init_distinct_units": "1: units with the same initial parameters stay identical "
    "(Goodfellow et al. 2016, §8.4)",
    "same_sign_fraction": "1 per example after a sigmoid layer (all-positive inputs); far less "
    "after tanh (LeCun et al. 1998, §4.3; CS231n)",
    "dead_relu_fraction": "grows with the step size; dead units never recover (CS231n)",
    "tanh_gradient_ratio_first_last": "≪ 1 and falling with depth for small weights (§8.2.5; "
    "Glorot & Bengio 2010)",
    "path_length_ratio": "gradient descent zig-zags (ratio ≫ 1), momentum does not (§8.3.2, "
    "Fig. 8.5)",
    "first_step_ratio_without_correction": "(1 − ρ₁)/√(1 − ρ₂) ≈ 3.16 with the defaults "
    "(Kingma & Ba 2015, §3)",
  }
  CRITERIA = {
    # By construction: zero or constant kernels and zero biases draw nothing (the seed is unused),
    # and units that start equal get equal gradients. Judged on the value.
    "zero_init_distinct_units": below("equal_init_max_distinct_units", 1.5),
    "same_sign_fraction": all_of(
      # By construction: h_i > 0 after a sigmoid, so h_i δ_j has δ_j's sign, for every seed.
      below("sigmoid_same_sign_shortfall", 1e-12),
      # Each seed's tanh net: the mean over seeds, within t_{0.975, dof} standard errors.
      below("same_sign_fraction.tanh.1.mean", 0.5, standard_error="same_sign_fraction_se.tanh.1"),
    ),
    "dead_relu_fraction": all_of(
      # Each seed's He-initialized net at the largest and the smallest ε: paired by seed.
      above("dead_relu_growth", 0.0, standard_error="dead_relu_growth_se"),
      # By construction: a first-layer unit dead on every training example gets no gradient
      # from them, so no run revives one. The count over every seed and ε, judged on the value.
      below("revived_first_layer_units", 0.5),
    ),
    "tanh_gradient_ratio_first_last": all_of(
      below(
        "tanh_small_init_ratio_deepest", 0.1, standard_error="tanh_small_init_ratio_deepest_se"
      ),
      # Each seed's deepest over its shallowest net, on the log scale.
      below(
        "tanh_small_init_ratio_deepest_over_shallowest",
        1.0,
        standard_error="tanh_small_init_ratio_deepest_over_shallowest_se",
        ratio=True,
      ),
    ),
    # Deterministic: a fixed quadratic from a fixed start, no draw. Judged on the value.
    "path_length_ratio": all_of(
      above("path_length_ratio_gd_over_momentum", 1.0),
      above("sign_flip_fraction_gd_minus_momentum", 0.0),
    ),
    # Analytic: the first step's ratio against its closed form (1 − ρ₁)/√(1 − ρ₂), which holds
    # for any gradient up to Adam's ε (the first seed's net). Judged on the value.
    "first_step_ratio_without_correction": below("first_step_ratio_rel_error", 0.01),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "seeds": validate.seeds(),
    "symmetry.width": POSITIVE_INT,
    "symmetry.steps": POSITIVE_INT,
    "symmetry.learning_rate": validate.require_positive,
    "symmetry.constant": validate.require_positive,
    "zigzag.width": POSITIVE_INT,
    "zigzag.num_examples": POSITIVE_INT,
    "zigzag.batch_size": POSITIVE_INT,
    "dead_relu.width": POSITIVE_INT,
    "dead_relu.learning_rates": validate.each(validate.require_positive),
    "dead_relu.recover_learning_rate": validate.require_positive,
    "dead_relu.recover_steps": POSITIVE_INT,
    "vanishing.width": POSITIVE_INT,
    "vanishing.depths": validate.each(validate.require_positive_int),
    "vanishing.init_scales": validate.each(validate.require_positive),
    "vanishing.num_examples": POSITIVE_INT,
    "quadratic.kappa": validate.require_positive,
    "quadratic.start": functools.partial(validate.require_sequence, min_length=2),
    "quadratic.steps": POSITIVE_INT,
    "quadratic.learning_rate": validate.require_positive,
    "quadratic.momentum": functools.partial(validate.require_unit_interval, include_zero=False),
    "adam.width": POSITIVE_INT,
    "adam.learning_rate": validate.require_positive,
    "adam.steps": POSITIVE_INT,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    for field in ("zigzag.num_examples", "vanishing.num_examples"):
      part, name = field.split(".")
      validate.require_int(field, config[part][name], self.NAME, low=1, high=num_train)
    if config.zigzag.num_examples % config.zigzag.batch_size:
      raise ValueError(
        f"{self.NAME}: zigzag.batch_size={config.zigzag.batch_size} must divide "
        f"zigzag.num_examples={config.zigzag.num_examples}"
      )
    if config.quadratic.kappa <= 1 or len(config.quadratic.start) != 2:
      raise ValueError(
        f"{self.NAME}: quadratic.kappa={config.quadratic.kappa!r} must be > 1 and "
        f"quadratic.start={list(config.quadratic.start)!r} a point (x, y)"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """The six parts in turn (each seconds; nothing to resume)."""
    data = digits_tasks.load(config.data)
    table, history = [], []
    for part in (_symmetry, _zigzag, _dead_relu, _vanishing, _quadratic, _adam):
      rows, curves = part(config, data)
      table += rows
      history += curves
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    parts: dict[str, list[dict]] = {}
    for row in results.table:
      parts.setdefault(row["part"], []).append(row)
    symmetry = {row["init"]: row for row in parts["symmetry"]}
    distinct = {name: symmetry[name]["distinct_units_by_layer"] for name in INITS}
    zigzag: dict[tuple, list[float]] = {}
    for row in parts["zigzag"]:
      key = (row["activation"], str(row["examples_per_gradient"]))
      zigzag.setdefault(key, []).append(row["same_sign_fraction"])

    def by_activation(stat) -> dict:
      return {
        activation: {b: stat(v) for (a, b), v in zigzag.items() if a == activation}
        for activation in ("sigmoid", "tanh")
      }

    same_sign = by_activation(verdicts.mean_and_std)
    dead: dict[float, dict[int, float]] = {}
    for row in parts["dead_relu"]:
      dead.setdefault(row["learning_rate"], {})[row["seed"]] = row["dead_fraction"]
    dead_by_rate = {
      f"{lr:g}": verdicts.mean_and_std(list(v.values())) for lr, v in sorted(dead.items())
    }
    # the largest step's dead share less the smallest's, each seed's net at both
    growth = {s: dead[max(dead)][s] - dead[min(dead)][s] for s in sorted(dead[min(dead)])}
    growth_mean, growth_se = verdicts.mean_and_standard_error(list(growth.values()))
    revived = sum(row["revived_first_layer_units"] for row in parts["dead_relu"])
    ratio: dict[tuple, dict[int, float]] = {}
    for row in parts["vanishing"]:
      setting = (row["init_scale"], row["depth"])
      ratio.setdefault(setting, {})[row["seed"]] = row["ratio_first_last"]
    ratios = {
      f"{scale:g}": {
        str(depth): verdicts.mean_and_std(list(v.values()))
        for (s, depth), v in sorted(ratio.items())
        if s == scale
      }
      for scale in config.vanishing.init_scales
    }
    quad = {row["method"]: row for row in parts["quadratic"]}
    adam = parts["adam"][0]
    small = min(config.vanishing.init_scales)
    deepest, shallowest = (
      ratio[(small, max(config.vanishing.depths))],
      ratio[(small, min(config.vanishing.depths))],
    )
    deepest_mean, deepest_se = verdicts.mean_and_standard_error(list(deepest.values()))
    fall, fall_se, fall_dof = verdicts.paired_ratio_by_seed(deepest, shallowest)
    return {
      "zero_init_distinct_units": distinct["zeros"],
      "constant_init_distinct_units": distinct["constant"],
      "random_init_distinct_units": distinct["random"],
      "final_train_loss_by_init": {name: symmetry[name]["final_train_loss"] for name in INITS},
      "same_sign_fraction": same_sign,
      "same_sign_fraction_se": by_activation(verdicts.standard_error),
      "same_sign_fraction_dof": by_activation(verdicts.dof),
      "dead_relu_fraction": dead_by_rate,
      "revived_first_layer_units": revived,
      "tanh_gradient_ratio_first_last": ratios,
      "path_length_ratio": {m: row["path_length_ratio"] for m, row in quad.items()},
      "sign_flip_fraction": {m: row["sign_flip_fraction"] for m, row in quad.items()},
      "quadratic_final_loss": {m: row["final_loss"] for m, row in quad.items()},
      "first_step_ratio_without_correction": adam["first_step_ratio"],
      "first_step_ratio_closed_form": adam["closed_form_ratio"],
      "adam_final_loss": {
        "corrected": adam["final_loss_corrected"],
        "uncorrected": adam["final_loss_uncorrected"],
      },
      "equal_init_max_distinct_units": max(distinct["zeros"] + distinct["constant"]),
      "sigmoid_same_sign_shortfall": 1.0 - same_sign["sigmoid"]["1"]["mean"],
      "dead_relu_growth": growth_mean,
      "dead_relu_growth_se": growth_se,
      "dead_relu_growth_dof": verdicts.dof(list(growth)),
      "dead_relu_growth_by_seed": {str(s): g for s, g in growth.items()},
      "tanh_small_init_ratio_deepest": deepest_mean,
      "tanh_small_init_ratio_deepest_se": deepest_se,
      "tanh_small_init_ratio_deepest_dof": verdicts.dof(list(deepest)),
      "tanh_small_init_ratio_deepest_over_shallowest": fall,
      "tanh_small_init_ratio_deepest_over_shallowest_se": fall_se,
      "tanh_small_init_ratio_deepest_over_shallowest_dof": fall_dof,
      "tanh_small_init_ratio_deepest_over_shallowest_by_seed": {
        str(s): verdicts.ratio(deepest[s], shallowest.get(s)) for s in sorted(deepest)
      },
      "path_length_ratio_gd_over_momentum": quad["gradient_descent"]["path_length_ratio"]
      / quad["momentum"]["path_length_ratio"],
      "sign_flip_fraction_gd_minus_momentum": quad["gradient_descent"]["sign_flip_fraction"]
      - quad["momentum"]["sign_flip_fraction"],
      "first_step_ratio_rel_error": abs(adam["first_step_ratio"] / adam["closed_form_ratio"] - 1),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """One figure per part that has a curve: dead units by ε, gradient ratio by depth, the
    quadratic's paths, Adam's first steps."""
    table = read_csv(out_dir / "results.csv")
    curves: dict[str, dict[str, list]] = {}
    for row in read_csv(out_dir / "history.csv"):
      curves.setdefault(row["member"], {}).setdefault(row["metric"], []).append(row["value"])
    return [
      _symmetry_plot(table, out_dir / "symmetry.png"),
      _dead_plot(table, out_dir / "dead_relu.png"),
      _vanishing_plot(table, out_dir / "vanishing_gradients.png"),
      _quadratic_plot(table, curves, out_dir / "zigzag_quadratic.png"),
      _adam_plot(curves, out_dir / "adam_bias_correction.png"),
    ]


def _nll_of(model: models.FunctionalModel):
  """The model's mean training-mode NLL as `loss_fn(params, x, y)`."""
  return digits_tasks.nll(model)


def _mlp(width: int, depth: int, activation: str, kernel_init, seed: int):
  """A digits `models.MLP` with the given kernel initializer, in functional form."""
  return models.functional(
    models.MLP(
      digits_tasks.NUM_FEATURES,
      digits_tasks.NUM_CLASSES,
      width=width,
      depth=depth,
      activation=activation,
      kernel_init=kernel_init,
      rngs=nnx.Rngs(params=seed),
    )
  )


def _symmetry(config, data) -> tuple[list, list]:
  """Part 1: full-batch gradient descent from zero, constant and random kernels; the distinct
  hidden units of each layer at the end."""
  sym = config.symmetry
  kernel_inits = {
    "zeros": jax.nn.initializers.zeros,
    "constant": jax.nn.initializers.constant(sym.constant),
    "random": init.glorot_uniform(),
  }
  table, history = [], []
  for name, kernel_init in kernel_inits.items():
    model = _mlp(sym.width, 2, "tanh", kernel_init, config.seeds[0])
    nll = _nll_of(model)
    run = jax.jit(
      lambda p, nll=nll: train.descend(
        lambda q: nll(q, data.x_train, data.y_train),
        p,
        optim.sgd(sym.learning_rate),
        steps=sym.steps,
        every=max(1, sym.steps // 50),
      )
    )(model.params)
    layers = unit_stats.hidden_layers(run.params)
    table.append(
      {
        "member": f"symmetry/{name}",
        "part": "symmetry",
        "init": name,
        "distinct_units_by_layer": [unit_stats.distinct_units(k, b) for k, b in layers],
        "weights_moved": float(
          landscape.parameter_distance(model.params["hidden"], run.params["hidden"])
        ),
        "final_train_loss": float(run.records[-1]),
      }
    )
    steps = train.eval_steps(sym.steps, max(1, sym.steps // 50))
    history += history_rows(f"symmetry/{name}", {"step": steps, "train_loss": run.records})
  return table, history


def _zigzag(config, data) -> tuple[list, list]:
  """Part 2: at initialization, the share of second-layer units whose incoming weight gradients
  share one sign, from one example and from a minibatch, after a sigmoid or a tanh layer."""
  zz = config.zigzag
  x, y = data.x_train[: zz.num_examples], data.y_train[: zz.num_examples]
  table = []
  for activation in ("sigmoid", "tanh"):
    for seed in config.seeds:
      model = _mlp(zz.width, 2, activation, init.glorot_uniform(), seed)
      nll = _nll_of(model)

      def second_kernel_grad(xb, yb, nll=nll, model=model):
        return jax.grad(nll)(model.params, xb, yb)["hidden"][1]["kernel"][...]

      per_example = jax.vmap(lambda xi, yi: second_kernel_grad(xi[None], yi[None]))(x, y)
      batches = zz.num_examples // zz.batch_size
      per_batch = jax.vmap(second_kernel_grad)(
        x.reshape(batches, zz.batch_size, -1), y.reshape(batches, zz.batch_size)
      )
      for size, grads in ((1, per_example), (zz.batch_size, per_batch)):
        table.append(
          {
            "member": f"zigzag/{activation}/b{size}/seed{seed}",
            "part": "zigzag",
            "activation": activation,
            "examples_per_gradient": size,
            "seed": seed,
            "same_sign_fraction": float(unit_stats.same_sign_fraction(grads)),
          }
        )
  return table, []


def _dead_relu(config, data) -> tuple[list, list]:
  """Part 3: one full-batch step of each size ε from He-initialized ReLU nets (one per seed); the
  dead units after it, and the first-layer units that revive in `recover_steps` further steps."""
  dr = config.dead_relu
  x, y = data.x_train, data.y_train
  model, stacked = digits_tasks.mlps(
    list(config.seeds), width=dr.width, depth=2, activation="relu", init="he_normal"
  )
  nll = _nll_of(model)

  def loss(params):
    return nll(params, x, y)

  def after(params, rate):
    big = train.descend(loss, params, optim.sgd(rate), steps=1).params
    later = train.descend(
      loss, big, optim.sgd(dr.recover_learning_rate), steps=dr.recover_steps
    ).params
    dead_big = unit_stats.dead_units(big, x)
    dead_later = unit_stats.dead_units(later, x)
    return (
      jnp.mean(jnp.concatenate(dead_big)),
      jnp.sum(dead_big[0] & ~dead_later[0]),
      jnp.mean(jnp.concatenate(dead_later)),
    )

  over_seeds = jax.jit(jax.vmap(after, in_axes=(0, None)))
  table = []
  for rate in dr.learning_rates:
    dead, revived, dead_later = over_seeds(stacked, jnp.float32(rate))
    for i, seed in enumerate(config.seeds):
      table.append(
        {
          "member": f"dead_relu/lr{rate:g}/seed{seed}",
          "part": "dead_relu",
          "learning_rate": float(rate),
          "seed": seed,
          "dead_fraction": float(dead[i]),
          "revived_first_layer_units": int(revived[i]),
          "dead_fraction_after_recovery": float(dead_later[i]),
        }
      )
  return table, []


def _vanishing(config, data) -> tuple[list, list]:
  """Part 4: ‖∂L/∂z₁‖ / ‖∂L/∂z_D‖, the back-propagated gradient at the first hidden layer over
  that at the last, at initialization of tanh nets, per depth, Glorot-normal scale and seed."""
  vg = config.vanishing
  x, y = data.x_train[: vg.num_examples], data.y_train[: vg.num_examples]
  table = []
  for depth in vg.depths:
    for scale in vg.init_scales:
      for seed in config.seeds:
        model = _mlp(
          vg.width, depth, "tanh", init.get_initializer("glorot_normal", scale=scale), seed
        )
        norms = unit_stats.backpropagated_norms(model.params, x, y, jnp.tanh)
        table.append(
          {
            "member": f"vanishing/depth{depth}/scale{scale:g}/seed{seed}",
            "part": "vanishing",
            "depth": depth,
            "init_scale": float(scale),
            "seed": seed,
            "ratio_first_last": float(norms[0] / norms[depth - 1]),
            "first_layer_delta_norm": float(norms[0]),
          }
        )
  return table, []


def _quadratic(config, data) -> tuple[list, list]:
  """Part 5: gradient descent at rate ε and momentum α at rate ε(1 − α) on (x² + κy²)/2."""
  del data
  quad = config.quadratic
  methods = {
    "gradient_descent": optim.sgd(quad.learning_rate),
    "momentum": optim.momentum(quad.learning_rate * (1 - quad.momentum), quad.momentum),
  }

  def f(theta):
    return 0.5 * (theta[0] ** 2 + quad.kappa * theta[1] ** 2)

  table, history = [], []
  start = jnp.asarray(quad.start, jnp.float32)
  for name, tx in methods.items():
    points, values = train.descend(
      f, start, tx, steps=quad.steps, record=lambda p, v: (p, v)
    ).records
    points, values = np.asarray(points), np.asarray(values)
    moved = float(np.linalg.norm(points[-1] - points[0]))
    flips = np.sign(points[1:, 1]) != np.sign(points[:-1, 1])
    table.append(
      {
        "member": f"quadratic/{name}",
        "part": "quadratic",
        "method": name,
        "kappa": float(quad.kappa),
        "path_length_ratio": landscape.path_length(points) / moved,
        "sign_flip_fraction": float(np.mean(flips)),
        "final_loss": float(values[-1]),
      }
    )
    curves = {"x": points[:, 0], "y": points[:, 1], "loss": values}
    history += history_rows(f"quadratic/{name}", {"step": np.arange(values.size)} | curves)
  return table, history


def _adam(config, data) -> tuple[list, list]:
  """Part 6: Adam with and without bias correction from one initialization, full batch: the
  norms of the first steps and the loss."""
  ad = config.adam
  model = digits_tasks.mlp(config.seeds[0], width=ad.width, depth=2, activation="tanh")
  nll = _nll_of(model)

  def loss(p):
    return nll(p, data.x_train, data.y_train)

  b1, b2 = 0.9, 0.999
  methods = {
    "corrected": optim.adam(ad.learning_rate, b1=b1, b2=b2),
    "uncorrected": adam_variants.uncorrected_adam(ad.learning_rate, b1=b1, b2=b2),
  }
  step_norms, losses_of = {}, {}
  history = []
  for name, tx in methods.items():
    params, values = train.descend(
      loss, model.params, tx, steps=ad.steps, record=lambda p, v: (p, v)
    ).records
    flat = jax.vmap(lambda p: flatten_util.ravel_pytree(p)[0])(params)
    step_norms[name] = np.asarray(jnp.linalg.norm(jnp.diff(flat, axis=0), axis=1))
    losses_of[name] = np.asarray(values)
    curves = {"loss": losses_of[name], "step_norm": np.concatenate([[np.nan], step_norms[name]])}
    history += history_rows(f"adam/{name}", {"step": np.arange(values.size)} | curves)
  first = float(step_norms["uncorrected"][0] / step_norms["corrected"][0])
  row = {
    "member": "adam",
    "part": "adam",
    "first_step_ratio": first,
    "closed_form_ratio": float(adam_variants.uncorrected_step_ratio(1, b1, b2)),
    "final_loss_corrected": float(losses_of["corrected"][-1]),
    "final_loss_uncorrected": float(losses_of["uncorrected"][-1]),
    "initial_loss": float(losses_of["corrected"][0]),
  }
  return [row], history


def _symmetry_plot(table: list[dict], path: Path) -> Path:
  """Distinct hidden units per layer after training, by initialization."""
  rows = [row for row in table if row["part"] == "symmetry"]
  fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
  layers = len(rows[0]["distinct_units_by_layer"])
  width = 0.8 / layers
  for layer in range(layers):
    heights = [row["distinct_units_by_layer"][layer] for row in rows]
    ax.bar(np.arange(len(rows)) + layer * width, heights, width, label=f"hidden layer {layer + 1}")
  ax.set_xticks(np.arange(len(rows)) + width * (layers - 1) / 2, [row["init"] for row in rows])
  ax.set(title="distinct hidden units after training (symmetry, §8.4)", ylabel="distinct units")
  ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _dead_plot(table: list[dict], path: Path) -> Path:
  """The share of dead units against the step size ε, mean ± std over seeds."""
  rows = [row for row in table if row["part"] == "dead_relu"]
  rates = sorted({row["learning_rate"] for row in rows})
  by_rate = [[row["dead_fraction"] for row in rows if row["learning_rate"] == r] for r in rates]
  fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
  ax.errorbar(rates, [np.mean(v) for v in by_rate], [np.std(v) for v in by_rate], marker="o")
  ax.set_xscale("log")
  ax.set(
    title="dead ReLUs after one full-batch step of size ε",
    xlabel="ε",
    ylabel="share of hidden units dead on every training example",
  )
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _vanishing_plot(table: list[dict], path: Path) -> Path:
  """The first-over-last gradient-norm ratio against depth, per initialization scale."""
  rows = [row for row in table if row["part"] == "vanishing"]
  series = {}
  for scale in sorted({row["init_scale"] for row in rows}):
    depths = sorted({row["depth"] for row in rows})
    means = [
      np.mean([r["ratio_first_last"] for r in rows if r["depth"] == d and r["init_scale"] == scale])
      for d in depths
    ]
    series[f"tanh, Glorot normal × {scale:g}"] = (depths, means)
  return report.line_plot(
    series,
    path,
    title="‖∂L/∂z₁‖ / ‖∂L/∂z_D‖ at initialization (back-propagated gradients)",
    xlabel="hidden layers D",
    ylabel="first-layer over last-layer gradient norm",
    logy=True,
  )


def _quadratic_plot(table: list[dict], curves: dict, path: Path) -> Path:
  """The contours of (x² + κy²)/2 and each method's iterates."""
  kappa = next(row["kappa"] for row in table if row["part"] == "quadratic")
  fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
  paths = {m.split("/")[1]: c for m, c in curves.items() if m.startswith("quadratic/")}
  x_span = 1.1 * max(np.abs(np.concatenate([c["x"] for c in paths.values()])).max(), 1e-3)
  y_span = 1.3 * max(np.abs(np.concatenate([c["y"] for c in paths.values()])).max(), 1e-3)
  gx, gy = np.meshgrid(np.linspace(-x_span, x_span, 200), np.linspace(-y_span, y_span, 200))
  ax.contour(gx, gy, gx**2 + kappa * gy**2, levels=12, colors="0.7", linewidths=0.5)
  for name, c in paths.items():
    ax.plot(c["x"], c["y"], "o-", ms=2.5, lw=1, label=name.replace("_", " "))
  ax.set(title="(x² + κy²)/2: the path of each method", xlabel="x", ylabel="y")
  ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _adam_plot(curves: dict, path: Path) -> Path:
  """The step norms and the training loss of Adam with and without bias correction."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=110)
  for name in ("corrected", "uncorrected"):
    c = curves[f"adam/{name}"]
    left.plot(range(1, len(c["step_norm"])), c["step_norm"][1:], label=name)
    right.plot(range(len(c["loss"])), c["loss"], label=name)
  left.set(title="‖θ_t − θ_{t−1}‖ of Adam", xlabel="step t", ylabel="step norm")
  right.set(title="training NLL", xlabel="step", ylabel="NLL")
  right.set_yscale("log")
  for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)
