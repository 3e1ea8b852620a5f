"""§8.4 "Parameter initialization strategies": how the signal's variance travels through depth.

For deep tanh and ReLU MLPs on digits, at initialization, under each initializer of
`jaxopt_study.init` (Glorot's normalized init, book eq. 8.23; He et al. 2015; LeCun; orthogonal,
Saxe et al. 2013; sparse, Martens 2010; LSUV, Mishkin & Matas 2016) and the "standard" heuristic
U(−1/√m, 1/√m) that Glorot & Bengio (2010) start from, this experiment measures per layer l

* the forward variance Var(z_l) of the pre-activations z_l = W_l h_{l−1} + b_l, and
* the backward variance Var(∂ℓ/∂z_l) of the back-propagated gradient of each example's NLL,

on a batch of digits training examples (the last `num_examples`; LSUV fits on the first
`num_lsuv_examples`). The per-example gradients are those of a per-example bias: ∂ℓ_i/∂b_l =
∂ℓ_i/∂z_{l,i} (`jax.vmap` of `jax.grad` over examples, with respect to the biases only).

The theory (He et al. 2015, eq. 10; Glorot & Bengio 2010, eq. 12): for square layers
Var(z_{l+1}) = n Var(W) E[act(z_l)²]; ReLU halves E[act(z)²] relative to Var(z), so Glorot's
Var(W) = 1/n loses a factor 2 per layer and He's Var(W) = 2/n keeps Var(z_l) constant. An
init-scale sweep of one initializer finds the scale where the variance is kept: √2 for ReLU.
LSUV rescales each layer to unit variance on a training batch.

Claims (`summary.json`): `relu_glorot_activation_decay` (per-layer factor of Var(z_l), fitted on the
deepest ReLU net of each seed, mean over seeds; theory 1/2), `relu_glorot_activation_ratio`
(Var(z_L)/Var(z_1) of the mean variances; theory 2^−(L−1)), `relu_he_activation_ratio` (theory 1),
`lsuv_max_variance_error` (max |Var(z_l) − 1| over layers on the measured batch after LSUV on
another), `relu_critical_init_scale` (where the per-layer factor of Var(z_l) of the ReLU net crosses
1 in the scale sweep; theory √2), and the ratios of every initializer. The verdicts read
`relu_glorot_decay_rel_error` (|decay / (1/2) − 1|), `relu_he_activation_abs_log2_ratio` (|mean over
seeds of each seed's log2 Var(z_L)/Var(z_1)|) and `relu_critical_init_scale_rel_error` (|scale / √2
− 1|), with standard errors over seeds where there are (`_se`, with their degrees of freedom
`_dof`, seeds − 1: a claim holds beyond t_{0.975, dof} standard errors of its threshold).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxopt_study import init, losses, models, report, validate
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import digits_tasks, verdicts
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import read_csv

ACTIVATIONS = ("tanh", "relu")
KNOWN_INITIALIZERS = sorted({*init.INITIALIZERS, "standard_uniform", "lsuv"})
VARIANCES = ("preactivation_variance", "gradient_variance")  # history.csv metrics, per layer


class InitVariancePropagation(Experiment):
  """Per-layer variances of pre-activations and gradients at initialization, per initializer."""

  NAME = "init_variance_propagation"
  TITLE = "Chapter 8.4: variance of activations and gradients through depth at initialization"
  SECTION = "8.4"
  DESCRIPTION = (
    "Deep tanh and ReLU MLPs on digits at initialization, under each initializer of the toolkit "
    "(Glorot, He, LeCun, orthogonal, sparse, LSUV) and Glorot & Bengio's 'standard' "
    "U(-1/√m, 1/√m). Per layer: the variance of the pre-activations z_l and of the "
    "back-propagated gradients ∂ℓ/∂z_l (per example, on a batch of training digits), averaged "
    "over seeds. ReLU under Glorot's init loses a factor 2 of variance per layer; He's init "
    "keeps it (He et al. 2015); LSUV sets every layer to unit variance on another training "
    "batch. The init-scale sweep multiplies one initializer by a scale and finds where the "
    "per-layer factor of Var(z_l) crosses 1 for ReLU (√2). For tanh the fitted factor mixes the "
    "decay towards the variance's fixed point with the criticality at scale 1, so no crossing is "
    "claimed for it. Finite width makes the variance of a single deep net fluctuate by a "
    "log-normal factor (Hanin & Rolnick 2018), hence several seeds; the per-layer factors are "
    "steadier than the end-to-end ratios."
  )
  PUBLISHED = {
    "relu_glorot_activation_decay": "1/2 per layer (He et al. 2015, §2.2)",
    "relu_he_activation_ratio": "1: variance preserved through depth (He et al. 2015, eq. 10)",
    "lsuv_max_variance_error": "≤ tol = 0.05 on the fitting batch (Mishkin & Matas 2016); "
    "measured here on another batch",
    "relu_critical_init_scale": "√2 ≈ 1.414 (He et al. 2015)",
  }
  # "1/2" and "√2" as within 10% and 5%; "1" end to end as within a factor 2 (one layer's halving
  # under Glorot's init); LSUV's tolerance, here on a batch it did not fit.
  CRITERIA = {
    "relu_glorot_activation_decay": below(
      "relu_glorot_decay_rel_error", 0.1, standard_error="relu_glorot_decay_rel_error_se"
    ),
    "relu_he_activation_ratio": below(
      "relu_he_activation_abs_log2_ratio",
      1.0,
      standard_error="relu_he_activation_abs_log2_ratio_se",
    ),
    "lsuv_max_variance_error": below("lsuv_max_variance_error", 0.05),
    "relu_critical_init_scale": below("relu_critical_init_scale_rel_error", 0.05),
  }
  FIELDS = {
    **dict.fromkeys(
      ("width", "num_seeds", "num_examples", "num_lsuv_examples"), validate.require_positive_int
    ),
    "depths": validate.each(validate.require_int, low=2),
    "activations": validate.each(validate.require_choice, choices=ACTIVATIONS),
    "initializers": validate.each(validate.require_choice, choices=KNOWN_INITIALIZERS),
    "scale_sweep.init": functools.partial(
      validate.require_choice, choices=sorted(init.INITIALIZERS)
    ),
    "scale_sweep.scales": functools.partial(
      validate.require_sequence, each=validate.require_positive, min_length=2
    ),
    "lsuv_tol": functools.partial(validate.require_unit_interval, include_zero=False),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Initializer options that build, the initializers the claims compare, increasing scales."""
    for name in config.initializers:
      if name == "lsuv":
        continue
      options = dict(config.initializer_options.get(name, {}))
      try:
        initializer(name, options)
      except (TypeError, ValueError) as error:
        raise ValueError(f"{self.NAME}: initializer_options.{name}: {error}") from None
      if options.get("num_nonzero", 0) > min(64, config.width):
        raise ValueError(
          f"{self.NAME}: initializer_options.{name}.num_nonzero={options['num_nonzero']} exceeds "
          f"the fan-in {min(64, config.width)} of a layer"
        )
    for name in ("glorot_uniform", "he_normal"):
      if "relu" in config.activations and name not in config.initializers:
        raise ValueError(f"{self.NAME}: initializers must include {name!r}, the claims compare it")
    scales = list(config.scale_sweep.scales)
    if scales != sorted(scales):
      raise ValueError(f"{self.NAME}: scale_sweep.scales={scales} must increase")

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every (depth, initializer, seed) for each activation; the scale sweep at the deepest depth;
    under a minute of work, nothing worth resuming."""
    data = digits_tasks.load(config.data)
    x_fit = data.x_train[: config.num_lsuv_examples]
    x_eval, y_eval = data.x_train[-config.num_examples :], data.y_train[-config.num_examples :]
    deepest = max(config.depths)
    jobs = [
      ("initializer", d, name, 1.0, "") for d in config.depths for name in config.initializers
    ]
    jobs += [
      ("scale_sweep", deepest, config.scale_sweep.init, float(s), f" ×{s:g}")
      for s in config.scale_sweep.scales
    ]
    graphs = {depth: activation_graphs(config, depth) for depth in config.depths}
    table, history = [], []
    for kind, depth, name, scale, suffix in tqdm(jobs, desc="networks", disable=not progress):
      found = seed_variances(config, graphs[depth], depth, name, scale, x_fit, x_eval, y_eval)
      for activation, (per_seed_forward, per_seed_backward) in found.items():
        member = f"{activation} L={depth} {name}{suffix}"
        table.append(
          table_row(
            member, kind, activation, depth, name, scale, per_seed_forward, per_seed_backward
          )
        )
        forward, backward = per_seed_forward.mean(axis=0), per_seed_backward.mean(axis=0)
        history += [
          {"member": member, "step": layer + 1, "metric": metric, "value": float(v)}
          for metric, values in zip(VARIANCES, (forward, backward), strict=True)
          for layer, v in enumerate(values)
        ]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """At the deepest depth: the ReLU decay under Glorot's and He's init, the critical scale, LSUV's
    largest error and every initializer's end-to-end ratios."""
    table = results.table
    deepest = max(config.depths)
    summary = {}
    if "relu" in config.activations:
      glorot = setting_row(table, "relu", deepest, "glorot_uniform")
      he = setting_row(table, "relu", deepest, "he_normal")
      summary |= {
        "relu_glorot_activation_decay": glorot["activation_factor_per_layer_seed_mean"],
        "relu_glorot_decay_rel_error": abs(
          glorot["activation_factor_per_layer_seed_mean"] / 0.5 - 1
        ),
        "relu_glorot_decay_rel_error_se": glorot["activation_factor_per_layer_se"] / 0.5,
        "relu_glorot_decay_rel_error_dof": glorot["activation_factor_per_layer_dof"],
        "relu_glorot_activation_ratio": glorot["activation_ratio"],
        "relu_glorot_activation_ratio_theory": 2.0 ** -(deepest - 1),
        "relu_he_activation_ratio": he["activation_ratio"],
        "relu_he_activation_abs_log2_ratio": abs(he["log2_activation_ratio_seed_mean"]),
        "relu_he_activation_abs_log2_ratio_se": he["log2_activation_ratio_se"],
        "relu_he_activation_abs_log2_ratio_dof": he["log2_activation_ratio_dof"],
        "relu_he_activation_decay": he["activation_factor_per_layer"],
        "relu_he_gradient_ratio": he["gradient_ratio"],
      }
      rows = [r for r in table if r["kind"] == "scale_sweep" and r["activation"] == "relu"]
      scale = critical_scale(
        np.asarray([r["init_scale"] for r in rows]),
        np.asarray([r["activation_factor_per_layer"] for r in rows]),
      )
      summary["relu_critical_init_scale"] = scale
      summary["relu_critical_init_scale_rel_error"] = (
        None if scale is None else abs(scale / np.sqrt(2.0) - 1)
      )
    if "lsuv" in config.initializers:
      summary["lsuv_max_variance_error"] = max(
        r["max_variance_error"] for r in table if r["init"] == "lsuv"
      )
    for key in ("activation_ratio", "gradient_ratio"):
      summary[f"{key}_by_init"] = {
        activation: {
          name: setting_row(table, activation, deepest, name)[key] for name in config.initializers
        }
        for activation in config.activations
      }
    summary["deepest_depth"] = deepest
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Per-layer variances at the deepest depth and the init-scale sweep, from the CSVs."""
    table = read_csv(out_dir / "results.csv")
    curves = {m: read_curves(out_dir / "history.csv", m) for m in VARIANCES}
    deepest = int(max(r["depth"] for r in table))
    figures = []
    for activation in sorted({r["activation"] for r in table}):
      members = [
        r
        for r in table
        if r["kind"] == "initializer" and r["activation"] == activation and r["depth"] == deepest
      ]
      for metric, label in zip(VARIANCES, ("Var(z_l)", "Var(∂ℓ/∂z_l)"), strict=True):
        figures.append(
          report.line_plot(
            {r["init"]: curves[metric][r["member"]] for r in members},
            out_dir / f"{metric}_{activation}.png",
            title=f"{label} per layer, {activation}, {deepest} hidden layers",
            xlabel="layer l (last: output)",
            ylabel=label,
            logy=True,
          )
        )
    scaled = [r for r in table if r["kind"] == "scale_sweep"]
    sweep = {
      activation: (
        [r["init_scale"] for r in scaled if r["activation"] == activation],
        [r["activation_factor_per_layer"] for r in scaled if r["activation"] == activation],
      )
      for activation in dict.fromkeys(r["activation"] for r in scaled)
    }
    figures.append(
      report.line_plot(
        sweep,
        out_dir / "init_scale_sweep.png",
        title=f"per-layer factor of Var(z_l) vs init scale, {deepest} hidden layers",
        xlabel="init scale (factor on the initializer)",
        ylabel="exp(slope of log Var(z_l) in l)",
        logx=True,
        logy=True,
      )
    )
    return figures


def _standard_uniform() -> init.Initializer:
  """Glorot & Bengio's (2010, eq. 1) "standard" heuristic U(−1/√m, 1/√m): LeCun's uniform /√3."""
  return init.scaled(jax.nn.initializers.lecun_uniform(), 1.0 / np.sqrt(3.0))


def initializer(name: str, options: dict, scale: float = 1.0) -> init.Initializer:
  """The kernel initializer `name` (a key of `init.INITIALIZERS`, or "standard_uniform")."""
  if name == "standard_uniform":
    return init.scaled(_standard_uniform(), scale)
  return init.get_initializer(name, scale=scale, **options)


def initial_state(config, depth: int, name: str, seed: int, scale: float = 1.0) -> nnx.State:
  """The parameters of the MLP of `config` with kernels from `name` (biases 0).

  "lsuv" gives orthogonal kernels, which `run` then rescales by LSUV. The parameters do not
  depend on the activation, so one draw serves the tanh and the ReLU network.
  """
  kernel = "orthogonal" if name == "lsuv" else name
  options = dict(config.initializer_options.get(kernel, {}))
  model = models.MLP(
    64,
    10,
    width=config.width,
    depth=depth,
    kernel_init=initializer(kernel, options, scale),
    rngs=nnx.Rngs(params=seed),
  )
  return nnx.state(model)


@functools.partial(jax.jit, static_argnums=0)
def _layer_variances(graphdef, biases, rest, x, y) -> tuple[jax.Array, jax.Array]:
  """Var(z_l) and Var(∂ℓ_i/∂z_{l,i}) for every Linear layer l (hidden layers, then output)."""
  module = nnx.merge(graphdef, biases, rest)
  forward = jnp.stack([jnp.var(z) for z in module.preactivations(x)])

  def example_loss(bias_tree, xi, yi):
    logits = nnx.merge(graphdef, bias_tree, rest)(xi[None], train=False)
    return losses.softmax_cross_entropy(logits, yi[None])

  # ∂ℓ_i/∂b_l = ∂ℓ_i/∂z_{l,i}: per-example gradients of the biases are the back-propagated ones.
  grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(biases, x, y)
  per_layer = nnx.merge(graphdef, grads, rest).linear_layers()
  backward = jnp.stack([jnp.var(layer.bias[...]) for layer in per_layer])
  return forward, backward


def layer_variances(model: models.MLP, x: jax.Array, y: jax.Array) -> tuple[np.ndarray, ...]:
  """(forward, backward) variances per Linear layer of `model` on the batch (x, y)."""
  graphdef, biases, rest = nnx.split(model, nnx.PathContains("bias"), ...)
  return tuple(np.asarray(v, np.float64) for v in _layer_variances(graphdef, biases, rest, x, y))


def per_layer_factor(variances: np.ndarray) -> float:
  """exp of the least-squares slope of log Var over the hidden layers: the factor per layer."""
  hidden = variances[:-1]
  return float(np.exp(np.polyfit(np.arange(hidden.size), np.log(hidden), 1)[0]))


def activation_graphs(config: ml_collections.ConfigDict, depth: int) -> dict[str, nnx.GraphDef]:
  """activation -> the graph of the MLP with `depth` hidden layers, built with the default
  initializer: a model's graph holds its kernel initializer, and a new one for every initializer
  and scale would recompile `_layer_variances`, while the variances depend on the arrays only."""
  return {
    activation: nnx.graphdef(
      nnx.eval_shape(
        lambda a=activation: models.MLP(
          64, 10, width=config.width, depth=depth, activation=a, rngs=nnx.Rngs(0)
        )
      )
    )
    for activation in config.activations
  }


def seed_variances(
  config, graphs: dict, depth: int, name: str, scale: float, x_fit, x_eval, y_eval
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """activation -> (forward, backward) variances (seeds, layers) of `num_seeds` nets with
  `depth` hidden layers and kernels from `name` times `scale` (`graphs`: activation -> graph)."""
  found = {activation: [] for activation in graphs}
  for seed in range(config.num_seeds):
    state = initial_state(config, depth, name, config.seed + seed, scale)
    for activation, graph in graphs.items():
      model = nnx.merge(graph, state, copy=True)
      if name == "lsuv":
        init.lsuv(model, x_fit, tol=config.lsuv_tol)
      found[activation].append(layer_variances(model, x_eval, y_eval))
  return {
    activation: tuple(np.stack(per_seed) for per_seed in zip(*pairs, strict=True))
    for activation, pairs in found.items()
  }


def table_row(
  member, kind, activation, depth, name, scale, per_seed_forward, per_seed_backward
) -> dict:
  """The row of one setting: its variances (seeds, layers) summarized from their means over
  seeds; the per-layer factor and the log2 end-to-end ratio also as the mean over seeds of each
  seed's value, with its standard error and degrees of freedom (a log-normal variance makes the
  ratio of mean variances a biased estimate of the mean log ratio, so the value judged and its
  error come from the same per-seed values)."""
  forward, backward = per_seed_forward.mean(axis=0), per_seed_backward.mean(axis=0)
  factors = [per_layer_factor(v) for v in per_seed_forward]
  log2_ratios = np.log2(per_seed_forward[:, -2] / per_seed_forward[:, 0])
  return {
    "member": member,
    "kind": kind,
    "activation": activation,
    "depth": depth,
    "init": name,
    "init_scale": scale,
    "activation_ratio": float(forward[-2] / forward[0]),  # Var(z_L) / Var(z_1)
    "activation_factor_per_layer": per_layer_factor(forward),
    # the judged estimates: means over seeds of each seed's value, with their standard errors
    "activation_factor_per_layer_seed_mean": float(np.mean(factors)),
    "activation_factor_per_layer_se": verdicts.standard_error(factors),
    "activation_factor_per_layer_dof": verdicts.dof(factors),
    "log2_activation_ratio_seed_mean": float(np.mean(log2_ratios)),
    "log2_activation_ratio_se": verdicts.standard_error(log2_ratios),
    "log2_activation_ratio_dof": verdicts.dof(log2_ratios),
    "gradient_ratio": float(backward[0] / backward[-2]),  # Var(∂ℓ/∂z_1) / Var(∂ℓ/∂z_L)
    "max_variance_error": float(np.max(np.abs(forward - 1.0))),  # LSUV's target is 1
    "first_layer_variance": float(forward[0]),
  }


def setting_row(table: list[dict], activation: str, depth: int, name: str) -> dict:
  """The row of one initializer (not the scale sweep) at one activation and depth."""
  key = ("initializer", activation, depth, name)
  return next(r for r in table if (r["kind"], r["activation"], r["depth"], r["init"]) == key)


def critical_scale(scales: np.ndarray, factors: np.ndarray) -> float | None:
  """The scale where the per-layer factor of Var(z_l) crosses 1, interpolated in log-log."""
  logs = np.log(factors)
  for i in range(len(scales) - 1):
    if logs[i] <= 0.0 <= logs[i + 1]:
      weight = -logs[i] / (logs[i + 1] - logs[i])
      return float(np.exp((1 - weight) * np.log(scales[i]) + weight * np.log(scales[i + 1])))
  return None  # the sweep does not bracket the crossing
