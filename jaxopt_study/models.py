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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import DTypeLike

from jaxopt_study import init as initializers
from jaxopt_study import regularization
from jaxopt_study import validate as validation


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


FROZEN, TRAINED = "frozen", "trained"  # the labels of `Transfer.labels`


class Transfer(NamedTuple):
  """What `transfer` returns: the new task's model and which of its parameters stay fixed.

  `model` is a factory ``rngs -> nnx.Module`` for ``Problem(model=...)``: every call returns a
  copy of the trained module with a fresh head drawn from `rngs`. `head` and `frozen` are layer
  paths ("hidden/0": attribute names and list indices joined by "/").
  """

  model: Callable[[nnx.Rngs], nnx.Module]
  head: str
  frozen: tuple[str, ...]

  def labels(self, params: Any) -> Any:
    """`FROZEN` or `TRAINED` on every leaf of `params`, by its path: the `param_labels` of
    `optax.partition`. `params` is any pytree with the model's parameter paths (an `nnx.State`,
    a sweep's stacked arrays, `nnx.to_pure_dict(state)`)."""
    prefixes = [tuple(path.split("/")) for path in self.frozen]

    def label(path, _) -> str:
      parts = _path_parts(path)
      return FROZEN if any(parts[: len(p)] == p for p in prefixes) else TRAINED

    return jax.tree_util.tree_map_with_path(label, params)

  def optimizer(
    self, inner: optax.GradientTransformation, frozen_scale: float | jax.Array = 0.0
  ) -> optax.GradientTransformation:
    """`inner` on the trained parameters and `optax.set_to_zero` on the frozen ones
    (`optax.partition`, Optax's recipe for freezing): a frozen parameter never moves and `inner`
    keeps no state for it. Without frozen layers, `inner` itself.

    With `frozen_scale` ≠ 0 the frozen layers are fine-tuned instead, by a second copy of
    `inner` whose updates are multiplied by `frozen_scale` (the CS231n notes' smaller rate for
    the transferred layers). It may be an array traced under `jit` / `vmap`, so that the members
    of one program freeze (0: updates of exactly zero) or fine-tune (1: `inner` on each group,
    which is `inner` on all parameters for an element-wise optimizer such as SGD or Adam, not
    for one that couples parameters, e.g. through a global norm)."""
    validation.require_non_negative("frozen_scale", frozen_scale, "Transfer.optimizer")
    if not self.frozen:
      return inner
    if isinstance(frozen_scale, int | float) and frozen_scale == 0:
      body = optax.set_to_zero()
    else:
      body = optax.chain(inner, optax.scale(frozen_scale))
    return optax.partition({TRAINED: inner, FROZEN: body}, self.labels)


