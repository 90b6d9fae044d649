"""Center updates: the exact Lloyd step and the mini-batch step.

Both take per-cluster statistics from `distances.cluster_statistics` (summed
over any number of batches or replicas) and return new centers. A cluster
with no points keeps its center; under the cosine metric the centers that
moved are renormalised to unit length.
"""

import tensorflow as tf

from kmeans_estimator._core import constants
from kmeans_estimator._core import numerics


def _renormalize_moved(old, new, moved, distance_metric):
  if distance_metric != constants.COSINE_DISTANCE:
    return new
  return tf.where(moved[:, tf.newaxis], numerics.safe_l2_normalize(new), old)


def lloyd_update(centers, sums, counts, distance_metric):
  """One exact Lloyd update.

  x_j <- (sum of the points nearest to x_j) / (their number).
  An empty cluster (count 0) keeps x_j: it never becomes NaN or moves to the
  origin.

  Args:
    centers: float Tensor of shape (k, d), the centers the points were
      assigned with.
    sums: float Tensor of shape (k, d), per-cluster sums of assigned points.
    counts: float Tensor of shape (k,), per-cluster numbers of points.
    distance_metric: 'squared_euclidean' or 'cosine'.

  Returns:
    float Tensor of shape (k, d), the new centers.
  """
  new = numerics.divide_or_keep(sums, counts, centers)
  return _renormalize_moved(centers, new, counts > 0, distance_metric)


def mini_batch_update(centers, counts, batch_sums, batch_counts,
                      distance_metric):
  """One mini-batch update with per-cluster learning rates (Sculley 2010).

  x <- x + (s - m x) / (n + m), where s is the sum of the m batch points
  assigned to x and n is the number of points assigned to x before this
  batch. (The legacy kernel divided by the count after adding m; we use the
  rule its comments state.) With n = 0 the center becomes the mean of its
  batch points; with m = 0 it stays.

  Args:
    centers: float Tensor of shape (k, d).
    counts: int64 Tensor of shape (k,), points seen per cluster so far (n).
    batch_sums: float Tensor of shape (k, d), s per cluster.
    batch_counts: float Tensor of shape (k,), m per cluster.
    distance_metric: 'squared_euclidean' or 'cosine'.

  Returns:
    (new_centers, new_counts): float Tensor of shape (k, d) and int64 Tensor
    of shape (k,), n + m.
  """
  totals = tf.cast(counts, centers.dtype) + batch_counts
  steps = numerics.divide_or_keep(
      batch_sums - batch_counts[:, tf.newaxis] * centers, totals,
      tf.zeros_like(centers))
  new = _renormalize_moved(centers, centers + steps, batch_counts > 0,
                           distance_metric)
  return new, counts + tf.cast(batch_counts, tf.int64)
