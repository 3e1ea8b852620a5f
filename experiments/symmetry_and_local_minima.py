"""§8.2.2 "Local minima": weight-space symmetry, and distinct minima of similar loss.

Goodfellow et al. (2016), §8.2.2: a network with m hidden units per layer has m! equivalent
parametrizations per layer (relabel the units: permute the columns of the layer's kernel and
its bias, and the rows of the next kernel), so its minima are never unique ("model
identifiability"); these equivalent minima have the same loss, and the Hessian at a permuted point
is the permuted Hessian, P H Pᵀ, with the same eigenvalues. The section then argues that the many
local minima of a large network tend to have similar, low loss.

Here a small MLP on digits is trained by SGD from `num_solutions` seeds
(`landscape.train_from_seeds`, one vmapped sweep). At the first solution θ* a random
relabelling of every hidden layer (`landscape.permute_hidden_units`) is compared in float64: loss
and the exact Hessian spectrum (`hessian.spectrum`). The solutions are compared by loss, held-out
error and parameter distance.

Claims (`summary.json`): `permutation_loss_diff` (|L(πθ*) − L(θ*)|), `permutation_spectrum_diff`
(max_i |λ_i(πθ*) − λ_i(θ*)| / max_i |λ_i(θ*)|), `seed_loss_spread` ((max − min) / mean of the
final training losses over seeds; `seed_loss_spread_vs_decrease` divides by L(θ₀) − mean L(θ*)
instead), `seed_loss_std_vs_decrease` (their sample standard deviation s over L(θ₀) − mean L(θ*),
with `seed_loss_std_vs_decrease_se` and `_dof`), `seed_param_distance` (the smallest
‖θ*_a − θ*_b‖ over pairs of seeds, relative to the mean ‖θ*‖, and absolute), and
`permuted_param_distance` (‖πθ* − θ*‖ / ‖θ*‖: how far apart the equivalent copies of one minimum
are).

How they are judged. The two permutation claims are identities that hold at any θ, checked up
to float64 rounding at one point (the first seed's θ*): judged on their values. The seeds' final
losses come from random draws (each seed's θ₀ and minibatch order), so their spread is judged
with an error bar: s over the decrease, with the standard error of a sample standard deviation,
s/√(2(n − 1)) over n seeds (normal losses; the decrease's own variation over seeds is far
smaller and is left out), and n − 1 degrees of freedom, on the log scale (`ratio=True`, as s is
a positive scale whose distribution is skewed at few seeds). The range (max − min) has no such
error and grows with the number of seeds, so it is reported, not judged. `seed_param_distance`
is the smallest distance over every pair of seeds, a per-pair event that each pair must show
(one pair closer than the threshold fails the claim), so it is judged on its value.
"""

import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, report, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import digits_tasks, landscape, verdicts
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import history_rows, member_arrays, read_csv


