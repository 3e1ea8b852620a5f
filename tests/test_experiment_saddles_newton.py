"""The saddles_newton experiment's quick config: Newton → saddle, saddle-free Newton → minimum.

The 2-D iterates are checked against float64 loops of the three updates written out by hand on
f(x, y) = x² + y⁴/4 − y²/2 (∂f = (2x, y³ − y), H = diag(2, 3y² − 1)); the autoencoder's claims
against the direction Dauphin et al. (2014) report, and its saved parameters against its history.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from helpers import deciding_settings
from landscape_helpers import load_experiment

from jaxopt_study import cli, registry, results
from jaxopt_study.config import load_config
from jaxopt_study.experiment import Results, margin, verdict

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


ROOT = Path(__file__).parents[1]
QUICK = ROOT / "configs" / "saddles_newton_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
  out = tmp_path_factory.mktemp("run") / "saddles_newton"
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  names = {p.name for p in out.iterdir()}
  expected = {"results.csv", "history.csv", "summary.json", "report.html", "params.npz"}
  assert expected <= names, expected - names
  assert {"toy_trajectories.png", "autoencoder_index.png"} <= names
  return out


def _summary(out: Path) -> dict:
  return json.loads((out / "summary.json").read_text())


def _config(out: Path) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads((out / "config.json").read_text()))


def _curve(out: Path, member: str, metric: str) -> np.ndarray:
  rows = [r for r in results.read_csv(out / "history.csv") if r["member"] == member]
  return np.asarray(
    [r["value"] for r in sorted(rows, key=lambda r: r["step"]) if r["metric"] == metric]
  )


def _points(out: Path, member: str) -> np.ndarray:
  return np.stack([_curve(out, member, "x"), _curve(out, member, "y")], axis=1)


def test_newton_converges_to_the_saddle(finished_run):
  claims = _summary(finished_run)
  assert claims["newton_final_distance_to_saddle"] < 1e-10
  assert claims["newton_final_kind"] == "saddle"
  assert claims["steps_to_escape_by_method"]["newton"] is None


def test_newton_iterates_are_the_textbook_newton_step(finished_run):
  """(x, y) ← (x, y) − H⁻¹∇f = (0, y − (y³ − y) / (3y² − 1)), eq. 8.28 with λ = 0."""
  points = _points(finished_run, "toy-newton")
  x, y = _config(finished_run).toy.start
  for k in range(1, 4):
    scale = abs(y)  # the step cancels y to ~2y³: rounding is relative to the previous y
    x, y = x - 2 * x / 2, y - (y**3 - y) / (3 * y**2 - 1)
    np.testing.assert_allclose(points[k], [x, y], rtol=1e-12, atol=1e-14 * scale)
  assert abs(points[1, 1]) < 1e-8  # cubic convergence: y₁ ≈ −2y₀³


def test_saddle_free_newton_escapes_to_a_minimum(finished_run):
  claims = _summary(finished_run)
  assert claims["sfn_final_kind"] == "minimum"
  assert claims["sfn_final_distance_to_minimum"] < 1e-10
  assert abs(abs(claims["sfn_final_point"][1]) - 1.0) < 1e-10


def test_saddle_free_newton_iterates_use_the_absolute_curvature(finished_run):
  """(x, y) ← (x, y) − |H|⁻¹∇f: y ← y − (y³ − y) / |3y² − 1|, until the first y² > 1/3."""
  points = _points(finished_run, "toy-saddle_free_newton")
  x, y = _config(finished_run).toy.start
  k = 0
  while 3 * y**2 < 0.9:  # away from the zero of the curvature, where the step is huge
    x, y = x - 2 * x / 2, y - (y**3 - y) / abs(3 * y**2 - 1)
    k += 1
    np.testing.assert_allclose(points[k], [x, y], rtol=1e-10)
  assert k >= 5


def test_gradient_descent_escapes_but_slower_than_saddle_free_newton(finished_run):
  """Gradient descent's y grows by about 1 + ε per step: it leaves, in many more steps."""
  claims = _summary(finished_run)
  config = _config(finished_run).toy
  x, y = config.start
  rate, steps = config.sgd.learning_rate, 0
  while abs(y) < config.escape_radius:  # the float64 reference loop of Algorithm 8.1
    x, y = x - rate * 2 * x, y - rate * (y**3 - y)
    steps += 1
  assert claims["sgd_steps_to_escape"] == steps
  assert claims["sfn_steps_to_escape"] is not None
  assert claims["sgd_steps_to_escape"] > 3 * claims["sfn_steps_to_escape"]
  np.testing.assert_allclose(
    _points(finished_run, "toy-sgd")[steps], [x, y], rtol=1e-12, atol=1e-300
  )


