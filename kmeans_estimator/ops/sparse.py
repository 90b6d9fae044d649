"""The maths of sparse points: `tf.SparseTensor`s of shape (n, d).

Sparse points are never densified: every function here costs memory
O(nnz) for the points plus its dense result ((n,) per point, (k, d) per
cluster, (m, d) for m gathered rows). The points must be in row-major
order (`tf.sparse.reorder`, which the input adapter and `KMeans.prepare`
apply once), so that a range of rows is a range of entries (`rows`).

The dense functions of `distances` and `carried` call these where their
points are a `tf.SparseTensor` (`is_sparse`): the products x.c come from
`tf.sparse.sparse_dense_matmul`, the per-cluster sums from a segment sum of
the values by (cluster of their row, column).
"""

import tensorflow as tf


def is_sparse(points):
  """Whether `points` is a `tf.SparseTensor` (a Python bool)."""
  return isinstance(points, tf.SparseTensor)


def num_rows(points):
  """n: the static first dimension when known, else a scalar Tensor
  (int32 for a dense Tensor, as `tf.shape` gives it)."""
  if is_sparse(points):
    static = tf.get_static_value(points.dense_shape)
    if static is not None:
      return int(static[0])
    return tf.cast(points.dense_shape[0], tf.int32)
  return tf.shape(points)[0]


def num_columns(points):
  """d, as `num_rows` gives n."""
  if is_sparse(points):
    static = tf.get_static_value(points.dense_shape)
    if static is not None:
      return int(static[1])
    return tf.cast(points.dense_shape[1], tf.int32)
  return tf.shape(points)[1]


def row_ids(points):
  """int32 (nnz,): the row of every stored value."""
  return tf.cast(points.indices[:, 0], tf.int32)


# Stored values per piece of `fold_entries`: bounds its temporaries (2 MB
# per int64 or float64 array).
ENTRY_PIECE = 1 << 18


def entries(points, start=None, stop=None):
  """The stored values of sparse points with their places: (rows int64,
  columns int64, values), in row-major order: all nnz of them, or those
  at positions [start, stop)."""
  return (points.indices[start:stop, 0], points.indices[start:stop, 1],
          points.values[start:stop])


def num_entries(points):
  """nnz: the number of stored values, an int64 scalar Tensor."""
  return tf.shape(entries(points)[2], out_type=tf.int64)[0]


def fold_entries(points, fn, initial):
  """fn(total, rows, columns, values) over pieces of `ENTRY_PIECE` stored
  values (`entries`), one piece at a time, starting from `initial` (a
  Tensor): a pass over all the stored values whose temporaries are bounded
  by a piece, not by nnz."""
  nnz = num_entries(points)

  def body(start, total):
    stop = tf.minimum(start + ENTRY_PIECE, nnz)
    return stop, fn(total, *entries(points, start, stop))

  # One piece at a time: concurrent pieces would hold their temporaries
  # together.
  return tf.while_loop(lambda start, _: start < nnz, body,
                       (tf.constant(0, tf.int64), initial),
                       parallel_iterations=1)[1]


def row_lengths(points):
  """int64 (n,): the number of stored values of every row."""
  return tf.math.bincount(row_ids(points), minlength=num_rows(points),
                          maxlength=num_rows(points), dtype=tf.int64)


def rows(points, start, stop):
  """Rows [start, stop) of `points` (stop clipped to n), renumbered from 0.

  Dense: a slice. Sparse: the entries of those rows, found by a binary
  search in the (row-major) row ids: O(log nnz) plus the rows' entries,
  not a pass over all the points as `tf.sparse.slice` makes.
  """
  if not is_sparse(points):
    return points[start:stop]
  ids = points.indices[:, 0]
  n = points.dense_shape[0]
  start = tf.minimum(tf.cast(start, tf.int64), n)
  stop = tf.minimum(tf.cast(stop, tf.int64), n)
  first, last = tf.unstack(tf.searchsorted(
      ids, tf.stack([start, stop]), side='left'))
  indices = points.indices[first:last] - tf.stack(
      [start, tf.constant(0, tf.int64)])
  return tf.SparseTensor(indices, points.values[first:last],
                         tf.stack([stop - start, points.dense_shape[1]]))