class SymmetryAndLocalMinima(Experiment):
  """Seeds trained by SGD; θ* against its relabelled copy, and the seeds against each other."""

  NAME = "symmetry_and_local_minima"
  TITLE = "Chapter 8.2.2: weight-space symmetry and distinct minima of similar loss"
  SECTION = "8.2.2"
  DESCRIPTION = (
    "A small tanh MLP on scikit-learn's digits trained by SGD from several seeds. Relabelling "
    "the hidden units of a solution θ* gives, in float64, the same loss and the same exact "
    "Hessian spectrum, although the copy lies far from θ* in parameter space "
    "(permuted_param_distance). Solutions from different seeds lie as far apart, at similar "
    "training losses (seed_loss_spread, relative to their mean; seed_loss_spread_vs_decrease, "
    "relative to what training removed). Parameter distance alone cannot tell a different "
    "minimum from a relabelled copy (no unit alignment is done). The points are not exact "
    "minima: SGD stops at a small gradient with some negative curvature (lambda_min), as "
    "cross-entropy on separable data keeps decreasing."
  )
  PUBLISHED = {
    "permutation_loss_diff": "0: relabelled hidden units give an equivalent model with the same "
    "loss (Goodfellow et al. 2016, §8.2.2, weight space symmetry)",
    "permutation_spectrum_diff": "0: the Hessian at πθ is P H Pᵀ, with the same eigenvalues. "
    "Both are identities: they check the float64 Hessian and the relabelling, they cannot fail "
    "otherwise",
    "seed_loss_spread": "small: local minima of large networks have similar, low cost "
    "(§8.2.2; Choromanska et al. 2015). Judged as the standard deviation of the seeds' final "
    "losses over what training removed (seed_loss_std_vs_decrease), with its standard error",
    "seed_param_distance": "> 0: different initializations reach different points",
  }
  # "0" in float64: below 1e-10, far above rounding and far below any real difference; both are
  # identities at any θ (deterministic up to rounding), so judged on their values. "Small": the
  # final losses' standard deviation over seeds within 10% of what training removed, beyond its
  # error bar (random: θ₀ and minibatch order; log scale, see the module docstring). Not of their
  # mean: the cross-entropy on separable digits keeps falling towards 0, so a spread over the mean
  # measures when training stopped rather than the points it reached. Different points: at least
  # 10% of ‖θ*‖ apart, for every pair of seeds (the smallest distance: a per-pair event each pair
  # must show, judged on its value).
  CRITERIA = {
    "permutation_loss_diff": below("permutation_loss_diff", 1e-10),
    "permutation_spectrum_diff": below("permutation_spectrum_diff", 1e-10),
    "seed_loss_spread": below(
      "seed_loss_std_vs_decrease",
      0.1,
      standard_error="seed_loss_std_vs_decrease_se",
      ratio=True,
    ),
    "seed_param_distance": above("seed_param_distance", 0.1),
  }
  FIELDS = {
    "steps": validate.require_positive_int,
    "num_solutions": functools.partial(validate.require_int, low=2),
    "learning_rate": validate.require_positive,
    "hessian_chunk_size": validate.require_positive_int,
    "max_params": validate.require_positive_int,
    "model.depth": validate.require_positive_int,  # a hidden layer to permute
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    model = landscape.check_digits_config(config, self.NAME)
    num_params = sum(leaf.size for leaf in jax.tree.leaves(model.params))
    if num_params > config.max_params:
      raise ValueError(
        f"{self.NAME}: model has {num_params} parameters > max_params={config.max_params}: the "
        "exact Hessian needs N² floats; make model.width smaller"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains the seeds, then compares θ* with its permuted copy and the seeds with each other,
    in float64."""
    seeds = [config.seed + i for i in range(config.num_solutions)]
    initial, final, _ = landscape.train_from_seeds(config, seeds, progress)
    with jax.enable_x64(True):  # the comparisons in float64: differences then mean something
      return analyze(config, seeds, initial, final)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    kinds: dict[str, list[dict]] = {}
    for row in results.table:
      kinds.setdefault(row["kind"], []).append(row)
    seeds, (permuted,) = kinds["solution"], kinds["relabelled"]
    first = seeds[0]
    pairs = {row["member"]: row["param_distance"] for row in kinds["pair"]}
    spectra = {
      member: np.asarray(values)
      for member, (_, values) in history_curves(results.history, "eigenvalue").items()
    }
    original = spectra[first["member"]]
    final_losses = np.asarray([row["final_train_loss"] for row in seeds])
    initial_loss = float(np.mean([row["initial_train_loss"] for row in seeds]))
    decrease = initial_loss - final_losses.mean()
    std_vs_decrease = float(final_losses.std(ddof=1) / decrease)
    mean_norm = float(np.mean([row["param_norm"] for row in seeds]))
    return {
      "permutation_loss_diff": abs(permuted["final_train_loss"] - first["final_train_loss"]),
      "permutation_spectrum_diff": float(
        np.max(np.abs(spectra[permuted["member"]] - original)) / np.max(np.abs(original))
      ),
      "permuted_param_distance": permuted["param_distance"] / first["param_norm"],
      "seed_loss_spread": float((final_losses.max() - final_losses.min()) / final_losses.mean()),
      # the spread against what training removed: L(θ₀) (mean over seeds) − mean L(θ*)
      "seed_loss_spread_vs_decrease": float((final_losses.max() - final_losses.min()) / decrease),
      # s / decrease and its standard error s/√(2(n − 1)) / decrease (normal losses), n − 1 dof
      "seed_loss_std_vs_decrease": std_vs_decrease,
      "seed_loss_std_vs_decrease_se": std_vs_decrease / np.sqrt(2 * (final_losses.size - 1)),
      "seed_loss_std_vs_decrease_dof": verdicts.dof(final_losses),
      "initial_loss": initial_loss,
      "seed_param_distance": min(pairs.values()) / mean_norm,
      "seed_param_distance_absolute": min(pairs.values()),
      "pairwise_param_distance": pairs,
      "mean_param_norm": mean_norm,
      "final_train_loss_by_seed": {row["member"]: row["final_train_loss"] for row in seeds},
      "test_error_by_seed": {row["member"]: row["final_test_error"] for row in seeds},
      "grad_norm_by_seed": {row["member"]: row["grad_norm"] for row in seeds},
      "lambda_min": float(original[0]),
      "lambda_max": float(original[-1]),
      "num_params": original.size,
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The sorted Hessian eigenvalues at θ* and at its permuted copy (they coincide)."""
    curves = history_curves(read_csv(out_dir / "history.csv"), "eigenvalue")
    magnitude = {f"{member} |λ|": (i, np.abs(values)) for member, (i, values) in curves.items()}
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


def analyze(config: ml_collections.ConfigDict, seeds: list[int], initial, final) -> Results:
  """In float64: every seed's loss, held-out error, ‖g‖ and ‖θ*‖ (table rows, with θ* in the
  arrays), the first solution's relabelled copy (its loss and distance) and both exact Hessian
  spectra (history), and the distance between every pair of solutions (table rows)."""
  model = digits_tasks.mlp(config.seed, **config.model)
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed, jnp.float64)
  initial, final = jax.tree.map(lambda leaf: leaf.astype(jnp.float64), (initial, final))
  solutions = [landscape.select(final, i) for i in range(len(seeds))]
  loss_fn = digits_tasks.nll(model)
  train_xy = (data.x_train, data.y_train)
  permuted = landscape.permute_hidden_units(solutions[0], np.random.default_rng(config.seed))
  table, history, arrays = [], [], {}
  for i, (seed, params) in enumerate(zip(seeds, solutions, strict=True)):
    loss, grads = jax.value_and_grad(loss_fn)(params, *train_xy)
    logits, _ = model.apply(params, model.model_state, data.x_test, False)
    table.append(
      {
        "member": f"seed{seed}",
        "kind": "solution",
        "initial_train_loss": float(loss_fn(landscape.select(initial, i), *train_xy)),
        "final_train_loss": float(loss),
        "final_test_error": float(losses.zero_one_error(logits, data.y_test)),
        "grad_norm": float(optax.tree.norm(grads)),
        "param_norm": float(optax.tree.norm(params)),
      }
    )
    arrays.update(member_arrays(f"seed{seed}", params, model.model_state))
  table.append(
    {
      "member": f"seed{seeds[0]}_permuted",
      "kind": "relabelled",
      "final_train_loss": float(loss_fn(permuted, *train_xy)),
      "param_distance": landscape.parameter_distance(permuted, solutions[0]),
    }
  )
  table.extend(
    {
      "member": f"seed{seeds[a]}-seed{seeds[b]}",
      "kind": "pair",
      "param_distance": landscape.parameter_distance(solutions[a], solutions[b]),
    }
    for a, b in itertools.combinations(range(len(seeds)), 2)
  )
  for member, params in ((f"seed{seeds[0]}", solutions[0]), (f"seed{seeds[0]}_permuted", permuted)):
    spectrum = hessian.spectrum(loss_fn, params, *train_xy, chunk_size=config.hessian_chunk_size)
    eigenvalues = np.asarray(spectrum.eigenvalues)
    history += history_rows(
      member, {"step": np.arange(eigenvalues.size), "eigenvalue": eigenvalues}
    )
  return Results(table, history, arrays)
