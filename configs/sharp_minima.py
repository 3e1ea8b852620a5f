"""Keskar et al. (2017) on digits: small vs large minibatches for the same epochs, the sharpness of
the minima reached (full box and random subspace) and the held-out error, over seeds."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "sharp_minima"
  config.seed = 0
  config.num_seeds = 8  # seeds seed, seed + 1, ...: one small- and one large-batch run each
  config.epochs = 200  # the same for both minibatch sizes (Keskar et al.'s code: one nb_epoch)
  config.eval_every_epochs = 2
  config.small_batch_size = 16
  config.large_batch_size = 134  # ≈ 10% of the 1,347 training examples (Keskar et al. §2.2)
  config.learning_rate = 1e-3  # Adam's default, for both (as Keskar et al.)
  config.sampling = "epoch"
  config.data = digits()
  config.model = mlp(width=32)
  config.optimizer = ml_collections.ConfigDict({"name": "adam"})  # as Keskar et al. (2017)
  config.sharpness_eps = [1e-3, 5e-4]  # ε of the box C_ε (Keskar et al. Tables 3 and 4)
  config.sharpness_steps = 20  # sign-gradient ascent steps in the full box
  config.subspace_dim = 100  # p, the random columns of A (Keskar et al. Table 4)
  config.subspace_iterations = 100  # L-BFGS-B iterations in the subspace, per start
  # L-BFGS-B runs, from z = 0 and random corners of the box: near a minimum the box holds narrow
  # peaks (one example pushed across its boundary) that a single start rarely finds
  config.subspace_starts = 32
  config.equal_loss_control = True  # also measure the small batch at the large one's loss
  config.lock()
  return config
