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

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxopt_study import hessian, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results
from jaxopt_study.lab import digits_tasks, landscape
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import history_rows, member_arrays, read_csv

MEMBER = "sgd"


class Fig81GradientNorm(Experiment):
  """SGD on a digits MLP, epoch by epoch: ‖g‖, gᵀg, gᵀHg and the held-out error."""

  NAME = "fig8_1_gradient_norm"
  TITLE = "Chapter 8.2.1, Fig. 8.1: the gradient norm grows while the error falls?"
  SECTION = "8.2.1"
  DESCRIPTION = (
    "An MLP on scikit-learn's digits trained by SGD at a constant learning rate; after every "
    "epoch the full-batch gradient norm ‖g‖, gᵀg and gᵀHg (one Hessian-vector product) and the "
    "held-out 0-1 error. The book's Fig. 8.1 (a convolutional net on a detection task that it "
    "never fits) shows ‖g‖ growing throughout training. On digits an MLP fits the training set "
    "and the cross-entropy gradient eventually vanishes, so ‖g‖ can only grow in a window. Here "
    "the net starts from small weights (init_scale 0.1, near the saddle at the origin, §8.2.3) "
    "where ‖g‖ is small: over the quick config's 20 epochs ‖g‖ grows about 6× and gᵀHg about "
    "300× while the held-out error falls from 0.94 to 0.12, as in the book. It does not last: in "
    "the full config (100 epochs, width 64) ‖g‖ peaks at about 14× its start near epoch 8 and "
    "ends at 0.4× as the net fits the data (held-out error 0.05), and gᵀHg starts negative there "
    "(θ₀ lies on a direction of negative curvature of the saddle), so its growth ratio is "
    "negative. From the usual Glorot scale (init_scale 1) the initial ‖g‖ is the largest of the "
    "run (0.004× at the end of 100 epochs): Fig. 8.1's growth is not what a digits MLP does from "
    "a standard start."
  )
  PUBLISHED = {
    "grad_norm_growth": "> 1: ‖g‖ grows over training (Goodfellow et al. 2016, Fig. 8.1)",
    "error_drop": "> 0: the classification error falls meanwhile (Fig. 8.1, right)",
    "gHg_growth": "> 10: 'gᵀHg grows by more than an order of magnitude' while ‖g‖ does not "
    "shrink (Goodfellow et al. 2016, §8.2.1)",
  }
  FIELDS = {
    "epochs": validate.require_positive_int,
    "learning_rate": validate.require_positive,
    "optimizer.name": functools.partial(validate.require_choice, choices=sorted(optim.OPTIMIZERS)),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    landscape.check_digits_config(config, self.NAME)
    make_optimizer(config)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains epoch by epoch, measuring ‖g‖, gᵀg, gᵀHg and the errors after each epoch."""
    record, arrays = members.get(MEMBER, functools.partial(train_by_epochs, config))
    return Results([record["row"]], record["history"], arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    def curve(metric: str) -> list[float]:
      return history_curves(results.history, metric)[MEMBER][1]

    norms, errors, g_dot_g, g_hess_g = map(
      curve, ("grad_norm", "test_error", "g_dot_g", "g_hess_g")
    )
    peak = int(np.argmax(norms))

    def curvature_term_ratio(at: int) -> float:  # ½ ε² gᵀHg / (ε gᵀg), the two terms of eq. 4.9
      return 0.5 * config.learning_rate * g_hess_g[at] / g_dot_g[at]

    return {
      "grad_norm_growth": norms[-1] / norms[0],
      "error_drop": errors[0] - errors[-1],
      "gHg_growth": g_hess_g[-1] / g_hess_g[0],
      "gTg_growth": g_dot_g[-1] / g_dot_g[0],
      "peak_grad_norm_growth": float(norms[peak] / norms[0]),
      "peak_epoch": peak,
      "curvature_term_ratio": {"start": curvature_term_ratio(0), "end": curvature_term_ratio(-1)},
      "initial_g_hess_g": g_hess_g[0],
      "final_g_hess_g": g_hess_g[-1],
      "initial_grad_norm": norms[0],
      "final_grad_norm": norms[-1],
      "initial_test_error": errors[0],
      "final_test_error": errors[-1],
      "final_train_loss": curve("train_loss")[-1],
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Fig. 8.1's two panels (‖g‖ and the held-out error per epoch) and gᵀg, gᵀHg, from
    history."""
    rows = read_csv(out_dir / "history.csv")
    panels = (  # file, {label: metric}, title, ylabel, logy
      (
        "grad_norm",
        {"‖g‖ (full batch)": "grad_norm"},
        "gradient norm per epoch (Fig. 8.1, left)",
        "‖∇L‖",
        True,
      ),
      (
        "error",
        {"held-out": "test_error", "training": "train_error"},
        "0-1 error per epoch (Fig. 8.1, right)",
        "0-1 error",
        False,
      ),
      (
        "curvature",
        {"gᵀg": "g_dot_g", "gᵀHg": "g_hess_g"},
        "first- and second-order terms along the gradient (§8.2.1)",
        "value",
        True,
      ),
    )
    return [
      report.line_plot(
        {label: history_curves(rows, metric)[MEMBER] for label, metric in lines.items()},
        out_dir / f"{png}.png",
        title=title,
        xlabel="epoch",
        ylabel=ylabel,
        logy=logy,
      )
      for png, lines, title, ylabel, logy in panels
    ]


def make_optimizer(config: ml_collections.ConfigDict):
  """`optim.OPTIMIZERS[config.optimizer.name]` at the config's learning rate and hyperparameters.

  Raises:
    ValueError: a hyperparameter the optimizer refuses or does not take, naming `optimizer`.
  """
  hyper = config.optimizer.to_dict()
  name = hyper.pop("name")
  try:
    return optim.OPTIMIZERS[name](learning_rate=config.learning_rate, **hyper)
  except (TypeError, ValueError) as error:
    raise ValueError(f"fig8_1_gradient_norm: optimizer: {error}") from error


def train_by_epochs(config: ml_collections.ConfigDict) -> tuple[dict, dict]:
  """SGD by `train.make_train_loop`, one scan over epochs: after each epoch the loop's own
  full-batch evaluation, then gᵀg and gᵀHg at θ (the measurements need every epoch's θ, which
  `train.train` does not return)."""
  data = digits_tasks.load(config.data)
  model = digits_tasks.mlp(config.seed, **config.model)
  loop = train.make_train_loop(
    model, make_optimizer(config), batch_size=config.batch_size, sampling=config.sampling
  )
  steps_per_epoch = data.x_train.shape[0] // config.batch_size
  key = jax.random.key(config.seed)
  loss_fn = digits_tasks.nll(model)

  def epoch(state: train.TrainState, num_steps: jax.Array):
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
  last = {name: float(values[-1]) for name, values in records.items()}
  row = {"member": MEMBER, "learning_rate": config.learning_rate, "epoch": config.epochs, **last}
  history = history_rows(MEMBER, {"step": np.arange(config.epochs + 1), **records})
  return {"row": row, "history": history}, member_arrays(MEMBER, state.params, state.model_state)
