"""§8.2.5 "Long-term dependencies": W^t vanishes or explodes as |λ|^t.

A recurrent network that applies the same W at every step computes h_t = W^t h_0 (eq. 8.29,
without inputs and non-linearity); with W = V diag(λ) V⁻¹, W^t = V diag(λ)^t V⁻¹ (eq. 8.30), so
every component of h_0 scales as λ_i^t: it vanishes where |λ_i| < 1 and explodes where |λ_i| > 1,
and all but the leading eigenvector's is discarded, which is the power method. The gradient
∂h_t/∂h_0 = W^t of such a linear recurrent network obeys the same law, so log‖∂h_t/∂h_0‖ grows as
t log ρ, ρ = max_i |λ_i| the spectral radius.

For each spectral radius ρ and two families of W (symmetric W = Q diag(λ) Qᵀ with prescribed
eigenvalues, and a non-normal Gaussian matrix rescaled to radius ρ) this experiment

* builds `models.RNN` with linear units, identity input and output maps and recurrent kernel W,
  and takes the Jacobian of its output h_T with respect to every input x_s by reverse-mode
  autodiff through its `lax.scan`: the block at lag t = T − s is ∂h_T/∂h_{T−t} = W^t;
* compares those blocks with W^t built from the eigendecomposition (eq. 8.30, float64 numpy);
* fits the slope of log‖W^t‖₂ against t over the second half of the horizon (past the transient
  growth of a non-normal W) and sets it against log ρ;
* runs the power method h ← W h / ‖W h‖ on the symmetric W and fits the decay rate of the angle
  to the leading eigenvector against log |λ₂/λ₁|.

Claims (`summary.json`): `vanish_rate` and `explode_rate` (the fitted slopes of the Gaussian
family at ρ below and above 1, theory log ρ, given as `*_theory`), `critical_rate` (ρ = 1, theory
0), `rate_vs_log_radius_slope` (fitted slope against log ρ over every radius, per family; theory
1; its distance from 1 `rate_vs_log_radius_slope_error`), `eigendecomposition_max_rel_error`,
`power_method_rate` and its theory (`power_method_rate_rel_error`, |rate / theory − 1|).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxopt_study import init, models, report, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import history_rows, read_csv

FAMILIES = ("symmetric", "gaussian")


class LongTermDependencies(Experiment):
  """W^t of linear RNNs by autodiff and by eigendecomposition, for radii around 1."""

  NAME = "long_term_dependencies"
  TITLE = "Chapter 8.2.5: long-term dependencies, W^t and the power method"
  SECTION = "8.2.5"
  DESCRIPTION = (
    "A linear recurrent network h_t = W h_{t-1} + x_t (models.RNN with linear units) for spectral "
    "radii ρ below, at and above 1. The Jacobian ∂h_T/∂x_s = W^(T-s), taken by autodiff through "
    "the scan, matches W^t built from the eigendecomposition V diag(λ)^t V⁻¹ (eq. 8.30); log‖W^t‖ "
    "falls or grows linearly in t with slope log ρ, for symmetric W exactly and for a non-normal "
    "Gaussian W after a transient (the slope is fitted over the second half of the horizon). The "
    "power method on the symmetric W converges to the leading eigenvector at the rate |λ₂/λ₁|^t."
  )
  PUBLISHED = {
    "vanish_rate": "log ρ < 0 for ρ < 1: gradients vanish as ρ^t (Goodfellow et al. 2016, "
    "eq. 8.30). W is scaled to ρ exactly, so this holds by construction: a check of the "
    "measurement, not a finding",
    "explode_rate": "log ρ > 0 for ρ > 1: gradients explode as ρ^t (eq. 8.30; Bengio et al. "
    "1994); by construction, as vanish_rate",
    "rate_vs_log_radius_slope": "1: the fitted rate equals log ρ (eq. 8.30); exact for the "
    "symmetric W, a check of the fit",
    "power_method_rate": "log|λ₂/λ₁| (power method; §8.2.5)",
  }
  # Equalities within 5%: the slope of the fitted rates against log ρ, and the power method's rate.
  CRITERIA = {
    "vanish_rate": below("vanish_rate", 0.0),
    "explode_rate": above("explode_rate", 0.0),
    "rate_vs_log_radius_slope": below("rate_vs_log_radius_slope_error", 0.05),
    "power_method_rate": below("power_method_rate_rel_error", 0.05),
  }
  FIELDS = {
    "hidden": functools.partial(validate.require_int, low=2),  # the power method needs λ₂
    "horizon": functools.partial(validate.require_int, low=4),
    "num_seeds": validate.require_positive_int,
    "radii": validate.each(validate.require_positive),
    "vanish_radius": validate.require_positive,
    "explode_radius": validate.require_positive,
    "eigenvalue_spread": validate.require_unit_interval,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    radii = list(config.radii)
    if not config.vanish_radius < 1.0 < config.explode_radius:
      raise ValueError(
        f"{self.NAME}: vanish_radius={config.vanish_radius}, explode_radius="
        f"{config.explode_radius} must satisfy vanish_radius < 1 < explode_radius"
      )
    for field in ("vanish_radius", "explode_radius"):
      validate.require_choice(field, config[field], self.NAME, radii)
    if 1.0 not in radii:
      raise ValueError(f"{self.NAME}: radii={radii} must contain 1.0, the critical radius")

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every (family, radius, seed): Jacobian norms, eigen-route error, fitted rate, power method
    (seconds of work: nothing is resumed)."""
    horizon = config.horizon
    t = np.arange(horizon)
    late = t >= horizon // 2  # past the transient of a non-normal W
    table, history = [], []
    jobs = [(f, r, s) for f in FAMILIES for r in config.radii for s in range(config.num_seeds)]
    for family, radius, seed in tqdm(jobs, desc="matrices", disable=not progress):
      key = jax.random.fold_in(jax.random.key(config.seed), seed)
      w = recurrent_matrix(family, float(radius), config.hidden, config.eigenvalue_spread, key)
      blocks = jacobian_blocks(w, horizon)
      reference = eigen_powers(w, horizon)
      norms = np.linalg.norm(blocks, ord=2, axis=(1, 2))
      scale = np.linalg.norm(reference, ord=2, axis=(1, 2))
      member = f"{family} rho={radius:g} seed {seed}"
      row = {
        "member": member,
        "family": family,
        "radius": float(radius),
        "seed": seed,
        "fitted_rate": log_slope(t[late], norms[late]),
        "theory_rate": float(np.log(radius)),
        "eigen_rel_error": float(np.max(np.linalg.norm(blocks - reference, axis=(1, 2)) / scale)),
        "final_jacobian_norm": float(norms[-1]),
      }
      curves = {"step": t, "jacobian_norm": norms}
      if family == "symmetric":
        power, curves["power_method_tan_angle"] = power_method_row(w, horizon, key)
        row.update(power)
      history += history_rows(member, curves)
      table.append(row)
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    table = results.table

    def mean_rate(family: str, radius: float) -> float:
      rows = [r for r in table if r["family"] == family and r["radius"] == radius]
      return float(np.mean([r["fitted_rate"] for r in rows]))

    slopes = {}
    for family in FAMILIES:
      rows = [r for r in table if r["family"] == family]
      theory = [r["theory_rate"] for r in rows]
      slopes[family] = float(np.polyfit(theory, [r["fitted_rate"] for r in rows], 1)[0])
    symmetric = [r for r in table if r["family"] == "symmetric"]
    power_rate = float(np.mean([r["power_method_rate"] for r in symmetric]))
    power_theory = float(np.mean([r["power_method_theory"] for r in symmetric]))
    return {
      "vanish_rate": mean_rate("gaussian", config.vanish_radius),
      "vanish_rate_theory": float(np.log(config.vanish_radius)),
      "explode_rate": mean_rate("gaussian", config.explode_radius),
      "explode_rate_theory": float(np.log(config.explode_radius)),
      "critical_rate": mean_rate("gaussian", 1.0),
      "rate_by_radius": {
        family: {f"{r:g}": mean_rate(family, r) for r in config.radii} for family in FAMILIES
      },
      "rate_vs_log_radius_slope": slopes,
      "rate_vs_log_radius_slope_error": {family: abs(v - 1) for family, v in slopes.items()},
      "eigendecomposition_max_rel_error": max(r["eigen_rel_error"] for r in table),
      "power_method_rate": power_rate,
      "power_method_rate_theory": power_theory,
      "power_method_rate_rel_error": abs(power_rate / power_theory - 1),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Jacobian norms vs t, fitted rate vs log ρ, and the power method's angle, from the CSVs."""
    table = read_csv(out_dir / "results.csv")
    curves = {
      m: read_curves(out_dir / "history.csv", m)
      for m in ("jacobian_norm", "power_method_tan_angle")
    }
    figures = []
    for family in FAMILIES:
      series = {
        f"ρ = {r['radius']:g}": curves["jacobian_norm"][r["member"]]
        for r in table
        if r["family"] == family and r["seed"] == 0
      }
      figures.append(
        report.line_plot(
          series,
          out_dir / f"jacobian_norm_{family}.png",
          title=f"‖∂h_t/∂h_0‖₂ = ‖W^t‖₂, {family} W",
          xlabel="t",
          ylabel="‖W^t‖₂",
          logy=True,
        )
      )
    rates = {
      family: (
        [r["theory_rate"] for r in table if r["family"] == family],
        [r["fitted_rate"] for r in table if r["family"] == family],
      )
      for family in FAMILIES
    }
    theory = sorted({r["theory_rate"] for r in table})
    rates["theory: log ρ"] = (theory, theory)
    figures.append(
      report.line_plot(
        rates,
        out_dir / "rate_vs_log_radius.png",
        title="fitted d log‖W^t‖/dt against log ρ",
        xlabel="log ρ",
        ylabel="fitted slope",
      )
    )
    power = {
      f"ρ = {r['radius']:g}": curves["power_method_tan_angle"][r["member"]]
      for r in table
      if r["family"] == "symmetric" and r["seed"] == 0
    }
    figures.append(
      report.line_plot(
        power,
        out_dir / "power_method.png",
        title="power method: tan ∠(h_t, leading eigenvector)",
        xlabel="iteration t",
        ylabel="tan angle",
        logy=True,
      )
    )
    return figures


def recurrent_matrix(family: str, radius: float, hidden: int, spread: float, key: jax.Array):
  """A (hidden, hidden) float64 W with spectral radius `radius`.

  * ``"symmetric"``: W = Q diag(λ) Qᵀ, Q random orthogonal (`init.orthogonal`), eigenvalues
    λ = ρ · linspace(1, −spread, hidden): a unique leading eigenvalue ρ, the next at
    ρ (1 − (1 + spread)/(hidden − 1)).
  * ``"gaussian"``: W₀ with i.i.d. N(0, 1/hidden) entries (non-normal), times ρ / ρ(W₀).
  """
  if family == "symmetric":
    q = np.asarray(init.orthogonal()(key, (hidden, hidden), jnp.float32), np.float64)
    q, _ = np.linalg.qr(q)  # re-orthonormalized in float64
    eigenvalues = radius * np.linspace(1.0, -spread, hidden)
    return (q * eigenvalues) @ q.T
  w = np.asarray(jax.random.normal(key, (hidden, hidden)), np.float64) / np.sqrt(hidden)
  return w * (radius / np.max(np.abs(np.linalg.eigvals(w))))


def jacobian_blocks(w: np.ndarray, horizon: int) -> np.ndarray:
  """∂h_T/∂x_{T−t} for t = 0 .. horizon−1 of a linear `models.RNN` with recurrent matrix W.

  The RNN's input and output maps are the identity and its biases zero, so h_t = W h_{t−1} + x_t
  and the Jacobian of the output h_T with respect to x_{T−t} is W^t (eq. 8.29), computed here by
  reverse-mode autodiff through the network's `lax.scan`. Returns (horizon, hidden, hidden).
  """
  hidden = w.shape[0]
  rnn = models.RNN(hidden, hidden, hidden=hidden, activation="linear", rngs=nnx.Rngs(0))
  eye = jnp.eye(hidden, dtype=rnn.input.kernel.dtype)
  rnn.input.kernel[...] = eye
  rnn.output.kernel[...] = eye
  rnn.recurrent.kernel[...] = jnp.asarray(w.T, eye.dtype)  # kernels are (fan_in, fan_out): h Wᵀ
  model = models.functional(rnn)

  def output(x):
    return model.apply(model.params, model.model_state, x[None], False)[0][0]

  jac = jax.jit(jax.jacrev(output))(jnp.zeros((horizon, hidden), eye.dtype))  # (out, T, in)
  return np.asarray(jnp.moveaxis(jac, 1, 0))[::-1]  # lag t = T − 1 − s: W^t first by t


def eigen_powers(w: np.ndarray, horizon: int) -> np.ndarray:
  """W^t = V diag(λ)^t V⁻¹ for t = 0 .. horizon−1 (eq. 8.30), in float64 (complex in between)."""
  eigenvalues, v = np.linalg.eig(w)
  v_inv = np.linalg.inv(v)
  t = np.arange(horizon)[:, None]
  return np.real(np.einsum("ij,tj,jk->tik", v, eigenvalues[None, :] ** t, v_inv))


def power_method(w: jax.Array, h0: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
  """The power method h ← W h / ‖W h‖ as a `lax.scan`, started from h_0 / ‖h_0‖.

  Each iterate is W^t h_0 normalized (eq. 8.29); it turns towards the leading eigenvector.
  Returns the iterates (steps + 1, n) and their Rayleigh quotients hᵀ W h (steps + 1,).
  """

  def step(h, _):
    h_next = w @ h
    h_next = h_next / jnp.linalg.norm(h_next)
    return h_next, h_next

  h0 = h0 / jnp.linalg.norm(h0)
  _, iterates = jax.lax.scan(step, h0, None, length=steps)
  iterates = jnp.concatenate([h0[None], iterates])
  return iterates, jnp.einsum("ti,ij,tj->t", iterates, w, iterates)


def log_slope(t: np.ndarray, values: np.ndarray) -> float:
  """Least-squares slope of log(values) against t."""
  return float(np.polyfit(t, np.log(values), 1)[0])


def power_method_row(w: np.ndarray, horizon: int, key: jax.Array) -> tuple[dict, np.ndarray]:
  """The power method on a symmetric W: its fitted and theoretical rates and the error of its
  eigenvalue estimate, and tan ∠(h_t, leading eigenvector) for t = 0 … horizon − 1."""
  eigenvalues, vectors = np.linalg.eigh(w)
  order = np.argsort(-np.abs(eigenvalues))
  leading = vectors[:, order[0]]
  h0 = jax.random.normal(jax.random.fold_in(key, 1), (w.shape[0],))
  iterates, rayleigh = power_method(jnp.asarray(w, h0.dtype), h0, horizon - 1)
  iterates = np.asarray(iterates, np.float64)
  along = iterates @ leading
  # tan = ‖h − (h·v) v‖ / |h·v|: no 1 − cos² cancellation, which would floor it near 1e-3.
  tangent = np.linalg.norm(iterates - along[:, None] * leading, axis=1) / np.abs(along)
  steps = np.arange(horizon)
  # Fit past the first quarter (other eigenvalues than λ₂ have died out) and above the float32
  # rounding floor of the iterates (tan ≈ 1e-7).
  fit = (steps >= horizon // 4) & (tangent > 1e-5)
  return {
    "power_method_rate": log_slope(steps[fit], tangent[fit]) if fit.sum() >= 3 else float("nan"),
    "power_method_theory": float(np.log(np.abs(eigenvalues[order[1]] / eigenvalues[order[0]]))),
    "power_method_eigenvalue_error": float(abs(rayleigh[-1] - eigenvalues[order[0]])),
  }, tangent
