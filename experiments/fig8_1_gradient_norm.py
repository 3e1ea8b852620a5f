"""§8.2.1 "Ill-conditioning", Fig. 8.1: the gradient norm during training, with gᵀg and gᵀHg.

A gradient step −εg changes the loss, to second order, by −ε gᵀg + ½ ε² gᵀHg (eq. 4.9, recalled
in §8.2.1). Fig. 8.1 of Goodfellow et al. (2016) shows, for a convolutional network on a detection
task, the gradient norm *growing* over training while the classification error falls: learning
goes on because gᵀHg grows as well, the step is limited by curvature and not by a vanishing
gradient.

Here an MLP on scikit-learn's digits is trained by SGD (Algorithm 8.1) at a constant rate with
`train.make_train_loop`, scanned over epochs as one compiled program; after every epoch the
full-batch gradient norm ‖g‖, gᵀg and gᵀHg (`hessian.curvature_along_gradient`, one
Hessian-vector product) and the held-out 0-1 error are recorded.

Claims (`summary.json`): `grad_norm_growth` (‖g‖ after the last epoch / ‖g‖ at the start; > 1 in
the book), `error_drop` (held-out error at the start − at the end), `gHg_growth` (gᵀHg at the end /
at the start), with `peak_grad_norm_growth` and its epoch, and `curvature_term_ratio` (½ ε gᵀHg /
gᵀg at the start and the end: above 1 the second-order term outweighs the first-order decrease).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, optim, report, train
from jaxopt_study.lab import landscape
from jaxopt_study.results import ExperimentResults, RunDir, member_arrays, read_csv

TITLE = "Chapter 8.2.1, Fig. 8.1: the gradient norm grows while the error falls?"
SECTION = "8.2.1"
DESCRIPTION = (
  "An MLP on scikit-learn's digits trained by SGD at a constant learning rate; after every "
  "epoch the full-batch gradient norm ‖g‖, gᵀg and gᵀHg (one Hessian-vector product) and the "
  "held-out 0-1 error. The book's Fig. 8.1 (a convolutional net on a detection task that it never "
  "fits) shows ‖g‖ growing throughout training. On digits an MLP fits the training set and the "
  "cross-entropy gradient eventually vanishes, so ‖g‖ can only grow in a window. Here the net "
  "starts from small weights (init_scale 0.1, near the saddle at the origin, §8.2.3) where ‖g‖ "
  "is small: over the quick config's 20 epochs ‖g‖ grows about 6× and gᵀHg about 300× while the "
  "held-out error falls from 0.94 to 0.12, as in the book. It does not last: in the full config "
  "(100 epochs, width 64) ‖g‖ peaks at about 14× its start near epoch 8 and ends at 0.4× as the "
  "net fits the data (held-out error 0.05), and gᵀHg starts negative there (θ₀ lies on a "
  "direction of negative curvature of the saddle), so its growth ratio is negative. From the "
  "usual Glorot scale (init_scale 1) the initial ‖g‖ is the largest of the run (0.004× at the "
  "end of 100 epochs): Fig. 8.1's growth is not what a digits MLP does from a standard start."
)
PUBLISHED = {
  "grad_norm_growth": "> 1: ‖g‖ grows over training (Goodfellow et al. 2016, Fig. 8.1)",
  "error_drop": "> 0: the classification error falls meanwhile (Fig. 8.1, right)",
  "gHg_growth": "> 10: 'gᵀHg grows by more than an order of magnitude' while ‖g‖ does not shrink "
  "(Goodfellow et al. 2016, §8.2.1)",
}
MEMBER = "sgd"


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before any compilation."""
  landscape.check_digits_config(config)
  landscape.require_positive_int(config, "epochs")
  if config.optimizer.name not in optim.OPTIMIZERS:
    raise ValueError(
      f"optimizer.name={config.optimizer.name!r}: one of {', '.join(sorted(optim.OPTIMIZERS))}"
    )
  if not isinstance(config.learning_rate, float) or not config.learning_rate > 0:
    raise ValueError(f"learning_rate={config.learning_rate!r}: must be a float > 0")
  _optimizer(config)


