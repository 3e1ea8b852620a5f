"""Data for the chapter 8 experiments: bundled real data, synthetic tasks and minibatch sampling.

* `load_digits`: scikit-learn's bundled 8×8 handwritten digits (1797 examples, 64 features,
  10 classes), no download.
* `teacher_student`: regression onto a random one-hidden-layer tanh network.
* `teacher_classification`: the class of a random teacher network's largest output.
* `whitened_linear_regression`: the exactly whitened deep-linear-network task of Saxe, McClelland
  & Ganguli (2013), whose input-output correlation has prescribed singular values.
* `batch_indices`: the minibatch of a step, for SGD as in Goodfellow et al. (2016) §8.1.3 and
  Algorithm 8.1 ("sample a minibatch of m examples from the training set"), jit-able in the step.

Every dataset is a `Dataset` of jax arrays; classification labels are int32 class ids and
regression targets are float arrays of shape (n, out_dim).
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sklearn.datasets
import sklearn.model_selection
from jax.typing import DTypeLike


class Dataset(NamedTuple):
  """A train/test split: inputs (n, features) and labels (n,) int32 or targets (n, out_dim)."""

  x_train: jax.Array
  y_train: jax.Array
  x_test: jax.Array
  y_test: jax.Array


def _require_positive_ints(**values: int) -> None:
  for name, value in values.items():
    if int(value) != value or value < 1:
      raise ValueError(f"{name}={value!r}: must be an integer ≥ 1")


def load_digits(
  test_fraction: float = 0.25, split_seed: int = 0, dtype: DTypeLike = jnp.float32
) -> Dataset:
  """scikit-learn's bundled digits, split stratified by class and standardized.

  The split is a stratified random split (every class keeps its share in train and test) fixed by
  `split_seed`. Features are standardized with the TRAINING mean and standard deviation only, so no
  test statistic leaks into training; a feature that is constant on the training set (some border
  pixels are always 0) is only centered, not divided by its zero standard deviation. This is
  scikit-learn's `StandardScaler`; as with it, a pixel that is almost always blank in training (ink
  in a handful of examples, a standard deviation far below one intensity level) is divided by that
  tiny deviation, so a held-out digit with ink there lies tens of standard deviations out on that
  feature: held-out losses, and a reconstruction error above all, carry those outliers.

  Args:
    test_fraction: share of the 1797 examples held out for testing, in (0, 1).
    split_seed: seed of the split.
    dtype: floating dtype of the inputs.

  Returns:
    A `Dataset` with x of shape (n, 64) in `dtype` and int32 labels in 0..9.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction={test_fraction!r}: must lie strictly between 0 and 1")
  x, y = sklearn.datasets.load_digits(return_X_y=True)
  x_train, x_test, y_train, y_test = sklearn.model_selection.train_test_split(
    x, y, test_size=test_fraction, random_state=split_seed, stratify=y
  )
  mean = x_train.mean(axis=0)
  std = x_train.std(axis=0)
  std = np.where(std > 0.0, std, 1.0)  # constant feature on the train set: center it only
  return Dataset(
    jnp.asarray((x_train - mean) / std, dtype),
    jnp.asarray(y_train, jnp.int32),
    jnp.asarray((x_test - mean) / std, dtype),
    jnp.asarray(y_test, jnp.int32),
  )


