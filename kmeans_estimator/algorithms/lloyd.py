"""Lloyd's full-batch step over in-memory points, with state carried over.

Every point is compared with every center each step (the exact Lloyd
iteration), but what does not change from step to step is kept: the
points' |x|^2 (computed once), and the per-cluster sums, which change by
the points that moved cluster rather than being summed again (`carried`,
exact in fixed point: a run resumed from a checkpoint gives the same
centers, bit for bit, as one that was not interrupted). The points (and
weights) must be the same, in the same order, at every step that shares
the state. Both metrics; any number of points per cluster, empty clusters
as `options.empty_cluster` says (see `base.update_centers`).
"""

from typing import NamedTuple, Optional

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.algorithms import base
from kmeans_estimator.ops import carried as carried_lib
from kmeans_estimator.ops import distances as distances_lib


class LloydState(NamedTuple):
  """What one Lloyd step hands to the next.

  Attributes:
    statistics: `carried.CarriedStatistics` of the last assignments.
    point_norms: float (n,), the points' |x|^2 (None under cosine).
  """
  statistics: carried_lib.CarriedStatistics
  point_norms: Optional[tf.Tensor]


def point_norms(points, options):
  """|x|^2 of every point (n,), or None under the cosine metric, whose
  steps do not use it."""
  if options.distance_metric == constants.COSINE_DISTANCE:
    return None
  return distances_lib.squared_norms_in_chunks(points, options.chunk_elements)


def init_state(points, centers, weights, options):
  """No assignments yet, and the points' |x|^2.

  Args:
    points: float Tensor (n, d), prepared (cast, normalised under cosine),
      as every step will get them.
    centers: float Tensor (k, d) (unused: the state does not depend on it).
    weights: None or float Tensor (n,) of sample weights, as the steps will
      get them.
    options: `base.Options`.

  Returns:
    `LloydState`.
  """
  del centers  # Unused.
  return LloydState(
      statistics=carried_lib.start(points, options.num_clusters, weights),
      point_norms=point_norms(points, options))


def step(points, centers, state, weights, options):
  """One exact Lloyd iteration.

  Args:
    points: float Tensor (n, d), prepared, the same at every step.
    centers: float Tensor (k, d).
    state: `LloydState` of the previous step or `init_state`.
    weights: None or float Tensor (n,), those given to `init_state`.
    options: `base.Options`.

  Returns:
    (new_centers (k, d), state, stats): stats as `base.update_centers`
    gives them; 'loss' is that of `centers`, before the update.
  """
  statistics, norms = state
  carried_lib.check_weights(statistics, weights)
  index, distance = distances_lib.nearest_centers(
      points, centers, options.distance_metric, options.chunk_elements,
      norms, static_chunks=False)
  loss = tf.reduce_sum(distance if weights is None else weights * distance)
  statistics = carried_lib.update(statistics, points, index, weights)
  new_centers, stats = base.update_centers(
      centers, *carried_lib.statistics(statistics, points.dtype), loss,
      options, lambda: base.farthest_candidates(points, centers, options),
      weights is not None)
  return new_centers, LloydState(statistics, norms), stats


ALGORITHM = base.Algorithm(
    name=constants.LLOYD, init_state=init_state, step=step,
    needs_whole_data=False,
    metrics=(constants.SQUARED_EUCLIDEAN_DISTANCE, constants.COSINE_DISTANCE),
    full_batch_only=False, supports_restarts=True, supports_sparse=True)
