"""Hamerly's bounds: exact Lloyd steps that skip most of the work.

Lloyd's step computes the distance from every point to every center and sums
every point into its cluster. Once the clustering settles, most points keep
their center, and the triangle inequality proves it without touching them
(Hamerly 2010). Per point, carried from step to step:

- a(x), the assigned center;
- u(x) >= |x - c_a(x)|, an upper bound: after the centers move by p_j it
  grows by p_a(x);
- l(x) <= the distance to the second-nearest center, a lower bound: it
  shrinks by the largest movement among the other centers.

With s(j) = half the distance from c_j to its nearest other center, a point
with u(x) <= max(l(x), s(a(x))) provably keeps its center. Only the others
get their exact u(x); those still unproven are compared with every center,
in row chunks.

The per-cluster sums and counts are carried too, in float64: a step adds
and subtracts the points that changed cluster, so a settled step costs
vectors of n values and the few points that moved, not a pass over n x d.
The loss comes from the same sums: sum |x - c_a|^2 = sum |x|^2
- 2 sum_j c_j.S_j + sum_j N_j |c_j|^2, in float64 so that the cancellation
of large terms costs no accuracy that float32 data have.

The step is exactly Lloyd's: the same assignments (up to ties between
equidistant centers), sums, counts and loss. The bounds are per point, so
they need the same points in the same order at every step: the in-memory
data of one `train` call. Squared Euclidean distance only (scikit-learn's
Elkan variant has the same restriction).
"""

from typing import NamedTuple

import tensorflow as tf

from kmeans_estimator._core import constants
from kmeans_estimator._core import distances as distances_lib
from kmeans_estimator._core import numerics

# Carried sums, weights and the loss: float64 (see the module docstring).
_SUMS_DTYPE = tf.float64


class HamerlyState(NamedTuple):
  """What one Hamerly step hands to the next (see the module docstring).

  Attributes:
    assignments: int32 (n,), each point's center; -1 before the first step.
    upper: (n,), upper bounds on each point's distance to its center.
    lower: (n,), lower bounds on its distance to the second-nearest center.
    sums: float64 (k, d), the (weighted) sum of each cluster's points.
    counts: float64 (k,), each cluster's number of points (total weight).
    members: int32 (k,), each cluster's points of positive weight (all its
      points, unweighted): a cluster without any has exactly zero sums and
      count, whatever rounding the float64 additions left.
    squared_total: float64 scalar, sum of (weighted) |x|^2 over the points.
  """
  assignments: tf.Tensor
  upper: tf.Tensor
  lower: tf.Tensor
  sums: tf.Tensor
  counts: tf.Tensor
  members: tf.Tensor
  squared_total: tf.Tensor


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _squared_total(points, weights):
  """sum of w |x|^2 in float64, fused (no float64 copy of the points)."""
  squared = tf.reduce_sum(tf.square(tf.cast(points, _SUMS_DTYPE)), axis=1)
  return tf.reduce_sum(tf.cast(weights, _SUMS_DTYPE) * squared)


def initial_state(points, num_clusters, weights=None):
  """Bounds that prove nothing yet, for these points (and weights).

  Args:
    points: float Tensor (n, d), as the steps will see them.
    num_clusters: k, a Python int.
    weights: optional float Tensor (n,) of the sample weights the steps
      will be given.

  Returns:
    `HamerlyState`.
  """
  n, d = tf.shape(points)[0], tf.shape(points)[1]
  if weights is None:
    weights = tf.ones([n], points.dtype)
  return HamerlyState(
      assignments=tf.fill([n], -1),
      upper=tf.fill([n], tf.constant(float('inf'), points.dtype)),
      lower=tf.zeros([n], points.dtype),
      sums=tf.zeros([num_clusters, d], _SUMS_DTYPE),
      counts=tf.zeros([num_clusters], _SUMS_DTYPE),
      members=tf.zeros([num_clusters], tf.int32),
      squared_total=_squared_total(points, weights))


