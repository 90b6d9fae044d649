"""Choosing initial centers from a batch of points: random, k-means++, k-MC2.

Pure functions of (points, number wanted, seed): the same seed and points give
the same centers, eagerly or inside `tf.function`. Seeds are stateless
`int32` Tensors of shape (2,). Points must be prepared for the metric
(normalised under cosine). Every loop here is over centers, never over points:
each iteration is matrix work on the whole batch.
"""

import math

import tensorflow as tf

from kmeans_estimator._core import constants
from kmeans_estimator._core import distances as distances_lib
from kmeans_estimator._core import numerics


def _fold(seed, i):
  return tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64))


def _uniform_index(n, seed, shape=()):
  return tf.random.stateless_uniform(shape, seed, minval=0, maxval=n,
                                     dtype=tf.int32)


def random_points(points, num, seed):
  """Up to `num` distinct rows of `points`, uniformly without replacement.

  When the batch has fewer than `num` rows, all of them are returned (in a
  random order); the caller takes the rest from later batches.

  Args:
    points: float Tensor of shape (n, d).
    num: int scalar, how many centers are still wanted.
    seed: int32 Tensor of shape (2,).

  Returns:
    float Tensor of shape (min(num, n), d).
  """
  n = tf.shape(points)[0]
  keys = tf.random.stateless_uniform([n], seed)
  _, order = tf.math.top_k(keys, k=tf.minimum(tf.cast(num, tf.int32), n))
  return tf.gather(points, order)


def num_kmeans_plus_plus_candidates(num_clusters, num_retries):
  """Candidates drawn per center: 1 + retries; negative retries mean 2 + log k.

  This is the legacy rule for `kmeans_plus_plus_num_retries`.
  """
  if num_retries < 0:
    num_retries = 2 + int(math.log(max(num_clusters, 1)))
  return 1 + num_retries


def _pick(candidate_distances, min_distance):
  """The candidate that lowers the total distance most, and the new minima."""
  potentials = tf.reduce_sum(
      tf.minimum(min_distance[:, tf.newaxis], candidate_distances), axis=0)
  best = tf.argmin(potentials, output_type=tf.int32)
  return best, tf.minimum(min_distance, candidate_distances[:, best])


def _best_candidate(products, point_norms, candidate_norms, min_distance):
  return _pick(tf.maximum(point_norms[:, tf.newaxis] - 2.0 * products +
                          candidate_norms, 0.0), min_distance)


def _best_candidate_cosine(products, min_distance):
  return _pick(tf.maximum(1.0 - products, 0.0), min_distance)


