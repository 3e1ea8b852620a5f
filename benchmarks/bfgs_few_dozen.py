"""Iterations of SciPy's BFGS, L-BFGS-B and CG to reach J*(1 + 1e-4) on `optimizer_comparison`'s
logistic regression, in float64, from θ = 0: an independent reading of that experiment's claim
that Newton and (L-)BFGS reach the optimum in "a few dozen" iterations (§8.6.1, §8.6.3).

The objective is the experiment's own, `logistic_regression_objective` (digits, test fraction
0.25, split seed 0; L2 penalty α = 1e-3 on weights and biases), and J* its float64 optimum,
`logistic_regression_optimum`.

    python benchmarks/bfgs_few_dozen.py
"""

import sys

import numpy as np
import scipy.optimize

from jaxopt_study import data as data_lib
from jaxopt_study import registry

ALPHA, RTOL, MAX_ITER = 1e-3, 1e-4, 200


def main() -> None:
  module = sys.modules[type(registry.load("optimizer_comparison")).__module__]
  data = data_lib.load_digits(0.25, 0)
  optimum = module.logistic_regression_optimum(data, ALPHA)
  objective, size = module.logistic_regression_objective(data, ALPHA)
  print(f"J* = {optimum:.10f}; iterations to J*(1 + {RTOL:g}) from θ = 0")
  print("method    iterations  relative gap at iteration 40")
  for method in ("BFGS", "L-BFGS-B", "CG"):
    values = []
    scipy.optimize.minimize(
      objective,
      np.zeros(size),
      jac=True,
      method=method,
      callback=lambda theta, values=values: values.append(objective(theta)[0]),
      options={"maxiter": MAX_ITER},
    )
    reached = next((i + 1 for i, v in enumerate(values) if v <= optimum * (1 + RTOL)), None)
    gap = (values[min(39, len(values) - 1)] - optimum) / optimum
    print(f"{method:9} {reached!s:>10}  {gap:.2e}")


if __name__ == "__main__":
  main()