def transfer(
  trained: nnx.Module,
  new_head_classes: int,
  *,
  freeze: bool | str | Sequence[str] = True,
  head: str = "output",
  kernel_init: initializers.Initializer | None = None,
  bias_init: initializers.Initializer = jax.nn.initializers.zeros,
) -> Transfer:
  """Reuses the lower layers of a trained network on a new task under a fresh output layer.

  Transfer learning (Goodfellow et al. 2016, §15.2; Yosinski et al. 2014, "How transferable are
  features in deep neural networks?"): a network trained on one task keeps every layer but its
  output layer `head`, which is replaced by a new `nnx.Linear` with the same inputs and
  `new_head_classes` outputs, drawn from the `rngs` the factory gets. Training on the new task
  then either updates the head alone, the lower layers `freeze`-ing as fixed features (Yosinski
  et al.'s AnB), or fine-tunes every layer from the transferred values (their AnB+).

  Design: `trained` is a live `nnx.Module`, the built-in `MLP` or a user's own module, e.g. of
  a `train.train` result: ``problem.module(result.params, result.model_state)``. It is copied at
  once (later changes to it do not leak in), and `Transfer.model` is the new task's factory, so
  the new task is a plain `Problem` for `train.train` and `sweep.run` (a sweep over seeds draws a
  new head per seed on the same transferred layers). Freezing is an Optax transformation, not a
  change to the model: `Transfer.optimizer(tx)` wraps any optimizer in `optax.partition` with
  `optax.set_to_zero` on the frozen parameters (a sweep takes
  ``lambda learning_rate: t.optimizer(optim.sgd(learning_rate))``; with its `frozen_scale`, a
  hyperparameter that may be traced, one vmapped program freezes some members and fine-tunes
  others), and `Transfer.labels` gives the same labels for one's own `optax.partition`. Only
  `nnx.Param` updates are stopped: BatchNorm statistics of a frozen layer still follow the new
  data in train mode; the module's other state (BatchNorm statistics, RNG streams) is copied
  from `trained`.

  Example::

      source = train.train(problem, optim.adam(1e-3), steps=500, batch_size=32)
      t = models.transfer(problem.module(source.params, source.model_state), 5, freeze=True)
      target = Problem(model=t.model, loss=loss, train_data=(x, y), heldout_data=(xt, yt))
      result = train.train(target, t.optimizer(optim.adam(1e-3)), steps=300, batch_size=25)

  Args:
    trained: the trained network (not modified).
    new_head_classes: the new output layer's units (classes of the new task), ≥ 1.
    freeze: True: every layer but the head is frozen (only the head trains); False: nothing is
      (fine-tuning); or the paths of the layers to freeze ("hidden/0", or "hidden" for all of
      them), the rest fine-tuned.
    head: path of the output layer to replace, an `nnx.Linear`: "output" for `MLP`,
      `ResidualMLP` and `RNN`, "layers/-1" for `DeepLinear` (a negative index counts from the
      end), a user's module's own attribute name.
    kernel_init, bias_init: the new head's initializers (default: Glorot uniform, as `MLP`;
      zeros).

  Returns:
    A `Transfer`: `model` (the factory), `head` and `frozen` (paths with indices ≥ 0), and
    `labels(params)` / `optimizer(tx, frozen_scale=0.0)` for freezing.

  Raises:
    TypeError: `trained` is not an `nnx.Module`, or `head` is not an `nnx.Linear`.
    ValueError: `new_head_classes` < 1 or not an integer; `head` or a `freeze` path names no
      layer of `trained`, or a frozen path holds no parameters or overlaps the head.
  """
  if not isinstance(trained, nnx.Module):
    raise TypeError(f"transfer: trained is a {type(trained).__name__}, not an nnx.Module")
  if isinstance(new_head_classes, bool) or not isinstance(new_head_classes, int | np.integer):
    raise ValueError(f"transfer: new_head_classes={new_head_classes!r} must be an integer ≥ 1")
  if new_head_classes < 1:
    raise ValueError(f"transfer: new_head_classes={new_head_classes!r} must be an integer ≥ 1")
  param_paths = [
    _path_parts(path)
    for path, _ in jax.tree_util.tree_flatten_with_path(nnx.state(trained, nnx.Param))[0]
  ]
  head_parts, old_head = _resolve(trained, head, "head")
  if not isinstance(old_head, nnx.Linear):
    raise TypeError(
      f"transfer: head={head!r} is a {type(old_head).__name__}, not an nnx.Linear: name the "
      "network's output layer"
    )
  if freeze is True:
    frozen = _outside(param_paths, head_parts)
  elif freeze is False:
    frozen = []
  else:
    frozen = [_frozen_path(trained, path, head_parts, param_paths) for path in _paths(freeze)]
  snapshot = nnx.clone(trained)
  kernel_init = kernel_init or initializers.glorot_uniform()

  def model(rngs: nnx.Rngs) -> nnx.Module:
    module = nnx.clone(snapshot)
    new_head = nnx.Linear(
      old_head.in_features,
      int(new_head_classes),
      use_bias=old_head.use_bias,
      dtype=old_head.dtype,
      param_dtype=old_head.param_dtype,
      kernel_init=kernel_init,
      bias_init=bias_init,
      rngs=rngs,
    )
    parent = _resolve(module, "/".join(head_parts[:-1]), "head")[1] if head_parts[1:] else module
    _set_child(parent, head_parts[-1], new_head)
    return module

  return Transfer(model, "/".join(head_parts), tuple("/".join(p) for p in dict.fromkeys(frozen)))


