"""The block coordinate descent experiment (§8.7.2): its quick config through the CLI, claims."""

import sys
from pathlib import Path

import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study import registry
from jaxopt_study.config import load_config
from jaxopt_study.experiment import REPRODUCED, margin, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "coordinate_descent"
QUICK = Path(__file__).parents[1] / "configs" / f"{NAME}_quick.py"
finished_run, summary = quick_run_fixtures(NAME)


def _sparse_rows(finished_run) -> list[dict]:
  return [r for r in read_csv(finished_run / "results.csv") if r["part"] == "sparse_coding"]


def _by_rate(rows: list[dict]) -> dict[str, dict[float, dict[int, float]]]:
  """method -> rate -> seed -> final J, from results.csv."""
  table: dict = {}
  for r in rows:
    table.setdefault(r["method"], {}).setdefault(r["learning_rate"], {})[int(r["seed"])] = r[
      "final_loss"
    ]
  return table


def _best_rates(rows: list[dict]) -> dict[str, float]:
  """Each method's rate of lowest geometric mean over seeds of the final J (every seed finite)."""
  best = {}
  for method, rates in _by_rate(rows).items():
    means = {
      rate: np.exp(np.mean(np.log(list(seeds.values()))))
      for rate, seeds in rates.items()
      if all(np.isfinite(v) for v in seeds.values())
    }
    best[method] = min(means, key=means.get)
  return best


def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert {p.name for p in finished_run.glob("*.png")} == {
    "sparse_coding_loss.png",
    "quadratic_f.png",
    "sweeps_vs_alpha.png",
  }


def test_exact_coordinate_minimization_matches_its_closed_form(summary):
  """f_s = α(1 + α)(2 + α)c²(1 + α)^(−4s): the contraction per sweep and the sweeps to the
  tolerance, derived in the module docstring, are what the library's coordinate descent does."""
  measured = summary["quadratic_cd_contraction_per_sweep"]
  for alpha, theory in summary["quadratic_cd_contraction_theory"].items():
    assert theory == pytest.approx((1 + float(alpha)) ** -4, rel=1e-12)
    assert measured[alpha] == pytest.approx(theory, rel=1e-9)
  assert summary["quadratic_cd_sweeps_to_tol"] == summary["quadratic_cd_sweeps_to_tol_theory"]


def test_strong_coupling_makes_coordinate_descent_slow(summary):
  """§8.7.2: small α (strong coupling) needs many sweeps, about ln(·)/(4α): a slope near −1."""
  sweeps = summary["quadratic_cd_sweeps_to_tol"]
  alphas = sorted(sweeps, key=float)
  assert all(sweeps[a] > sweeps[b] for a, b in zip(alphas, alphas[1:], strict=False))
  assert sweeps[alphas[0]] > 40 * sweeps[alphas[-1]]  # α = 0.01 vs α = 1
  assert summary["quadratic_sweeps_alpha_slope"] == pytest.approx(
    summary["quadratic_sweeps_alpha_slope_theory"], abs=1e-9
  )
  assert -1.0 < summary["quadratic_sweeps_alpha_slope"] < -0.85


def test_gradient_descent_and_newton_on_the_coupled_quadratic(summary):
  """GD follows f_t = ½ Σ λᵢcᵢ²(1 − ελᵢ)^(2t) exactly; per step it is no faster than coordinate
  minimization by more than 2× (both contract f by about (1 + α)⁻² per step at their best);
  Newton's method (eq. 8.27) solves the quadratic in one step."""
  assert summary["quadratic_gd_max_error_vs_theory"] < 1e-9
  assert summary["quadratic_gd_steps_to_tol"] == summary["quadratic_gd_steps_to_tol_theory"]
  for alpha, steps in summary["quadratic_gd_steps_to_tol"].items():
    cd_steps = 2 * summary["quadratic_cd_sweeps_to_tol"][alpha]
    assert 0.5 < steps / cd_steps < 2.0
  assert summary["newton_steps_to_tol"] == 1
  assert summary["newton_loss_after_one_step"] < 1e-20


