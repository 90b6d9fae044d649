"""Center updates: the exact Lloyd step and the mini-batch step.

Both take per-cluster statistics from `distances.cluster_statistics` (summed
over any number of batches or replicas) and return new centers. A cluster
with no points keeps its center; under the cosine metric the centers that
moved are renormalised to unit length.

With `empty_cluster='farthest_point'` the statistics are first changed by
`relocate_empty_clusters` (scikit-learn's policy): each empty cluster takes
one of the points farthest from their centers, found in bounded memory by
`farthest_candidates` and `merge_candidates`.
"""

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import sparse as sparse_lib


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
  assigned to x and n is x's count before this batch: the legacy
  `_mini_batch_training_op`'s rule (learning rate 1 / (n + m)). Where n
  starts is the caller's: `KMeans` starts it at 1 for a fresh model with one
  step per iteration, as the legacy estimator did. With n = 0 the center
  becomes the mean of its batch points; with m = 0 it stays.

  Args:
    centers: float Tensor of shape (k, d).
    counts: int64 Tensor of shape (k,), points seen per cluster so far (n);
      or a float Tensor, the weight seen so far, when steps are weighted.
    batch_sums: float Tensor of shape (k, d), s per cluster.
    batch_counts: float Tensor of shape (k,), m per cluster (the batch's
      weight per cluster, with sample weights).
    distance_metric: 'squared_euclidean' or 'cosine'.

  Returns:
    (new_centers, new_counts): float Tensor of shape (k, d) and a Tensor of
    shape (k,) and the dtype of `counts`, n + m.
  """
  totals = tf.cast(counts, centers.dtype) + batch_counts
  steps = numerics.divide_or_keep(
      batch_sums - batch_counts[:, tf.newaxis] * centers, totals,
      tf.zeros_like(centers))
  new = _renormalize_moved(centers, centers + steps, batch_counts > 0,
                           distance_metric)
  return new, counts + tf.cast(batch_counts, counts.dtype)


def farthest_candidates(points, index, distances, num_candidates):
  """The points farthest from their nearest centers, farthest first.

  Only the (n,) vector of distances is searched (one top_k), never an
  (n, k) matrix. Ties go to the lower row. Slots beyond n are padding with
  distance -inf.

  Args:
    points: float Tensor of shape (n, d).
    index: int Tensor of shape (n,), each point's nearest center.
    distances: float Tensor of shape (n,), each point's distance to it.
    num_candidates: m, the number of candidates kept (k): a Python int,
      or an int32 scalar Tensor.

  Returns:
    (distances (m,), points (m, d), labels int32 (m,)), sorted by
    decreasing distance.
  """
  take = tf.minimum(num_candidates, tf.shape(distances)[0])
  values, rows = tf.math.top_k(distances, k=take)
  missing = num_candidates - take
  infinity = tf.constant(float('inf'), distances.dtype)
  values = tf.concat([values, tf.fill([missing], -infinity)], axis=0)
  chosen = tf.pad(sparse_lib.gather_rows(points, rows),
                  [[0, missing], [0, 0]])
  labels = tf.pad(tf.gather(tf.cast(index, tf.int32), rows), [[0, missing]])
  static = num_candidates if isinstance(num_candidates, int) else None
  return (tf.ensure_shape(values, [static]),
          tf.ensure_shape(chosen, [static, points.shape[1]]),
          tf.ensure_shape(labels, [static]))


def merge_candidates(first, second):
  """The farthest of two candidate sets, as one set of the same size.

  Equals `farthest_candidates` over the concatenated data when `first`
  comes from the earlier rows (ties go to `first`), so a running merge over
  the batches of a dataset holds m candidates, never the whole data.

  Args:
    first, second: (distances (m,), points (m, d), labels (m,)), as
      `farthest_candidates` returns them.

  Returns:
    The m farthest of both, in the same form.
  """
  num_candidates = first[0].shape[0]
  if num_candidates is None:
    num_candidates = tf.shape(first[0])[0]
  values, rows = tf.math.top_k(tf.concat([first[0], second[0]], axis=0),
                               k=num_candidates)
  return (values,
          tf.gather(tf.concat([first[1], second[1]], axis=0), rows),
          tf.gather(tf.concat([first[2], second[2]], axis=0), rows))


def relocate_empty_clusters(sums, counts, empty, candidates):
  """Moves far points into empty clusters (scikit-learn's policy).

  The i-th empty cluster (in index order) takes the i-th farthest
  candidate: the point leaves its cluster (its sum and count are removed
  there) and becomes the empty cluster's only member, so the update puts
  that center on the point. This is scikit-learn's
  `_relocate_empty_clusters_dense`: distinct points, farthest first, and
  nothing moves when every point sits exactly on its center (more clusters
  than distinct points). Where we differ: a cluster that gives away all its
  points keeps its center (scikit-learn sends it to the origin), and the
  order among equally far points goes to the lower row. With fewer
  candidates than empty clusters (a batch smaller than k), the clusters
  past the candidates stay empty.

  Args:
    sums: float Tensor of shape (k, d), per-cluster sums of assigned points.
    counts: float Tensor of shape (k,), per-cluster numbers of points.
    empty: bool Tensor of shape (k,), the clusters to relocate.
    candidates: (distances (m,), points (m, d), labels int32 (m,)) from
      `farthest_candidates` / `merge_candidates`, farthest first.

  Returns:
    (sums, counts, relocated): the changed statistics, and the int32 number
    of clusters relocated.
  """
  distances, points, labels = candidates
  k = tf.shape(counts)[0]
  available = tf.reduce_sum(tf.cast(distances > float('-inf'), tf.int32))
  # scikit-learn moves nothing when the farthest point is on its center.
  available = tf.where(distances[0] > 0, available, 0)
  rank = tf.cumsum(tf.cast(empty, tf.int32)) - 1  # (k,): i for the i-th.
  take = empty & (rank < available)
  relocated = tf.reduce_sum(tf.cast(take, tf.int32))
  used = tf.range(tf.shape(distances)[0]) < relocated  # (m,)
  used_counts = tf.cast(used, counts.dtype)
  # The donors lose their far points (a relocated point is never in an
  # empty cluster, so donors and recipients differ).
  sums -= tf.math.unsorted_segment_sum(
      points * used_counts[:, tf.newaxis], labels, k)
  counts -= tf.math.unsorted_segment_sum(used_counts, labels, k)
  # The recipients hold exactly their point.
  received = sparse_lib.gather_rows(points, tf.maximum(rank, 0))
  sums = tf.where(take[:, tf.newaxis], received, sums)
  counts = tf.where(take, tf.ones_like(counts), counts)
  return sums, counts, relocated
