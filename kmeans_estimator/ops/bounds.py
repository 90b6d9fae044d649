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

The per-cluster sums and counts are carried too (`carried`, exactly, in
fixed point): a step adds and subtracts the points that changed cluster, so
a settled step costs vectors of n values and the few points that moved, not
a pass over n x d. The loss comes from the same sums (`carried.loss`).

The step is exactly Lloyd's: the same assignments (up to ties between
equidistant centers), sums, counts and loss. The bounds are per point, so
they need the same points in the same order at every step: the in-memory
data of one `train` call. Squared Euclidean distance only (scikit-learn's
Elkan variant has the same restriction). Sparse points (`ops.sparse`) take
the same steps: their rows are taken a chunk at a time (`take_rows`),
and |x - c| is summed over their stored values.
"""

from typing import NamedTuple

import tensorflow as tf

from kmeans_estimator.ops import carried as carried_lib
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import sparse as sparse_lib


class HamerlyState(NamedTuple):
  """What one Hamerly step hands to the next (see the module docstring).

  Attributes:
    statistics: `carried.CarriedStatistics`, the assignments (-1 before
      the first step) and their sums and counts.
    upper: (n,), upper bounds on each point's distance to its center.
    lower: (n,), lower bounds on its distance to the second-nearest center.
    squared_total: float64 scalar, sum of (weighted) |x|^2 over the points.
  """
  statistics: carried_lib.CarriedStatistics
  upper: tf.Tensor
  lower: tf.Tensor
  squared_total: tf.Tensor


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
  n = sparse_lib.num_rows(points)
  return HamerlyState(
      statistics=carried_lib.start(points, num_clusters, weights),
      upper=tf.fill([n], tf.constant(float('inf'), points.dtype)),
      lower=tf.zeros([n], points.dtype),
      squared_total=carried_lib.squared_total(points, weights))


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
    chunk = sparse_lib.take_rows(points, chunk_rows)
    scores = (center_norms - 2.0 * sparse_lib.matmul(chunk, centers,
                                                     transpose_b=True))
    index = tf.argmin(scores, axis=1, output_type=tf.int32)
    # The runner-up: the minimum with the winner masked out (cheaper than
    # top_k over k columns).
    second = tf.reduce_min(tf.where(
        tf.equal(tf.range(k)[tf.newaxis, :], index[:, tf.newaxis]),
        infinity, scores), axis=1)
    point_norms = distances_lib.squared_norms(chunk)
    best = numerics.clamped_sqrt(
        sparse_lib.squared_distances_to(chunk, centers, index))
    return index, best, numerics.clamped_sqrt(point_norms + second)

  return distances_lib.concat_over_row_chunks(
      chunk_two, rows, distances_lib.chunk_rows(k, chunk_elements),
      (tf.int32, points.dtype, points.dtype))


def _distance_to_assigned(points, rows, centers, assignments,
                          chunk_elements):
  """|x - c_a(x)| for the points at `rows` (whose assignments are given),
  a chunk of rows at a time."""

  def distance(chunk_rows, chunk_assignments):
    return (numerics.clamped_sqrt(sparse_lib.squared_distances_to(
        sparse_lib.take_rows(points, chunk_rows), centers,
        chunk_assignments)),)

  return distances_lib.concat_over_row_chunks(
      distance, rows, distances_lib.chunk_rows(1, chunk_elements),
      (points.dtype,), assignments)[0]


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
  infinity = tf.constant(float('inf'), points.dtype)
  assignments, upper, lower = (state.statistics.assignments, state.upper,
                               state.lower)
  # s(j), from chunks of the center-to-center distances (O(chunk), never
  # the k x k matrix).
  half_gap = 0.5 * numerics.clamped_sqrt(distances_lib.nearest_other_center(
      centers, chunk_elements))
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
                            tf.gather_nd(old, known), chunk_elements))
  upper = tf.tensor_scatter_nd_update(upper, candidates[:, tf.newaxis],
                                      exact)
  unproven = (exact > tf.gather(bound, candidates)) | (old < 0)
  rows = tf.boolean_mask(candidates, unproven)

  # Those still unproven are compared with every center.
  new, best, second = _nearest_two(points, rows, centers, chunk_elements)
  scatter_rows = rows[:, tf.newaxis]
  carried = carried_lib.update(
      state.statistics, points,
      tf.tensor_scatter_nd_update(assignments, scatter_rows, new), weights)
  state = HamerlyState(
      statistics=carried,
      upper=tf.tensor_scatter_nd_update(upper, scatter_rows, best),
      lower=tf.tensor_scatter_nd_update(lower, scatter_rows, second),
      squared_total=state.squared_total)
  loss = carried_lib.loss(carried, centers, state.squared_total)
  statistics = (*carried_lib.statistics(carried, points.dtype),
                tf.cast(loss, points.dtype))
  return statistics, state, tf.shape(rows)[0]


def move_bounds(state, old_centers, new_centers):
  """The state's bounds after the centers move.

  u(x) grows by its own center's movement; the second-nearest center is one
  other than a(x), so l(x) drops by the largest movement among the other
  centers: the largest overall, or the second largest for the points of the
  center that moved most.
  """
  movement = tf.norm(new_centers - old_centers, axis=1)
  assignments = state.statistics.assignments
  upper = state.upper + tf.gather(movement, assignments)
  if movement.shape[0] == 1:
    return state._replace(upper=upper)

  def lowered():
    largest, mover = tf.math.top_k(movement, k=2)
    drop = tf.where(tf.equal(assignments, mover[0]), largest[1], largest[0])
    return tf.maximum(state.lower - drop, 0.0)

  if movement.shape[0] is None:  # k dynamic: k = 1 has no second center.
    return state._replace(upper=upper, lower=tf.cond(
        tf.size(movement) > 1, lowered, lambda: state.lower))
  return state._replace(upper=upper, lower=lowered())