def test_alternating_minimization_solves_the_convex_w_block(finished_run, summary):
  """J is a convex quadratic in W for fixed H: after a visit of k steps (the largest k, at its best
  rate), W is its closed-form minimizer (HᵀH + μI)⁻¹HᵀX up to a small relative gap, on every seed;
  `w_block_gap` is the largest over the seeds. On seed 0 the visit's W is also closer to it than
  gradient descent's W after as many steps at the same rate (GD moves H and W together); that
  does not hold on every draw (seed 2 of the quick config: 2.8e-3 against GD's 1.6e-3, a W row
  of small curvature 2(HᵀH + μI) that 100 steps at a small rate leave short of its minimum),
  so it is checked on seed 0, the one draw it was measured on."""
  largest = max(summary["cd_final_loss_by_steps_per_block"], key=int)
  rate = summary["best_learning_rate"][f"cd_k{largest}"]
  rows = _sparse_rows(finished_run)
  gaps, gd_gaps = {}, {}
  for seed in {int(r["seed"]) for r in rows}:
    at = [r for r in rows if r["learning_rate"] == rate and r["seed"] == seed]
    (cd,) = [r for r in at if r["method"] == f"cd_k{largest}"]
    (gd,) = [r for r in at if r["method"] == "gd"]
    gaps[seed], gd_gaps[seed] = cd["w_block_gap"], gd["w_block_gap"]
  assert all(0 <= gap < 1e-2 for gap in gaps.values()), gaps
  assert gaps[0] < gd_gaps[0]
  assert summary["w_block_gap"] == pytest.approx(max(gaps.values()), rel=1e-12)


def test_sparse_coding_ratio_is_paired_by_seed(finished_run, summary):
  """Recomputed from results.csv: each method's best rate by the geometric mean over seeds of
  its final J; the claim's ratio is the geometric mean over seeds of the best block method's
  final J over GD's on the same seed, its standard error the delta-method one (ratio · s/√n of
  the log ratios), its degrees of freedom the quick config's seeds less one."""
  rows = _sparse_rows(finished_run)
  seeds = list(load_config(QUICK).seeds)
  assert sorted({int(r["seed"]) for r in rows}) == sorted(seeds)
  best = _best_rates(rows)
  assert summary["best_learning_rate"] == best
  by_rate = _by_rate(rows)
  geo = {m: np.exp(np.mean(np.log(list(by_rate[m][rate].values())))) for m, rate in best.items()}
  cd_method = min((m for m in geo if m != "gd"), key=geo.get)
  assert summary["cd_best_method"] == cd_method
  cd, gd = by_rate[cd_method][best[cd_method]], by_rate["gd"][best["gd"]]
  assert summary["cd_final_loss_by_seed"] == {str(s): pytest.approx(cd[s]) for s in seeds}
  assert summary["gd_final_loss_by_seed"] == {str(s): pytest.approx(gd[s]) for s in seeds}
  logs = np.log([cd[s] / gd[s] for s in seeds])
  ratio = np.exp(logs.mean())
  assert summary["cd_over_gd_final_loss"] == pytest.approx(ratio, rel=1e-9)
  assert summary["cd_over_gd_final_loss"] == pytest.approx(geo[cd_method] / geo["gd"], rel=1e-6)
  se = ratio * logs.std(ddof=1) / np.sqrt(len(seeds))
  assert summary["cd_over_gd_final_loss_se"] == pytest.approx(se, rel=1e-9)
  assert summary["cd_over_gd_final_loss_dof"] == len(seeds) - 1 == summary["num_seeds"] - 1
  assert summary["cd_final_loss"] == pytest.approx(geo[cd_method], rel=1e-9)
  assert summary["gd_final_loss"] == pytest.approx(geo["gd"], rel=1e-9)


def test_sparse_coding_block_descent_against_gradient_descent(summary):
  """Measured at this scale (no speed is published): both fall > 10× from the start; at equal
  steps, alternating one step per block ends within 10% of full GD (each at its best rate), and
  spending more consecutive steps on a block only slows it down."""
  initial = summary["sparse_coding_initial_loss"]
  assert summary["gd_final_loss"] < initial / 10
  assert summary["cd_final_loss"] < initial / 10
  assert 0.9 < summary["cd_over_gd_final_loss"] < 1.1
  by_k = summary["cd_final_loss_by_steps_per_block"]
  losses = [by_k[k] for k in sorted(by_k, key=int)]
  assert np.all(np.diff(losses) > 0)
  assert summary["cd_best_method"] == "cd_k1"


