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

1. global: u(x) < min_g l(x, g) keeps a(x) (here also u(x) < s(a(x)), half
   the distance from c_a(x) to its nearest other center, Hamerly's test);
   otherwise u(x) is made exact, |x - c_a(x)|, and the test is made again;
2. group: a group with u(x) < l(x, g) holds no nearer center, and is
   skipped; the others are compared with the point;
3. local: within a group that is not skipped, the paper skips the centers
   whose own bound fails. Here a chunk of points is compared with the
   union of the groups its points need, in one matrix product, so the
   local filter would save no work; it is a group's columns that are
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
groups are then made equal in size (each group in turn takes the centers
nearest its mean), so that a step lays the centers out as a (t, s) block,
padded when t does not divide k (`_layout`): a group's minimum over a
chunk's scores is a reduction over one axis, and the padding never wins.
The groups only decide which work is skipped, never the result, so a
state made again (a resumed run) gives the same centers, bit for bit (the
sums are carried exactly, `carried`).

Memory: the per-point bounds are O(n t); distances are computed a chunk of
points against the groups it needs (at most `chunk_elements` at once),
the grouping of the centers a chunk of centers at a time.

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
from kmeans_estimator.ops import sparse as sparse_lib
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
    global_lower: (n,), a lower bound on each point's distance to its
      second-nearest center (the global filter's).
    lower: (n, t), lower bounds on each point's distance to the centers of
      each group other than its own center, stored plus `offsets` (the
      bound now is `lower - offsets`); +inf for an empty group.
    offsets: (t,), each group's largest movement summed over the steps so
      far: the bounds shrink by it without a pass over the n x t of them.
    groups: int32 (k,), each center's group.
    point_norms: (n,), the points' |x|^2.
    squared_total: float64 scalar, sum of (weighted) |x|^2 over the points.
  """
  statistics: carried_lib.CarriedStatistics
  upper: tf.Tensor
  global_lower: tf.Tensor
  lower: tf.Tensor
  offsets: tf.Tensor
  groups: tf.Tensor
  point_norms: tf.Tensor
  squared_total: tf.Tensor


def _eps(dtype):
  return float(np.finfo(dtype.as_numpy_dtype).eps)


def num_groups(num_centers):
  """t = max(1, k // 10): a Python int for a Python k, else a Tensor."""
  if isinstance(num_centers, int):
    return max(1, num_centers // CENTERS_PER_GROUP)
  return tf.maximum(1, num_centers // CENTERS_PER_GROUP)


def group_centers(centers, chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS):
  """Each center's group: k-means of the centers into `num_groups(k)`
  groups of nearly equal size.

  Started from t centers far apart (farthest-first traversal from center
  0: each next one is the center farthest from those already taken;
  deterministic, no seed), then `GROUPING_ITERATIONS` Lloyd iterations; a
  group that loses all its centers keeps its mean. Then the groups are
  made equal in size, `group_sizes(k)`: group 0 takes the centers
  nearest its mean, group 1 the nearest of those left, and so on (ties
  to the lower index; a center with NaN coordinates counts as the
  farthest). Equal sizes let a step lay the groups out as a (t, s) block
  of centers with little padding, so that a group's minimum is a
  reduction over one axis (see `_layout`).

  Args:
    centers: float Tensor (k, d).
    chunk_elements: bound on the center-to-group distances held at once.

  Returns:
    int32 Tensor (k,), values in [0, t); group g holds `group_sizes(k)[g]`
    centers.
  """
  k = tf.shape(centers)[0]
  t = num_groups(k)
  means = tf.gather(centers, _farthest_first(centers, t))
  ones = tf.ones([k], centers.dtype)

  def iteration(i, means):
    index, _ = distances_lib.nearest_centers(
        centers, means, constants.SQUARED_EUCLIDEAN_DISTANCE, chunk_elements,
        static_chunks=False)
    return i + 1, updates.lloyd_update(
        means, tf.math.unsorted_segment_sum(centers, index, t),
        tf.math.unsorted_segment_sum(ones, index, t),
        constants.SQUARED_EUCLIDEAN_DISTANCE)

  # A loop, not unrolled: one traced body (the first step's graph is
  # smaller and builds faster).
  _, means = tf.while_loop(lambda i, _: i < GROUPING_ITERATIONS, iteration,
                           (tf.constant(0), means))
  sizes = group_sizes(k)
  infinity = tf.constant(float('inf'), centers.dtype)

  def take(g, groups):
    # The group's nearest centers among those not yet taken (ties to the
    # lower index: top_k is stable).
    # A NaN center sorts as the farthest, before those taken (-inf).
    squared = tf.reduce_sum(tf.square(centers - means[g]), axis=1)
    squared = tf.where(tf.math.is_nan(squared), centers.dtype.max, squared)
    _, nearest = tf.math.top_k(-tf.where(groups < 0, squared, infinity),
                               k=sizes[g])
    return g + 1, tf.tensor_scatter_nd_update(
        groups, nearest[:, tf.newaxis], tf.fill(tf.shape(nearest), g))

  _, groups = tf.while_loop(lambda g, _: g < t, take,
                            (tf.constant(0), tf.fill([k], -1)))
  return groups


def group_sizes(num_centers):
  """int32 (t,): the groups' sizes, ceil(k / t) for the first ones and
  one less for the rest, summing to k."""
  k = tf.convert_to_tensor(num_centers, tf.int32)
  t = num_groups(k)
  larger = (k + t - 1) // t
  return tf.where(tf.range(t) < k - t * (larger - 1), larger, larger - 1)


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
  n = sparse_lib.num_rows(points)
  groups = group_centers(centers, options.chunk_elements)
  t = num_groups(tf.shape(centers)[0])
  sizes = tf.math.unsorted_segment_sum(tf.ones_like(groups), groups, t)
  infinity = tf.constant(float('inf'), points.dtype)
  lower = tf.where(sizes[tf.newaxis, :] > 0, tf.zeros([n, t], points.dtype),
                   infinity)
  return YinyangState(
      statistics=carried_lib.start(points, options.num_clusters, weights),
      upper=tf.fill([n], infinity),
      global_lower=tf.zeros([n], points.dtype),
      lower=lower,
      offsets=tf.zeros([t], points.dtype),
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
    if sparse_lib.is_sparse(points):
      # Over the stored values only (`ops.sparse`): no dense rows.
      chunk = sparse_lib.take_rows(points, chunk_rows)
      squared = sparse_lib.squared_distances_to(chunk, centers,
                                                chunk_assignments)
      center_norms = tf.gather(tf.reduce_sum(tf.square(centers), axis=1),
                               chunk_assignments)
      return (numerics.clamped_sqrt(squared), center_norms - 2.0 *
              sparse_lib.products_with(chunk, centers, chunk_assignments))
    chunk = tf.gather(points, chunk_rows)
    assigned = tf.gather(centers, chunk_assignments)
    return (tf.norm(chunk - assigned, axis=1),
            tf.reduce_sum(assigned * (assigned - 2.0 * chunk), axis=1))

  return distances_lib.concat_over_row_chunks(
      distance, rows, distances_lib.chunk_rows(1, chunk_elements),
      (points.dtype, points.dtype), assignments)


def _layout(centers, groups, t):
  """The centers laid out by group, for products that cover whole groups.

  Group g's centers, in increasing index, fill row g of a (t, s) block,
  s the largest group's size; the rest of the row is padding, a center at
  the origin with squared norm +inf, so its score |c|^2 - 2 x.c is +inf
  and it never wins nor lowers a group's minimum (index k).

  Returns:
    (slots int32 (t, s): each slot's center, k for padding; slot centers
    (t, s, d); their squared norms (t, s); the groups' sizes int32 (t,)).
  """
  k = tf.shape(groups)[0]
  sizes = tf.math.unsorted_segment_sum(tf.ones_like(groups), groups, t)
  width = tf.reduce_max(sizes)
  # Stable: within a group, the centers stay in increasing index.
  order = tf.argsort(groups, stable=True)
  sorted_groups = tf.gather(groups, order)
  rank = tf.range(k) - tf.gather(tf.cumsum(sizes, exclusive=True),
                                 sorted_groups)
  slots = tf.reshape(tf.tensor_scatter_nd_update(
      tf.fill([t * width], k), (sorted_groups * width + rank)[:, tf.newaxis],
      order), [t, width])
  padded = tf.concat([centers, tf.zeros_like(centers[:1])], axis=0)
  norms = tf.concat([distances_lib.squared_norms(centers),
                     tf.constant([float('inf')], centers.dtype)], axis=0)
  return slots, tf.gather(padded, slots), tf.gather(norms, slots), sizes


def _chunk_step(points, layout, lower, offsets, groups, point_norms, rows,
                old, upper, old_score, distance_of):
  """The group filter and the distances for one chunk of points.

  The chunk's points are compared with the union of the groups that any of
  them needs, in one matrix product over those groups' rows of the layout
  (`_layout`): a group's minimum is then a reduction over the last axis of
  the (m, groups, s) scores. Every group of the union gets its bound from
  the distances (tighter than needed, at no extra cost). Ties go to the
  lowest index, as in Lloyd's argmin: within a group the first slot (the
  slots are in increasing index), across groups the lowest index of the
  groups' winners.

  Args:
    points: (n, d).
    layout: `_layout` of the centers.
    lower, offsets: (n, t) and (t,), the bounds before the step as the
      state stores them.
    groups: each center's group (k,).
    point_norms: (n,).
    rows: int32 (m,), the chunk's points (that the global filter did not
      settle).
    old, upper, old_score: (m,) their centers (-1: none yet), exact
      distances to them and their scores |c|^2 - 2 x.c.
    distance_of: callable(scores, norms) -> lower bounds.

  Returns:
    (new centers int32 (m,), new bounds (m, t) as the state stores them,
    new global lower bounds (m,), distances computed int64).
  """
  dtype = points.dtype
  infinity = tf.constant(float('inf'), dtype)
  slots, slot_centers, slot_norms, sizes = layout
  k = tf.shape(groups)[0]
  t = tf.shape(sizes)[0]
  width = tf.shape(slots)[1]
  m = tf.shape(rows)[0]
  stored = tf.gather(lower, rows)
  # The bounds now; the subtraction rounds by up to an ulp of `stored`
  # (+inf, an empty group's, stays +inf).
  chunk_lower = stored - offsets - _MARGIN_ULPS * _eps(dtype) * tf.where(
      tf.math.is_finite(stored), stored, 0.0)
  first = old < 0
  old_group = tf.gather(groups, tf.maximum(old, 0))
  need = (chunk_lower <= upper[:, tf.newaxis]) | first[:, tf.newaxis]
  union = tf.reduce_any(need, axis=0) & (sizes > 0)
  selected = tf.cast(tf.where(union)[:, 0], tf.int32)
  u = tf.shape(selected)[0]
  norms = tf.gather(point_norms, rows)

  def compare():
    # The union's slots, rank-major: column r u + j is slot r of the j-th
    # group of the union, so a group's minimum is a reduction over the
    # middle axis of (m, s, u), which vectorises along the groups.
    chosen_slots = tf.reshape(tf.transpose(tf.gather(slots, selected)), [-1])
    chosen = tf.reshape(
        tf.transpose(tf.gather(slot_centers, selected), [1, 0, 2]),
        [u * width, sparse_lib.num_columns(points)])
    # Scores |c|^2 - 2 x.c; the bias_add fuses into the product.
    scores = tf.nn.bias_add(
        sparse_lib.matmul(sparse_lib.take_rows(points, rows), -2.0 * chosen,
                          transpose_b=True),
        tf.reshape(tf.transpose(tf.gather(slot_norms, selected)), [-1]))
    by_group = tf.reshape(scores, [m, width, u])
    group_best = tf.reduce_min(by_group, axis=1)
    best = tf.reduce_min(group_best, axis=1)

    def group_scores(group):
      """(m, s): the scores of each point's slots in its `group` (m,)."""
      return tf.gather(tf.reshape(scores, [-1]), (
          tf.range(m)[:, tf.newaxis] * (width * u) +
          tf.range(width)[tf.newaxis, :] * u + group[:, tf.newaxis]))

    # The first group at the minimum, and in it the first slot, the lowest
    # index of the group (a group's slots are in increasing index); when
    # two groups reach the minimum (rare), the lowest index among all the
    # columns there.
    first_group = tf.argmin(group_best, axis=1, output_type=tf.int32)
    position = tf.argmin(group_scores(first_group), axis=1,
                         output_type=tf.int32) * u + first_group
    tied = tf.where(tf.reduce_sum(tf.cast(
        tf.equal(group_best, best[:, tf.newaxis]), tf.int32), axis=1) > 1)
    tied_scores = tf.gather_nd(scores, tied)
    position = tf.tensor_scatter_nd_update(position, tied, tf.argmin(
        tf.where(tf.equal(tied_scores, tf.gather_nd(best, tied)[:, tf.newaxis]),
                 chosen_slots[tf.newaxis, :], k), axis=1,
        output_type=tf.int32))
    # Only NaN scores (NaN points) beat nothing: they take the first center.
    found = tf.where(tf.math.is_nan(best), 0,
                     tf.gather(chosen_slots, position))
    # The old center is in `scores` when its group is in the union; if not,
    # it is compared by its own score.
    old_in = tf.gather(union, old_group) & ~first
    keep_old = ~first & ~old_in & (
        (old_score < best) | ((old_score == best) & (old < found)))
    index = tf.where(keep_old, old, found)
    # Each group's nearest center other than the new one: in the new one's
    # group, the smallest score of its other slots.
    home = position % u
    runner_up = tf.reduce_min(tf.where(
        tf.equal(tf.range(width)[tf.newaxis, :], (position // u)[:, tf.newaxis]),
        infinity, group_scores(home)), axis=1)
    group_min = tf.where(
        ~keep_old[:, tf.newaxis] & tf.equal(tf.range(u)[tf.newaxis, :],
                                            home[:, tf.newaxis]),
        runner_up[:, tf.newaxis], group_best)
    # Each group's column among the selected (u: not selected).
    column = tf.tensor_scatter_nd_update(tf.fill([t], u),
                                         selected[:, tf.newaxis], tf.range(u))
    found_bounds = tf.gather(
        tf.concat([distance_of(group_min, norms[:, tf.newaxis]),
                   tf.zeros([m, 1], dtype)], axis=1), column, axis=1)
    bounds = tf.where(union[tf.newaxis, :], found_bounds, chunk_lower)
    # The old center's group, when not in the union, now holds the old
    # center, at exactly `upper`.
    left = ~first & ~old_in & ~keep_old
    bounds = tf.where(
        left[:, tf.newaxis] & tf.equal(tf.range(t)[tf.newaxis, :],
                                       old_group[:, tf.newaxis]),
        tf.minimum(bounds, upper[:, tf.newaxis]), bounds)
    return index, bounds

  # No group needed by any point of the chunk: all keep their centers.
  index, bounds = tf.cond(u > 0, compare, lambda: (old, chunk_lower))

  computed = (tf.cast(m, tf.int64) * tf.cast(
      tf.reduce_sum(tf.gather(sizes, selected)), tf.int64))
  return (index, bounds + offsets, tf.reduce_min(bounds, axis=1), computed)


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
    points went past the global filter, and how many point-to-center
    distances were computed.
  """
  dtype = points.dtype
  infinity = tf.constant(float('inf'), dtype)
  k = tf.shape(centers)[0]
  assignments, upper, lower, global_lower = (
      state.statistics.assignments, state.upper, state.lower,
      state.global_lower)
  t = tf.shape(lower)[1]
  groups = state.groups
  layout = _layout(centers, groups, t)
  eps = _eps(dtype)
  largest_center = tf.reduce_max(distances_lib.squared_norms(centers))

  def distance_of(scores, norms):
    """Lower bounds from expansion scores (see the module docstring)."""
    margin = _MARGIN_ULPS * eps * (norms + largest_center)
    return numerics.clamped_sqrt(norms + scores - margin)

  # 1. Global filter, then again with exact upper bounds.
  # The global filter's bound: the global lower bound, or half the distance
  # from the point's center to the nearest other one (Hamerly's s(a), not in
  # the paper: a point nearer its center than that is nearer it than any
  # other), lowered by a margin for the expansion's rounding.
  half_gap = 0.5 * numerics.clamped_sqrt(
      distances_lib.nearest_other_center(centers, chunk_elements) -
      2 * _MARGIN_ULPS * eps * largest_center)
  nearest_bound = tf.maximum(global_lower,
                             tf.gather(half_gap, tf.maximum(assignments, 0)))
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
  # 2. Group filter, a chunk of points at a time; the points are taken in
  # the order of their center's group, so that a chunk's points need
  # mostly the same groups.
  rows, old, exact, old_score = (tf.boolean_mask(values, unproven) for values
                                 in (candidates, old, exact, old_score))
  order = tf.argsort(tf.where(
      old >= 0, tf.cast(tf.gather(groups, tf.maximum(old, 0)), tf.int64) *
      tf.cast(k, tf.int64) + tf.cast(old, tf.int64), -1))
  rows, old, exact, old_score = (tf.gather(values, order) for values
                                 in (rows, old, exact, old_score))
  num_rows = tf.shape(rows)[0]
  chunk = distances_lib.chunk_rows(tf.size(layout[0]), chunk_elements)
  num_chunks = (num_rows + chunk - 1) // chunk
  new_index = tf.TensorArray(tf.int32, size=num_chunks, infer_shape=False,
                             element_shape=tf.TensorShape([None]))
  # Flattened (m t,) blocks: a list of vectors concatenates even when empty.
  new_lower = tf.TensorArray(dtype, size=num_chunks, infer_shape=False,
                             element_shape=tf.TensorShape([None]))
  new_global = tf.TensorArray(dtype, size=num_chunks, infer_shape=False,
                              element_shape=tf.TensorShape([None]))

  def body(i, new_index, new_lower, new_global, computed):
    part = slice(i * chunk, (i + 1) * chunk)
    index, bounds, nearest, count = _chunk_step(
        points, layout, lower, state.offsets, groups,
        state.point_norms, rows[part], old[part], exact[part],
        old_score[part], distance_of)
    return (i + 1, new_index.write(i, index),
            new_lower.write(i, tf.reshape(bounds, [-1])),
            new_global.write(i, nearest), computed + count)

  _, new_index, new_lower, new_global, computed = tf.while_loop(
      lambda i, *_: i < num_chunks, body,
      (tf.constant(0), new_index, new_lower, new_global,
       tf.constant(0, tf.int64)))
  scatter_rows = rows[:, tf.newaxis]
  new_index = new_index.concat()
  lower = tf.tensor_scatter_nd_update(
      lower, scatter_rows, tf.reshape(new_lower.concat(), [-1, t]))
  global_lower = tf.tensor_scatter_nd_update(global_lower, scatter_rows,
                                             new_global.concat())
  # Only NaN scores (NaN points) beat nothing; they take the first center.
  new_index = tf.where((new_index >= 0) & (new_index < k), new_index, 0)

  # New assignments; exact upper bounds for the points that moved.
  moved = tf.where(new_index != old)[:, 0]
  moved_rows = tf.gather(rows, moved)
  upper = tf.tensor_scatter_nd_update(
      upper, moved_rows[:, tf.newaxis],
      _distance_to(points, moved_rows, centers, tf.gather(new_index, moved),
                   chunk_elements)[0])
  carried = carried_lib.update(
      state.statistics, points,
      tf.tensor_scatter_nd_update(assignments, scatter_rows, new_index),
      weights)
  state = state._replace(statistics=carried, upper=upper, lower=lower,
                         global_lower=global_lower)
  loss = carried_lib.loss(carried, centers, state.squared_total)
  statistics = (*carried_lib.statistics(carried, dtype),
                tf.cast(loss, dtype))
  return statistics, state, num_rows, computed


def move_bounds(state, old_centers, new_centers):
  """The state's bounds after the centers move.

  u(x) grows by its own center's movement; the bounds of group g drop by
  the largest movement in g, added to `offsets` (an empty group's bound
  stays +inf); the global bound drops by the largest movement of all.
  """
  movement = tf.norm(new_centers - old_centers, axis=1)
  upper = state.upper + tf.gather(
      movement, tf.maximum(state.statistics.assignments, 0))
  drift = tf.maximum(tf.math.unsorted_segment_max(
      movement, state.groups, tf.shape(state.offsets)[0]), 0.0)
  return state._replace(
      upper=upper, offsets=state.offsets + drift,
      global_lower=tf.maximum(state.global_lower - tf.reduce_max(movement),
                              0.0))


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
    fallback=constants.LLOYD, supports_sparse=True)