def teacher_student(
  key: jax.Array,
  num_train: int,
  num_test: int,
  in_dim: int,
  hidden_dim: int,
  out_dim: int,
  noise_std: float = 0.0,
) -> Dataset:
  """Regression onto a random teacher network y = W₂ tanh(W₁ x) + σ ε.

  Inputs x ~ N(0, I); the teacher's weights are drawn with variance 1/fan_in (so that its hidden
  and output units have unit-order variance), W₁ ∈ R^{hidden×in}, W₂ ∈ R^{out×hidden}, no biases.
  The noise ε ~ N(0, I) is added to train and test targets alike, so σ² is the Bayes error of each
  output coordinate.

  Args:
    key: PRNG key of the inputs, the teacher and the noise.
    num_train: number of training examples.
    num_test: number of test examples.
    in_dim: input dimension.
    hidden_dim: width of the teacher's hidden layer.
    out_dim: output dimension.
    noise_std: σ, standard deviation of the target noise, ≥ 0.

  Returns:
    A `Dataset` with x of shape (n, in_dim) and y of shape (n, out_dim).
  """
  _require_positive_ints(
    num_train=num_train, num_test=num_test, in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim
  )
  if noise_std < 0.0:
    raise ValueError(f"noise_std={noise_std!r}: must be ≥ 0")
  key_x, key_w1, key_w2, key_noise = jax.random.split(key, 4)
  x = jax.random.normal(key_x, (num_train + num_test, in_dim))
  w1 = jax.random.normal(key_w1, (in_dim, hidden_dim)) / np.sqrt(in_dim)
  w2 = jax.random.normal(key_w2, (hidden_dim, out_dim)) / np.sqrt(hidden_dim)
  y = jnp.tanh(x @ w1) @ w2 + noise_std * jax.random.normal(key_noise, (x.shape[0], out_dim))
  return Dataset(x[:num_train], y[:num_train], x[num_train:], y[num_train:])


def teacher_classification(
  key: jax.Array,
  num_train: int,
  num_test: int,
  in_dim: int,
  hidden_dim: int,
  num_classes: int,
) -> Dataset:
  """Classification by a random teacher network: y = argmax_c (W₂ tanh(W₁ x))_c.

  The inputs and the teacher are those of `teacher_student` with the same key (out_dim =
  num_classes, no noise), so the labels are a deterministic function of x that an MLP can
  represent: the classes are separable and the Bayes error is 0; any test error is the student's.

  Args:
    key: PRNG key of the inputs and the teacher.
    num_train: number of training examples.
    num_test: number of held-out examples (split them further for validation and test).
    in_dim: input dimension.
    hidden_dim: width of the teacher's hidden layer.
    num_classes: C ≥ 2.

  Returns:
    A `Dataset` with x of shape (n, in_dim) and int32 labels in 0 … C − 1.
  """
  _require_positive_ints(num_classes=num_classes)
  if num_classes < 2:
    raise ValueError(f"num_classes={num_classes!r}: must be ≥ 2")
  teacher = teacher_student(key, num_train, num_test, in_dim, hidden_dim, num_classes)
  return Dataset(
    teacher.x_train,
    jnp.argmax(teacher.y_train, axis=-1).astype(jnp.int32),
    teacher.x_test,
    jnp.argmax(teacher.y_test, axis=-1).astype(jnp.int32),
  )


def _whitened_gaussian(key: jax.Array, num_examples: int, in_dim: int) -> jax.Array:
  """Gaussian inputs made exactly white: X = √n U Vᵀ from the thin SVD X₀ = U S Vᵀ, so XᵀX/n = I."""
  x = jax.random.normal(key, (num_examples, in_dim))
  u, _, vt = jnp.linalg.svd(x, full_matrices=False)
  return np.sqrt(num_examples) * (u @ vt)


def _orthonormal_columns(key: jax.Array, rows: int, cols: int) -> jax.Array:
  return jax.nn.initializers.orthogonal()(key, (rows, cols))


