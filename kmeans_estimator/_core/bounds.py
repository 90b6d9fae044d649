"""Hamerly's bounds: exact Lloyd steps that skip most distance computations.

Lloyd's step computes the distance from every point to every center. Once
the clustering settles, most points keep their center, and the triangle
inequality proves it without the n x k product (Hamerly 2010):

- u(x) = |x - c_a(x)|, the distance to the assigned center (computed exactly
  each step: one pass over the data, no product);
- l(x) <= the distance to the second-nearest center, carried from step to
  step: after the centers move by p_j, l(x) - max_j p_j is still a bound;
- s(j) = half the distance from c_j to its nearest other center.

If u(x) <= max(l(x), s(a(x))), c_a(x) is still the nearest center, so only
the other points (those whose bounds fail) are compared with every center,
in row chunks. The step is exactly Lloyd's: the same assignments (up to
ties between equidistant centers), sums, counts and loss.

The bounds are per point, so they need the same points in the same order at
every step: the in-memory data of one `train` call. Squared Euclidean
distance only (scikit-learn's Elkan variant has the same restriction).
"""

import tensorflow as tf

from kmeans_estimator._core import constants
from kmeans_estimator._core import distances as distances_lib
from kmeans_estimator._core import numerics


def initial_state(num_points, dtype):
  """Bounds that prove nothing yet: (assignments int32 (n,), lower (n,))."""
  return (tf.zeros([num_points], tf.int32), tf.zeros([num_points], dtype))


def _nearest_two(points, centers, chunk_elements):
  """Index of the nearest center, and squared distances to the two nearest.

  Returns:
    (index int32 (m,), best (m,), second (m,)); `second` is +inf when k = 1.
  """
  k = tf.shape(centers)[0]
  center_norms = tf.reduce_sum(tf.square(centers), axis=1)
  infinity = tf.constant(float('inf'), points.dtype)

  def chunk_two(chunk):
    scores = (center_norms - 2.0 * tf.matmul(chunk, centers,
                                             transpose_b=True))
    index = tf.argmin(scores, axis=1, output_type=tf.int32)
    best = tf.gather(scores, index, axis=1, batch_dims=1)
    # The runner-up: the minimum with the winner masked out (cheaper than
    # top_k over k columns).
    second = tf.reduce_min(tf.where(
        tf.equal(tf.range(k)[tf.newaxis, :], index[:, tf.newaxis]),
        infinity, scores), axis=1)
    point_norms = tf.reduce_sum(tf.square(chunk), axis=1)
    return (index, tf.maximum(point_norms + best, 0.0),
            tf.maximum(point_norms + second, 0.0))

  rows = distances_lib.chunk_rows(k, chunk_elements)
  m = tf.shape(points)[0]
  num_chunks = (m + rows - 1) // rows
  parts = [tf.TensorArray(dtype, size=num_chunks, infer_shape=False,
                          element_shape=tf.TensorShape([None]))
           for dtype in (tf.int32, points.dtype, points.dtype)]

  def body(i, *parts):
    results = chunk_two(points[i * rows:(i + 1) * rows])
    return (i + 1,) + tuple(p.write(i, r) for p, r in zip(parts, results))

  _, *parts = tf.while_loop(lambda i, *_: i < num_chunks, body,
                            (tf.constant(0), *parts))
  return tuple(part.concat() for part in parts)


@tf.function(jit_compile=True, autograph=False)
def _distance_to_assigned(points, centers, assignments):
  """|x - c_a(x)| for every point, fused (no (n, d) temporary)."""
  return tf.sqrt(tf.reduce_sum(
      tf.square(points - tf.gather(centers, assignments)), axis=1))


def hamerly_statistics(points, centers, assignments, lower, chunk_elements,
                       weights=None):
  """The statistics of one Lloyd step, computed with Hamerly's bounds.

  Args:
    points: float Tensor (n, d), the same points at every step.
    centers: float Tensor (k, d), the centers of this step.
    assignments: int32 Tensor (n,), the assignments of the previous step
      (any valid indices at first).
    lower: float Tensor (n,), lower bounds on each point's distance to its
      second-nearest center (zeros at first).
    chunk_elements: bound on the number of distances held at once.
    weights: optional float Tensor (n,) of sample weights; they weight the
      statistics only (the bounds are per point).

  Returns:
    ((sums (k, d), counts (k,), loss), assignments, lower, recomputed):
    the statistics as `distances.cluster_statistics` gives them, the new
    assignments and bounds (for these centers), and how many points were
    compared with every center.
  """
  k = tf.shape(centers)[0]
  upper = _distance_to_assigned(points, centers, assignments)
  between = distances_lib.pairwise_distances(centers, centers,
                                             constants.SQUARED_EUCLIDEAN_DISTANCE)
  between += tf.linalg.diag(tf.fill([k], tf.constant(float('inf'),
                                                     centers.dtype)))
  half_gap = 0.5 * numerics.clamped_sqrt(tf.reduce_min(between, axis=1))
  unproven = upper > tf.maximum(lower, tf.gather(half_gap, assignments))
  rows = tf.cast(tf.where(unproven), tf.int32)  # (m, 1)
  index, best, second = _nearest_two(tf.gather_nd(points, rows), centers,
                                     chunk_elements)
  assignments = tf.tensor_scatter_nd_update(assignments, rows, index)
  upper = tf.tensor_scatter_nd_update(upper, rows, tf.sqrt(best))
  lower = tf.tensor_scatter_nd_update(lower, rows, tf.sqrt(second))
  statistics = distances_lib.segment_statistics(points, assignments,
                                                tf.square(upper),
                                                centers.shape[0] or k,
                                                weights)
  return statistics, assignments, lower, tf.shape(rows)[0]


def move_bounds(lower, assignments, old_centers, new_centers):
  """Lower bounds after the centers move.

  The second-nearest center is one other than a(x), so l(x) drops by the
  largest movement among the other centers: the largest overall, or the
  second largest for the points of the center that moved most.
  """
  movement = tf.sqrt(tf.reduce_sum(tf.square(new_centers - old_centers),
                                   axis=1))
  if movement.shape[0] == 1:
    return lower
  largest, mover = tf.math.top_k(movement, k=2)
  drop = tf.where(tf.equal(assignments, mover[0]), largest[1], largest[0])
  return tf.maximum(lower - drop, 0.0)