def test_gradient_descent_still_at_the_saddle_is_slower_not_undecided():
  """SGD that has not escaped when its run ends took more steps than the run: the ratio is the
  run's length over saddle-free Newton's steps, a lower bound, and the claim ("more") holds when
  that bound exceeds 1 (it read None, inconclusive); undecided when saddle-free Newton did not
  escape either."""
  experiment = registry.load("saddles_newton")
  judge = experiment.CRITERIA["sgd_steps_to_escape"]

  def toy(method, escape):
    point = {"final_x": 0.0, "final_y": 1.0, "final_kind": "minimum"}
    distances = {"distance_to_saddle": 1.0, "distance_to_minimum": 0.0}
    return {"problem": "toy", "method": method, "steps": 200, "steps_to_escape": escape} | (
      point | distances
    )

  def autoencoder(method, seed):
    fields = {"final_loss": 1.0 + seed, "num_params": 10, "final_index": 0.1}
    row = {"problem": "autoencoder", "method": method, "seed": seed, "final_kind": "saddle"}
    return row | fields | {"final_grad_norm": 0.0}

  for sgd, sfn, ratio, expected in (
    (None, 20, 10.0, True),
    (50, 20, 2.5, True),
    (None, None, None, None),
  ):
    table = [toy("sgd", sgd), toy("newton", None), toy("saddle_free_newton", sfn)]
    table += [autoencoder(m, s) for m in ("sgd", "newton", "saddle_free_newton") for s in (0, 1)]
    claims = experiment.summarize(ml_collections.ConfigDict(), Results(table, []))
    assert claims["sgd_over_sfn_steps_to_escape"] == ratio
    assert claims["sgd_escape_censored"] is (sgd is None)
    assert judge(claims) is expected


def _autoencoder_by_seed(out: Path, field: str) -> dict[str, dict[int, float]]:
  """method -> seed -> `field` of the autoencoder's rows in results.csv."""
  table: dict[str, dict[int, float]] = {}
  for row in results.read_csv(out / "results.csv"):
    if row["problem"] == "autoencoder":
      table.setdefault(row["method"], {})[int(row["seed"])] = row[field]
  return table


def test_autoencoder_claims_are_paired_by_seed(finished_run):
  """Recomputed from results.csv: per method the geometric mean over seeds of the final loss and
  the mean of the final index; saddle-free Newton's loss over each other method's, the geometric
  mean of the per-seed ratios with the delta-method error (ratio · s/√n of the log ratios);
  Newton's index less saddle-free Newton's, the mean of the per-seed differences with s/√n;
  both with the quick config's seeds less one degrees of freedom."""
  claims = _summary(finished_run)
  seeds = list(load_config(QUICK).seeds)
  loss = _autoencoder_by_seed(finished_run, "final_loss")
  index = _autoencoder_by_seed(finished_run, "final_index")
  assert claims["num_seeds"] == len(seeds)
  for method in loss:
    assert sorted(loss[method]) == sorted(seeds)
    assert claims["autoencoder_final_loss_by_seed"][method] == {
      str(s): pytest.approx(loss[method][s], rel=1e-12) for s in seeds
    }
    assert claims["final_index_by_seed"][method] == {
      str(s): pytest.approx(index[method][s], rel=1e-12) for s in seeds
    }
    assert claims["autoencoder_final_loss_by_method"][method] == pytest.approx(
      np.exp(np.mean(np.log([loss[method][s] for s in seeds]))), rel=1e-12
    )
    assert claims["final_index_by_method"][method] == pytest.approx(
      np.mean([index[method][s] for s in seeds]), rel=1e-12
    )
  for other in ("sgd", "newton"):
    logs = np.log([loss["saddle_free_newton"][s] / loss[other][s] for s in seeds])
    ratio = np.exp(logs.mean())
    assert claims["sfn_over_other_final_loss"][other] == pytest.approx(ratio, rel=1e-12)
    se = ratio * logs.std(ddof=1) / np.sqrt(len(seeds))
    assert claims["sfn_over_other_final_loss_se"][other] == pytest.approx(se, rel=1e-9)
    assert claims["sfn_over_other_final_loss_dof"][other] == len(seeds) - 1
  gaps = np.asarray([index["newton"][s] - index["saddle_free_newton"][s] for s in seeds])
  assert claims["newton_minus_sfn_final_index"] == pytest.approx(gaps.mean(), rel=1e-12)
  se = gaps.std(ddof=1) / np.sqrt(len(seeds))
  assert claims["newton_minus_sfn_final_index_se"] == pytest.approx(se, rel=1e-9)
  assert claims["newton_minus_sfn_final_index_dof"] == len(seeds) - 1
  num_params = claims["num_params"]
  for by_seed in index.values():
    for value in by_seed.values():
      assert 0.0 <= value <= 1.0
      assert value * num_params == pytest.approx(round(value * num_params))


