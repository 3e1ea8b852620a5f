"""Flax NNX models for the chapter 8 experiments, and a pure functional view of them.

* `MLP`: fully connected network, optional batch normalization (Goodfellow et al. 2016, §8.7.1).
* `ResidualMLP`: the same with identity skip connections (He et al. 2016; §8.7.5).
* `DeepLinear`: product of weight matrices, the model of Saxe, McClelland & Ganguli (2013).
* `RNN`: Elman recurrent network, for exploding and vanishing gradients (§8.2.5, §10.7).

`MLP` and `ResidualMLP` take the regularizers of `regularization` as options: ``dropout=rate``
and ``dropconnect=rate`` on every Linear layer but the first, ``augment={...}`` (the keyword
arguments of `regularization.Augment`) on the inputs, and for `ResidualMLP`
``stochastic_depth=p_L`` on its residual blocks.

Every model is called as ``model(x, *, train=True)`` and kernels are (fan_in, fan_out). `MLP` and
`DeepLinear` expose ``linear_layers()`` and ``preactivations(x)`` for analyses and `init.lsuv`.
`build_model` builds one by name; `functional` splits one into pure ``apply(params, state, x,
train)`` and its arrays, the form that training loops, Hessians and sweeps use;
`inherit_lower_layers` builds a deeper MLP's arrays on a shallower one's (§8.7.4);
`transfer` puts a trained network's layers under a fresh output layer for a new task (§15.2),
frozen or fine-tuned through an Optax mask.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from jaxopt_study import init as initializers
from jaxopt_study import regularization
from jaxopt_study.transfer_learning import (  # noqa: F401  (re-exported: models.transfer)
  FROZEN,
  TRAINED,
  Transfer,
  transfer,
)


def _identity(x: jax.Array) -> jax.Array:
  return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "relu": jax.nn.relu,
  "tanh": jnp.tanh,
  "sigmoid": jax.nn.sigmoid,
  "linear": _identity,
  "gelu": jax.nn.gelu,
  "softplus": jax.nn.softplus,
}


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in ACTIVATIONS:
    raise ValueError(f"activation={name!r}: must be one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def _require_sizes(**sizes: int) -> None:
  for name, value in sizes.items():
    if int(value) != value or value < 1:
      raise ValueError(f"{name}={value!r}: must be an integer ≥ 1")


def _batchnorm(width: int, param_dtype: DTypeLike, rngs: nnx.Rngs) -> nnx.BatchNorm:
  """nnx.BatchNorm whose running averages have the parameters' dtype.

  Flax keeps them in float32 whatever `param_dtype` is, so a float64 model would normalize with
  float32 statistics in eval mode and write float64 batch statistics into float32 variables.
  """
  norm = nnx.BatchNorm(width, param_dtype=param_dtype, rngs=rngs)
  norm.mean = nnx.BatchStat(norm.mean[...].astype(param_dtype))
  norm.var = nnx.BatchStat(norm.var[...].astype(param_dtype))
  return norm


class _Regularized(nnx.Module):
  """The regularizers of `MLP` and `ResidualMLP`, built after their parameters (so that a
  regularized net draws the same initial parameters as the plain one from the same seed)."""

  def _add_regularizers(
    self,
    rngs: nnx.Rngs,
    dropout: float | None,
    dropconnect: float | None,
    augment: dict[str, Any] | None,
  ) -> None:
    if augment is not None and not isinstance(augment, dict):
      raise ValueError(f"augment={augment!r}: must be a dict of regularization.Augment's options")
    self.augment = None if augment is None else regularization.Augment(**augment, rngs=rngs)
    self.dropout = None if dropout is None else regularization.Dropout(dropout, rngs=rngs)
    self.dropconnect = (
      None if dropconnect is None else regularization.DropConnect(dropconnect, rngs=rngs)
    )

  def _inputs(self, x: jax.Array, train: bool | None) -> jax.Array:
    return x if self.augment is None else self.augment(x, deterministic=_deterministic(train))

  def _linear(self, index: int, layer: nnx.Linear, h: jax.Array, train: bool | None):
    """Layer `index` on h: dropout of h and DropConnect of the layer for every layer but the
    first (the hidden units, as Srivastava et al. 2014 and Wan et al. 2013)."""
    if index == 0:
      return layer(h)
    deterministic = _deterministic(train)
    if self.dropout is not None:
      h = self.dropout(h, deterministic=deterministic)
    if self.dropconnect is not None:
      return self.dropconnect(layer, h, deterministic=deterministic)
    return layer(h)


def _deterministic(train: bool | None) -> bool | None:
  return None if train is None else not train  # None: the module's own mode


class MLP(_Regularized):
  """Fully connected network: `depth` hidden layers of `width` units, then a linear output.

  h ← act(BN(W h + b)) per hidden layer, with the batch normalization of Ioffe & Szegedy (2015)
  (Goodfellow et al. 2016, §8.7.1) between the linear map and the activation when
  ``batchnorm=True``; the output layer is linear (logits or regression outputs). Regularizers
  (`regularization`), each absent when None: `dropout` and `dropconnect` rates on the inputs and
  weights of every layer after the first, `augment` on the inputs.
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    width: int = 64,
    depth: int = 2,
    activation: str = "relu",
    batchnorm: bool = False,
    kernel_init: initializers.Initializer | None = None,
    bias_init: initializers.Initializer = jax.nn.initializers.zeros,
    param_dtype: DTypeLike = jnp.float32,
    dropout: float | None = None,
    dropconnect: float | None = None,
    augment: dict[str, Any] | None = None,
    rngs: nnx.Rngs,
  ):
    _require_sizes(in_features=in_features, out_features=out_features, width=width)
    if int(depth) != depth or depth < 0:
      raise ValueError(f"depth={depth!r}: the number of hidden layers must be an integer ≥ 0")
    self.activation = _activation(activation)
    kernel_init = kernel_init or initializers.glorot_uniform()
    sizes = [in_features] + [width] * depth + [out_features]
    linear = functools.partial(
      nnx.Linear, kernel_init=kernel_init, bias_init=bias_init, param_dtype=param_dtype, rngs=rngs
    )
    self.hidden = nnx.List([linear(m, n) for m, n in zip(sizes[:-2], sizes[1:-1], strict=True)])
    self.norms = nnx.List(
      [_batchnorm(width, param_dtype, rngs) for _ in range(depth)] if batchnorm else []
    )
    self.output = linear(sizes[-2], sizes[-1])
    self._add_regularizers(rngs, dropout, dropconnect, augment)

  def _normalize(self, index: int, z: jax.Array, train: bool | None) -> jax.Array:
    if not self.norms:
      return z
    use_running_average = None if train is None else not train  # None: the module's own mode
    return self.norms[index](z, use_running_average=use_running_average)

  def __call__(self, x: jax.Array, *, train: bool | None = None) -> jax.Array:
    """Outputs on x (batch, in_features); BatchNorm uses batch statistics iff in train mode.

    The mode is `train` when given; when None, it is the module's own mode, the one that NNX's
    ``model.train()`` / ``model.eval()`` (or ``nnx.view(model, use_running_average=...)``) set,
    and a new MLP starts in train mode. This is how `hessian` fixes the mode of a model that
    a loss function calls as ``model(x)``.

    In train mode BatchNorm also updates its running averages (a model state mutation) and the
    regularizers draw their noise; in eval mode BatchNorm normalizes with the running averages
    and the regularizers take their expectation (`regularization`).
    """
    h = self._inputs(x, train)
    for index, layer in enumerate(self.hidden):
      h = self.activation(self._normalize(index, self._linear(index, layer, h, train), train))
    return self._linear(len(self.hidden), self.output, h, train)

  def linear_layers(self) -> list[nnx.Linear]:
    """The Linear layers in forward order, the output layer last."""
    return [*self.hidden, self.output]

  def preactivations(self, x: jax.Array) -> list[jax.Array]:
    """Each Linear layer's output W h + b on x, in eval mode (running BatchNorm statistics)."""
    outputs = []
    h = x
    for index, layer in enumerate(self.hidden):
      z = layer(h)
      outputs.append(z)
      h = self.activation(self._normalize(index, z, train=False))
    outputs.append(self.output(h))
    return outputs