def _path_parts(path: tuple) -> tuple[str, ...]:
  """A pytree key path as strings: ('hidden', '0', 'kernel', 'value')."""
  parts = []
  for key in path:
    for field in ("key", "name", "idx"):
      if hasattr(key, field):
        parts.append(str(getattr(key, field)))
        break
    else:
      parts.append(str(key))
  return tuple(parts)


def _resolve(module: nnx.Module, path: str, argument: str) -> tuple[tuple[str, ...], Any]:
  """The node at `path` below `module` and its path with indices made non-negative."""
  if not isinstance(path, str) or not path.strip("/"):
    raise ValueError(f"transfer: {argument}={path!r} must name a layer, e.g. 'output'")
  node, parts = module, []
  for part in path.strip("/").split("/"):
    if isinstance(node, Sequence) and part.lstrip("-").isdigit():
      index = int(part)
      if not -len(node) <= index < len(node):
        raise ValueError(
          f"transfer: {argument}={path!r}: index {index} is out of range for a list of "
          f"{len(node)} layers"
        )
      node, part = node[index], str(index % len(node))
    elif isinstance(node, Mapping) and part in node:
      node = node[part]
    elif isinstance(node, nnx.Module) and part in vars(node):
      node = getattr(node, part)
    else:
      known = _children(node)
      raise ValueError(
        f"transfer: {argument}={path!r}: no layer {part!r} in {type(node).__name__}"
        + (f" (it has {known})" if known else "")
      )
    parts.append(part)
  return tuple(parts), node


def _children(node: Any) -> list[str]:
  if isinstance(node, Sequence):
    return [str(i) for i in range(len(node))]
  if isinstance(node, Mapping):
    return [str(k) for k in node]
  if isinstance(node, nnx.Module):
    return [k for k, v in vars(node).items() if isinstance(v, nnx.Module | nnx.Variable)]
  return []


def _set_child(parent: Any, part: str, child: nnx.Module) -> None:
  if isinstance(parent, Sequence):
    parent[int(part)] = child
  elif isinstance(parent, Mapping):
    parent[part] = child
  else:
    setattr(parent, part, child)


def _paths(freeze: Any) -> list[str]:
  if isinstance(freeze, str):
    return [freeze]
  if not isinstance(freeze, Sequence) or not all(isinstance(p, str) for p in freeze):
    raise ValueError(
      f"transfer: freeze={freeze!r} must be True, False or layer paths such as ['hidden/0']"
    )
  return list(freeze)


def _outside(param_paths: list[tuple[str, ...]], head: tuple[str, ...]) -> list[tuple[str, ...]]:
  """The largest subtrees that hold parameters and do not contain the head, in order."""
  subtrees = []
  for parts in param_paths:
    common = zip(parts, head, strict=False)
    depth = next((i for i, (a, b) in enumerate(common) if a != b), len(head))
    if depth < len(head):  # not below the head
      subtrees.append(parts[: depth + 1])
  return subtrees


def _frozen_path(
  module: nnx.Module, path: str, head: tuple[str, ...], param_paths: list[tuple[str, ...]]
) -> tuple[str, ...]:
  parts = _resolve(module, path, "freeze")[0]
  shared = min(len(parts), len(head))
  if parts[:shared] == head[:shared]:
    raise ValueError(
      f"transfer: freeze path {path!r} overlaps the head {'/'.join(head)!r}, which is new and "
      "must train"
    )
  if not any(p[: len(parts)] == parts for p in param_paths):
    raise ValueError(f"transfer: freeze path {path!r} holds no parameters")
  return parts