def matmul(points, dense, transpose_b=False):
  """points @ dense (or dense^T): a dense Tensor (n, k).

  Sparse points go through TensorFlow's CSR matrix (`tf.linalg.sparse`'s
  kernels, which the row-major order allows): its product is several times
  faster on CPU than `tf.sparse.sparse_dense_matmul`'s, with the same sums.
  """
  if not is_sparse(points):
    return tf.matmul(points, dense, transpose_b=transpose_b)

  def product():
    csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
        indices=points.indices, values=points.values,
        dense_shape=points.dense_shape)
    return tf.raw_ops.SparseMatrixMatMul(a=csr, b=dense,
                                         transpose_b=transpose_b)

  n = num_rows(points)
  if isinstance(n, int) and n > 0:
    return product()
  # The CSR kernels crash the process on a matrix of no rows (a chunk of
  # no points, Hamerly's step when every bound holds): none is built.
  columns = tf.shape(dense)[0 if transpose_b else 1]
  return tf.cond(n > 0, product,
                 lambda: tf.zeros([0, columns], dense.dtype))


def squared_norms(points):
  """|x|^2 of every point: float (n,). A row with no entries has 0."""
  if not is_sparse(points):
    return tf.reduce_sum(tf.square(points), axis=1)
  n = num_rows(points)
  return fold_entries(
      points,
      lambda total, rows, _, values: total + tf.math.unsorted_segment_sum(
          tf.square(values), rows, n),
      tf.zeros([n], points.values.dtype))


def scale_rows(points, scales):
  """Every point multiplied by its scale (n,): x_i * s_i."""
  if not is_sparse(points):
    return points * scales[:, tf.newaxis]
  return tf.SparseTensor(points.indices,
                         points.values * tf.gather(scales, row_ids(points)),
                         points.dense_shape)


def l2_normalize_rows(points):
  """Every row scaled to unit L2 norm; a row of zeros (or without entries)
  stays zero, never NaN, as `numerics.safe_l2_normalize` does for dense
  rows."""
  norms = tf.sqrt(squared_norms(points))
  inverse = tf.math.divide_no_nan(tf.ones_like(norms), norms)
  return scale_rows(points, inverse)


def cast(points, dtype):
  """`points` with values of `dtype`."""
  if not is_sparse(points):
    return tf.cast(points, dtype)
  return tf.SparseTensor(points.indices, tf.cast(points.values, dtype),
                         points.dense_shape)


def all_finite(points):
  """Whether every value is finite (bool scalar Tensor); the implicit
  zeros of a sparse tensor are."""
  values = points.values if is_sparse(points) else points
  return tf.reduce_all(tf.math.is_finite(values))


def largest_magnitudes(points):
  """max |x_j| over the points, per column: float (d,). The implicit zeros
  count (a column without entries has 0)."""
  if not is_sparse(points):
    return tf.maximum(tf.reduce_max(points, axis=0),
                      -tf.reduce_min(points, axis=0))
  d = num_columns(points)
  return fold_entries(
      points,
      lambda total, _, columns, values: tf.maximum(
          total, tf.math.unsorted_segment_max(tf.abs(values), columns, d)),
      tf.zeros([d], points.values.dtype))


def squared_total(points, weights=None, dtype=tf.float64):
  """sum over the points of (weighted) |x|^2, in `dtype`: a scalar."""

  def add(total, rows, _, values):
    squared = tf.square(tf.cast(values, dtype))
    if weights is not None:
      squared *= tf.cast(tf.gather(weights, rows), dtype)
    return total + tf.reduce_sum(squared)

  return fold_entries(points, add, tf.zeros([], dtype))