class DeepLinear(nnx.Module):
  """Deep linear network f(x) = W_D ⋯ W₂ W₁ x (Saxe, McClelland & Ganguli 2013, §1).

  `depth` weight matrices (so depth − 1 hidden layers of `width` units), no biases and no
  nonlinearity: the function is linear in x, but the loss is non-convex in the weights, with the
  saddle points and plateaus that §8.2 of Goodfellow et al. (2016) discusses.
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    width: int,
    depth: int,
    kernel_init: initializers.Initializer | None = None,
    param_dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    _require_sizes(in_features=in_features, out_features=out_features, width=width, depth=depth)
    kernel_init = kernel_init or initializers.glorot_uniform()
    sizes = [in_features] + [width] * (depth - 1) + [out_features]
    self.layers = nnx.List(
      [
        nnx.Linear(
          m, n, use_bias=False, kernel_init=kernel_init, param_dtype=param_dtype, rngs=rngs
        )
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
      ]
    )

  def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
    """x (batch, in_features) ↦ x W₁ ⋯ W_D; `train` is accepted for a uniform API and unused."""
    del train
    for layer in self.layers:
      x = layer(x)
    return x

  def linear_layers(self) -> list[nnx.Linear]:
    """The weight matrices' layers in forward order."""
    return list(self.layers)

  def preactivations(self, x: jax.Array) -> list[jax.Array]:
    """Each layer's output, x W₁, x W₁ W₂, ..., the last being the network's output."""
    outputs = []
    for layer in self.layers:
      x = layer(x)
      outputs.append(x)
    return outputs


