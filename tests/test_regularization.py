"""Regularization: dropout, DropConnect, stochastic depth, augmentation and penalties against their
formulas, and a regularized member of a sweep against its run alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, regularization, sweep, train
from jaxopt_study import problem as problem_lib

DIGITS = data_lib.load_digits()
DRAWS = 20_000  # independent masks per statistical check: 5 standard errors ≈ 3% of a rate


def within(estimate, expected, standard_error, sigmas=5.0):
  np.testing.assert_array_less(np.abs(np.asarray(estimate) - expected), sigmas * standard_error)


def test_dropout_draws_the_masks_of_nnx_dropout_and_scales_by_the_keep_rate():
  x = jax.random.normal(jax.random.key(1), (64, 32))
  ours = regularization.Dropout(0.3, rngs=nnx.Rngs(0))
  theirs = nnx.Dropout(0.3, rngs=nnx.Rngs(0))
  for _ in range(2):  # the second call draws a new key from the stream, in both
    a, b = ours(x), theirs(x)
    np.testing.assert_array_equal(a != 0, b != 0)
    np.testing.assert_allclose(a, b, rtol=1e-6)
  kept = np.asarray(a) != 0
  np.testing.assert_allclose(np.asarray(a)[kept], np.asarray(x)[kept] / 0.7, rtol=1e-6)


def test_dropout_keeps_one_minus_rate_and_its_mean_over_masks_is_the_eval_output():
  rate, x = 0.4, jnp.asarray([1.0, -2.0, 0.5, 3.0])
  dropout = regularization.Dropout(rate, rngs=nnx.Rngs(3))
  samples = np.asarray(dropout(jnp.tile(x, (DRAWS, 1))))  # one independent mask per row
  keep = 1 - rate
  within((samples != 0).mean(axis=0), keep, np.sqrt(keep * rate / DRAWS))
  within(samples.mean(axis=0), x, np.abs(x) * np.sqrt(rate / keep / DRAWS))
  dropout.eval()
  np.testing.assert_array_equal(dropout(x), x)
  np.testing.assert_array_equal(dropout(x, deterministic=False) != 0, dropout.train() or True)


def test_dropconnect_masks_each_weight_of_each_example_independently():
  rate, fan_in, fan_out = 0.3, 3, 4
  layer = nnx.Linear(fan_in, fan_out, rngs=nnx.Rngs(0))
  layer.kernel[...] = jnp.ones((fan_in, fan_out))
  layer.bias[...] = jnp.asarray([0.0, 1.0, 2.0, 3.0])
  dropconnect = regularization.DropConnect(rate, rngs=nnx.Rngs(1))
  keep = 1 - rate
  x = jnp.tile(jnp.asarray([[1.0, 0.0, 0.0]]), (DRAWS, 1))  # row n reads M⁽ⁿ⁾ of input 0
  masks = np.asarray(dropconnect(layer, x) - layer.bias[...][None]) * keep  # = M⁽ⁿ⁾₀ⱼ ∈ {0, 1}
  np.testing.assert_allclose(np.unique(masks.round(5)), [0.0, 1.0])
  within(masks.mean(axis=0), keep, np.sqrt(keep * rate / DRAWS))
  # independent across outputs and across examples: pairs agree with probability p² + (1 − p)²
  agree = keep**2 + rate**2
  se = np.sqrt(agree * (1 - agree) / DRAWS)
  within((masks[:, 0] == masks[:, 1]).mean(), agree, se)
  within((masks[:-1, 0] == masks[1:, 0]).mean(), agree, se)
  # the mean over masks is the plain layer, which eval mode computes
  z = jax.random.normal(jax.random.key(2), (1, fan_in))
  samples = np.asarray(dropconnect(layer, jnp.tile(z, (DRAWS, 1))))
  spread = np.sqrt(rate / keep * float(jnp.sum(z**2)) / DRAWS)
  within(samples.mean(axis=0), np.asarray(layer(z))[0], spread)
  dropconnect.eval()
  np.testing.assert_array_equal(dropconnect(layer, z), layer(z))


def survival_counts(gate: regularization.StochasticDepth, draws: int) -> np.ndarray:
  """How often each block survived in `draws` calls of each, in one compiled loop."""
  graphdef, state = nnx.split(gate)

  def body(_, carry):
    state, counts = carry
    module = nnx.merge(graphdef, state, copy=True)
    kept = jnp.stack([module(jnp.ones(()), block) for block in range(1, gate.num_blocks + 1)])
    return nnx.state(module), counts + kept

  start = (state, jnp.zeros(gate.num_blocks))
  return np.asarray(jax.jit(lambda s: jax.lax.fori_loop(0, draws, body, s))(start)[1])


def test_stochastic_depth_survival_decays_linearly_and_eval_scales_by_it():
  gate = regularization.StochasticDepth(4, 0.5, rngs=nnx.Rngs(0))
  expected = 1 - np.arange(1, 5) / 4 * 0.5  # p_l = 1 − (l/L)(1 − p_L): 0.875, 0.75, 0.625, 0.5
  np.testing.assert_allclose([gate.survival(block) for block in range(1, 5)], expected)
  draws = 4000
  within(survival_counts(gate, draws) / draws, expected, np.sqrt(expected * (1 - expected) / draws))
  gate.eval()
  branch = jnp.asarray([1.0, -2.0])
  for block, p in enumerate(expected, start=1):
    np.testing.assert_allclose(gate(branch, block), p * branch, rtol=1e-6)


def test_a_residual_mlp_with_stochastic_depth_in_eval_mode_is_the_scaled_formula():
  model = models.build_model(
    "residual_mlp", 5, 3, seed=0, width=6, depth=4, stochastic_depth=0.4, dropout=0.2
  )
  model.eval()
  x = np.asarray(jax.random.normal(jax.random.key(1), (7, 5)), np.float64)

  def linear(layer, h):
    return h @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...], np.float64)

  h = np.maximum(linear(model.hidden[0], x), 0)
  for block, layer in enumerate(model.hidden[1:], start=1):
    h = h + (1 - block / 3 * 0.6) * np.maximum(linear(layer, h), 0)
  np.testing.assert_allclose(model(jnp.asarray(x, jnp.float32)), linear(model.output, h), rtol=1e-5)
  assert not np.allclose(model(x, train=True), model(x, train=True))  # fresh noise each call


def test_regularizers_leave_the_initial_parameters_of_a_seed_unchanged():
  options = dict(width=8, depth=3, dropout=0.5, dropconnect=0.5, stochastic_depth=0.5)
  options["augment"] = {"rate": 1.0}
  plain = models.build_model("residual_mlp", 64, 10, seed=4, width=8, depth=3)
  regularized = models.build_model("residual_mlp", 64, 10, seed=4, **options)
  for a, b in zip(
    jax.tree.leaves(nnx.state(plain, nnx.Param)),
    jax.tree.leaves(nnx.state(regularized, nnx.Param)),
    strict=True,
  ):
    np.testing.assert_array_equal(a, b)


def tiny_problem(**options) -> problem_lib.Problem:
  small = data_lib.Dataset(DIGITS.x_train[:64], DIGITS.y_train[:64], DIGITS.x_test, DIGITS.y_test)
  return problem_lib.builtin("mlp", small, width=8, depth=2, **options)


def test_penalty_value_and_gradient_are_the_hand_formula(x64):
  params = {
    "a": {"kernel": jnp.asarray([[1.0, -2.0], [0.5, 0.0]]), "bias": jnp.asarray([3.0, -1.0])},
    "b": {"kernel": jnp.asarray([[-4.0], [2.0]])},
  }
  l1, l2 = 0.3, 0.7
  kernels = np.concatenate([np.ravel(params["a"]["kernel"]), np.ravel(params["b"]["kernel"])])
  expected = l1 * np.abs(kernels).sum() + 0.5 * l2 * (kernels**2).sum()  # biases not penalized
  np.testing.assert_allclose(regularization.penalty(params, l1, l2), expected, rtol=1e-12)
  grads = jax.grad(regularization.penalty)(params, l1, l2)
  for name in ("a", "b"):
    w = np.asarray(params[name]["kernel"])
    np.testing.assert_allclose(grads[name]["kernel"], l1 * np.sign(w) + l2 * w, rtol=1e-12)
  np.testing.assert_array_equal(grads["a"]["bias"], 0.0)
  only_b = regularization.penalty(params, l1, l2, where=lambda path, _: path[0] == "b")
  np.testing.assert_allclose(only_b, l1 * 6.0 + 0.5 * l2 * 20.0, rtol=1e-12)


def test_penalize_adds_the_penalty_to_any_problem_and_its_weights_are_model_state():
  base = tiny_problem()
  penalized = regularization.penalize(base, l1=1e-3, l2=1e-2)
  pure, plain = problem_lib.pure(penalized), problem_lib.pure(base)
  params, state = pure.initial(0)
  batch = penalized.train_data
  data_loss = plain.loss(params, plain.initial(0)[1], batch)[0]
  kernels = [
    params["hidden"][0]["kernel"],
    params["hidden"][1]["kernel"],
    params["output"]["kernel"],
  ]
  hand = sum(1e-3 * jnp.abs(k).sum() + 0.5e-2 * (k**2).sum() for k in kernels)
  np.testing.assert_allclose(pure.loss(params, state, batch)[0], data_loss + hand, rtol=1e-5)
  stronger = regularization.set_strengths(state, l2=1.0)  # one program, another strength
  hand = sum(1e-3 * jnp.abs(k).sum() + 0.5 * (k**2).sum() for k in kernels)
  np.testing.assert_allclose(pure.loss(params, stronger, batch)[0], data_loss + hand, rtol=1e-5)
  np.testing.assert_allclose(
    pure.metrics(params, state, batch)["error"],
    plain.metrics(params, plain.initial(0)[1], batch)["error"],
  )


def test_shifts_move_pixels_exactly_and_keep_their_mass():
  image = np.zeros((8, 8))
  image[2:6, 3:5] = np.arange(1.0, 9.0).reshape(4, 2)
  for shift in ([1, 0], [0, -1], [-1, 1]):
    moved = regularization.shift_and_rotate(jnp.asarray(image), jnp.asarray(shift), 0.0)
    np.testing.assert_allclose(moved, np.roll(image, shift, axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(float(moved.sum()), image.sum(), rtol=1e-6)
  quarter = regularization.shift_and_rotate(jnp.asarray(image), jnp.zeros(2), 90.0)
  np.testing.assert_allclose(quarter, np.rot90(image), atol=1e-4)  # counter-clockwise


def test_digits_standardization_maps_the_inputs_back_to_integer_pixels():
  mean, std = (np.asarray(a) for a in regularization.digits_standardization())
  pixels = np.asarray(DIGITS.x_train, np.float64) * std + mean
  np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)
  assert pixels.min() > -1e-4 and pixels.max() < 16 + 1e-4


def test_augmented_digits_are_shifted_copies_with_the_same_ink():
  standardization = regularization.digits_standardization()
  mean, std = (np.asarray(a) for a in standardization)
  augment = regularization.Augment(
    1.0, max_rotation=0.0, standardization=standardization, rngs=nnx.Rngs(0)
  )
  pixels = (np.asarray(DIGITS.x_train[:200], np.float64) * std + mean).reshape(-1, 8, 8)
  pixels[:, [0, -1], :] = pixels[:, :, [0, -1]] = 0  # a blank frame: no ink leaves the image
  x = jnp.asarray((pixels.reshape(-1, 64) - mean) / std, jnp.float32)
  moved = (np.asarray(nnx.jit(lambda m, x: m(x))(augment, x), np.float64) * std + mean).reshape(
    -1, 8, 8
  )
  np.testing.assert_allclose(moved.sum(axis=(1, 2)), pixels.sum(axis=(1, 2)), rtol=1e-5)
  shifts = [(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1)]
  found = [
    next(s for s in shifts if np.allclose(after, np.roll(before, s, axis=(0, 1)), atol=1e-3))
    for before, after in zip(pixels, moved, strict=True)
  ]
  assert len(set(found)) == 9  # every shift drawn
  augment.eval()
  np.testing.assert_array_equal(augment(x), x)


def test_an_augmentation_rate_of_zero_leaves_the_inputs_bit_for_bit():
  augment = regularization.Augment(0.0, rngs=nnx.Rngs(0))
  x = DIGITS.x_train[:50]
  np.testing.assert_array_equal(augment(x), x)


def test_set_strengths_refuses_unknown_and_absent_strengths():
  state = nnx.state(
    models.build_model("mlp", 4, 2, width=3, depth=1, dropout=0.1), nnx.Not(nnx.Param)
  )
  changed = regularization.set_strengths(state, dropout=0.25)
  assert float(changed["dropout"]["rate"][...]) == 0.25
  assert float(state["dropout"]["rate"][...]) == pytest.approx(0.1)
  with pytest.raises(ValueError, match="unknown \\['drop'\\]"):
    regularization.set_strengths(state, drop=0.1)
  with pytest.raises(ValueError, match="no dropconnect"):
    regularization.set_strengths(state, dropconnect=0.1)


@pytest.mark.parametrize(
  ("kind", "value", "culprit"),
  [
    ("dropout", -0.5, r"dropout=-0.5 must be in \[0, 1\)"),  # kept every unit, scaled by 1/1.5
    ("dropout", 1.0, r"dropout=1.0 must be in \[0, 1\)"),  # zeroed every activation
    ("dropout", [0.1, 0.2], r"dropout has shape \(2,\)"),
    ("l2", -1.0, "l2=-1.0"),
    ("l1", [1.0, 2.0], r"l1 has shape \(2,\)"),  # a vector loss, failing later
    ("stochastic_depth", 0.0, r"stochastic_depth=0.0 must be in \(0, 1\]"),
    ("augment", 1.5, r"augment=1.5 must be in \[0, 1\]"),
  ],
)
def test_set_strengths_refuses_what_the_constructors_refuse(kind, value, culprit):
  with pytest.raises(ValueError, match=culprit):
    regularization.set_strengths({}, **{kind: value})


def test_set_strengths_checks_every_kind_and_accepts_traced_values():
  assert set(regularization._STRENGTH_CHECKS) == set(regularization.STRENGTHS)
  state = nnx.state(
    models.build_model("mlp", 4, 2, width=3, depth=1, dropout=0.1), nnx.Not(nnx.Param)
  )
  rates = jnp.asarray([0.0, 0.5])
  set_rate = jax.vmap(lambda r: regularization.set_strengths(state, dropout=r))
  np.testing.assert_array_equal(set_rate(rates)["dropout"]["rate"][...], rates)


def test_dropconnect_and_augment_refuse_bad_inputs_in_either_mode():
  """A 3-D input to DropConnect, and integer pixels to Augment (its shifts and rotations
  interpolate), are refused whether the module is in train or eval mode (DropConnect passed a 3-D
  input in eval mode and refused it in train mode)."""
  layer = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
  dropconnect = regularization.DropConnect(0.5, rngs=nnx.Rngs(0))
  augment = regularization.Augment(0.5, max_shift=1, rngs=nnx.Rngs(0))
  pixels = (DIGITS.x_train[:4] > 0).astype(jnp.uint8)
  for deterministic in (False, True):
    with pytest.raises(ValueError, match=r"x has shape \(2, 3, 4\)"):
      dropconnect(layer, jnp.ones((2, 3, 4)), deterministic=deterministic)
    with pytest.raises(ValueError, match="x has dtype uint8"):
      augment(pixels, deterministic=deterministic)


def test_penalizing_twice_is_refused_at_once():
  once = regularization.penalize(tiny_problem(), l2=0.1)
  with pytest.raises(ValueError, match="already penalized"):
    regularization.penalize(once, l1=0.1)


@pytest.mark.parametrize(
  "build, culprit",
  [
    (lambda: regularization.Dropout(1.0, rngs=nnx.Rngs(0)), "rate=1.0"),
    (lambda: regularization.DropConnect(-0.1, rngs=nnx.Rngs(0)), "rate=-0.1"),
    (lambda: regularization.StochasticDepth(3, 0.0, rngs=nnx.Rngs(0)), "final_survival=0.0"),
    (lambda: regularization.Augment(max_shift=1.5, rngs=nnx.Rngs(0)), "max_shift=1.5"),
    (
      lambda: models.build_model("residual_mlp", 4, 2, width=3, depth=1, stochastic_depth=0.5),
      "needs residual blocks",
    ),
    (lambda: models.build_model("mlp", 4, 2, augment=0.5), "augment=0.5"),
    (lambda: regularization.penalize(tiny_problem(), l2=-1.0), "l2=-1.0"),
  ],
)
def test_bad_regularizers_are_refused_by_name(build, culprit):
  with pytest.raises(ValueError, match=culprit):
    build()


@pytest.mark.slow  # two compiled training programs
def test_a_dropout_member_of_a_sweep_equals_its_run_alone():
  problem = tiny_problem(dropout=0.3)
  result = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": [0.05, 0.1], "seed": [0, 1]},
    steps=12,
    eval_every=6,
    batch_size=16,
  )
  row = result.table[3]
  alone = train.train(
    problem,
    optim.sgd(row["learning_rate"]),
    steps=12,
    eval_every=6,
    batch_size=16,
    seed=row["seed"],
  )
  for metric in ("train_loss", "test_loss", "train_error", "test_error"):
    ours = [
      r["value"] for r in result.history if r["member"] == row["member"] and r["metric"] == metric
    ]
    np.testing.assert_allclose(ours, alone.history[metric], rtol=1e-5, atol=1e-7)
  other = train.train(
    problem,
    optim.sgd(row["learning_rate"]),
    steps=12,
    eval_every=6,
    batch_size=16,
    seed=1 - row["seed"],
  )
  assert not np.allclose(other.history["train_loss"], alone.history["train_loss"])