def _optimizer(config: ml_collections.ConfigDict):
  hyper = config.optimizer.to_dict()
  name = hyper.pop("name")
  try:
    return optim.OPTIMIZERS[name](learning_rate=config.learning_rate, **hyper)
  except (TypeError, ValueError) as error:
    raise ValueError(f"optimizer: {error}") from error


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Trains epoch by epoch, measuring ‖g‖, gᵀg, gᵀHg and the errors after each epoch."""
  check(config)
  member = run_dir.load_member(MEMBER) if run_dir else None
  if member is None:
    member, arrays = _train(config)
    if run_dir:
      run_dir.save_member(MEMBER, member, arrays)
  else:
    arrays = run_dir.load_member_arrays(MEMBER)
  per_epoch = member["per_epoch"]
  history = [
    {"member": MEMBER, "step": row["epoch"], "metric": name, "value": value}
    for row in per_epoch
    for name, value in row.items()
    if name != "epoch"
  ]
  summary = _summarize(per_epoch, config.learning_rate)
  table = [{"member": MEMBER, "learning_rate": config.learning_rate, **per_epoch[-1]}]
  return ExperimentResults(table, history, summary, arrays)


def _train(config: ml_collections.ConfigDict) -> tuple[dict, dict]:
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
  model = landscape.build_digits_mlp(config, config.seed)
  loop = train.make_train_loop(
    model, _optimizer(config), batch_size=config.batch_size, sampling=config.sampling
  )
  steps_per_epoch = data.x_train.shape[0] // config.batch_size
  key = jax.random.key(config.seed)
  loss_fn = landscape.full_batch_loss(model)

  def epoch(state: train.TrainState, num_steps: jax.Array):
    # `num_steps` steps, the loop's own full-batch evaluation, then gᵀg and gᵀHg at θ.
    state, metrics = loop.run(state, data, key, None, num_steps[None])
    curvature = hessian.curvature_along_gradient(loss_fn, state.params, data.x_train, data.y_train)
    return state, {
      **{name: value[0] for name, value in metrics.items()},
      "g_dot_g": curvature.g_dot_g,
      "g_hess_g": curvature.g_hess_g,
    }

  lengths = np.full(config.epochs + 1, steps_per_epoch)
  lengths[0] = 0  # the first record is at the initial point
  state, records = jax.jit(lambda state: jax.lax.scan(epoch, state, jnp.asarray(lengths)))(
    loop.init(model.params, model.model_state)
  )
  records = {name: np.asarray(values) for name, values in records.items()}
  per_epoch = [
    {"epoch": i, **{name: float(values[i]) for name, values in records.items()}}
    for i in range(config.epochs + 1)
  ]
  return {"per_epoch": per_epoch}, member_arrays(MEMBER, state.params, state.model_state)


def _summarize(per_epoch: list[dict], learning_rate: float) -> dict:
  first, last = per_epoch[0], per_epoch[-1]
  norms = np.asarray([row["grad_norm"] for row in per_epoch])
  peak = int(np.argmax(norms))

  def curvature_term_ratio(row: dict) -> float:  # ½ ε² gᵀHg / (ε gᵀg), the two terms of eq. 4.9
    return 0.5 * learning_rate * row["g_hess_g"] / row["g_dot_g"]

  return {
    "grad_norm_growth": last["grad_norm"] / first["grad_norm"],
    "error_drop": first["test_error"] - last["test_error"],
    "gHg_growth": last["g_hess_g"] / first["g_hess_g"],
    "gTg_growth": last["g_dot_g"] / first["g_dot_g"],
    "peak_grad_norm_growth": float(norms[peak] / norms[0]),
    "peak_epoch": peak,
    "curvature_term_ratio": {
      "start": curvature_term_ratio(first),
      "end": curvature_term_ratio(last),
    },
    "initial_g_hess_g": first["g_hess_g"],
    "final_g_hess_g": last["g_hess_g"],
    "initial_grad_norm": first["grad_norm"],
    "final_grad_norm": last["grad_norm"],
    "initial_test_error": first["test_error"],
    "final_test_error": last["test_error"],
    "final_train_loss": last["train_loss"],
  }


def plot(out_dir: Path) -> list[Path]:
  """Fig. 8.1's two panels (‖g‖ and the held-out error per epoch) and gᵀg, gᵀHg, from history."""
  curves: dict[str, tuple[list, list]] = {}
  for row in read_csv(out_dir / "history.csv"):
    epochs, values = curves.setdefault(row["metric"], ([], []))
    epochs.append(row["step"])
    values.append(row["value"])
  return [
    report.line_plot(
      {"‖g‖ (full batch)": curves["grad_norm"]},
      out_dir / "grad_norm.png",
      title="gradient norm per epoch (Fig. 8.1, left)",
      xlabel="epoch",
      ylabel="‖∇L‖",
      logy=True,
    ),
    report.line_plot(
      {"held-out": curves["test_error"], "training": curves["train_error"]},
      out_dir / "error.png",
      title="0-1 error per epoch (Fig. 8.1, right)",
      xlabel="epoch",
      ylabel="0-1 error",
    ),
    report.line_plot(
      {"gᵀg": curves["g_dot_g"], "gᵀHg": curves["g_hess_g"]},
      out_dir / "curvature.png",
      title="first- and second-order terms along the gradient (§8.2.1)",
      xlabel="epoch",
      ylabel="value",
      logy=True,
    ),
  ]
