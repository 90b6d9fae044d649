"""Yinyang k-means: exact Lloyd steps that skip whole groups of centers.

Ding et al., "Yinyang K-Means: A Drop-In Replacement of the Classic K-Means
with Consistent Speedup" (ICML 2015). The k centers are split once into
t = max(1, k // 10) groups. Per point, carried from step to step:

- a(x), the assigned center;
- u(x) >= |x - c_a(x)|, an upper bound: after the centers move by p_j it
  grows by p_a(x);
- l(x, g) <= min |x - c_j| over the centers j of group g other than a(x),
  one lower bound per group (t per point, never k): it shrinks by the
  largest movement in the group.

Three filters prove, without computing it, that a distance cannot win:

1. global: u(x) < min_g l(x, g) keeps a(x); otherwise u(x) is made exact,
   |x - c_a(x)|, and the test is made again;
2. group: a group with u(x) < l(x, g) holds no nearer center, and is
   skipped; the others are compared with the point;
3. local: within a group that is not skipped, the paper skips the centers
   whose own bound fails. Here a group's distances come from one matrix
   product of the points that need the group with its centers, so the
   local filter would save no work; it is the group's product that is
   skipped or not.

The filters use strict inequalities, so a center at exactly the distance
of a(x) is always compared, and ties go to the lowest center index as in
Lloyd's argmin: the step is exactly Lloyd's (the same assignments, sums,
counts and loss), up to distances that differ by rounding only. Lower
bounds come from the |x|^2 - 2 x.c + |c|^2 expansion, lowered by a margin
for its rounding, so rounding does not make them exceed the truth.

Groups: formed once, when the state is made, by 5 Lloyd iterations over
the k initial centers (the paper's choice), started from t of them far
apart (farthest-first traversal: deterministic, no seed). Grouping nearby centers
together is what makes a whole group far from most points, so the group
filter skips it; blocks of consecutive indices would put far and near
centers in one group (the initial centers' indices carry no geometry:
k-means++ draws them in an arbitrary order) and fail the filter more. The
groups only decide which work is skipped, never the result, so a state
made again (a resumed run) gives the same centers, bit for bit (the sums
are carried exactly, `carried`).

Memory: the per-point bounds are O(n t); distances are computed a chunk of
points against one group at a time (at most `chunk_elements` at once), the
grouping of the centers a chunk of centers at a time.

Like Hamerly's, the bounds need the same points in the same order at every
step (data in memory). Squared Euclidean distance only, full batch, with or
without sample weights (they weight the statistics; the bounds are per
point); no restarts.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.algorithms import base
from kmeans_estimator.ops import carried as carried_lib
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import updates

# Centers per group (the paper's t = k / 10), and the Lloyd iterations that
# group them.
CENTERS_PER_GROUP = 10
GROUPING_ITERATIONS = 5
# The lower bounds' rounding margin: this many units in the last place of
# |x|^2 + |c|^2, what the expansion's rounding can reach.
_MARGIN_ULPS = 16


class YinyangState(NamedTuple):
  """What one Yinyang step hands to the next (see the module docstring).

  Attributes:
    statistics: `carried.CarriedStatistics`, the assignments (-1 before the
      first step) and their sums and counts.
    upper: (n,), upper bounds on each point's distance to its center.
    lower: (t, n), lower bounds on each point's distance to the centers of
      each group other than its own center (group-major, so one group's
      bounds are contiguous); +inf for an empty group.
    groups: int32 (k,), each center's group.
    point_norms: (n,), the points' |x|^2.
    squared_total: float64 scalar, sum of (weighted) |x|^2 over the points.
  """
  statistics: carried_lib.CarriedStatistics
  upper: tf.Tensor
  lower: tf.Tensor
  groups: tf.Tensor
  point_norms: tf.Tensor
  squared_total: tf.Tensor


def num_groups(num_centers):
  """t = max(1, k // 10): a Python int for a Python k, else a Tensor."""
  if isinstance(num_centers, int):
    return max(1, num_centers // CENTERS_PER_GROUP)
  return tf.maximum(1, num_centers // CENTERS_PER_GROUP)


def group_centers(centers, chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS):
  """Each center's group: k-means of the centers into `num_groups(k)`.

  Started from t centers far apart (farthest-first traversal from center
  0: each next one is the center farthest from those already taken;
  deterministic, no seed), then `GROUPING_ITERATIONS` Lloyd iterations; a
  group that loses all its centers keeps its mean (and stays empty if no
  center comes back to it).

  Args:
    centers: float Tensor (k, d).
    chunk_elements: bound on the center-to-group distances held at once.

  Returns:
    int32 Tensor (k,), values in [0, t).
  """
  k = tf.shape(centers)[0]
  t = num_groups(k)
  means = tf.gather(centers, _farthest_first(centers, t))
  ones = tf.ones([k], centers.dtype)
  for _ in range(GROUPING_ITERATIONS):
    index, _ = distances_lib.nearest_centers(
        centers, means, constants.SQUARED_EUCLIDEAN_DISTANCE, chunk_elements,
        static_chunks=False)
    means = updates.lloyd_update(
        means, tf.math.unsorted_segment_sum(centers, index, t),
        tf.math.unsorted_segment_sum(ones, index, t),
        constants.SQUARED_EUCLIDEAN_DISTANCE)
  index, _ = distances_lib.nearest_centers(
      centers, means, constants.SQUARED_EUCLIDEAN_DISTANCE, chunk_elements,
      static_chunks=False)
  return tf.cast(index, tf.int32)


def _farthest_first(centers, t):
  """Indices (t,) of t centers far apart: center 0, then repeatedly the
  center farthest from those taken (ties to the lower index). O(t k d)
  work, O(k) memory."""

  def squared_to(j):
    return tf.reduce_sum(tf.square(centers - centers[j]), axis=1)

  def take(i, taken, nearest):
    j = tf.argmax(nearest, output_type=tf.int32)
    return i + 1, taken.write(i, j), tf.minimum(nearest, squared_to(j))

  taken = tf.TensorArray(tf.int32, size=t).write(0, 0)
  _, taken, _ = tf.while_loop(lambda i, *_: i < t, take,
                              (tf.constant(1), taken, squared_to(0)))
  return taken.stack()


def init_state(points, centers, weights, options):
  """Bounds that prove nothing yet (the first step compares every point
  with every center), the groups of `centers`, no sums yet.

  Args:
    points: float Tensor (n, d), prepared, as every step will get them.
    centers: float Tensor (k, d), the centers of the first step.
    weights: None or float Tensor (n,), as the steps will get them.
    options: `base.Options`.

  Returns:
    `YinyangState`.
  """
  n = tf.shape(points)[0]
  groups = group_centers(centers, options.chunk_elements)
  t = num_groups(tf.shape(centers)[0])
  sizes = tf.math.unsorted_segment_sum(tf.ones_like(groups), groups, t)
  infinity = tf.constant(float('inf'), points.dtype)
  lower = tf.where(sizes[:, tf.newaxis] > 0, tf.zeros([t, n], points.dtype),
                   infinity)
  return YinyangState(
      statistics=carried_lib.start(points, options.num_clusters, weights),
      upper=tf.fill([n], infinity),
      lower=lower,
      groups=groups,
      point_norms=distances_lib.squared_norms_in_chunks(
          points, options.chunk_elements),
      squared_total=carried_lib.squared_total(points, weights))


def _distance_to(points, rows, centers, assignments, chunk_elements):
  """For the points at `rows`, a chunk of rows at a time: |x - c_a(x)|
  computed directly (not from the expansion, so that an upper bound is not
  rounded below the truth), and the score |c|^2 - 2 x.c of c_a(x) that
  the argmin compares (from the expansion, as the other centers' are)."""

  def distance(chunk_rows, chunk_assignments):
    chunk = tf.gather(points, chunk_rows)
    assigned = tf.gather(centers, chunk_assignments)
    return (tf.norm(chunk - assigned, axis=1),
            tf.reduce_sum(assigned * (assigned - 2.0 * chunk), axis=1))

  return distances_lib.concat_over_row_chunks(
      distance, rows, distances_lib.chunk_rows(1, chunk_elements),
      (points.dtype, points.dtype), assignments)


def _group_scores(points, rows, group, chunk_elements):
  """For the points at `rows` against the centers `group` (m, d), m >= 1:
  the smallest score |c|^2 - 2 x.c, its center's position in `group`
  (ties to the first), and the second smallest (+inf when m = 1)."""
  scaled = -2.0 * group
  offsets = distances_lib.squared_norms(group)
  m = tf.shape(group)[0]
  infinity = tf.constant(float('inf'), points.dtype)

  def scores(chunk_rows):
    all_scores = tf.nn.bias_add(
        tf.matmul(tf.gather(points, chunk_rows), scaled, transpose_b=True),
        offsets)
    index = tf.argmin(all_scores, axis=1, output_type=tf.int32)
    best = tf.gather(all_scores, index, axis=1, batch_dims=1)
    second = tf.reduce_min(tf.where(
        tf.equal(tf.range(m)[tf.newaxis, :], index[:, tf.newaxis]),
        infinity, all_scores), axis=1)
    return best, index, second

  return distances_lib.concat_over_row_chunks(
      scores, rows, distances_lib.chunk_rows(m, chunk_elements),
      (points.dtype, tf.int32, points.dtype))


def yinyang_statistics(points, centers, state, chunk_elements, weights=None):
  """The statistics of one Lloyd step, computed with Yinyang's filters.

  Args:
    points: float Tensor (n, d), the same points at every step.
    centers: float Tensor (k, d), the centers of this step.
    state: `YinyangState` of the previous step (bounds moved to `centers`)
      or `init_state`.
    chunk_elements: bound on the number of distances held at once.
    weights: optional float Tensor (n,) of sample weights, those that
      `init_state` was given.

  Returns:
    ((sums (k, d), counts (k,), loss), state, recomputed, distances): the
    statistics as `distances.cluster_statistics` gives them, the state for
    these centers (bounds not yet moved: see `move_bounds`), how many
    points were compared with at least one group, and how many
    point-to-center distances were computed.
  """
  dtype = points.dtype
  infinity = tf.constant(float('inf'), dtype)
  k = tf.shape(centers)[0]
  assignments, upper, lower = (state.statistics.assignments, state.upper,
                               state.lower)
  t = tf.shape(lower)[0]
  groups = state.groups
  # The centers of group g are members[starts[g]:starts[g] + sizes[g]], in
  # increasing index (a stable sort), so a group's first minimum is its
  # lowest-index one.
  members = tf.argsort(groups, stable=True)
  sizes = tf.math.unsorted_segment_sum(tf.ones_like(groups), groups, t)
  starts = tf.cumsum(sizes, exclusive=True)
  center_norms = distances_lib.squared_norms(centers)
  eps = float(np.finfo(dtype.as_numpy_dtype).eps)
  largest_center = tf.reduce_max(center_norms)

  def distance_of(scores, norms):
    """Lower bounds from expansion scores (see the module docstring)."""
    margin = _MARGIN_ULPS * eps * (norms + largest_center)
    return numerics.clamped_sqrt(norms + scores - margin)

  # 1. Global filter, then again with exact upper bounds.
  nearest_bound = tf.reduce_min(lower, axis=0)
  candidates = tf.cast(
      tf.where((upper >= nearest_bound) | (assignments < 0))[:, 0], tf.int32)
  old = tf.gather(assignments, candidates)
  known = tf.where(old >= 0)
  known_distance, known_score = _distance_to(
      points, tf.gather_nd(candidates, known), centers,
      tf.gather_nd(old, known), chunk_elements)
  exact = tf.tensor_scatter_nd_update(
      tf.fill(tf.shape(candidates), infinity), known, known_distance)
  old_score = tf.tensor_scatter_nd_update(
      tf.fill(tf.shape(candidates), infinity), known, known_score)
  upper = tf.tensor_scatter_nd_update(upper, candidates[:, tf.newaxis],
                                      exact)
  unproven = (exact >= tf.gather(nearest_bound, candidates)) | (old < 0)
  rows = tf.boolean_mask(candidates, unproven)
  row_old = tf.boolean_mask(old, unproven)
  row_upper = tf.boolean_mask(exact, unproven)
  row_old_score = tf.boolean_mask(old_score, unproven)
  row_norms = tf.gather(state.point_norms, rows)
  num_rows = tf.shape(rows)[0]

  # 2. Group filter: each group the bounds do not rule out is compared with
  # the points that need it. The best so far starts at the old center
  # (none before the first step).
  first = row_old < 0
  best_score = row_old_score
  best_index = tf.where(first, k, row_old)
  best_group = tf.fill([num_rows], -1)  # -1: the old center, unexamined.
  best_second = tf.fill([num_rows], infinity)
  examined = tf.zeros([num_rows], tf.bool)  # Whether a(x)'s group was.
  old_groups = tf.gather(groups, tf.maximum(row_old, 0))
  new_lower = tf.TensorArray(dtype, size=t, element_shape=lower.shape[1:])

  def group_step(g, best_score, best_index, best_group, best_second,
                 examined, distances, new_lower):
    size = sizes[g]
    bound = lower[g]
    need = ((tf.gather(bound, rows) <= row_upper) | first) & (size > 0)
    at = tf.cast(tf.where(need)[:, 0], tf.int32)
    need_rows = tf.gather(rows, at)
    group = tf.gather(members, tf.range(starts[g], starts[g] + size))

    def compare():
      return _group_scores(points, need_rows, tf.gather(centers, group),
                           chunk_elements)

    def nothing():
      return (tf.zeros([0], dtype), tf.zeros([0], tf.int32),
              tf.zeros([0], dtype))

    score, position, second = tf.cond(tf.shape(at)[0] > 0, compare, nothing)
    index = tf.gather(group, position)
    current = tf.gather(best_score, at)
    current_index = tf.gather(best_index, at)
    # The old center met again in its group counts as found there, so
    # that the group's bound excludes it.
    better = (score < current) | (
        (score == current) & (index < current_index)) | (
            index == current_index)
    won = tf.boolean_mask(at, better)[:, tf.newaxis]

    def won_values(values):
      return tf.boolean_mask(values, better)

    best_score = tf.tensor_scatter_nd_update(best_score, won,
                                             won_values(score))
    best_index = tf.tensor_scatter_nd_update(best_index, won,
                                             won_values(index))
    best_group = tf.tensor_scatter_nd_update(
        best_group, won, tf.fill(tf.shape(won)[:1], g))
    best_second = tf.tensor_scatter_nd_update(best_second, won,
                                              won_values(second))
    examined |= need & tf.equal(old_groups, g)
    # The group's new bound: its nearest center (fixed below for the group
    # of the new center, whose bound excludes it).
    bound = tf.tensor_scatter_nd_update(
        bound, need_rows[:, tf.newaxis],
        distance_of(score, tf.gather(row_norms, at)))
    distances += tf.cast(tf.shape(at)[0] * size, tf.int64)
    return (g + 1, best_score, best_index, best_group, best_second,
            examined, distances, new_lower.write(g, bound))

  (_, _, best_index, best_group, best_second, examined, distances,
   new_lower) = tf.while_loop(
       lambda g, *_: g < t, group_step,
       (tf.constant(0), best_score, best_index, best_group, best_second,
        examined, tf.constant(0, tf.int64), new_lower))
  lower = new_lower.stack()
  # Only NaN scores (NaN points) beat nothing; they keep the first center.
  best_index = tf.where(best_index < k, best_index, 0)

  # The new center's group (when examined) is bounded by its second
  # nearest; the old center's group, when the point left it unexamined,
  # now holds the old center, at exactly row_upper.
  from_group = tf.where(best_group >= 0)[:, 0]
  left = tf.where((best_index != row_old) & ~first & ~examined)[:, 0]
  left_groups = tf.gather(old_groups, left)
  left_rows = tf.gather(rows, left)
  left_at = tf.stack([left_groups, left_rows], axis=1)
  fix_at = tf.concat([
      tf.stack([tf.gather(best_group, from_group),
                tf.gather(rows, from_group)], axis=1), left_at], axis=0)
  fix = tf.concat([
      distance_of(tf.gather(best_second, from_group),
                  tf.gather(row_norms, from_group)),
      tf.minimum(tf.gather_nd(lower, left_at), tf.gather(row_upper, left))],
                  axis=0)
  lower = tf.tensor_scatter_nd_update(lower, fix_at, fix)

  # New assignments; exact upper bounds for the points that moved.
  moved = tf.where(best_index != row_old)[:, 0]
  moved_rows = tf.gather(rows, moved)
  moved_to = tf.gather(best_index, moved)
  upper = tf.tensor_scatter_nd_update(
      upper, moved_rows[:, tf.newaxis],
      _distance_to(points, moved_rows, centers, moved_to,
                   chunk_elements)[0])
  carried = carried_lib.update(
      state.statistics, points,
      tf.tensor_scatter_nd_update(assignments, rows[:, tf.newaxis],
                                  best_index), weights)
  state = state._replace(statistics=carried, upper=upper, lower=lower)
  loss = carried_lib.loss(carried, centers, state.squared_total)
  statistics = (*carried_lib.statistics(carried, dtype),
                tf.cast(loss, dtype))
  return statistics, state, num_rows, distances


def move_bounds(state, old_centers, new_centers):
  """The state's bounds after the centers move: u(x) grows by its own
  center's movement, l(x, g) drops by the largest movement in group g
  (an empty group's bound stays +inf)."""
  movement = tf.norm(new_centers - old_centers, axis=1)
  upper = state.upper + tf.gather(
      movement, tf.maximum(state.statistics.assignments, 0))
  drift = tf.maximum(tf.math.unsorted_segment_max(
      movement, state.groups, tf.shape(state.lower)[0]), 0.0)
  lower = tf.maximum(state.lower - drift[:, tf.newaxis], 0.0)
  return state._replace(upper=upper, lower=lower)


def step(points, centers, state, weights, options):
  """One exact Lloyd step with Yinyang's filters.

  Args:
    points: float Tensor (n, d), prepared, the same at every step.
    centers: float Tensor (k, d).
    state: `YinyangState` of the previous step or `init_state`.
    weights: None or float Tensor (n,), those given to `init_state`.
    options: `base.Options`.

  Returns:
    (new_centers, state, stats): stats as `base.update_centers` gives them
    plus 'recomputed' (points compared with at least one group) and
    'distances_computed' (point-to-center distances computed, int64; n k
    would be Lloyd's).
  """
  carried_lib.check_weights(state.statistics, weights)
  (sums, counts, loss), state, recomputed, computed = yinyang_statistics(
      points, centers, state, options.chunk_elements, weights)
  # A relocation moves a center like any update, so the bounds still hold.
  new_centers, stats = base.update_centers(
      centers, sums, counts, loss, options,
      lambda: base.farthest_candidates(points, centers, options),
      weights is not None)
  stats['recomputed'] = recomputed
  stats['distances_computed'] = computed
  return new_centers, move_bounds(state, centers, new_centers), stats


ALGORITHM = base.Algorithm(
    name=constants.YINYANG, init_state=init_state, step=step,
    needs_whole_data=True, metrics=(constants.SQUARED_EUCLIDEAN_DISTANCE,),
    fallback=constants.LLOYD)