def whitened_linear_regression(
  key: jax.Array,
  num_examples: int,
  in_dim: int,
  out_dim: int,
  singular_values: Sequence[float],
) -> Dataset:
  """The linear task of Saxe, McClelland & Ganguli (2013), §2: whitened inputs, y = W x.

  The training inputs are exactly whitened, Σ₁₁ = XᵀX/n = I, and the targets are y = W x with
  W = U diag(s) Vᵀ (U, V random with orthonormal columns), so the input-output correlation
  Σ₃₁ = YᵀX/n = W has exactly the singular values s: the modes whose learning times the paper
  computes. The test set is an independent whitened draw of the same size with the same W.

  Args:
    key: PRNG key of the inputs and of U, V.
    num_examples: n, examples in each of train and test; needs n ≥ in_dim to whiten.
    in_dim: input dimension.
    out_dim: output dimension.
    singular_values: s, nonnegative, at most min(in_dim, out_dim) of them (the rest are 0).

  Returns:
    A `Dataset` with x of shape (n, in_dim) and y of shape (n, out_dim).
  """
  _require_positive_ints(num_examples=num_examples, in_dim=in_dim, out_dim=out_dim)
  if num_examples < in_dim:
    raise ValueError(
      f"num_examples={num_examples} < in_dim={in_dim}: whitening XᵀX/n = I needs at least as "
      "many examples as input dimensions"
    )
  s = np.asarray(singular_values, dtype=float)
  if s.ndim != 1 or not 1 <= s.size <= min(in_dim, out_dim) or np.any(s < 0.0):
    raise ValueError(
      f"singular_values={list(np.ravel(s))}: need 1 to min(in_dim, out_dim)="
      f"{min(in_dim, out_dim)} nonnegative values"
    )
  key_train, key_test, key_u, key_v = jax.random.split(key, 4)
  u = _orthonormal_columns(key_u, out_dim, s.size)
  v = _orthonormal_columns(key_v, in_dim, s.size)
  w = (u * jnp.asarray(s, u.dtype)[None, :]) @ v.T  # U diag(s) Vᵀ
  x_train = _whitened_gaussian(key_train, num_examples, in_dim)
  x_test = _whitened_gaussian(key_test, num_examples, in_dim)
  return Dataset(x_train, x_train @ w.T, x_test, x_test @ w.T)


def _epoch_batch(key: jax.Array, step: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
  steps_per_epoch = num_examples // batch_size
  epoch, position = jnp.divmod(step, steps_per_epoch)
  order = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  return jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)


def _replacement_batch(
  key: jax.Array, step: jax.Array, num_examples: int, batch_size: int
) -> jax.Array:
  return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, num_examples)


SAMPLERS: dict[str, Callable[[jax.Array, jax.Array, int, int], jax.Array]] = {
  "epoch": _epoch_batch,
  "replacement": _replacement_batch,
}


def batch_indices(
  key: jax.Array, step: jax.Array | int, num_examples: int, batch_size: int, sampling: str = "epoch"
) -> jax.Array:
  """Indices of the minibatch used at `step` (Goodfellow et al. 2016, §8.1.3, Algorithm 8.1).

  * ``"epoch"``: the training set is reshuffled once per epoch, with epoch = step // (n // m) and
    the permutation drawn from ``fold_in(key, epoch)``; step i of the epoch takes the i-th
    consecutive slice of m indices. The last n mod m examples of each permutation are dropped,
    so every batch has exactly m distinct examples and each epoch sees fresh ones (§8.1.3: the
    first pass gives an unbiased estimate of the generalization gradient).
  * ``"replacement"``: m indices drawn uniformly with replacement from ``fold_in(key, step)``,
    the i.i.d. sampling of the SGD analysis.

  `step` may be traced (inside `jit` or `lax.scan`); `num_examples`, `batch_size` and `sampling`
  must be static.

  Args:
    key: PRNG key of the whole run; the same key and step always give the same batch.
    step: training step, a nonnegative integer.
    num_examples: n, size of the training set.
    batch_size: m, in [1, n].
    sampling: ``"epoch"`` or ``"replacement"``.

  Returns:
    int32 indices of shape (batch_size,).
  """
  if sampling not in SAMPLERS:
    raise ValueError(f"sampling={sampling!r}: must be one of {sorted(SAMPLERS)}")
  _require_positive_ints(num_examples=num_examples)
  if not 1 <= batch_size <= num_examples:
    raise ValueError(f"batch_size={batch_size!r}: must lie in [1, num_examples={num_examples}]")
  step = jnp.asarray(step, jnp.int32)
  return SAMPLERS[sampling](key, step, num_examples, batch_size).astype(jnp.int32)


DATASETS: dict[str, Callable[..., Dataset]] = {
  "digits": load_digits,
  "teacher_student": teacher_student,
  "teacher_classification": teacher_classification,
  "whitened_linear_regression": whitened_linear_regression,
}
