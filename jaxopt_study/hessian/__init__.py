"""Hessian analysis: HVPs, the dense Hessian, spectra, spectral densities, critical points.

Every tool takes ``loss_fn(params, *args) -> scalar`` with `params` any pytree of floating arrays
(dict, `nnx.State`, array) or an `nnx.Module` (its `nnx.Param` state differentiated, the rest
fixed, and ``mode="train" | "eval"`` required with BatchNorm), and either one batch as `*args`
or a whole dataset as ``batches=[(x1, y1), ...]`` (the size-weighted mean loss).

* `hvp`: v ↦ H v, forward-over-reverse.
* `hessian_matrix`: the dense (N, N) Hessian from chunked HVPs, refused early if too large.
* `spectrum`: eigenvalues, exact or by Lanczos; `classify`: minimum, maximum, saddle, plateau,
  degenerate or not critical.
* `lanczos`, `ritz`, `density` (stochastic Lanczos quadrature), `hutchinson_trace`.
* `curvature_along_gradient` (gᵀg, gᵀHg, §8.2.1) and `sharpness` (Keskar et al. 2017).
* `count_outliers`, `fraction_near_zero`: a spectrum's outliers and its bulk near zero;
  `class_mean_gram`: the C × C Gram of class means of the logit gradients (Papyan 2019).
* `CurvatureOptions`: the curvature monitor of the training loop and sweeps (`tracking`: λ_max,
  tr H, gᵀHg inside the compiled scan, `train.train(..., curvature_every=k)`).
"""

from jaxopt_study.hessian.critical_points import CriticalPoint, Spectrum, classify, spectrum
from jaxopt_study.hessian.dense import (
  HessianTooLargeError,
  HessianTooSlowError,
  dense_memory_bytes,
  hessian_matrix,
  traced_hessian,
)
from jaxopt_study.hessian.krylov import (
  Density,
  Lanczos,
  Ritz,
  TraceEstimate,
  density,
  hutchinson_trace,
  lanczos,
  ritz,
)
from jaxopt_study.hessian.monitors import (
  CurvatureAlongGradient,
  curvature_along_gradient,
  sharpness,
)
from jaxopt_study.hessian.outliers import (
  ClassMeanGram,
  Outliers,
  class_mean_gram,
  count_outliers,
  fraction_near_zero,
)
from jaxopt_study.hessian.products import hvp
from jaxopt_study.hessian.tracking import CurvatureOptions

__all__ = [
  "ClassMeanGram",
  "CriticalPoint",
  "CurvatureOptions",
  "CurvatureAlongGradient",
  "Density",
  "HessianTooLargeError",
  "HessianTooSlowError",
  "Lanczos",
  "Outliers",
  "Ritz",
  "Spectrum",
  "TraceEstimate",
  "class_mean_gram",
  "classify",
  "count_outliers",
  "curvature_along_gradient",
  "dense_memory_bytes",
  "density",
  "fraction_near_zero",
  "hessian_matrix",
  "traced_hessian",
  "hutchinson_trace",
  "hvp",
  "lanczos",
  "ritz",
  "sharpness",
  "spectrum",
]
