"""Per-unit and per-layer statistics of a fully connected net's parameters, for the lessons on
activations and initialization (`failure_modes`) and on model design (§8.7.5).

They read the `nnx.State` of `models.MLP` (and of models that keep its layout): the hidden
layers' kernels (fan_in, fan_out) and biases under ``params["hidden"][i]``, the output layer
under ``params["output"]``.

* `hidden_layers(params)`: the (kernel, bias) pairs of the hidden layers, in forward order.
* `distinct_units(kernel, bias, rtol)`: how many hidden units differ (symmetry breaking, §8.4).
* `preactivations(params, x, activation)`: each hidden layer's W h + b on a batch.
* `dead_units(params, x, activation)`: units whose pre-activation is ≤ 0 on every example
  (dead ReLUs).
* `same_sign_fraction(kernel_grads)`: the share of units whose incoming weight gradients all share
  one sign (the zig-zag of non-zero-centred inputs).
* `layer_gradient_norms(grads)`: ‖∂L/∂W_l‖ of each linear layer, the output last.
* `backpropagated_norms(params, x, y, activation)`: ‖∂L/∂z_l‖ over a batch, per hidden layer: the
  back-propagated gradients of Glorot & Bengio (2010, §4.2.2).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxopt_study import losses


def hidden_layers(params: nnx.State) -> list[tuple[jax.Array, jax.Array]]:
  """The (kernel (fan_in, fan_out), bias (fan_out,)) of each hidden layer, in forward order."""
  hidden = params["hidden"]
  return [(hidden[i]["kernel"][...], hidden[i]["bias"][...]) for i in sorted(hidden.keys())]


def distinct_units(kernel: np.ndarray, bias: np.ndarray, rtol: float = 1e-6) -> int:
  """The number of distinct hidden units of a layer: unit j is its incoming weights and bias
  (kernel[:, j], bias[j]); two units are the same when they differ by at most `rtol` times the
  largest absolute entry (or exactly, when every entry is 0). Greedy: each unit joins the first
  earlier representative within the tolerance."""
  units = np.concatenate([np.asarray(kernel), np.asarray(bias)[None, :]], axis=0).T
  scale = float(np.max(np.abs(units)))
  tolerance = rtol * scale
  representatives: list[np.ndarray] = []
  for unit in units:
    if not any(np.max(np.abs(unit - r)) <= tolerance for r in representatives):
      representatives.append(unit)
  return len(representatives)


def preactivations(
  params: nnx.State, x: jax.Array, activation: Callable[[jax.Array], jax.Array]
) -> list[jax.Array]:
  """Each hidden layer's pre-activation z = W h + b on the batch x (a plain MLP: no BatchNorm)."""
  outputs, h = [], x
  for kernel, bias in hidden_layers(params):
    z = h @ kernel + bias[None, :]
    outputs.append(z)
    h = activation(z)
  return outputs


def dead_units(
  params: nnx.State, x: jax.Array, activation: Callable[[jax.Array], jax.Array] = jax.nn.relu
) -> list[jax.Array]:
  """Per hidden layer, a boolean per unit: z ≤ 0 on every example of x. A dead ReLU outputs 0
  and passes no gradient to its incoming weights on these examples, so gradient steps on them
  never revive a unit of the first layer (its inputs are the data)."""
  return [jnp.all(z <= 0, axis=0) for z in preactivations(params, x, activation)]


def same_sign_fraction(kernel_grads: jax.Array) -> jax.Array:
  """The share of units (columns of ∂L/∂W, (fan_in, fan_out), over any leading batch axes)
  whose incoming weight gradients are all ≥ 0 or all ≤ 0, exact zeros counting for either sign.

  With inputs h_i > 0 (a sigmoid layer below), ∂L/∂W_ij = h_i δ_j has the sign of δ_j for every
  i, so one example's gradient moves all of a unit's weights the same way: the zig-zag of
  non-zero-centred activations (LeCun et al. 1998, "Efficient BackProp", §4.3)."""
  all_non_negative = jnp.all(kernel_grads >= 0, axis=-2)
  all_non_positive = jnp.all(kernel_grads <= 0, axis=-2)
  return jnp.mean(all_non_negative | all_non_positive)


def layer_gradient_norms(grads: nnx.State) -> list[jax.Array]:
  """‖∂L/∂W‖₂ (Frobenius) of each hidden layer's kernel in forward order, then the output's."""
  kernels = [kernel for kernel, _ in hidden_layers(grads)]
  kernels.append(grads["output"]["kernel"][...])
  return [jnp.linalg.norm(kernel) for kernel in kernels]


def backpropagated_norms(
  params: nnx.State,
  x: jax.Array,
  y: jax.Array,
  activation: Callable[[jax.Array], jax.Array],
) -> list[jax.Array]:
  """‖∂L/∂z_l‖ (Frobenius over the batch's examples and the layer's units) of each hidden layer's
  pre-activation z_l, L the summed softmax cross-entropy over the batch (a plain MLP).

  The gradient with respect to z_l is taken as that with respect to a zero probe added to z_l, so
  it is each example's own δ_l, not their mean (which cancels between examples)."""
  layers = hidden_layers(params)

  def loss_with_probes(probes):
    h = x
    for (kernel, bias), probe in zip(layers, probes, strict=True):
      h = activation(h @ kernel + bias[None, :] + probe)
    logits = h @ params["output"]["kernel"][...] + params["output"]["bias"][...][None, :]
    return losses.softmax_cross_entropy(logits, y) * x.shape[0]

  probes = [jnp.zeros((x.shape[0], bias.shape[0]), x.dtype) for _, bias in layers]
  return [jnp.linalg.norm(delta) for delta in jax.grad(loss_with_probes)(probes)]
