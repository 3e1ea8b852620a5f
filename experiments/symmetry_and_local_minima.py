"""§8.2.2 "Local minima": weight-space symmetry, and distinct minima of similar loss.

Goodfellow et al. (2016), §8.2.2: a network with m hidden units per layer has m! equivalent
parametrizations per layer (relabel the units: permute the columns of the layer's kernel and
its bias, and the rows of the next kernel), so its minima are never unique ("model
identifiability"); these equivalent minima have the same loss, and the Hessian at a permuted point
is the permuted Hessian, P H Pᵀ, with the same eigenvalues. The section then argues that the many
local minima of a large network tend to have similar, low loss.

Here a small MLP on digits is trained by SGD from `num_solutions` seeds
(`landscape.train_from_seeds`, one vmapped program). At the first solution θ* a random
relabelling of every hidden layer (`landscape.permute_hidden_units`) is compared in float64: loss
and the exact Hessian spectrum (`hessian.spectrum`). The solutions are compared by loss, held-out
error and parameter distance.

Claims (`summary.json`): `permutation_loss_diff` (|L(πθ*) − L(θ*)|), `permutation_spectrum_diff`
(max_i |λ_i(πθ*) − λ_i(θ*)| / max_i |λ_i(θ*)|), `seed_loss_spread` ((max − min) / mean of the
final training losses over seeds; `seed_loss_spread_vs_decrease` divides by L(θ₀) − mean L(θ*)
instead), `seed_param_distance` (the smallest ‖θ*_a − θ*_b‖ over pairs
of seeds, relative to the mean ‖θ*‖, and absolute), and `permuted_param_distance`
(‖πθ* − θ*‖ / ‖θ*‖: how far apart the equivalent copies of one minimum are).
"""

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, report
from jaxopt_study.lab import landscape
from jaxopt_study.results import ExperimentResults, RunDir, member_arrays, read_csv

TITLE = "Chapter 8.2.2: weight-space symmetry and distinct minima of similar loss"
SECTION = "8.2.2"
DESCRIPTION = (
  "A small tanh MLP on scikit-learn's digits trained by SGD from several seeds. Relabelling the "
  "hidden units of a solution θ* gives, in float64, the same loss (difference 3e-17 in the quick "
  "config, 2e-18 in the full one) and the same exact Hessian spectrum (3e-15 relative), although "
  "the copy lies 1.4 ‖θ*‖ away. Solutions from different seeds are as far apart (1.3 mean ‖θ*‖ in "
  "the quick config, 1.4 in the full), and reach similar training losses: 0.144-0.166 (quick; "
  "the spread is 14% of their mean but 1% of the decrease from 2.41) and 0.0087-0.0095 (full; "
  "8.6% and 0.03%), with held-out errors 5-8% (quick) and 3.6-4.0% (full). Parameter distance "
  "alone cannot tell a different minimum from a relabelled copy (no unit alignment is done). "
  "The points are not exact minima: SGD stops with ‖g‖ ≈ 0.07 (quick) / 0.006 (full) and some "
  "negative curvature (λ_min = -0.16 / -0.023 against λ_max = 1.3 / 0.21), as cross-entropy on "
  "separable data keeps decreasing."
)
PUBLISHED = {
  "permutation_loss_diff": "0: relabelled hidden units give an equivalent model with the same "
  "loss (Goodfellow et al. 2016, §8.2.2, weight space symmetry)",
  "permutation_spectrum_diff": "0: the Hessian at πθ is P H Pᵀ, with the same eigenvalues",
  "seed_loss_spread": "small: local minima of large networks have similar, low cost "
  "(§8.2.2; Choromanska et al. 2015)",
  "seed_param_distance": "> 0: different initializations reach different points",
}


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before any compilation."""
  model = landscape.check_digits_config(config)
  landscape.require_positive_int(config, "steps", "num_solutions")
  if config.num_solutions < 2:
    raise ValueError(f"num_solutions={config.num_solutions!r}: need at least two solutions")
  if config.model.depth < 1:
    raise ValueError(f"model.depth={config.model.depth!r}: need a hidden layer to permute")
  if not isinstance(config.learning_rate, float) or not config.learning_rate > 0:
    raise ValueError(f"learning_rate={config.learning_rate!r}: must be a float > 0")
  landscape.require_positive_int(config, "hessian_chunk_size")
  num_params = sum(leaf.size for leaf in jax.tree.leaves(model.params))
  if num_params > config.max_params:
    raise ValueError(
      f"model: {num_params} parameters > max_params={config.max_params}: the exact Hessian "
      "needs N² floats; make model.width smaller"
    )


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Trains the seeds, then compares θ* with its permuted copy and the seeds with each other."""
  check(config)
  seeds = [config.seed + i for i in range(config.num_solutions)]
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
  model = landscape.build_digits_mlp(config, config.seed)
  initial, final, _ = landscape.train_from_seeds(config, data, seeds)
  with jax.enable_x64(True):  # the comparisons in float64: differences then mean something
    return _analyze(config, model, seeds, initial, final)


