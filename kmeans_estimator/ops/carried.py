"""Per-cluster sums carried from step to step, exactly.

Over many full-batch steps on the same points, few points change cluster
once the clustering settles. Carrying the sums and adding and subtracting
only the points that moved is then much cheaper than summing all n points
again each step.

The sums are kept in fixed point (int64): each coordinate d is scaled by a
power of two 2^s_d, fixed for the points (`Scales`), and truncated to an
integer, so that the sums are exact integer sums. So they do not depend on
the order in which points were added and removed: a run that resumes from a
checkpoint (and recounts from scratch) gets the same sums, bit for bit, as
the run that carried them. s_d leaves headroom for n points at the largest
magnitude of coordinate d: the truncation is below 2^-61 / n of that
magnitude, far below float32 precision.

Sparse points (`ops.sparse.CsrPoints`) are always recounted,
their stored values in fixed point added into the sums a piece of the
values at a time (O(nnz + k d + a piece)): the same integers as the dense
points of the same values give.
"""

from typing import NamedTuple

import tensorflow as tf

from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import sparse as sparse_lib

# Bits of the int64 sums used by n points at the largest magnitude (one
# bit of margin against rounding in the logarithm).
_SUM_BITS = 61
_WIDE = tf.float64
# `update` recounts the sums in one pass, rather than adding and subtracting
# the points that changed cluster, when more than 1 point in this many did.
_RECOUNT_FRACTION = 16
# Rows per piece of a recount: bounds its int64 temporaries (13 MB at d=100).
_RECOUNT_ROWS = 16384
# Stored values per piece of a sparse recount: bounds its int64 and float64
# temporaries (2 MB each).
_RECOUNT_ENTRIES = 1 << 18
# A recount of at most this many coordinates (n * d) runs TensorFlow's own
# segment sums rather than the XLA-compiled ones (see `recount`).
_PLAIN_RECOUNT_ELEMENTS = 1 << 18


class Scales(NamedTuple):
  """The exponents s of the powers of two 2^s that make values into int64
  fixed point (float64 Tensors holding integers).

  Attributes:
    sums: (d,), the exponent of each coordinate of the (weighted) points.
    counts: scalar, the exponent of the weights; None without weights (the
      counts are then numbers of points).
  """
  sums: tf.Tensor
  counts: tf.Tensor


class CarriedStatistics(NamedTuple):
  """Per-cluster statistics of the last assignments, carried over.

  Attributes:
    assignments: int32 (n,), each point's cluster; -1 before the first step.
    sums: int64 (k, d), the (weighted) sum of each cluster's points, in
      fixed point (`Scales.sums`).
    counts: int64 (k,), each cluster's number of points (total weight, in
      fixed point: `Scales.counts`); exactly 0 for a cluster that lost all
      its points.
    scales: `Scales`, fixed for the points.
  """
  assignments: tf.Tensor
  sums: tf.Tensor
  counts: tf.Tensor
  scales: Scales


def _exponent(largest, num_points):
  """s with num_points * largest * 2^s <= 2^_SUM_BITS (0 where largest is
  0)."""
  total = tf.cast(num_points, _WIDE) * tf.cast(largest, _WIDE)
  return _SUM_BITS - tf.math.ceil(
      tf.math.log(tf.where(total > 0, total, tf.ones_like(total))) /
      tf.math.log(tf.constant(2.0, _WIDE)))


def _factors(exponent, dtype):
  """The two powers of two whose product is 2^exponent, in `dtype`:
  2^floor(s/2) and 2^(s - floor(s/2)), so that neither overflows float32
  where 2^s alone would (tiny data have large s)."""
  half = tf.math.floor(exponent / 2.0)
  two = tf.constant(2.0, _WIDE)
  return (tf.cast(tf.pow(two, half), dtype),
          tf.cast(tf.pow(two, exponent - half), dtype))


def _scaled(values, exponent):
  """values * 2^exponent, exact, in the values' dtype (float32 or float64:
  2^exponent overflows half precision), by the two `_factors`; the scaled
  values themselves are at most 2^_SUM_BITS / n.
  """
  first, second = _factors(exponent, values.dtype)
  return values * first * second


