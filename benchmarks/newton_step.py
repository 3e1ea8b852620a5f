"""One `optim.newton` step against `hessian.hessian_matrix` of the same loss (issue 13).

A Newton step (eq. 8.28) builds the dense Hessian H, then solves (H + λI) Δθ = −g. Its cost
should be that of `hessian.hessian_matrix` plus the solve (target: step ≤ 1.3 × matrix + solve).
Two problems, float32, the whole training set of scikit-learn's digits (1347 examples):

* cnn: a `Problem`-style user CNN on the 8×8 images (conv 3×3 1 → 6, ReLU, 2×2 average pool,
  linear 96 → 10; N = 1030), softmax cross-entropy;
* mlp: the built-in digits MLP 64 → 32 → 10 (tanh; N = 2410).

Per problem, interleaved rounds of: the jitted Newton update on a fresh state (second call, so
compilation is excluded), `hessian.hessian_matrix` (second call), and the Cholesky solve of an
N × N positive definite system alone. Medians of the rounds.

    python benchmarks/newton_step.py --rounds 3
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxopt_study import data, hessian, optim, problem


class CNN(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 6, kernel_size=(3, 3), rngs=rngs)
    self.out = nnx.Linear(6 * 4 * 4, 10, rngs=rngs)

  def __call__(self, x):
    h = jax.nn.relu(self.conv(x.reshape(-1, 8, 8, 1)))
    h = nnx.avg_pool(h, (2, 2), strides=(2, 2))
    return self.out(h.reshape(h.shape[0], -1))


def nll(model, batch):
  return optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1]).mean()


def problems() -> dict[str, problem.Problem]:
  digits = data.load_digits()
  cnn = problem.Problem(model=CNN, loss=nll, train_data=(digits.x_train, digits.y_train))
  mlp = problem.builtin("mlp", digits, width=32, depth=1, activation="tanh")
  return {"cnn": cnn, "mlp": mlp}


def timed(fn) -> float:
  began = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - began


def measure(name: str, task: problem.Problem, rounds: int) -> dict:
  params, _ = problem.pure(task).initial(0)
  loss_fn = task.params_loss()
  value_fn = lambda p: loss_fn(p, *task.train_data)  # noqa: E731
  tx = optim.newton(damping=1e-3)

  @jax.jit
  def step(params):
    value, grad = jax.value_and_grad(value_fn)(params)
    return tx.update(grad, tx.init(params), params, value=value, grad=grad, value_fn=value_fn)

  num = sum(x.size for x in jax.tree.leaves(params))
  spd = jnp.eye(num) * 2.0 + 0.01
  rhs = jnp.ones(num)
  solve = jax.jit(lambda a, b: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b))
  cases = {
    "newton step": lambda: step(params),
    "hessian_matrix": lambda: hessian.hessian_matrix(loss_fn, params, *task.train_data),
    "solve": lambda: solve(spd, rhs),
  }
  times = {case: [] for case in cases}
  for fn in cases.values():
    timed(fn)  # compile
  for _ in range(rounds):
    for case, fn in cases.items():
      times[case].append(timed(fn))
  medians = {case: statistics.median(values) for case, values in times.items()}
  ratio = medians["newton step"] / (medians["hessian_matrix"] + medians["solve"])
  return {"problem": name, "N": num, **medians, "ratio": ratio}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}")
  print(
    "| problem | N | Newton step (s) | hessian_matrix (s) | solve (s) | step / (matrix + solve) |"
  )
  print("|---|---|---|---|---|---|")
  for name, task in problems().items():
    row = measure(name, task, args.rounds)
    print(
      f"| {row['problem']} | {row['N']} | {row['newton step']:.3f} | "
      f"{row['hessian_matrix']:.3f} | {row['solve']:.4f} | {row['ratio']:.2f} |"
    )


if __name__ == "__main__":
  main()