class RNN(nnx.Module):
  """Elman recurrent network read out at the last step (Goodfellow et al. 2016, §10.2, eq. 10.8).

  h_t = act(W_x x_t + W_h h_{t−1} + b), h₀ = 0, output = V h_T + c. The recurrent kernel W_h
  defaults to an orthogonal matrix, whose unit singular values keep ‖h_t‖ from exploding or
  vanishing through the linear part of the recurrence (§8.2.5, §10.7; Saxe et al. 2013). The time
  loop is a `jax.lax.scan`, so a long sequence compiles once.
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    hidden: int = 32,
    activation: str = "tanh",
    kernel_init: initializers.Initializer | None = None,
    recurrent_init: initializers.Initializer | None = None,
    param_dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    _require_sizes(in_features=in_features, out_features=out_features, hidden=hidden)
    self.activation = _activation(activation)
    kernel_init = kernel_init or initializers.glorot_uniform()
    recurrent_init = recurrent_init or initializers.orthogonal()
    self.input = nnx.Linear(
      in_features, hidden, kernel_init=kernel_init, param_dtype=param_dtype, rngs=rngs
    )
    self.recurrent = nnx.Linear(
      hidden,
      hidden,
      use_bias=False,
      kernel_init=recurrent_init,
      param_dtype=param_dtype,
      rngs=rngs,
    )
    self.output = nnx.Linear(
      hidden, out_features, kernel_init=kernel_init, param_dtype=param_dtype, rngs=rngs
    )

  def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
    """x (batch, time, in_features) ↦ outputs (batch, out_features); `train` is unused."""
    del train
    drive = jnp.swapaxes(self.input(x), 0, 1)  # W_x x_t + b for every step, time-major

    def step(h: jax.Array, drive_t: jax.Array) -> tuple[jax.Array, None]:
      return self.activation(drive_t + self.recurrent(h)), None

    h0 = jnp.zeros(drive.shape[1:], drive.dtype)
    h_last, _ = jax.lax.scan(step, h0, drive)
    return self.output(h_last)


class ResidualMLP(_Regularized):
  """A fully connected network with identity skip connections (He et al. 2016, "Deep residual
  learning for image recognition", §3.2).

  h₁ = act(W₁ x + b₁), then h_l = h_{l−1} + act(W_l h_{l−1} + b_l) for l = 2, …, `depth`, then a
  linear output. It has exactly the parameters of `MLP` with the same width and depth; the skip
  connections give the gradient a path from the output to every layer that crosses no weight
  matrix, one of the designs that aid optimization of Goodfellow et al. (2016), §8.7.5.

  Regularizers (`regularization`), each absent when None: `dropout` and `dropconnect` rates on
  the inputs and weights of every layer after the first (inside the residual branches and at the
  output), `augment` on the inputs, and `stochastic_depth` = p_L, the survival probability of
  the last of the depth − 1 residual blocks (Huang et al. 2016):
  h_l = h_{l−1} + b_l act(W_l h_{l−1} + b_l), b_l ~ Bernoulli(p_l) in train mode, p_l in eval.
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    width: int = 64,
    depth: int = 2,
    activation: str = "relu",
    kernel_init: initializers.Initializer | None = None,
    bias_init: initializers.Initializer = jax.nn.initializers.zeros,
    param_dtype: DTypeLike = jnp.float32,
    dropout: float | None = None,
    dropconnect: float | None = None,
    stochastic_depth: float | None = None,
    augment: dict[str, Any] | None = None,
    rngs: nnx.Rngs,
  ):
    _require_sizes(in_features=in_features, out_features=out_features, width=width, depth=depth)
    if stochastic_depth is not None and depth < 2:
      raise ValueError(
        f"stochastic_depth={stochastic_depth!r} needs residual blocks: depth={depth} has none "
        "(the first hidden layer is not a residual block); use depth ≥ 2"
      )
    self.activation = _activation(activation)
    kernel_init = kernel_init or initializers.glorot_uniform()
    linear = functools.partial(
      nnx.Linear, kernel_init=kernel_init, bias_init=bias_init, param_dtype=param_dtype, rngs=rngs
    )
    sizes = [in_features] + [width] * depth
    self.hidden = nnx.List([linear(m, n) for m, n in zip(sizes[:-1], sizes[1:], strict=True)])
    self.output = linear(width, out_features)
    self._add_regularizers(rngs, dropout, dropconnect, augment)
    self.stochastic_depth = (
      None
      if stochastic_depth is None
      else regularization.StochasticDepth(depth - 1, stochastic_depth, rngs=rngs)
    )

  def __call__(self, x: jax.Array, *, train: bool | None = None) -> jax.Array:
    """x (batch, in_features) ↦ outputs; the regularizers' mode is `train` when given, else the
    module's own (NNX's ``model.train()`` / ``model.eval()``), as for `MLP`."""
    h = self.activation(self.hidden[0](self._inputs(x, train)))
    for block, layer in enumerate(self.hidden[1:], start=1):
      branch = self.activation(self._linear(block, layer, h, train))
      if self.stochastic_depth is not None:
        branch = self.stochastic_depth(branch, block, deterministic=_deterministic(train))
      h = h + branch
    return self._linear(len(self.hidden), self.output, h, train)

  def linear_layers(self) -> list[nnx.Linear]:
    """The Linear layers in forward order, the output layer last."""
    return [*self.hidden, self.output]


