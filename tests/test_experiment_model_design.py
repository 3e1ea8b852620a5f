"""§8.7.5 on the quick config: skip connections keep a deep MLP trainable; the Hessian at
initialization is indefinite for every design; the claims and the verdict agree with the rows
they summarize."""

import math

import ml_collections
import numpy as np
import pytest
from helpers import deciding_settings
from landscape_helpers import assert_refused, run_config, run_quick, summary

from jaxopt_study import registry
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, Results, margin
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

NAME = "model_design"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


def _held_out_by_hand(rows: list[dict], config, design: str, depth: int) -> tuple[dict, dict]:
  """Each seed's final loss at the rate with the lowest mean final loss over the *other* seeds (a
  rate where one of them diverged or is not finite never; ties: the first rate of the grid), and
  that rate, per seed, written out as a loop over seeds and rates."""
  mine = [r for r in rows if r["design"] == design and r["depth"] == depth]
  loss = {
    (r["learning_rate"], r["seed"]): r["final_train_loss"]
    if np.isfinite(r["final_train_loss"]) and not r["diverged"]
    else np.inf
    for r in mine
  }
  losses, rates = {}, {}
  for seed in config.seeds:
    others = [s for s in config.seeds if s != seed]
    means = {rate: np.mean([loss[rate, s] for s in others]) for rate in config.learning_rates}
    best = min(config.learning_rates, key=lambda rate: means[rate])
    assert np.isfinite(means[best]), (design, depth, seed)
    losses[seed], rates[seed] = loss[best, seed], best
  return losses, rates


def test_the_residual_net_trains_further_than_the_plain_net_at_depth(finished_run):
  """He et al. (2016), §8.7.5: at the same depth, budget and best rate, skip connections end
  lower than the plain net in every seed, the gap paired by seed more than 2 of its standard
  errors (the verdict asks for t_{0.975, 2} = 4.30 with the quick config's 3 seeds: see
  `test_the_verdict_follows_from_the_rows`)."""
  claims = summary(finished_run)
  gap = claims["final_loss_gap_to_plain_at_deepest"]["residual"]
  assert gap > 2 * claims["final_loss_gap_to_plain_at_deepest_se"]["residual"] > 0


def test_the_verdict_follows_from_the_rows(finished_run):
  """The one verdict of `final_loss_by_depth`, judged here by hand from results.csv: at the
  largest depth, each seed of each design at the rate best on its other seeds (lowest mean final
  loss over them) must end below the same seed of the plain net at the plain net's such rate, by
  more than t_{0.975, seeds − 1} standard errors of the gap paired by seed (4.30 for the quick
  config's 3 seeds; a gap with no spread decides from 6 seeds only); a design with such a rate,
  or a plain net with one, at the grid's edge cannot decide; one design that fails fails the
  claim."""
  claims, config = summary(finished_run), run_config(finished_run)
  depth = max(config.depths)
  rows = [r for r in read_csv(finished_run / "results.csv") if r["part"] == "train"]
  edges = (min(config.learning_rates), max(config.learning_rates))

  def at_best(design: str) -> tuple[np.ndarray, bool]:
    """The held-out final losses in seed order, and whether any held-out rate is at an edge."""
    losses, rates = _held_out_by_hand(rows, config, design, depth)
    return np.asarray([losses[s] for s in config.seeds]), any(r in edges for r in rates.values())

  plain, plain_edge = at_best("plain")
  key = "final_loss_gap_to_plain_at_deepest"
  edges = claims["best_rate_at_grid_edge_at_deepest"]
  count = deciding_settings(claims[key], claims[f"{key}_se"], claims[f"{key}_dof"], edges)
  judged = []
  for design in ("residual", "batchnorm"):
    losses, edge = at_best(design)
    gaps = plain - losses
    gap, se = gaps.mean(), gaps.std(ddof=1) / np.sqrt(gaps.size)
    assert claims["final_loss_gap_to_plain_at_deepest"][design] == pytest.approx(gap)
    assert claims["final_loss_gap_to_plain_at_deepest_se"][design] == pytest.approx(se)
    assert claims["final_loss_gap_to_plain_at_deepest_dof"][design] == len(config.seeds) - 1 == 2
    # a design failing the claim fails it beyond Bonferroni's margin for the designs that decide
    needed = margin(gaps.size - 1) if gap > 0 else margin(gaps.size - 1, count)
    no_spread = se <= 1e-5 * abs(gap)  # 0 up to float32 rounding
    undecided = abs(gap) <= needed * se or (no_spread and gaps.size - 1 < MIN_DOF_WITHOUT_SPREAD)
    judged.append(None if edge or plain_edge or undecided else gap > 0)
  if False in judged:
    expected = "not reproduced"
  else:
    expected = "inconclusive" if None in judged else "reproduced"
  assert config.designs == ["plain", "residual", "batchnorm"]
  assert claims["verdicts"] == {"final_loss_by_depth": expected}


