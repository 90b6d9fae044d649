"""Passes over the data: per-cluster statistics and far points, of a Tensor
of points or over every batch of a finite dataset.

A full-batch step reads all the data once with the current centers; over a
`tf.data.Dataset` of batches its statistics are summed batch by batch, so
that memory holds one batch (and a chunk of distances), and a dataset gives
exactly the step that the concatenated Tensor would. The per-batch maths is
`ops.distances` (`cluster_statistics`, `restart_statistics`) and
`algorithms.base.farthest_candidates`; this module adds the loop over the
batches, for `KMeans`. The functions are pure: centers in, Tensors out.

A dataset's elements are batches of points (m, d), or (points (m, d),
weights (m,)) pairs (`is_weighted`). `prepare` casts and normalises points
as the model computes with them.
"""

import tensorflow as tf

from kmeans_estimator.algorithms import base as algorithms_base
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import updates as updates_lib


def is_weighted(data):
  """Whether `data` is a dataset of (points, weights) pairs."""
  return isinstance(data, tf.data.Dataset) and isinstance(
      data.element_spec, tuple)


def over_batches(data, weights, batch_statistics, zeros, prepare):
  """`batch_statistics(points, weights)` of a Tensor `data` (with the
  `weights` given), or summed over the batches of a dataset (with the
  weights of its elements) starting from `zeros()`."""
  if not isinstance(data, tf.data.Dataset):
    return batch_statistics(prepare(data), weights)
  weighted = is_weighted(data)
  # A loop over an iterator in this function's own graph: control flow
  # inside Dataset.reduce's function runs several times slower.
  iterator = iter(data)

  def add(batch, state):
    if weighted:
      points, batch_weights = batch.get_value()
      stats = batch_statistics(prepare(points), batch_weights)
    else:
      stats = batch_statistics(prepare(batch.get_value()), None)
    return (iterator.get_next_as_optional(),
            tuple(a + b for a, b in zip(state, stats)))

  return tf.while_loop(lambda batch, _: batch.has_value(), add,
                       (iterator.get_next_as_optional(), zeros()))[1]


def cluster_statistics(data, weights, centers, options, num_features,
                       prepare):
  """(sums (k, d), counts (k,), loss) of `data` under `centers` (k, d), as
  `distances.cluster_statistics` gives them, summed over a dataset's
  batches (exactly: see there); `options` is an `algorithms.Options`."""
  k, dtype = options.num_clusters, options.dtype

  def batch_statistics(points, batch_weights):
    return distances_lib.cluster_statistics(
        points, centers, options.distance_metric, options.chunk_elements,
        None if batch_weights is None else tf.cast(batch_weights, dtype))

  return over_batches(
      data, weights, batch_statistics,
      lambda: (tf.zeros([k, num_features], dtype), tf.zeros([k], dtype),
               tf.zeros([], dtype)), prepare)


def restart_statistics(data, weights, centers, options, num_features,
                       prepare):
  """`cluster_statistics` of R sets of centers (R, k, d) in one pass: each
  batch is scored against all R k centers in one matrix product
  (`distances.restart_statistics`).

  Returns:
    (sums (R, k, d), counts (R, k), loss (R,)).
  """
  r, k, dtype = int(centers.shape[0]), options.num_clusters, options.dtype

  def batch_statistics(points, batch_weights):
    return distances_lib.restart_statistics(
        points, centers, options.distance_metric, options.chunk_elements,
        None if batch_weights is None else tf.cast(batch_weights, dtype))

  return over_batches(
      data, weights, batch_statistics,
      lambda: (tf.zeros([r, k, num_features], dtype), tf.zeros([r, k], dtype),
               tf.zeros([r], dtype)), prepare)


def farthest_candidates(data, centers, options, num_features, prepare):
  """The k points of `data` farthest from their nearest `centers`, as
  `algorithms.base.farthest_candidates` gives them.

  A dataset is streamed once, keeping a running top k (k distances and k
  points, `updates.merge_candidates`), so memory never grows with the
  data; weights are not needed.
  """
  k, dtype = options.num_clusters, options.dtype

  def candidates(points):
    return algorithms_base.farthest_candidates(points, centers, options)

  if not isinstance(data, tf.data.Dataset):
    return candidates(prepare(data))
  initial = (tf.fill([k], tf.constant(float('-inf'), dtype)),
             tf.zeros([k, num_features], dtype),
             tf.zeros([k], tf.int32))
  iterator = iter(data)

  def add(batch, best):
    points = batch.get_value()
    if isinstance(points, tuple):  # (points, weights): weights not needed.
      points = points[0]
    return (iterator.get_next_as_optional(), updates_lib.merge_candidates(
        best, candidates(prepare(points))))

  return tf.while_loop(lambda batch, _: batch.has_value(), add,
                       (iterator.get_next_as_optional(), initial))[1]