def test_autoencoder_newton_stops_higher_and_at_a_larger_index(finished_run):
  """Dauphin et al. (2014): saddle-free Newton reaches a lower loss than damped Newton, which
  is held at a point with more negative curvature directions; so it does from every seed of the
  quick config, its damping searched at every step (their Algorithm 1), and here its loss never
  rises between two evaluations (with λ fixed at 0.1, a step from seed 1 overshot to 5 times the
  loss it started from)."""
  loss = _autoencoder_by_seed(finished_run, "final_loss")
  index = _autoencoder_by_seed(finished_run, "final_index")
  for seed in _config(finished_run).seeds:
    assert loss["saddle_free_newton"][seed] < 0.8 * loss["newton"][seed]
    assert index["newton"][seed] > 2 * index["saddle_free_newton"][seed]
    sfn_loss = _curve(finished_run, f"ae-saddle_free_newton@seed{seed}", "train_loss")
    assert np.all(np.diff(sfn_loss) <= 1e-12 * sfn_loss[:-1])


def test_verdicts_judge_every_claim(finished_run):
  """The toy's three claims reproduce at the quick config; the autoencoder's two compare
  saddle-free Newton's loss with Newton's and SGD's (every ratio below 1 beyond t_{0.975, dof}
  standard errors on the log scale), and Newton's index with its (the difference above 0 beyond
  as many errors), recomputed here with `experiment.margin`."""
  claims = _summary(finished_run)
  assert claims["sgd_over_sfn_steps_to_escape"] == pytest.approx(
    claims["sgd_steps_to_escape"] / claims["sfn_steps_to_escape"]
  )

  def judged(value, se, dof, distance, settings=1):  # Bonferroni's margin against the claim
    needed = margin(dof) if distance > 0 else margin(dof, settings)
    return None if abs(distance) <= needed * se else distance > 0

  ratios = [
    judged(
      r,
      claims["sfn_over_other_final_loss_se"][m] / r,
      claims["sfn_over_other_final_loss_dof"][m],
      -np.log(r),
      deciding_settings(
        claims["sfn_over_other_final_loss"],
        claims["sfn_over_other_final_loss_se"],
        claims["sfn_over_other_final_loss_dof"],
        ratio=True,
      ),
    )
    for m, r in claims["sfn_over_other_final_loss"].items()
  ]
  loss_holds = False if False in ratios else (None if None in ratios else True)
  gap = claims["newton_minus_sfn_final_index"]
  index_holds = judged(
    gap, claims["newton_minus_sfn_final_index_se"], claims["newton_minus_sfn_final_index_dof"], gap
  )
  assert claims["verdicts"] == {
    "newton_final_distance_to_saddle": "reproduced",
    "sfn_final_kind": "reproduced",
    "sgd_steps_to_escape": "reproduced",
    "autoencoder_final_loss_by_method": verdict(loss_holds),
    "final_index_by_method": verdict(index_holds),
  }


def test_saved_parameters_give_the_recorded_final_loss(finished_run):
  """params.npz of each seed's saddle-free Newton run reproduces the history's last training
  loss."""
  experiment = load_experiment("saddles_newton")
  config = _config(finished_run)
  with jax.enable_x64(True):
    problem = experiment.Autoencoder(config)
    for seed in config.seeds:
      member = experiment.ae_member("saddle_free_newton", seed)
      params, _ = results.load_member_state(
        finished_run / "params.npz", member, problem.model.params, problem.model.model_state
      )
      loss = float(problem.loss(params, jnp.asarray(problem.x)))
      assert loss == pytest.approx(_curve(finished_run, member, "train_loss")[-1], rel=1e-10)


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("seeds=[0]", "seeds"),
    ("seeds=[2,2]", "seeds"),
    ("toy.start=[0.5,0.0]", "toy.start"),
    ("toy.escape_radius=0.0", "toy.escape_radius"),
    ("optimizers.newton.damping=0.0", "optimizers.newton.damping"),
    ("optimizers.sgd.batch_size=100000", "optimizers.sgd.batch_size"),
    ("data.pool=3", "data.pool"),
    ("model.depth=2", "model.depth"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  out = tmp_path / "refused"
  code = cli.main(["run", str(QUICK), "--out", str(out), "--set", override, "--no-progress"])
  assert code == 2
  assert culprit in capsys.readouterr().err
  assert not out.exists()
