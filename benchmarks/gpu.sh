#!/usr/bin/env bash
# The GPU run of issue 19: install, check that JAX sees the GPU, then the sweep, Hessian and
# second-order benchmarks, each table written to $OUT. Budget: under 8 minutes on one H100.
#
#   OUT=/some/folder bash benchmarks/gpu.sh    # from the repository root, on the GPU machine
#   bash benchmarks/gpu.sh --dry-run            # prints the plan and the commands; runs nothing
#   bash benchmarks/gpu.sh --smoke              # tiny sizes, no GPU needed: checks the wiring
#
# Installing. The project's `cuda` extra is `jax[cuda12]` (pyproject.toml). The script installs
# it (`pip install -e ".[cuda]"`) only where JAX does not already see a GPU and pip can reach
# PyPI. The machines lent through the device tool reach no package registry, and their image
# already holds a CUDA JAX (jax 0.11.2 with the CUDA 13 plugin), flax, optax, chex, scipy,
# scikit-learn, matplotlib, orbax-checkpoint, threadpoolctl, tqdm and torch, but not
# ml_collections. Carry that wheel (pure Python) in .whl, which the script installs first:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl ml_collections==1.1.0
#   # then run with carry=[".whl"]
#
# The package itself is used from this tree (PYTHONPATH), not installed.
#
# Order, most important first, each step under its own time limit and all under a deadline of
# 7.5 minutes: the exact spectrum and classification of a 50k-parameter MLP (claim: < 3 min);
# the sweep against its members one at a time at K = 12 and 192 (claim: >= 20x at K = 192);
# the in-loop curvature monitor of a 12-member sweep against jitted steps + eigsh every 10 steps
# (issue 16's target: >= 5x end to end);
# the Hessian table (ours, torch, naive jax.hessian, Lanczos) for N = 4960, the size of the CPU
# claim (note: benchmarks/hessian.py runs its torch case on the CPU, so that column is CPU
# PyTorch); the quasi-Newton and Newton benchmark on its logistic regression (650 parameters;
# the evaluation counts do not depend on the device, and its other problems are tiny); last, with
# the time left, the fast tests of the dense Hessian, the curvature monitor and the sweep on CUDA
# (written for the CPU, so a failure there is a finding to read, not necessarily a bug).
# A step that fails or runs out of time is recorded, the others still run, and the script exits
# non-zero.

set -uo pipefail

MODE=full
case "${1:-}" in
  --dry-run) MODE=dry ;;
  --smoke) MODE=smoke ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu.sh [--dry-run | --smoke]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-python3}"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DEADLINE=$(( $(date +%s) + 450 ))
FAILED=()

say() { echo "[gpu.sh $(date +%T)] $*" | tee -a "$OUT/gpu_log.txt" >&2; }

# run NAME LIMIT_SECONDS COMMAND...: stdout to $OUT/NAME.md, stderr appended to $OUT/stderr.txt
# (the device tool brings back at most 8 files).
run() {
  local name=$1 limit=$2
  shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  (( limit > left )) && limit=$left
  if [[ $MODE == dry ]]; then
    echo "timeout ${limit}s $* > $OUT/$name.md"
    return
  fi
  if (( limit < 10 )); then
    say "SKIPPED $name: the 7.5-minute deadline is reached"
    FAILED+=("$name (skipped)")
    return
  fi
  say "start $name (limit ${limit}s): $*"
  local began=$(date +%s)
  echo "=== $name: $*" >> "$OUT/stderr.txt"
  timeout "$limit" "$@" > "$OUT/$name.md" 2> >(tee -a "$OUT/stderr.txt" | tail -n 20 > "/tmp/gpu-sh-$name.err")
  local status=$?
  say "end $name: exit $status after $(( $(date +%s) - began ))s"
  if (( status != 0 )); then
    FAILED+=("$name (exit $status$( (( status == 124 )) && echo ', timed out'))")
    sleep 1  # the tee above finishes writing
    cat "/tmp/gpu-sh-$name.err" >&2
  fi
}

if [[ $MODE == smoke ]]; then
  SPECTRUM_WIDTH=8 SWEEP=(--members 12 --steps 20 --eval-every 10 --rounds 1)
  HESSIAN=(--widths 8 --rounds 1)
  SECOND=(--rounds 1 --max-steps 200 --problems rosenbrock-2)
  CURVATURE=(--steps 20 --every 10 --rounds 1)
  CUDA_TESTS=(tests/test_hessian_dense.py -k eigensolver)
else
  SPECTRUM_WIDTH=666  # N = 75 w + 10 = 49960 parameters
  SWEEP=(--members 12 192 --steps 500 200 --rounds 3 1)
  HESSIAN=(--widths 66 --rounds 1)
  SECOND=(--rounds 1 --max-steps 5000 --problems logreg)
  CURVATURE=(--steps 2000 --every 10 --rounds 1)
  CUDA_TESTS=(tests/test_hessian_dense.py tests/test_hessian_tracking.py tests/test_sweep.py)