def start(points, num_clusters, weights=None):
  """`CarriedStatistics` before the first step: no point in a cluster.

  Args:
    points: float Tensor (n, d), the points of every step.
    num_clusters: k, a Python int.
    weights: optional float Tensor (n,), their sample weights.
  """
  n, d = sparse_lib.num_rows(points), sparse_lib.num_columns(points)
  # max |x| per coordinate without an |x| copy of the points.
  largest = tf.cast(sparse_lib.largest_magnitudes(points), _WIDE)
  if weights is None:
    count_scale = None
  else:
    # A bound on the largest |w x| (n > 0: reduce_max of none is -inf).
    heaviest = tf.cast(tf.reduce_max(weights), _WIDE)
    largest *= heaviest
    count_scale = _exponent(heaviest, n)
  return CarriedStatistics(
      assignments=tf.fill([n], -1),
      sums=tf.zeros([num_clusters, d], tf.int64),
      counts=tf.zeros([num_clusters], tf.int64),
      scales=Scales(_exponent(largest, n), count_scale))


def check_weights(carried, weights):
  """Refuses weights that the statistics were not started with (or the
  reverse): their counts would be in another unit."""
  if (weights is None) != (carried.scales.counts is None):
    have = 'without' if weights is None else 'with'
    started = 'without' if carried.scales.counts is None else 'with'
    raise ValueError(
        f'The step got {have} `weights` but its state was started '
        f'{started} them; give the state-making call (lloyd_state or '
        'hamerly_state) the same weights as the steps.')


def _fixed_point(points, weights, scales):
  """(points (m, d), weights (m,) or None) in fixed point: (int64 (m, d)
  of the weighted points, int64 (m,) of the weights).

  Each point gives the same integers whenever it is converted (the
  product w x rounds the same way each time, and scaling by a power of
  two is exact), which is all that exact sums need. Half-precision values
  are scaled in float32: 2^s overflows float16 (largest 65504), while
  their products are exact in float32.
  """
  if points.dtype.size < 4:
    points = tf.cast(points, tf.float32)
    weights = None if weights is None else tf.cast(weights, tf.float32)
  if weights is None:
    counts = tf.ones_like(points[:, 0], tf.int64)
  else:
    points *= weights[:, tf.newaxis]
    counts = tf.cast(_scaled(weights, scales.counts), tf.int64)
  return tf.cast(_scaled(points, scales.sums), tf.int64), counts


def _segment_sums(points, weights, index, scales, num_clusters):
  values = _fixed_point(points, weights, scales)
  # unsorted_segment_sum drops the negative ids (no cluster yet).
  return tuple(tf.math.unsorted_segment_sum(v, index, num_clusters)
               for v in values)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _recount_xla(points, weights, index, scales, num_clusters):
  return _segment_sums(points, weights, index, scales, num_clusters)


def update(carried, points, assignments, weights=None):
  """`carried` for new assignments of all the points: `carry` when few
  points changed cluster, `recount` when many did, nothing when none did.
  The result is the same either way (exact sums)."""
  if sparse_lib.is_sparse(points):
    return _recount_sparse(carried, points, assignments, weights)
  moved = tf.reduce_sum(tf.cast(
      tf.not_equal(assignments, carried.assignments), tf.int32))
  return tf.cond(
      moved * _RECOUNT_FRACTION > tf.size(assignments),
      lambda: recount(carried, points, assignments, weights),
      lambda: tf.cond(moved > 0,
                      lambda: carry(carried, points, assignments, weights),
                      lambda: carried))


def _sum_over_pieces(fn, n, zeros):
  """fn(piece) (a slice of rows) summed over pieces of _RECOUNT_ROWS rows,
  starting from the tuple `zeros`; fused XLA passes over whole arrays
  would keep large temporaries."""
  rows = _RECOUNT_ROWS

  def add(start, *totals):
    more = fn(slice(start, start + rows))
    return (start + rows,) + tuple(a + b for a, b in zip(totals, more))

  return tf.while_loop(lambda start, *_: start < n, add,
                       (tf.constant(0), *zeros))[1:]


def _num_clusters(carried):
  """k: a Python int when the counts' shape is static, else a Tensor."""
  k = carried.counts.shape[0]
  return int(k) if k is not None else tf.shape(carried.counts)[0]