def _nearest_two(points, rows, centers, chunk_elements):
  """For the points at `rows`: nearest center, distance to it, and to the
  second nearest.

  The rows are gathered a chunk at a time, so no copy of all of them
  exists. The distance to the nearest center is computed directly,
  |x - c|, not from the expansion the argmin uses: it becomes the point's
  upper bound, which rounding must not shrink below the truth.

  Returns:
    (index int32 (m,), distance (m,), second distance (m,)), Euclidean
    (not squared); `second` is +inf when k = 1.
  """
  k = tf.shape(centers)[0]
  center_norms = tf.reduce_sum(tf.square(centers), axis=1)
  infinity = tf.constant(float('inf'), points.dtype)

  def chunk_two(chunk_rows):
    chunk = tf.gather(points, chunk_rows)
    scores = (center_norms - 2.0 * tf.matmul(chunk, centers,
                                             transpose_b=True))
    index = tf.argmin(scores, axis=1, output_type=tf.int32)
    # The runner-up: the minimum with the winner masked out (cheaper than
    # top_k over k columns).
    second = tf.reduce_min(tf.where(
        tf.equal(tf.range(k)[tf.newaxis, :], index[:, tf.newaxis]),
        infinity, scores), axis=1)
    point_norms = tf.reduce_sum(tf.square(chunk), axis=1)
    best = tf.norm(chunk - tf.gather(centers, index), axis=1)
    return index, best, numerics.clamped_sqrt(point_norms + second)

  rows_per_chunk = distances_lib.chunk_rows(k, chunk_elements)
  m = tf.shape(rows)[0]
  # At least one chunk, perhaps empty: a TensorArray of none cannot concat.
  num_chunks = tf.maximum((m + rows_per_chunk - 1) // rows_per_chunk, 1)
  parts = [tf.TensorArray(dtype, size=num_chunks, infer_shape=False,
                          element_shape=tf.TensorShape([None]))
           for dtype in (tf.int32, points.dtype, points.dtype)]

  def body(i, *parts):
    results = chunk_two(rows[i * rows_per_chunk:(i + 1) * rows_per_chunk])
    return (i + 1,) + tuple(p.write(i, r) for p, r in zip(parts, results))

  _, *parts = tf.while_loop(lambda i, *_: i < num_chunks, body,
                            (tf.constant(0), *parts))
  return tuple(part.concat() for part in parts)


def _distance_to_assigned(points, rows, centers, assignments):
  """|x - c_a(x)| for the points at `rows` (whose assignments are given)."""
  return tf.norm(tf.gather(points, rows) - tf.gather(centers, assignments),
                 axis=1)


def _moved_statistics(points, rows, old, new, weights, num_clusters):
  """What the points at `rows` moving from clusters `old` to `new` change:
  (sums (k, d), counts (k,), members (k,)), float64 sums and counts.

  A point with no cluster yet (old = -1) is only added.
  """
  moved = tf.cast(tf.gather(points, rows), _SUMS_DTYPE)
  if weights is None:
    weight = tf.ones_like(moved[:, 0])
    member = tf.ones_like(rows)
  else:
    weight = tf.cast(tf.gather(weights, rows), _SUMS_DTYPE)
    member = tf.cast(weight > 0, tf.int32)
    moved *= weight[:, tf.newaxis]

  def change(values):
    # unsorted_segment_sum drops the negative ids (no cluster yet).
    return (tf.math.unsorted_segment_sum(values, new, num_clusters) -
            tf.math.unsorted_segment_sum(values, old, num_clusters))

  return change(moved), change(weight), change(member)


def hamerly_statistics(points, centers, state, chunk_elements, weights=None):
  """The statistics of one Lloyd step, computed with Hamerly's bounds.

  Args:
    points: float Tensor (n, d), the same points at every step.
    centers: float Tensor (k, d), the centers of this step.
    state: `HamerlyState` of the previous step (or `initial_state`).
    chunk_elements: bound on the number of distances held at once.
    weights: optional float Tensor (n,) of sample weights, those that
      `initial_state` was given; they weight the statistics only (the bounds
      are per point).

  Returns:
    ((sums (k, d), counts (k,), loss), state, recomputed): the statistics
    as `distances.cluster_statistics` gives them (in the points' dtype), the
    state for these centers (bounds not yet moved: see `move_bounds`), and
    how many points were compared with every center.
  """
  k = centers.shape[0] or tf.shape(centers)[0]
  infinity = tf.constant(float('inf'), points.dtype)
  assignments, upper, lower = state.assignments, state.upper, state.lower
  between = distances_lib.pairwise_distances(
      centers, centers, constants.SQUARED_EUCLIDEAN_DISTANCE)
  between += tf.linalg.diag(tf.fill([tf.shape(centers)[0]], infinity))
  half_gap = 0.5 * numerics.clamped_sqrt(tf.reduce_min(between, axis=1))
  bound = tf.maximum(lower, tf.gather(half_gap, tf.maximum(assignments, 0)))

  # The points whose bounds fail get their exact distance to their center
  # (none yet: +inf), and are tested again.
  candidates = tf.cast(
      tf.where((upper > bound) | (assignments < 0))[:, 0], tf.int32)
  old = tf.gather(assignments, candidates)
  known = tf.where(old >= 0)
  exact = tf.tensor_scatter_nd_update(
      tf.fill(tf.shape(candidates), infinity), known,
      _distance_to_assigned(points, tf.gather_nd(candidates, known), centers,
                            tf.gather_nd(old, known)))
  upper = tf.tensor_scatter_nd_update(upper, candidates[:, tf.newaxis],
                                      exact)
  unproven = (exact > tf.gather(bound, candidates)) | (old < 0)
  rows = tf.boolean_mask(candidates, unproven)
  old = tf.boolean_mask(old, unproven)

  # Those still unproven are compared with every center.
  new, best, second = _nearest_two(points, rows, centers, chunk_elements)
  scatter_rows = rows[:, tf.newaxis]
  state = state._replace(
      assignments=tf.tensor_scatter_nd_update(assignments, scatter_rows, new),
      upper=tf.tensor_scatter_nd_update(upper, scatter_rows, best),
      lower=tf.tensor_scatter_nd_update(lower, scatter_rows, second))

  changed = tf.where(tf.not_equal(old, new))
  sums, counts, members = _moved_statistics(
      points, tf.gather_nd(rows, changed), tf.gather_nd(old, changed),
      tf.gather_nd(new, changed), weights, k)
  members = state.members + members
  # Exactly zero where no point of positive weight is left.
  occupied = members > 0
  counts = tf.where(occupied, state.counts + counts,
                    tf.zeros_like(counts))
  sums = tf.where(occupied[:, tf.newaxis], state.sums + sums,
                  tf.zeros_like(sums))
  state = state._replace(sums=sums, counts=counts, members=members)

  wide = tf.cast(centers, _SUMS_DTYPE)
  loss = (state.squared_total - 2.0 * tf.reduce_sum(wide * sums) +
          tf.reduce_sum(counts * tf.reduce_sum(tf.square(wide), axis=1)))
  statistics = (tf.cast(sums, points.dtype), tf.cast(counts, points.dtype),
                tf.cast(tf.maximum(loss, 0.0), points.dtype))
  return statistics, state, tf.shape(rows)[0]


def move_bounds(state, old_centers, new_centers):
  """The state's bounds after the centers move.

  u(x) grows by its own center's movement; the second-nearest center is one
  other than a(x), so l(x) drops by the largest movement among the other
  centers: the largest overall, or the second largest for the points of the
  center that moved most.
  """
  movement = tf.norm(new_centers - old_centers, axis=1)
  upper = state.upper + tf.gather(movement, state.assignments)
  if movement.shape[0] == 1:
    return state._replace(upper=upper)
  largest, mover = tf.math.top_k(movement, k=2)
  drop = tf.where(tf.equal(state.assignments, mover[0]), largest[1],
                  largest[0])
  return state._replace(upper=upper,
                        lower=tf.maximum(state.lower - drop, 0.0))
