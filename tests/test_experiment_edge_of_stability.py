"""The edge-of-stability experiment: its quick config through the CLI, checked against a dense
Hessian and against its own history, and its verdicts judged by hand from that history.

Cohen et al. (2021) publish λ_max rising to 2/η and hovering there under full-batch gradient
descent. The checks are of the measurement, not of the phenomenon: the monitor's last λ_max of a
member is the top eigenvalue ARPACK finds at the saved final parameters, the first
losses are those of an independent full-batch loop, and the claims and the verdicts are what the
history says: per member, then per setting (loss and η) over the seeds, whose means, standard
errors and degrees of freedom are recomputed here and judged with `experiment.margin`.
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.sparse.linalg
from helpers import deciding_settings
from jax.flatten_util import ravel_pytree

from jaxopt_study import cli, data, experiment, losses, models, registry, results
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import read_csv

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "edge_of_stability_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("edge_of_stability")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


def digits_loss(config: dict, loss: str, seed: int):
  """(model drawn from `seed`, loss of its params), float64, written from the data up."""
  digits = data.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  count = config["data"]["num_examples"]
  x = np.asarray(digits.x_train[:count], np.float64)
  labels = np.asarray(digits.y_train[:count])
  options = {k: v for k, v in config["model"].items() if k != "name"}
  model = models.functional(models.build_model("mlp", 64, 10, seed=seed, **options))

  def objective(params):
    outputs, _ = model.apply(params, model.model_state, x, True)
    if loss == "mse":
      return 0.5 * jnp.mean(jnp.sum((outputs - jax.nn.one_hot(labels, 10)) ** 2, axis=-1))
    return losses.softmax_cross_entropy(outputs, labels)

  return model, objective


def top_eigenvalue(objective, params) -> float:
  """The largest eigenvalue of the float64 Hessian of `objective` at `params`, by ARPACK
  (`scipy.sparse.linalg.eigsh`, converged to 1e-10) on Hessian-vector products, the usual
  out-of-loop measurement the monitor replaces."""
  flat, unravel = ravel_pytree(jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), params))
  gradient = jax.grad(lambda v: objective(unravel(v)))
  hvp = jax.jit(lambda v: jax.jvp(gradient, (flat,), (v,))[1])
  operator = scipy.sparse.linalg.LinearOperator(
    (flat.size, flat.size), matvec=lambda v: np.asarray(hvp(jnp.asarray(v))), dtype=np.float64
  )
  return float(scipy.sparse.linalg.eigsh(operator, k=1, which="LA", tol=1e-10)[0][0])


@pytest.mark.slow  # runs the quick config end to end
def test_the_last_lambda_max_is_the_top_eigenvalue_at_the_final_parameters(finished_run):
  config = json.loads((finished_run / "config.json").read_text())
  curves = read_curves(finished_run / "history.csv", "lambda_max")
  for row in read_csv(finished_run / "results.csv"):
    if row["method"] == "adam":
      continue
    with jax.enable_x64(True):
      model, objective = digits_loss(config, row["loss"], int(row["seed"]))
      params, _ = results.load_member_state(
        finished_run / "params.npz", row["member"], model.params, model.model_state
      )
      exact = top_eigenvalue(objective, params)
    steps, values = curves[row["member"]]
    assert steps[-1] == config["steps"]
    assert values[-1] == pytest.approx(exact, rel=1e-3), row["member"]


@pytest.mark.slow  # runs the quick config end to end
def test_the_first_loss_is_that_of_the_initialization(finished_run):
  """The loss recorded at step 0 is the float64 loss of the member's seed's initialization (the
  seeds are a sweep axis: each member is drawn from its own)."""
  config = json.loads((finished_run / "config.json").read_text())
  losses_at = read_curves(finished_run / "history.csv", "train_loss")
  for row in read_csv(finished_run / "results.csv"):
    with jax.enable_x64(True):
      model, objective = digits_loss(config, row["loss"], int(row["seed"]))  # with the init scale
      initial = float(objective(model.params))
    steps, values = losses_at[row["member"]]
    assert steps[0] == 0
    assert values[0] == pytest.approx(initial, rel=1e-5), row["member"]


def seed_mean(values: list[float | None]) -> tuple[float | None, float | None]:
  """The mean over seeds and s/√n, written out; (None, None) when a seed has no value."""
  if any(v is None for v in values):
    return None, None
  array = np.asarray(values, np.float64)
  return float(array.mean()), float(array.std(ddof=1) / np.sqrt(array.size))


def seed_geometric_mean(values: list[float | None]) -> tuple[float | None, float | None]:
  """exp(mean log) over seeds and its delta-method error, exp(mean log) · s_log/√n."""
  if any(v is None for v in values):
    return None, None
  logs = np.log(np.asarray(values, np.float64))
  ratio = float(np.exp(logs.mean()))
  return ratio, ratio * float(logs.std(ddof=1) / np.sqrt(logs.size))


def holds_beyond_margin(
  value, error, dof, threshold, *, sign, ratio=False, settings=1
) -> bool | None:
  """value > threshold (sign 1) or < (sign −1) beyond t_{0.975, dof} errors, by hand, and the
  other way beyond t_{1 − 0.025/settings, dof} (one of `settings` settings: Bonferroni's margin);
  None within them, with no value, or with a zero error from fewer than six seeds (every seed
  agreed)."""
  if value is None or error is None:
    return None
  if error <= 1e-5 * abs(value) and dof < experiment.MIN_DOF_WITHOUT_SPREAD:  # 0, up to rounding
    return None
  distance = sign * (np.log(value / threshold) if ratio else value - threshold)
  spread = error / value if ratio else error
  needed = experiment.margin(dof) if distance > 0 else experiment.margin(dof, settings)
  if abs(distance) <= needed * spread * (1 + experiment.TIE_RTOL):
    return None
  return bool(distance > 0)


@pytest.mark.slow  # runs the quick config end to end
def test_the_claims_and_verdicts_are_what_the_history_says(finished_run):
  """Each member's measures recomputed from its history (sharpness and training loss); per
  setting (loss and η) their mean over the seeds, standard error and degrees of freedom computed
  here from those per-seed values, and each verdict judged here from them with t_{0.975, dof}
  margins: |λ/T − 1| < 0.1; the fraction of seeds reaching T after step 0 > 1/2 (censored seeds
  counted as in the docstring); sharpening (λ at the measurement before T's over λ at step 0,
  geometric mean) > 1; the loss at T over the last > 1, and a rise after T in most seeds; Fig. 1's
  claims on the squared-error settings (and Adam's, for the loss), the cross-entropy's all in one
  claim of its own."""
  config = json.loads((finished_run / "config.json").read_text())
  summary = json.loads((finished_run / "summary.json").read_text())
  table = read_csv(finished_run / "results.csv")
  losses_at = read_curves(finished_run / "history.csv", "train_loss")
  seeds = config["seeds"]
  assert len(seeds) >= 3  # the quick config decides with margins of t_{0.975, 2} = 4.30 errors
  # each setting is one of the prefixes the criteria pick by (`only=`), and each picks some
  settings = summary["loss_decreased"]  # every setting, Adam's too
  module = sys.modules[type(registry.load("edge_of_stability")).__module__]
  prefixes = (module.SQUARED_ERROR, module.CROSS_ENTROPY, module.ADAM)
  assert all(sum(key.startswith(p) for p in prefixes) == 1 for key in settings)
  assert all(any(key.startswith(p) for key in settings) for p in prefixes)
  per_seed: dict[str, dict[str, dict[int, object]]] = {}
  for row in table:
    member, is_adam, seed = row["member"], row["method"] == "adam", int(row["seed"])
    setting = f"{row['method']}@{row['learning_rate']:g}"
    assert row["setting"] == setting and member == f"{setting} seed {seed}"
    metric = row["sharpness_metric"]
    steps, values = np.asarray(read_curves(finished_run / "history.csv", metric)[member])
    steps, values = steps[np.isfinite(values)], values[np.isfinite(values)]
    b1 = config["adam"]["b1"]
    adam_limit = (2 + 2 * b1) / ((1 - b1) * row["learning_rate"])  # Cohen et al. (2022)
    limit = adam_limit if is_adam else 2 / row["learning_rate"]
    assert row["threshold"] == pytest.approx(limit)
    assert summary["threshold"][setting] == pytest.approx(limit)
    measures = per_seed.setdefault(setting, {})
    reached = np.nonzero(values >= 0.9 * limit)[0]
    found: dict[str, object] = dict.fromkeys(
      ("ratio", "sharpening", "fall", "rises", "decreased", "steps"), None
    )
    found["reached"] = None if reached.size == 0 else bool(reached[0] > 0)  # None: censored
    if reached.size:
      found["steps"] = int(steps[reached[0]])
    if reached.size and reached[0] > 0:
      first = reached[0]
      found["ratio"] = float(np.median(values[first:] / limit))
      loss_steps, loss_values = np.asarray(losses_at[member])
      after = loss_values[loss_steps >= steps[first]]
      found["fall"] = float(after[0] / after[-1])
      found["decreased"] = bool(after[-1] < after[0])
      found["rises"] = int(np.sum(np.diff(after) > 1e-4 * after[:-1]))  # not float32 jitter
      if first > 1:  # a measurement between the start and T: the rise below T is known
        found["sharpening"] = float(values[first - 1] / values[0])
    for name, value in found.items():
      measures.setdefault(name, {})[seed] = value
  parts: dict[str, dict[str, object]] = {}  # per setting, each part of the claims
  for setting, measures in per_seed.items():
    assert list(measures["ratio"]) == seeds  # every seed of every setting ran
    is_adam = setting.startswith("adam")
    prefix = "adam_preconditioned" if is_adam else "lambda_max"
    dof = len(seeds) - 1
    ratios = list(measures["ratio"].values())
    distances = [None if r is None else abs(r - 1) for r in ratios]
    checks = {
      f"{prefix}_over_threshold": seed_mean(ratios),
      f"{prefix}_distance_from_threshold": seed_mean(distances),
      "loss_increases_after_threshold": seed_mean(list(measures["rises"].values())),
      "loss_fall_after_threshold": seed_geometric_mean(list(measures["fall"].values())),
    }
    if not is_adam:
      checks["progressive_sharpening"] = seed_geometric_mean(list(measures["sharpening"].values()))
    for key, (mean, error) in checks.items():
      if mean is None:  # a seed censored or undecided: no mean over the others
        assert summary[key][setting] is None and summary[f"{key}_se"][setting] is None, key
        assert summary[f"{key}_dof"][setting] is None, (key, setting)
        continue
      assert summary[key][setting] == pytest.approx(mean, rel=1e-9), (key, setting)
      assert summary[f"{key}_se"][setting] == pytest.approx(error, rel=1e-9, abs=1e-12), key
      assert summary[f"{key}_dof"][setting] == dof, (key, setting)
    decreased = list(measures["decreased"].values())
    assert summary["loss_decreased"][setting] == (
      None if None in decreased else pytest.approx(np.mean(decreased))
    )
    assert summary[f"{prefix}_over_threshold_by_seed"][setting] == pytest.approx(
      {str(k): v for k, v in measures["ratio"].items()}
    )
    censored = [s for s, r in measures["reached"].items() if r is None]
    at_start = [s for s, r in measures["reached"].items() if r is False]
    assert summary["censored_seeds"][setting] == censored
    assert summary["at_threshold_from_start"][setting] == at_start
    rises = list(measures["rises"].values())
    rose = None if None in rises else float(np.mean([r > 0 for r in rises]))
    assert summary["loss_rose_after_threshold"][setting] == rose
    parts[setting] = {
      "distance": checks[f"{prefix}_distance_from_threshold"],
      "fall": checks["loss_fall_after_threshold"],
      "rose": None if rose is None else rose > 0.5,  # the loss rose after T in most seeds
    }
    if is_adam:
      continue
    reached = sum(r is True for r in measures["reached"].values()) / len(seeds)
    at_most = (len(seeds) - len(at_start)) / len(seeds)  # every censored seed reaching T later
    fraction = reached if reached > 0.5 or at_most <= 0.5 else None
    assert summary["reached_threshold_during_training"][setting] == fraction
    steps_mean = seed_mean(list(measures["steps"].values()))[0]
    assert summary["steps_to_threshold"][setting] == (
      None if steps_mean is None else pytest.approx(steps_mean)
    )
    parts[setting]["reached"] = None if fraction is None else fraction > 0.5
    parts[setting]["sharpening"] = checks["progressive_sharpening"]

  def chosen(prefixes):
    return [name for name in parts if name.startswith(prefixes)]

  def tests(part, prefixes, ratio=False):
    """How many of the settings can decide `part`: Bonferroni's count (a mean with a finite,
    nonzero error; a fraction of seeds that is not None)."""
    if part in ("reached", "rose"):
      return sum(parts[name][part] is not None for name in chosen(prefixes))
    return deciding_settings(
      {name: parts[name][part][0] for name in chosen(prefixes)},
      {name: parts[name][part][1] for name in chosen(prefixes)},
      dof,
      ratio=ratio,
      at_least=0,
    )

  def settings_holding(part, prefixes, threshold=None, sign=1, ratio=False, count=None):
    """Per setting whose name starts with `prefixes`, whether `part` holds: one of them failing
    beyond Bonferroni's margin for `count` settings (default: those of this part that decide)."""
    if part in ("reached", "rose"):
      return [parts[name][part] for name in chosen(prefixes)]
    count = max(1, tests(part, prefixes, ratio) if count is None else count)
    return [
      holds_beyond_margin(
        *parts[name][part], dof, threshold, sign=sign, ratio=ratio, settings=count
      )
      for name in chosen(prefixes)
    ]

  def every(*holds):  # one failure fails, else one undecided (or nothing judged) is undecided
    if False in holds:
      return False
    return None if None in holds or not holds else True

  squared, adam, cross = "gd_mse@", "adam@", "gd_cross_entropy@"
  loss_count = tests("fall", (squared, adam), ratio=True) + tests("rose", (squared, adam))
  cross_count = (
    tests("reached", cross)
    + tests("distance", cross)
    + tests("sharpening", cross, ratio=True)
    + tests("fall", cross, ratio=True)
    + tests("rose", cross)
  )
  expected = {
    "lambda_max_over_threshold": every(*settings_holding("distance", squared, 0.1, -1)),
    "steps_to_threshold": every(*settings_holding("reached", squared)),
    "progressive_sharpening": every(*settings_holding("sharpening", squared, 1.0, ratio=True)),
    "adam_preconditioned_over_threshold": every(*settings_holding("distance", adam, 0.1, -1)),
    "loss_decreased": every(  # Bonferroni over the settings of both parts
      every(*settings_holding("fall", (squared, adam), 1.0, ratio=True, count=loss_count)),
      every(*settings_holding("rose", (squared, adam))),
    ),
    "cross_entropy_edge_of_stability": every(
      every(*settings_holding("reached", cross)),
      every(*settings_holding("distance", cross, 0.1, -1, count=cross_count)),
      every(*settings_holding("sharpening", cross, 1.0, ratio=True, count=cross_count)),
      every(*settings_holding("fall", cross, 1.0, ratio=True, count=cross_count)),
      every(*settings_holding("rose", cross)),
    ),
  }
  assert {name.split("@")[0] for name in parts} == {"gd_mse", "gd_cross_entropy", "adam"}
  assert summary["verdicts"] == {claim: experiment.verdict(h) for claim, h in expected.items()}


@pytest.mark.slow  # runs the quick config end to end
def test_figures_and_monitor_history_are_written(finished_run):
  for method in ("gd_mse", "gd_cross_entropy", "adam"):
    assert (finished_run / f"edge_of_stability_{method}.png").stat().st_size > 0
  assert cli.main(["spectrum", str(finished_run), "--curvature"]) == 0
  assert (finished_run / "curvature-history.png").stat().st_size > 0


def test_bad_config_is_refused(tmp_path, capsys):
  out = tmp_path / "x"
  code = cli.main(["run", str(QUICK), "--out", str(out), "--set", "data.num_examples=5000"])
  assert code == 2
  assert "data.num_examples" in capsys.readouterr().err
  assert not out.exists()


def test_a_member_at_the_threshold_from_the_start_leaves_its_claims_undecided():
  """λ at 0.9 T or above at step 0 did not rise to T: only `steps_to_threshold` (0) is said;
  the same curve shifted to start below T gives every measure, computed by hand. Sharpening is
  λ before T over λ at step 0 (λ at T over it was > 1 by construction), None with nothing
  measured in between."""
  edge_measures = sys.modules[type(registry.load("edge_of_stability")).__module__].edge_measures
  steps = [0, 10, 20, 30, 40]
  losses = ([0, 10, 20, 30, 40], [1.0, 0.8, 0.9, 0.5, 0.4])
  at_start = edge_measures((steps, [0.95, 1.0, 1.02, 0.99, 1.01]), losses, 1.0)
  assert at_start["steps_to_threshold"] == 0
  assert at_start["max_sharpness_over_threshold"] == pytest.approx(1.02)
  for name in ("sharpness_over_threshold", "progressive_sharpening", "loss_decreased"):
    assert at_start[name] is None
  rising = edge_measures((steps, [0.5, 0.7, 0.95, 0.99, 1.01]), losses, 1.0)
  assert rising["steps_to_threshold"] == 20
  assert rising["sharpness_over_threshold"] == pytest.approx(np.median([0.95, 0.99, 1.01]))
  assert rising["progressive_sharpening"] == pytest.approx(0.7 / 0.5)  # before T, not at it
  assert rising["loss_decreased"] is True and rising["loss_increases_after_threshold"] == 0
  assert rising["lambda_at_start"] == 0.5 and rising["lambda_before_threshold"] == 0.7
  assert rising["loss_at_threshold"] == 0.9 and rising["loss_at_end"] == 0.4  # from step 20 on
  assert rising["loss_fall_after_threshold"] == pytest.approx(0.9 / 0.4)
  # a rise is one of more than 1e-4 of the loss: 0.5 → 0.50004 is float32 jitter, 0.5 → 0.6 not
  jitter = ([0, 10, 20, 30, 40], [1.0, 0.8, 0.5, 0.50004, 0.4])
  assert (
    edge_measures((steps, [0.5, 0.7, 0.95, 0.99, 1.01]), jitter, 1.0)[
      "loss_increases_after_threshold"
    ]
    == 0
  )
  bump = ([0, 10, 20, 30, 40], [1.0, 0.8, 0.5, 0.6, 0.4])
  assert (
    edge_measures((steps, [0.5, 0.7, 0.95, 0.99, 1.01]), bump, 1.0)[
      "loss_increases_after_threshold"
    ]
    == 1
  )
  assert at_start["lambda_at_start"] == 0.95 and at_start["loss_fall_after_threshold"] is None
  flat = edge_measures((steps, [0.5, 0.45, 0.95, 0.99, 1.01]), losses, 1.0)
  assert flat["progressive_sharpening"] == pytest.approx(0.9)  # jumped to T: not a rise
  jumped = edge_measures((steps, [0.5, 0.95, 1.02, 0.99, 1.01]), losses, 1.0)
  assert jumped["steps_to_threshold"] == 10 and jumped["progressive_sharpening"] is None


def test_claims_over_seeds_and_censored_seeds_by_hand():
  """`summarize` on made-up members of three seeds: the means, errors and degrees of freedom are
  those written out here, a setting with a censored seed has no mean, and the fraction reaching T
  stands with censored seeds only where they cannot change it."""
  found = registry.load("edge_of_stability")
  module = sys.modules[type(found).__module__]
  steps = [0, 10, 20, 30, 40]
  loss = ([0, 10, 20, 30, 40], [1.0, 0.8, 0.9, 0.5, 0.4])
  curves = {  # (setting, seed) -> λ at the steps, with T = 1
    ("gd_mse@2", 0): [0.5, 0.7, 0.95, 0.99, 1.01],
    ("gd_mse@2", 1): [0.4, 0.6, 0.92, 1.04, 1.0],
    ("gd_mse@2", 2): [0.5, 0.8, 0.98, 1.02, 1.03],
    ("gd_mse@1", 0): [0.5, 0.7, 0.95, 0.99, 1.01],
    ("gd_mse@1", 1): [0.5, 0.6, 0.7, 0.8, 0.85],  # censored: never 0.9 T
    ("gd_mse@1", 2): [0.5, 0.6, 0.7, 0.8, 0.85],
    ("gd_cross_entropy@1", 0): [0.5, 0.7, 0.95, 0.99, 1.01],
    ("gd_cross_entropy@1", 1): [0.95, 0.9, 0.5, 0.4, 0.3],  # at T from the start
    ("gd_cross_entropy@1", 2): [0.95, 0.9, 0.5, 0.4, 0.3],
  }
  table = [
    {
      "member": f"{setting} seed {seed}",
      "setting": setting,
      "seed": seed,
      "method": setting.split("@")[0],
      "threshold": 1.0,
      "diverged": False,
      **module.edge_measures((steps, values), loss, 1.0),
    }
    for (setting, seed), values in curves.items()
  ]
  config = ml_collections.ConfigDict({"seeds": [0, 1, 2], "data": {"num_examples": 5}})
  summary = found.summarize(config, experiment.Results(table, []))
  medians = [np.median(v) for v in ([0.95, 0.99, 1.01], [0.92, 1.04, 1.0], [0.98, 1.02, 1.03])]
  distances = [abs(m - 1) for m in medians]
  assert summary["lambda_max_over_threshold"]["gd_mse@2"] == pytest.approx(np.mean(medians))
  assert summary["lambda_max_distance_from_threshold"]["gd_mse@2"] == pytest.approx(
    np.mean(distances)
  )
  assert summary["lambda_max_distance_from_threshold_se"]["gd_mse@2"] == pytest.approx(
    np.std(distances, ddof=1) / np.sqrt(3)
  )
  assert summary["lambda_max_distance_from_threshold_dof"]["gd_mse@2"] == 2
  logs = np.log([0.7 / 0.5, 0.6 / 0.4, 0.8 / 0.5])
  assert summary["progressive_sharpening"]["gd_mse@2"] == pytest.approx(np.exp(logs.mean()))
  assert summary["progressive_sharpening_se"]["gd_mse@2"] == pytest.approx(
    np.exp(logs.mean()) * np.std(logs, ddof=1) / np.sqrt(3)
  )
  for key in ("lambda_max_over_threshold", "progressive_sharpening", "steps_to_threshold"):
    assert summary[key]["gd_mse@1"] is None and summary[f"{key}_se"]["gd_mse@1"] is None
  for key in ("lambda_max_over_threshold", "progressive_sharpening"):
    assert summary[key]["gd_cross_entropy@1"] is None
  assert summary["steps_to_threshold"]["gd_cross_entropy@1"] == pytest.approx(20 / 3)  # 20, 0, 0
  assert summary["censored_seeds"] == {"gd_mse@2": [], "gd_mse@1": [1, 2], "gd_cross_entropy@1": []}
  assert summary["at_threshold_from_start"]["gd_cross_entropy@1"] == [1, 2]
  # reached by all; by one, the other two censored (could reach later: undecided); by one, the
  # other two at T from the start (cannot: one third stands)
  assert summary["reached_threshold_during_training"] == {
    "gd_mse@2": 1.0,
    "gd_mse@1": None,
    "gd_cross_entropy@1": pytest.approx(1 / 3),
  }
  distance, error = np.mean(distances), np.std(distances, ddof=1) / np.sqrt(3)
  assert (0.1 - distance) > experiment.margin(2) * error  # so gd_mse@2 holds, the rest undecided
  assert found.verdicts(summary)["lambda_max_over_threshold"] == "inconclusive"
  # the squared error's: one setting reached by all, one undecided; the cross-entropy's one third
  # fails its own claim
  assert found.verdicts(summary)["steps_to_threshold"] == "inconclusive"
  assert found.verdicts(summary)["cross_entropy_edge_of_stability"] == "not reproduced"