def _recount_sparse(carried, points, assignments, weights=None):
  """`recount` of sparse points: each stored value w x in fixed point (its
  column's scale), added at (cluster of its row, column) of the int64 sums.

  The rows are taken in the order of their clusters (a stable sort of the
  assignments), in pieces of consecutive rows holding at most
  `_RECOUNT_ENTRIES` stored values (or one row), so that each piece's
  temporaries (its entries, their clusters, scales and fixed-point values)
  are bounded by the piece, not by nnz, and each piece's sums cover only
  the clusters of its rows, (c_last - c_first + 1, d), not all k: summing
  every piece costs O(nnz + (k + pieces) d) rather than O(pieces k d).
  The pieces' blocks are then added up by cluster (a cluster split over
  two pieces appears in both). Memory O(nnz + k d + a piece). The sums are
  integers, so the order gives the same bits as one pass. A point whose
  assignment is negative (no cluster) adds nothing. Each value is scaled
  by its column's two `_factors`, computed once per column and gathered:
  the same products as `_scaled` of the dense points, without a power per
  stored value.
  """
  k = _num_clusters(carried)
  points = sparse_lib.as_csr(points)
  d = points.num_columns
  wide_d = tf.cast(d, tf.int64)
  wide_dtype = tf.float32 if points.dtype.size < 4 else points.dtype
  if weights is not None:
    wide_weights = tf.cast(weights, wide_dtype)
  first_factors, second_factors = _factors(carried.scales.sums, wide_dtype)

  # Rows grouped by cluster, those of no cluster (-1) first and skipped.
  order = tf.argsort(assignments, stable=True)
  clusters = tf.gather(assignments, order)
  first = tf.searchsorted(clusters, tf.zeros([1], clusters.dtype))[0]
  ends = tf.cumsum(tf.gather(sparse_lib.row_lengths(points), order))
  n = tf.size(order)

  def add(start, blocks, block_clusters, i):
    before = tf.where(start > 0, ends[tf.maximum(start - 1, 0)],
                      tf.constant(0, tf.int64))
    stop = tf.searchsorted(ends, [before + _RECOUNT_ENTRIES],
                           side='right', out_type=tf.int32)[0]
    stop = tf.minimum(tf.maximum(stop, start + 1), n)
    rows = order[start:stop]
    piece_clusters = clusters[start:stop]
    lowest = piece_clusters[0]
    span = piece_clusters[-1] - lowest + 1
    # The piece's rows' entries, numbered by their place in `rows`.
    taken_rows, columns, values = sparse_lib.entries(
        sparse_lib.take_rows(points, rows))
    if values.dtype.size < 4:
      values = tf.cast(values, tf.float32)
    if weights is not None:
      values *= tf.gather(wide_weights, tf.gather(rows, taken_rows))
    fixed = tf.cast(values * tf.gather(first_factors, columns) *
                    tf.gather(second_factors, columns), tf.int64)
    at = tf.cast(tf.gather(piece_clusters - lowest, taken_rows),
                 tf.int64) * wide_d + columns
    block = tf.reshape(tf.math.unsorted_segment_sum(
        fixed, at, tf.cast(span, tf.int64) * wide_d), [span, d])
    return (stop, blocks.write(i, block),
            block_clusters.write(i, tf.range(lowest, lowest + span)), i + 1)

  # One piece at a time (parallel_iterations=1): concurrent pieces would
  # hold their temporaries together. A first block of zeros for cluster 0
  # keeps the concatenation defined when no point has a cluster.
  blocks = tf.TensorArray(tf.int64, size=0, dynamic_size=True,
                          infer_shape=False, element_shape=[
                              None, d if isinstance(d, int) else None])
  block_clusters = tf.TensorArray(assignments.dtype, size=0,
                                  dynamic_size=True, infer_shape=False,
                                  element_shape=[None])
  blocks = blocks.write(0, tf.zeros([1, d], tf.int64))
  block_clusters = block_clusters.write(0, tf.zeros([1], assignments.dtype))
  _, blocks, block_clusters, _ = tf.while_loop(
      lambda start, *_: start < n, add,
      (first, blocks, block_clusters, tf.constant(1)),
      parallel_iterations=1)
  sums = tf.math.unsorted_segment_sum(blocks.concat(),
                                      block_clusters.concat(), k)
  if weights is None:
    counts = tf.ones_like(assignments, tf.int64)
  else:
    counts = tf.cast(_scaled(wide_weights, carried.scales.counts), tf.int64)
  counts = tf.math.unsorted_segment_sum(counts, assignments, k)
  return CarriedStatistics(assignments, sums, counts, carried.scales)