def test_verdicts_judge_every_claim(summary):
  """The quadratic's claims follow from its closed form, so they reproduce; the sparse-coding one
  is the ratio of final losses against 1."""
  contraction = summary["quadratic_cd_contraction_per_sweep"]
  theory = summary["quadratic_cd_contraction_theory"]
  assert summary["quadratic_cd_contraction_max_rel_error"] == pytest.approx(
    max(abs(contraction[a] / theory[a] - 1) for a in theory)
  )
  assert summary["quadratic_sweeps_alpha_slope_error"] == pytest.approx(
    abs(summary["quadratic_sweeps_alpha_slope"] + 1)
  )
  ratio, se = summary["cd_over_gd_final_loss"], summary["cd_over_gd_final_loss_se"]
  within = abs(np.log(ratio)) <= margin(summary["cd_over_gd_final_loss_dof"]) * se / ratio
  undecided = summary["cd_over_gd_at_grid_edge"] or within
  assert summary["verdicts"] == {
    "cd_final_loss": verdict(None if undecided else ratio < 1),
    "quadratic_cd_contraction_per_sweep": REPRODUCED,
    "quadratic_sweeps_alpha_slope": REPRODUCED,
    "newton_steps_to_tol": REPRODUCED,
  }


def test_a_best_rate_at_its_grid_edge_leaves_the_sparse_coding_claim_undecided(
  finished_run, summary
):
  """Recomputed from results.csv: a method's best rate (lowest geometric mean over seeds of the
  final J, every seed finite) at the smallest or largest rate its grid tried is flagged (the
  quick grid brackets every method's best). A wider grid can only lower a best loss, so GD's
  edge leaves a ratio below 1 undecided and a block method's edge one above 1; the other side's
  edges cannot flip it."""
  rows = _sparse_rows(finished_run)
  edge = []
  for method, best in _best_rates(rows).items():
    tried = [r["learning_rate"] for r in rows if r["method"] == method]
    assert best == summary["best_learning_rate"][method]
    if best in (min(tried), max(tried)):
      edge.append(method)
  assert summary["best_learning_rate_at_grid_edge"] == sorted(edge) == []
  assert summary["cd_over_gd_at_grid_edge"] is False
  experiment = registry.load(NAME)
  module = sys.modules[type(experiment).__module__]
  judge = experiment.CRITERIA["cd_final_loss"]
  for cd, gd, edges, expected in (
    (1.0, 2.0, [], True),
    (1.0, 2.0, ["cd_k10"], True),  # block descent already lower: its edge cannot flip it
    (1.0, 2.0, ["gd"], None),
    (2.0, 1.0, ["gd"], False),
    (2.0, 1.0, ["cd_k10"], None),
  ):
    table = _sparse_table({"gd": gd, "cd_k1": cd, "cd_k10": cd + 1}, edges)
    claims = module.sparse_coding_summary(table, 10)
    assert judge(claims) is expected, (cd, gd, edges)


def _sparse_table(best_loss: dict[str, float], at_edge: list[str]) -> list[dict]:
  """Rows over the rates 0.1, 0.2, 0.3 and seeds 0, 1, 2, each method's best (its `best_loss`,
  times a factor by seed, GD's apart from the others': an error bar far smaller than the ratios
  of 2 judged) at 0.1 when it is in `at_edge`, else at 0.2; its other rates one higher."""
  rows = []
  for method, loss in best_loss.items():
    best_rate = 0.1 if method in at_edge else 0.2
    factors = (1.0, 1.01, 0.99) if method == "gd" else (1.0, 0.995, 1.01)
    for rate in (0.1, 0.2, 0.3):
      for seed, factor in enumerate(factors):
        final = factor * (loss if rate == best_rate else loss + 1)
        row = {"method": method, "learning_rate": rate, "seed": seed, "final_loss": final}
        rows.append(row | {"initial_loss": 10.0, "w_block_gap": 0.0})
  return rows


@pytest.mark.parametrize(
  ("field", "value"),
  [
    ("seeds", "[0]"),
    ("seeds", "[1,1]"),
    ("sparse_coding.steps", "0"),
    ("sparse_coding.weight_decay", "0.0"),
    ("sparse_coding.eval_every", "33"),
    ("quadratic.tolerance", "0.0"),
    ("quadratic.sweeps", "5"),
  ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)