MODELS: dict[str, type[nnx.Module]] = {
  "mlp": MLP,
  "residual_mlp": ResidualMLP,
  "deep_linear": DeepLinear,
  "rnn": RNN,
}


def build_model(
  name: str,
  in_features: int,
  out_features: int,
  *,
  seed: int = 0,
  init: str = "glorot_uniform",
  init_scale: float = 1.0,
  rngs: nnx.Rngs | None = None,
  **options: Any,
) -> nnx.Module:
  """The model `MODELS[name]`, every kernel drawn from `init` scaled by `init_scale` (§8.4).

  The initializer ``init.get_initializer(init, scale=init_scale)`` is passed as `kernel_init`, and
  also as `recurrent_init` to models that have one, so that `init_scale` scales every weight
  matrix; biases keep their zero initialization.

  Example: ``build_model("mlp", 64, 10, width=128, depth=3, init="he_normal", init_scale=0.5)``.

  Args:
    name: a key of `MODELS`.
    in_features: input dimension.
    out_features: output dimension.
    seed: seed of the parameters.
    init: a key of `init.INITIALIZERS`.
    init_scale: factor on every initial kernel.
    rngs: the model's random streams (default: `nnx.Rngs(seed)`, whose one stream draws the
      parameters and then the regularizers' noise keys).
    **options: the model's other keyword arguments (width, depth, activation, ...).
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}: known models are {sorted(MODELS)}")
  model_class = MODELS[name]
  signature = inspect.signature(model_class.__init__)  # the class's own is NNX's (*args, **kwargs)
  kernel_init = initializers.get_initializer(init, scale=init_scale)
  kernels = {
    key: kernel_init for key in ("kernel_init", "recurrent_init") if key in signature.parameters
  }
  if clash := sorted(set(kernels) & set(options)):
    raise ValueError(f"options {clash} are set by init and init_scale: pass those instead")
  arguments = {**kernels, **options, "rngs": rngs or nnx.Rngs(seed)}
  try:  # unknown or missing options (e.g. DeepLinear's width) fail here, before any allocation
    signature.bind(None, in_features, out_features, **arguments)  # None stands for self
  except TypeError as error:
    raise ValueError(f"model {name!r}: {error}") from None
  return model_class(in_features, out_features, **arguments)


_PER_HIDDEN_LAYER = ("hidden", "norms")  # the MLP collections with one entry per hidden layer


def inherit_lower_layers(deeper: nnx.State, shallower: nnx.State) -> nnx.State:
  """`deeper`'s arrays with its lowest hidden layers replaced by all those of `shallower`.

  Greedy layer-wise pretraining (Goodfellow et al. 2016, §8.7.4; Bengio et al. 2007) grows an
  `MLP` one hidden layer at a time: the net with k hidden layers keeps the k − 1 trained hidden
  layers of the net with k − 1, and takes its new top hidden layer and a fresh output layer
  from its own initialization. With `shallower` the params of an MLP with j hidden layers and
  `deeper` those of one with more, of the same width, the result is `deeper` with hidden layers
  (and BatchNorm scale and offset) 0 … j − 1 copied from `shallower`; `shallower`'s output layer
  is dropped. Applied to the two models' `model_state`, it copies the running BatchNorm
  statistics the same way. Leaves are copied whole, so stacked (vmapped) arrays work alike.
  Neither argument is modified.

  Args:
    deeper: params (or model state) of the deeper MLP, from `functional(model)`.
    shallower: params (or model state) of the shallower MLP.

  Returns:
    A new `nnx.State` with `deeper`'s structure.

  Raises:
    ValueError: `shallower` has more hidden layers than `deeper`, or a layer of other shapes.
  """
  grown = jax.tree.map(lambda leaf: leaf, deeper)  # a new State, so `deeper` is left as it is
  for collection in _PER_HIDDEN_LAYER:
    if collection not in shallower:
      continue
    lower = shallower[collection]
    upper = grown[collection] if collection in grown else {}
    if len(lower) > len(upper):
      raise ValueError(
        f"inherit_lower_layers: shallower has {len(lower)} entries in {collection!r}, deeper "
        f"only {len(upper)}: the deeper net must have at least as many hidden layers"
      )
    for index in range(len(lower)):
      shapes = [jax.tree.map(jnp.shape, layer[index]) for layer in (lower, upper)]
      if shapes[0] != shapes[1]:
        raise ValueError(
          f"inherit_lower_layers: {collection}[{index}] has shapes {shapes[0]} in shallower "
          f"but {shapes[1]} in deeper: the two nets need the same input size and width"
        )
      upper[index] = jax.tree.map(lambda leaf: leaf, lower[index])
  return grown


class FunctionalModel(NamedTuple):
  """A model as a pure function and its arrays.

  ``apply(params, model_state, x, train) -> (outputs, new_model_state)`` is pure, and jit- and
  vmap-able over `params` and `model_state`; `train` must be a static Python bool (close over it
  or use ``jax.jit(apply, static_argnames="train")``). `model_state` holds the non-parameter
  state, BatchNorm's running statistics, and is an empty `nnx.State` for models without any.
  """

  apply: Callable[[nnx.State, nnx.State, jax.Array, bool], tuple[jax.Array, nnx.State]]
  params: nnx.State
  model_state: nnx.State


def functional(model: nnx.Module) -> FunctionalModel:
  """Splits an NNX model into a pure `apply` and its parameters and state (`nnx.split`)."""
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)

  def apply(
    params: nnx.State, model_state: nnx.State, x: jax.Array, train: bool
  ) -> tuple[jax.Array, nnx.State]:
    # copy=True: fresh Variables in the current trace, so BatchNorm may update its statistics
    # inside jax.grad of a jitted function (the split Variables belong to the outer trace).
    module = nnx.merge(graphdef, params, model_state, copy=True)
    outputs = module(x, train=train)
    _, _, new_model_state = nnx.split(module, nnx.Param, ...)
    return outputs, new_model_state

  return FunctionalModel(apply, params, model_state)