def test_the_best_rate_and_its_loss_are_those_of_the_table(finished_run):
  """The reported best rate has the lowest mean final loss over seeds among the rates whose
  seeds all stayed finite; the reported loss is the mean and std over seeds of each seed's loss
  at the rate best on the other seeds, and those rates are `held_out_learning_rates`. (In the
  quick run every seed's held-out rate is the all-seed best rate, so the held-out losses are the
  in-sample ones: this test pins the picks, `test_each_seed_is_judged_at_its_other_seeds_rate`
  a table where they differ.)"""
  claims, config = summary(finished_run), run_config(finished_run)
  rows = [r for r in read_csv(finished_run / "results.csv") if r["part"] == "train"]
  for design in config.designs:
    for depth in config.depths:
      mine = [r for r in rows if r["design"] == design and r["depth"] == depth]
      means = {}
      for rate in config.learning_rates:
        losses = [r["final_train_loss"] for r in mine if r["learning_rate"] == rate]
        assert len(losses) == len(config.seeds)
        if all(np.isfinite(losses)) and not any(
          r["diverged"] for r in mine if r["learning_rate"] == rate
        ):
          means[rate] = np.mean(losses)
      best = min(means, key=means.get)
      assert claims["best_learning_rate_by_depth"][design][str(depth)] == best
      edge = best in (min(config.learning_rates), max(config.learning_rates))
      assert claims["best_rate_at_grid_edge"][design][str(depth)] == edge
      losses, rates = _held_out_by_hand(rows, config, design, depth)
      assert claims["held_out_learning_rates"][design][str(depth)] == {
        str(s): rate for s, rate in rates.items()
      }
      final = claims["final_loss_by_depth"][design][str(depth)]
      values = [losses[s] for s in config.seeds]
      assert final["mean"] == pytest.approx(np.mean(values), rel=1e-12)
      assert final["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
      assert final["n"] == len(config.seeds)


def test_the_hessian_at_initialization_is_indefinite(finished_run):
  """A random initialization is no minimum: λ_min < 0 < λ_max for every design and seed."""
  rows = [r for r in read_csv(finished_run / "results.csv") if r["part"] == "init"]
  assert rows
  for row in rows:
    assert row["lambda_min"] < 0 < row["lambda_max"], row["member"]
    assert row["grad_ratio_first_last"] > 0


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("designs=['plain','wide']", "designs"),
    ("learning_rates=[0.1,1.0]", "learning_rates"),
    ("hessian_examples=100000", "hessian_examples"),
    ("depths=[0]", "depths"),
    ("seeds=[0]", "seeds"),  # read "reproduced" from one run, its spread 0
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)