def _analyze(config, model, seeds, initial, final) -> ExperimentResults:
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed, jnp.float64)
  initial, final = jax.tree.map(lambda leaf: leaf.astype(jnp.float64), (initial, final))
  solutions = [landscape.select(final, i) for i in range(len(seeds))]
  loss_fn = landscape.full_batch_loss(model)
  train_xy = (data.x_train, data.y_train)
  initial_loss = np.mean(
    [float(loss_fn(landscape.select(initial, i), *train_xy)) for i in range(len(seeds))]
  )
  permuted = landscape.permute_hidden_units(solutions[0], np.random.default_rng(config.seed))
  original_spectrum = hessian.spectrum(
    loss_fn, solutions[0], *train_xy, chunk_size=config.hessian_chunk_size
  )
  permuted_spectrum = hessian.spectrum(
    loss_fn, permuted, *train_xy, chunk_size=config.hessian_chunk_size
  )
  scale = np.max(np.abs(original_spectrum.eigenvalues))
  table, history, arrays = [], [], {}
  for seed, params in zip(seeds, solutions, strict=True):
    loss, grads = jax.value_and_grad(loss_fn)(params, *train_xy)
    logits, _ = model.apply(params, model.model_state, data.x_test, False)
    table.append(
      {
        "member": f"seed{seed}",
        "final_train_loss": float(loss),
        "final_test_error": float(losses.zero_one_error(logits, data.y_test)),
        "grad_norm": float(optax.tree.norm(grads)),
        "param_norm": float(optax.tree.norm(params)),
      }
    )
    arrays.update(member_arrays(f"seed{seed}", params, model.model_state))
  for member, spectrum in (
    (f"seed{seeds[0]}", original_spectrum),
    (f"seed{seeds[0]}_permuted", permuted_spectrum),
  ):
    history.extend(
      {"member": member, "step": i, "metric": "eigenvalue", "value": float(value)}
      for i, value in enumerate(spectrum.eigenvalues)
    )
  distances = {
    f"seed{seeds[a]}-seed{seeds[b]}": landscape.parameter_distance(solutions[a], solutions[b])
    for a, b in itertools.combinations(range(len(seeds)), 2)
  }
  final_losses = np.asarray([row["final_train_loss"] for row in table])
  mean_norm = float(np.mean([row["param_norm"] for row in table]))
  summary = {
    "permutation_loss_diff": abs(
      float(loss_fn(permuted, *train_xy)) - float(loss_fn(solutions[0], *train_xy))
    ),
    "permutation_spectrum_diff": float(
      np.max(np.abs(permuted_spectrum.eigenvalues - original_spectrum.eigenvalues)) / scale
    ),
    "permuted_param_distance": landscape.parameter_distance(permuted, solutions[0])
    / table[0]["param_norm"],
    "seed_loss_spread": float((final_losses.max() - final_losses.min()) / final_losses.mean()),
    # the spread against what training removed: L(θ₀) (mean over seeds) − mean L(θ*)
    "seed_loss_spread_vs_decrease": float(
      (final_losses.max() - final_losses.min()) / (initial_loss - final_losses.mean())
    ),
    "initial_loss": float(initial_loss),
    "seed_param_distance": min(distances.values()) / mean_norm,
    "seed_param_distance_absolute": min(distances.values()),
    "pairwise_param_distance": distances,
    "mean_param_norm": mean_norm,
    "final_train_loss_by_seed": {row["member"]: row["final_train_loss"] for row in table},
    "test_error_by_seed": {row["member"]: row["final_test_error"] for row in table},
    "grad_norm_by_seed": {row["member"]: row["grad_norm"] for row in table},
    "lambda_min": float(original_spectrum.eigenvalues[0]),
    "lambda_max": float(original_spectrum.eigenvalues[-1]),
    "num_params": original_spectrum.num_params,
  }
  return ExperimentResults(table, history, summary, arrays)


def plot(out_dir: Path) -> list[Path]:
  """The sorted Hessian eigenvalues at θ* and at its permuted copy (they coincide)."""
  curves: dict[str, tuple[list, list]] = {}
  for row in read_csv(out_dir / "history.csv"):
    index, values = curves.setdefault(row["member"], ([], []))
    index.append(row["step"])
    values.append(row["value"])
  magnitude = {
    f"{member} |λ|": (index, np.abs(values)) for member, (index, values) in curves.items()
  }
  return [
    report.line_plot(
      curves,
      out_dir / "spectrum.png",
      title="Hessian eigenvalues at θ* and at a relabelled copy (§8.2.2)",
      xlabel="index (ascending)",
      ylabel="λ",
    ),
    report.line_plot(
      magnitude,
      out_dir / "spectrum_magnitude.png",
      title="|λ| on a log scale: a few large, most near zero",
      xlabel="index (ascending λ)",
      ylabel="|λ|",
      logy=True,
    ),
  ]