def kmeans_plus_plus(points, num, seed, num_retries, distance_metric):
  """Greedy k-means++ (Arthur & Vassilvitskii 2007, as the legacy op did).

  The first center is a uniform random point. Each further center is the
  best, by resulting total distance, of `1 + num_retries` candidates drawn
  with probability proportional to their distance to the nearest center
  chosen so far. When every point already coincides with a center (fewer
  distinct points than `num`), candidates are drawn uniformly, so duplicate
  centers result; their clusters stay empty and keep their centers.

  Args:
    points: float Tensor of shape (n, d) with n >= num >= 1.
    num: Python int, the number of centers to choose.
    seed: int32 Tensor of shape (2,).
    num_retries: Python int, extra candidates per center (negative: 2 + log k).
    distance_metric: 'squared_euclidean' or 'cosine'.

  Returns:
    float Tensor of shape (num, d).
  """
  candidates = num_kmeans_plus_plus_candidates(num, num_retries)
  n = tf.shape(points)[0]
  first = tf.gather(points, _uniform_index(n, _fold(seed, 0)))[tf.newaxis]
  centers = tf.tensor_scatter_nd_update(
      tf.zeros([num, tf.shape(points)[1]], points.dtype), [[0]], first)
  point_norms = tf.reduce_sum(tf.square(points), axis=1)  # Once, not per center.
  min_distance = tf.maximum(
      distances_lib.pairwise_distances(points, first, distance_metric,
                                       point_norms)[:, 0], 0.0)

  def body(i, centers, min_distance):
    # Draw candidates with probability proportional to min_distance by
    # inverting its cumulative sum: one pass over the points per center
    # (a categorical draw would cost a pass per candidate).
    cumulative = tf.cumsum(min_distance)
    total = cumulative[-1]
    uniform = tf.random.stateless_uniform([candidates], _fold(seed, i),
                                          dtype=points.dtype)
    weighted = tf.minimum(
        tf.searchsorted(cumulative, uniform * total, side='right'), n - 1)
    # Every point coincides with a center: draw uniformly instead.
    chosen = tf.where(total > 0, weighted,
                      tf.cast(uniform * tf.cast(n, points.dtype), tf.int32))
    candidate_points = tf.gather(points, tf.minimum(chosen, n - 1))
    if distance_metric == constants.COSINE_DISTANCE:
      products = tf.matmul(points, numerics.safe_l2_normalize(
          candidate_points), transpose_b=True)
      best, min_distance = _best_candidate_cosine(products, min_distance)
    else:
      products = tf.matmul(points, candidate_points, transpose_b=True)
      best, min_distance = _best_candidate(
          products, point_norms,
          tf.reduce_sum(tf.square(candidate_points), axis=1), min_distance)
    centers = tf.tensor_scatter_nd_update(
        centers, [[i]], candidate_points[best][tf.newaxis])
    return i + 1, centers, min_distance

  _, centers, _ = tf.while_loop(lambda i, *_: i < num, body,
                                (tf.constant(1), centers, min_distance))
  return centers


def kmc2(points, num, seed, chain_length, distance_metric):
  """k-MC2 (Bachem et al. 2016): k-means++ approximated by short Markov chains.

  The first center is a uniform random point. For each further center a chain
  of `chain_length` uniformly drawn points is walked: the walk moves from the
  current candidate x to the next y with probability min(1, D(y) / D(x)),
  D being the distance to the nearest center chosen so far; where it ends is
  the new center. Cost per center is O(chain_length * k * d), independent of n.

  Args:
    points: float Tensor of shape (n, d), n >= 1.
    num: Python int, the number of centers to choose.
    seed: int32 Tensor of shape (2,).
    chain_length: Python int >= 1.
    distance_metric: 'squared_euclidean' or 'cosine'.

  Returns:
    float Tensor of shape (num, d).
  """
  n = tf.shape(points)[0]
  first = tf.gather(points, _uniform_index(n, _fold(seed, 0)))[tf.newaxis]
  centers = tf.tensor_scatter_nd_update(
      tf.zeros([num, tf.shape(points)[1]], points.dtype), [[0]], first)
  infinity = tf.constant(float('inf'), points.dtype)

  def body(i, centers):
    step_seed = _fold(seed, i)
    chain = tf.gather(
        points, _uniform_index(n, _fold(step_seed, 0), [chain_length]))
    chain_distances = distances_lib.pairwise_distances(chain, centers,
                                                       distance_metric)
    chosen_so_far = tf.range(num) < i
    chain_distances = tf.reduce_min(
        tf.where(chosen_so_far[tf.newaxis], tf.maximum(chain_distances, 0.0),
                 infinity), axis=1)
    thresholds = tf.random.stateless_uniform(
        [chain_length], _fold(step_seed, 1), dtype=points.dtype)

    def walk(j, current):
      # Accept y with probability D(y) / D(x): u * D(x) < D(y).
      accept = thresholds[j] * chain_distances[current] < chain_distances[j]
      return j + 1, tf.where(accept, j, current)

    _, current = tf.while_loop(lambda j, _: j < chain_length, walk,
                               (tf.constant(1), tf.constant(0)))
    centers = tf.tensor_scatter_nd_update(centers, [[i]],
                                          chain[current][tf.newaxis])
    return i + 1, centers

  _, centers = tf.while_loop(lambda i, _: i < num, body,
                             (tf.constant(1), centers))
  return centers