def test_a_design_that_diverges_at_every_rate_is_judged_at_the_grids_edge():
  """Made-up runs at one depth: the plain net diverges at every rate of the grid, so its best
  rate lies below the grid (no rate, no loss), flagged as at the edge, and the verdict cannot
  decide; with one plain rate that trains, the residual net's lower loss decides it once the
  seeds are enough for the t_{0.975, seeds − 1} margin."""
  experiment = registry.load(NAME)
  config = ml_collections.ConfigDict(
    {"designs": ["plain", "residual"], "depths": [4], "learning_rates": [0.1, 0.3, 1.0]}
  )
  losses = {"plain": [math.nan] * 3, "residual": [0.5, 0.2, 0.4]}

  def table(losses, residual_step=0.01, seeds=(0, 1)):
    """Seed s's loss is seed 0's plus 0.01 s, the residual net's plus `residual_step` · s."""

    def offset(design, seed):
      return seed * (residual_step if design == "residual" else 0.01)

    runs = [
      {"part": "train", "design": design, "depth": 4, "learning_rate": rate, "seed": seed}
      | {"final_train_loss": loss + offset(design, seed), "diverged": not math.isfinite(loss)}
      for design, values in losses.items()
      for rate, loss in zip(config.learning_rates, values, strict=True)
      for seed in seeds
    ]
    init = [
      {"part": "init", "design": design, "depth": 4, "seed": seed}
      | dict.fromkeys(("lambda_max", "lambda_min", "lambda_spread", "grad_ratio_first_last"), 1.0)
      for design in losses
      for seed in seeds
    ]
    return Results(runs + init, [])

  claims = experiment.summarize(config, table(losses))
  assert claims["best_learning_rate_by_depth"]["plain"] == {"4": None}
  assert claims["final_loss_by_depth"]["plain"] == {"4": None}
  assert claims["best_rate_at_grid_edge"]["plain"] == {"4": True}
  assert claims["best_rate_at_grid_edge_at_deepest"] == {"residual": True}
  assert claims["final_loss_gap_to_plain_at_deepest"]["residual"] is None
  assert claims["final_loss_gap_to_plain_at_deepest_dof"] == {"residual": None}
  assert experiment.verdicts(claims) == {"final_loss_by_depth": "inconclusive"}
  trains = losses | {"plain": [math.nan, 0.9, math.nan]}
  claims = experiment.summarize(config, table(trains))
  assert claims["best_learning_rate_by_depth"] == {"plain": {"4": 0.3}, "residual": {"4": 0.3}}
  # Paired by seed: 0.9 − 0.2, 0.91 − 0.21, ..., a gap of 0.7 with no spread, which 2 seeds
  # agreeing cannot tell from chance (it read "reproduced" when the margin was 2 errors, a
  # fixed number); 6 seeds agreeing decide it. With a spread, t_{0.975, seeds − 1} errors: gaps
  # 0.7 and 0.5 are 0.6 ± 0.1, 6 errors, short of t_{0.975, 1} = 12.7 (it read "reproduced" at 2
  # errors); gaps 0.7, 0.6, 0.5, 0.4 are 0.55 ± 0.065, 8.5 errors, beyond t_{0.975, 3} = 3.18;
  # 0.7 and −0.3 are 0.2 ± 0.5, a tie (the old rule, plain mean − std against the design's mean
  # + std, read a tie as a failure).
  for step, seeds, gap, se, read in (
    (0.01, 2, 0.7, 0.0, "inconclusive"),
    (0.01, 6, 0.7, 0.0, "reproduced"),
    (0.21, 2, 0.6, 0.1, "inconclusive"),
    (0.11, 4, 0.55, np.std([0.7, 0.6, 0.5, 0.4], ddof=1) / 2, "reproduced"),
    (1.01, 2, 0.2, 0.5, "inconclusive"),
  ):
    claims = experiment.summarize(config, table(trains, step, range(seeds)))
    gaps, errors, dofs = (
      claims[f"final_loss_gap_to_plain_at_deepest{e}"] for e in ("", "_se", "_dof")
    )
    assert (gaps["residual"], errors["residual"]) == (pytest.approx(gap), pytest.approx(se))
    assert dofs == {"residual": seeds - 1}
    if se:
      assert (abs(gap) > margin(seeds - 1) * se) == (read == "reproduced")
    assert experiment.verdicts(claims) == {"final_loss_by_depth": read}


