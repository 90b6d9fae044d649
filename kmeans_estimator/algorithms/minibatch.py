"""The legacy mini-batch step: per-cluster learning rates from counts.

Each step assigns a batch to the centers and moves each center toward its
batch points' mean by m / (n + m) (`updates.mini_batch_update`): n the
points (weight) its cluster has had so far, m this batch's. With
mini_batch_steps_per_iteration N > 1 (the legacy two-copy scheme) points
are assigned with the centers in `clusters` while the updates go to a
second copy, which replaces them (and the counts restart at 0) every N
steps. Inside `strategy.run` the step uses the global batch: statistics
are all-reduced before the update.

With empty_cluster='farthest_point', clusters that no point has ever been
assigned to take the batch's points farthest from their centers: those
whose count is still at most its fresh value (see `initial_count`). A
cluster that merely misses one batch keeps its center and learning rate.
"""

from typing import NamedTuple, Optional

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.algorithms import base
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import updates


class MiniBatchState(NamedTuple):
  """The mini-batch state (saved in checkpoints under the legacy names).

  Attributes:
    counts: (k,) points per cluster so far ('Variable'): int64, or float
      sums of weights when trained with weights.
    updated: (k, d), the copy the updates go to ('clusters_updated'); None
      with N = 1.
    update_in_steps: int64 scalar, steps until the copy replaces the
      centers ('update_in_steps'); None with N = 1.
  """
  counts: tf.Tensor
  updated: Optional[tf.Tensor] = None
  update_in_steps: Optional[tf.Tensor] = None


def initial_count(options):
  """The counts' fresh value, the legacy rule: 1 with
  mini_batch_steps_per_iteration=1 (the initial center weighs like one
  point), else 0 (the first batch of an iteration puts a center on its
  points' mean)."""
  return 1 if options.mini_batch_steps_per_iteration == 1 else 0


def fresh_counts(options, dtype):
  """The counts of a fresh model, (k,) of `dtype`."""
  return tf.fill([options.num_clusters],
                 tf.constant(initial_count(options), dtype))


def init_state(points, centers, weights, options):
  """The state of a fresh model for these centers.

  Args:
    points: unused (the state does not depend on the points).
    centers: float Tensor (k, d), the initial centers (the second copy
      starts as them).
    weights: None, or the sample weights (the counts are then float).
    options: `base.Options`.

  Returns:
    `MiniBatchState`.
  """
  del points  # Unused.
  counts = fresh_counts(
      options, options.dtype if weights is not None else tf.int64)
  if options.mini_batch_steps_per_iteration == 1:
    return MiniBatchState(counts)
  return MiniBatchState(
      counts, tf.identity(centers),
      tf.constant(options.mini_batch_steps_per_iteration, tf.int64))


def sync(centers, state, options):
  """The two-copy scheme's turn: every N steps the updated copy becomes the
  centers and the counts restart at 0 (the legacy reset); otherwise one
  step fewer to go.

  Returns:
    (centers, state): the centers to assign with, and the state.
  """
  if state.update_in_steps is None:
    return centers, state

  def swap():
    return (state.updated, tf.zeros_like(state.counts),
            tf.constant(options.mini_batch_steps_per_iteration - 1,
                        tf.int64))

  def count_down():
    return centers, state.counts, state.update_in_steps - 1

  centers, counts, update_in_steps = tf.cond(state.update_in_steps <= 0,
                                             swap, count_down)
  return centers, MiniBatchState(counts, state.updated, update_in_steps)


def step(points, centers, state, weights, options):
  """One mini-batch step on `points`.

  Args:
    points: float Tensor (m, d), prepared: this step's batch.
    centers: float Tensor (k, d), the `clusters`.
    state: `MiniBatchState`.
    weights: None or float Tensor (m,): s and m of the update rule are then
      the batch's weighted sum and total weight per cluster, and the counts
      accumulate weight (a point of integer weight w moves the centers as w
      copies of it would).
    options: `base.Options`.

  Returns:
    (new_centers, state, stats): the `clusters` after the step (with N > 1
    the updates went to `state.updated`), and stats as `base.step_stats`
    gives them, 'cluster_sizes' after any relocation.
  """
  centers, state = sync(centers, state, options)
  target = centers if state.updated is None else state.updated
  sums, counts, loss = base.sum_over_replicas(
      distances_lib.cluster_statistics(points, centers,
                                       options.distance_metric,
                                       options.chunk_elements, weights))
  sizes, relocated = counts, None
  old_counts = state.counts
  rate_counts = old_counts
  if options.empty_cluster == constants.FARTHEST_POINT:
    # A count still at most its fresh value 1: never a point (a count of 0
    # comes from a model saved before counts started at 1, and 1 there
    # means one point so far, which this rule takes as none).
    never_used = old_counts <= initial_count(options)
    empty = never_used & tf.equal(counts, 0)
    sums, sizes, relocated = base.relocate(
        sums, counts, empty,
        lambda: base.farthest_candidates(points, centers, options))
    # A relocated center lands on its point (n = 0 in the rule): the old
    # center's weight goes with the old center. Its count still grows by
    # the point, past the fresh value.
    moved = empty & (sizes > 0)
    rate_counts = tf.where(moved, tf.zeros_like(old_counts), old_counts)
  new_target, _ = updates.mini_batch_update(target, rate_counts, sums, sizes,
                                            options.distance_metric)
  counts_after = old_counts + tf.cast(sizes, old_counts.dtype)
  stats = base.step_stats(loss, counts, sizes, relocated, weights is not None)
  if state.updated is None:
    return new_target, MiniBatchState(counts_after), stats
  return centers, MiniBatchState(counts_after, new_target,
                                 state.update_in_steps), stats


ALGORITHM = base.Algorithm(
    name='minibatch', init_state=init_state, step=step,
    needs_whole_data=False,
    metrics=(constants.SQUARED_EUCLIDEAN_DISTANCE, constants.COSINE_DISTANCE),
    mini_batch=True, full_batch_only=False, supports_sparse=True)