fi

# ---------------------------------------------------------------------------- install and check
if [[ $MODE != dry ]]; then
  if compgen -G ".whl/*.whl" > /dev/null; then
    say "installing the carried wheels: $(ls .whl | tr '\n' ' ')"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/gpu-sh-site .whl/*.whl || { say "FAILED to install .whl/*.whl"; exit 3; }
    export PYTHONPATH="$PYTHONPATH:/tmp/gpu-sh-site"
  fi
  sees_gpu() { "$PY" -c 'import jax, sys; sys.exit(jax.devices()[0].platform != "gpu")' 2>/dev/null; }
  if [[ $MODE == full ]] && ! sees_gpu; then
    if timeout 20 "$PY" -m pip download -q --no-deps -d /tmp/gpu-sh-probe ml_collections==1.1.0 \
      > /dev/null 2>&1; then
      say "JAX sees no GPU; pip reaches PyPI: installing the cuda extra (pip install -e .[cuda])"
      "$PY" -m pip install -q -e ".[cuda]" || { say "FAILED: pip install -e .[cuda]"; exit 3; }
    else
      say "JAX sees no GPU and pip cannot reach PyPI from this machine: the cuda extra cannot be"
      say "installed here. Carry wheels (see the top of this script) or use an image with CUDA JAX."
    fi
  fi
  missing=$("$PY" - << 'EOF'
import importlib
names = ["jax", "optax", "flax", "chex", "ml_collections", "sklearn", "scipy", "matplotlib",
         "orbax.checkpoint", "threadpoolctl", "tqdm", "jaxopt_study"]
bad = []
for name in names:
  try:
    importlib.import_module(name)
  except Exception as error:  # noqa: BLE001  (report every failure, whatever its kind)
    bad.append(f"{name} ({type(error).__name__}: {error})")
print("; ".join(bad))
EOF
)
  if [[ -n $missing ]]; then
    say "FAILED: cannot import: $missing"
    say "Carry the missing wheels in .whl (see the top of this script)."
    exit 3
  fi
  "$PY" -c 'import jax, optax, flax, scipy; print("jax", jax.__version__, "optax", optax.__version__,
"flax", flax.__version__, "scipy", scipy.__version__); print("devices", jax.devices())' \
    | tee -a "$OUT/gpu_log.txt"
  command -v nvidia-smi > /dev/null && nvidia-smi -L | tee -a "$OUT/gpu_log.txt"
  git rev-parse HEAD 2> /dev/null | sed 's/^/commit /' | tee -a "$OUT/gpu_log.txt"
  if [[ $MODE == full ]] && ! sees_gpu; then
    say "FAILED: JAX sees no GPU (devices above). Nothing was measured."
    exit 4
  fi
fi

# ---------------------------------------------------------------------------------- benchmarks
run spectrum_50k 240 "$PY" - "$SPECTRUM_WIDTH" << 'EOF'
"""Exact spectrum, then classification reusing its eigenvalues, of the digits MLP of
benchmarks/hessian.py (64 -> w -> 10 tanh, seed 0, 1347 training digits, float32): first calls,
compilation included, as a user meets them."""
import sys
import time

sys.path.insert(0, "benchmarks")
import hessian as hessian_benchmark  # noqa: E402

import jax  # noqa: E402

from jaxopt_study import hessian  # noqa: E402

width = int(sys.argv[1])
model, loss, weights, x, y = hessian_benchmark._problem(width)
start = time.perf_counter()
spectrum = hessian.spectrum(loss, model, x, y)
middle = time.perf_counter()
point = hessian.classify(loss, model, x, y, eigenvalues=spectrum.eigenvalues)
end = time.perf_counter()
print(f"device: {jax.devices()[0].device_kind}")
print("| N | exact spectrum (s) | classify, reusing it (s) | total (s) | kind | λ_min | λ_max |")
print("|---|---|---|---|---|---|---|")
print(
  f"| {spectrum.num_params} | {middle - start:.1f} | {end - middle:.1f} | {end - start:.1f} "
  f"| {point.kind} | {point.lambda_min:.3e} | {point.lambda_max:.3e} |"
)
EOF
run sweep 150 "$PY" benchmarks/sweep.py "${SWEEP[@]}"
run curvature_monitor 100 "$PY" benchmarks/curvature_monitor.py "${CURVATURE[@]}"
run hessian 100 "$PY" benchmarks/hessian.py "${HESSIAN[@]}"
run second_order 100 "$PY" benchmarks/second_order.py "${SECOND[@]}"
run cuda_tests 120 "$PY" -m pytest -q -n 0 -p no:cacheprovider -m "not slow" "${CUDA_TESTS[@]}"

if [[ $MODE == dry ]]; then
  exit 0
fi
if (( ${#FAILED[@]} )); then
  say "done with failures: ${FAILED[*]}; tables in $OUT"
  exit 1
fi
say "done; tables in $OUT: $(ls "$OUT" | tr '\n' ' ')"