def test_each_seed_is_judged_at_its_other_seeds_rate():
  """Made-up runs at one depth, 3 seeds, where the rate best on all seeds is not every seed's:
  the residual net's rate 0.3 has the lowest mean (0.02, 0.32, 0.32: 0.22) because seed 0 did
  well there, but seeds 1 and 2 alone prefer 0.1 (0.25 each), so seed 0 is judged at 0.1 (0.25)
  and seeds 1, 2 at 0.3 (0.32): 0.2967, not the in-sample 0.22. The plain net picks 0.3 on every
  seed (0.80, 0.81, 0.82); the gaps 0.55, 0.49, 0.50 are 0.513 ± 0.019, beyond t_{0.975, 2} =
  4.30 errors (in sample, 0.59). A seed that diverged at its own held-out rate makes the gap
  infinite, which cannot decide."""
  experiment = registry.load(NAME)
  rates = [0.03, 0.1, 0.3, 1.0]
  config = ml_collections.ConfigDict(
    {"designs": ["plain", "residual"], "depths": [4], "learning_rates": rates}
  )
  losses = {
    "plain": {0.03: [2.0, 2.01, 2.02], 0.1: [1.0, 1.01, 1.02], 0.3: [0.8, 0.81, 0.82]}
    | {1.0: [1.5, 1.51, 1.52]},
    "residual": {0.03: [0.9] * 3, 0.1: [0.25] * 3, 0.3: [0.02, 0.32, 0.32], 1.0: [0.9] * 3},
  }

  def table(diverged=()):
    runs = [
      {"part": "train", "design": design, "depth": 4, "learning_rate": rate, "seed": seed}
      | {"final_train_loss": loss, "diverged": (design, rate, seed) in diverged}
      for design, by_rate in losses.items()
      for rate, values in by_rate.items()
      for seed, loss in enumerate(values)
    ]
    init = [
      {"part": "init", "design": design, "depth": 4, "seed": seed}
      | dict.fromkeys(("lambda_max", "lambda_min", "lambda_spread", "grad_ratio_first_last"), 1.0)
      for design in losses
      for seed in range(3)
    ]
    return Results(runs + init, [])

  claims = experiment.summarize(config, table())
  assert claims["best_learning_rate_by_depth"] == {"plain": {"4": 0.3}, "residual": {"4": 0.3}}
  assert claims["held_out_learning_rates"] == {
    "plain": {"4": {"0": 0.3, "1": 0.3, "2": 0.3}},
    "residual": {"4": {"0": 0.1, "1": 0.3, "2": 0.3}},
  }
  held_out = np.asarray([0.25, 0.32, 0.32])
  assert claims["final_loss_by_depth"]["residual"]["4"] == {
    "mean": pytest.approx(held_out.mean()),
    "std": pytest.approx(held_out.std(ddof=1)),
    "n": 3,
  }
  gaps = np.asarray([0.8, 0.81, 0.82]) - held_out
  se = gaps.std(ddof=1) / np.sqrt(3)
  assert claims["final_loss_gap_to_plain_at_deepest"] == {"residual": pytest.approx(gaps.mean())}
  assert claims["final_loss_gap_to_plain_at_deepest_se"] == {"residual": pytest.approx(se)}
  assert claims["final_loss_gap_to_plain_at_deepest_dof"] == {"residual": 2}
  assert claims["best_rate_at_grid_edge_at_deepest"] == {"residual": False}
  assert gaps.mean() > margin(2) * se
  assert experiment.verdicts(claims) == {"final_loss_by_depth": "reproduced"}

  # seed 0 diverged at 0.1, its held-out rate: its loss there is infinite, and so is the gap
  claims = experiment.summarize(config, table(diverged={("residual", 0.1, 0)}))
  assert claims["held_out_learning_rates"]["residual"] == {"4": {"0": 0.1, "1": 0.3, "2": 0.3}}
  assert claims["final_loss_by_depth"]["residual"]["4"]["mean"] == math.inf
  assert claims["final_loss_gap_to_plain_at_deepest"]["residual"] == -math.inf
  assert experiment.verdicts(claims) == {"final_loss_by_depth": "inconclusive"}