def segment_sums(points, index, num_segments, weights=None):
  """Per-segment sums of the (weighted) points: float (num_segments, d).

  Sparse: one segment sum of the values by (segment of their row) * d +
  column, reshaped: O(nnz + num_segments * d), never a dense (n, d). Rows
  whose `index` is negative (no segment) are dropped, as
  `tf.math.unsorted_segment_sum` drops negative ids.

  Args:
    points: float Tensor or SparseTensor (n, d).
    index: int32 Tensor (n,), each point's segment.
    num_segments: k, a Python int or scalar Tensor.
    weights: optional float Tensor (n,), the points' weights.
  """
  if not is_sparse(points):
    if weights is not None:
      points = points * weights[:, tf.newaxis]
    return tf.math.unsorted_segment_sum(points, index, num_segments)
  d = tf.cast(num_columns(points), tf.int64)
  rows_of = row_ids(points)
  values = points.values
  if weights is not None:
    values = values * tf.gather(weights, rows_of)
  segment = tf.cast(tf.gather(index, rows_of), tf.int64)
  ids = tf.where(segment >= 0, segment * d + points.indices[:, 1],
                 tf.constant(-1, tf.int64))
  total = tf.cast(num_segments, tf.int64) * d
  sums = tf.math.unsorted_segment_sum(values, ids, total)
  return tf.reshape(sums, [num_segments, -1])


def take_rows(points, indices):
  """The rows `indices` (m,) of `points`, in that order: a row-major
  SparseTensor (m, d) of sparse points (a row may be asked for more than
  once), `tf.gather` of dense ones. O(m log nnz) plus the rows' entries."""
  if not is_sparse(points):
    return tf.gather(points, indices)
  indices = tf.cast(indices, tf.int64)
  ids = points.indices[:, 0]
  starts = tf.searchsorted(ids, indices, side='left')
  stops = tf.searchsorted(ids, indices, side='right')
  entries = tf.ragged.range(starts, stops)
  which = entries.flat_values
  out_rows = tf.cast(entries.value_rowids(), tf.int64)
  columns = tf.gather(points.indices[:, 1], which)
  m = tf.shape(indices, out_type=tf.int64)[0]
  return tf.SparseTensor(tf.stack([out_rows, columns], axis=1),
                         tf.gather(points.values, which),
                         tf.stack([m, points.dense_shape[1]]))


def gather_rows(points, indices):
  """The rows `indices` (m,) of `points` as a dense float Tensor (m, d)
  ((d,) for a scalar index): the chosen centers or far points (m is k or
  so), never all n rows. A row may be asked for more than once."""
  if not is_sparse(points):
    return tf.gather(points, indices)
  indices = tf.convert_to_tensor(indices)
  if indices.shape.rank == 0:  # One row: (d,), as tf.gather gives it.
    return gather_rows(points, indices[tf.newaxis])[0]
  taken = take_rows(points, indices)
  return tf.scatter_nd(taken.indices, taken.values, taken.dense_shape)


def squared_distances_to(points, centers, assignments):
  """|x_i - c_a(i)|^2 for every point and its own center: float (n,).

  Dense: the norm of the difference. Sparse: |c|^2 plus, over the stored
  values only, (x_j - c_j)^2 - c_j^2: no dense (n, d) difference, and
  none of the cancellation of |x|^2 against 2 x.c; clamped at 0.

  Args:
    points: float Tensor or SparseTensor (n, d).
    centers: float Tensor (k, d).
    assignments: int Tensor (n,), each point's center.
  """
  if not is_sparse(points):
    return tf.reduce_sum(tf.square(points - tf.gather(centers, assignments)),
                         axis=1)
  row_of = row_ids(points)
  assignments = tf.cast(assignments, tf.int64)
  own = tf.gather_nd(centers, tf.stack(
      [tf.gather(assignments, row_of), points.indices[:, 1]], axis=1))
  terms = tf.square(points.values - own) - tf.square(own)
  center_norms = tf.reduce_sum(tf.square(centers), axis=1)
  squared = tf.gather(center_norms, assignments) + (
      tf.math.unsorted_segment_sum(terms, row_of, num_rows(points)))
  return tf.maximum(squared, tf.zeros_like(squared))


def products_with(points, centers, assignments):
  """x_i . c_a(i) for every point and its own center: float (n,); over
  the stored values only for sparse points."""
  if not is_sparse(points):
    return tf.reduce_sum(points * tf.gather(centers, assignments), axis=1)
  row_of = row_ids(points)
  own = tf.gather_nd(centers, tf.stack(
      [tf.gather(tf.cast(assignments, tf.int64), row_of),
       points.indices[:, 1]], axis=1))
  return tf.math.unsorted_segment_sum(points.values * own, row_of,
                                      num_rows(points))