def recount(carried, points, assignments, weights=None):
  """`carried` for new assignments of all the points, summed from scratch.

  Large data are summed in XLA-fused passes over pieces of the points
  (TensorFlow's CPU segment sum is several times slower there). Data of
  at most `_PLAIN_RECOUNT_ELEMENTS` coordinates are summed by TensorFlow's
  own kernel in one pass: at most about a millisecond there (a fraction of
  a millisecond more than the fused pass, in the few early steps that
  recount), while compiling the XLA pass takes hundreds of milliseconds,
  in the first fit of a process and again for each new padded k
  (`padded_segments`). The sums are integers, so both ways give the same
  bits. The choice is made
  when the graph is built where the points' shape is known, else at run
  time (an XLA function is compiled on its first run, so small data never
  compile it).
  """
  k = _num_clusters(carried)
  points = tf.convert_to_tensor(points)

  def plain():
    return _segment_sums(points, weights, assignments, carried.scales, k)

  def fused():
    return _sum_over_pieces(
        lambda piece: tuple(total[:k] for total in _recount_xla(
            points[piece], None if weights is None else weights[piece],
            assignments[piece], carried.scales,
            distances_lib.padded_segments(k))),
        tf.shape(points)[0],
        (tf.zeros_like(carried.sums), tf.zeros_like(carried.counts)))

  size = points.shape.num_elements()
  if size is not None:
    sums, counts = plain() if size <= _PLAIN_RECOUNT_ELEMENTS else fused()
  else:
    sums, counts = tf.cond(
        tf.size(points, out_type=tf.int64) <= _PLAIN_RECOUNT_ELEMENTS,
        plain, fused)
  return CarriedStatistics(assignments, sums, counts, carried.scales)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _squared_total_xla(points, weights):
  squared = tf.reduce_sum(tf.square(tf.cast(points, _WIDE)), axis=1)
  if weights is None:
    return tf.reduce_sum(squared)
  return tf.reduce_sum(tf.cast(weights, _WIDE) * squared)


def squared_total(points, weights=None):
  """sum of (weighted) |x|^2 in float64, for `loss`."""
  if sparse_lib.is_sparse(points):
    return sparse_lib.squared_total(points, weights, _WIDE)
  return _sum_over_pieces(
      lambda piece: (_squared_total_xla(
          points[piece], None if weights is None else weights[piece]),),
      tf.shape(points)[0], (tf.zeros([], _WIDE),))[0]


def carry(carried, points, assignments, weights=None):
  """`carried` for new assignments of all the points, adding and
  subtracting only the points that changed cluster.

  Args:
    carried: `CarriedStatistics` of the previous assignments.
    points: float Tensor (n, d), the same points at every step.
    assignments: int32 Tensor (n,), the new assignments.
    weights: optional float Tensor (n,) of sample weights.

  Returns:
    `CarriedStatistics` of the new assignments.
  """
  changed = tf.cast(tf.where(tf.not_equal(carried.assignments,
                                          assignments))[:, 0], tf.int32)
  new = tf.gather(assignments, changed)
  old = tf.gather(carried.assignments, changed)
  k = _num_clusters(carried)
  moved_points = tf.gather(points, changed)
  moved_weights = None if weights is None else tf.gather(weights, changed)
  added = _segment_sums(moved_points, moved_weights, new, carried.scales, k)
  removed = _segment_sums(moved_points, moved_weights, old, carried.scales,
                          k)
  sums, counts = (total + plus - minus for total, plus, minus in
                  zip((carried.sums, carried.counts), added, removed))
  return CarriedStatistics(assignments, sums, counts, carried.scales)


def statistics(carried, dtype):
  """(sums (k, d), counts (k,)) as floats of `dtype`."""
  sums, counts = as_wide(carried)
  return tf.cast(sums, dtype), tf.cast(counts, dtype)


def as_wide(carried):
  """(sums (k, d), counts (k,)) in float64."""
  two = tf.constant(2.0, _WIDE)
  counts = tf.cast(carried.counts, _WIDE)
  if carried.scales.counts is not None:
    counts *= tf.pow(two, -carried.scales.counts)
  return (tf.cast(carried.sums, _WIDE) * tf.pow(two, -carried.scales.sums),
          counts)


def loss(carried, centers, squared_total):
  """sum of (weighted) |x - c_a(x)|^2 from the carried statistics.

  sum |x|^2 - 2 sum_j c_j.S_j + sum_j N_j |c_j|^2 in float64, so that the
  cancellation of the large terms costs no accuracy that float32 data have;
  clamped at 0. `squared_total` is the sum of (weighted) |x|^2, float64.
  """
  sums, counts = as_wide(carried)
  wide = tf.cast(centers, _WIDE)
  total = (squared_total - 2.0 * tf.reduce_sum(wide * sums) +
           tf.reduce_sum(counts * tf.reduce_sum(tf.square(wide), axis=1)))
  return tf.maximum(total, 0.0)

