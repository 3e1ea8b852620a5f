"""Tests of hessian/parallel.py: the chunked Hessian and the probes spread over 8 devices.

The device count is fixed when JAX starts, so the 8-device run is a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``; its results are compared with the same
computation in this process, on one CPU device.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_study.hessian import (
  dense,
  density,
  hessian_matrix,
  parallel,
  products,
)


def loss(params, x, y):
  h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
  return 0.5 * jnp.mean(jnp.sum((h @ params["w2"] - y) ** 2, axis=-1))


def compute() -> dict:
  """Hessian (two unequal batches, chunks of 6 rows) and SLQ density of a tanh MLP."""
  rng = np.random.default_rng(0)
  params = {
    "w1": rng.normal(size=(3, 5)),
    "b1": rng.normal(size=(5,)),
    "w2": rng.normal(size=(5, 2)),
  }
  params = jax.tree.map(jnp.asarray, params)
  x, y = jnp.asarray(rng.normal(size=(40, 3))), jnp.asarray(rng.normal(size=(40, 2)))
  batches = [(x[:15], y[:15]), (x[15:], y[15:])]
  key = jax.random.key(7)
  problem = products.prepare(loss, params, (), batches, None, "test")
  shared = parallel.replicate((problem.flat_params, problem.fixed, problem.data))
  rows = dense._basis_hvps_jit(problem.objective, *shared, jnp.int32(0), 8)  # noqa: SLF001
  return {
    "devices": parallel.num_devices(),
    "row_devices": len(rows.sharding.device_set),
    "hessian": np.asarray(hessian_matrix(loss, params, batches=batches, chunk_size=6)).tolist(),
    "density": density(loss, params, x, y, num_probes=5, num_steps=12, key=key).density.tolist(),
  }


@pytest.mark.slow  # several processes
def test_eight_devices_give_the_one_device_results(x64):
  env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  env["PYTHONPATH"] = str(pathlib.Path(__file__).parent)
  script = "import json, test_hessian_parallel as t; print(json.dumps(t.compute()))"
  eight_devices = subprocess.Popen(  # runs while this process computes on one device
    [sys.executable, "-c", script],
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  one = compute()
  stdout, stderr = eight_devices.communicate(timeout=300)
  assert eight_devices.returncode == 0, stderr
  eight = json.loads(stdout.strip().splitlines()[-1])
  assert eight["devices"] == 8 and eight["row_devices"] == 8  # the chunk's rows were spread
  assert one["devices"] == 1 and one["row_devices"] == 1
  np.testing.assert_allclose(eight["hessian"], one["hessian"], rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(eight["density"], one["density"], rtol=1e-9, atol=1e-12)
