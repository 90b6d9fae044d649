"""The maths of sparse points: `CsrPoints` (n, d), compressed sparse rows.

Sparse points are held in CSR form (`CsrPoints`: row splits, column of
every stored value, the values), 8 bytes per stored value (int32 column,
float32 value) plus 8 per row, and never densified: every function here
costs memory O(nnz) for the points plus its dense result ((n,) per point,
(k, d) per cluster, (m, d) for m gathered rows). A range of rows is a range
of entries found in O(1) (`rows`); the int64 (row, column) pairs that
TensorFlow's sparse kernels take are built for one chunk of rows at a time
(`matmul`), never for all the points.

Every function also takes a row-major `tf.SparseTensor` (`is_sparse`),
converted on entry (`as_csr`, O(nnz)); those returning sparse points then
return a SparseTensor as well. The library converts its inputs once, at
the boundary (`data.sparse`, `KMeans.prepare`, the serving functions), so
its own loops only ever see `CsrPoints`.

The dense functions of `distances` and `carried` call these where their
points are sparse (`is_sparse`): the products x.c come from TensorFlow's
CSR matrix product, the per-cluster sums from a segment sum of the values
by (cluster of their row, column).
"""

import tensorflow as tf

# The largest column index an int32 `columns` holds.
_INT32_COLUMNS = 2**31 - 1
# Stored values per piece of `fold_entries` and per block of `matmul`:
# bounds their temporaries (2 MB per int64 or float64 array), not nnz.
ENTRY_PIECE = 1 << 18
# Stored values per block of a product of a chunk of rows (`matmul`'s
# `block_entries` from the chunked passes, whose chunks hold about
# CHUNK_ENTRIES): TensorFlow's CSR kernel runs slower on smaller blocks,
# such as those of ENTRY_PIECE, the default for products of all the points
# (benchmarks/README.md, "Results with points in CSR form").
PRODUCT_ENTRIES = 1 << 20
# Stored values, on average, per chunk of rows of a pass over sparse points
# (`rows_holding`): a chunk's copies of its entries, their pairs and CSR
# form take about 36 bytes a value (18 MB).
CHUNK_ENTRIES = 1 << 19


class CsrPoints(tf.experimental.ExtensionType):
  """Sparse points (n, d) in compressed sparse row (CSR) form.

  Row i holds the entries `row_splits[i]:row_splits[i + 1]`: their columns
  (increasing within a row, none twice) and values. A row without entries
  is the zero point. Passed to and returned from `tf.function`s, `tf.cond`
  and `tf.data` pipelines like a Tensor; its spec relaxes to any n and nnz
  for the same d and dtypes (`reduce_retracing`).

  Attributes:
    row_splits: int64 Tensor (n + 1,), starting at 0, non-decreasing.
    columns: int32 Tensor (nnz,) (int64 when d > 2^31 - 1), the column of
      every stored value.
    values: float Tensor (nnz,), the stored values.
    num_columns: d, a Python int.
  """
  row_splits: tf.Tensor
  columns: tf.Tensor
  values: tf.Tensor
  num_columns: int

  dtype = property(lambda self: _dtype(self), doc='The dtype of the values.')
  shape = property(lambda self: _static_shape(self),
                   doc='The static `tf.TensorShape` (n, d); n None when not '
                   'known.')

  class Spec:
    """The spec of `CsrPoints`, with their `dtype` and static `shape`."""
    dtype = property(lambda self: _dtype(self))
    shape = property(lambda self: _static_shape(self))


def _dtype(points):
  """The dtype of the values of `CsrPoints` or of their spec."""
  return points.values.dtype


def _static_shape(points):
  """(n, d) of `CsrPoints` or of their spec: n from the row splits (None
  when not known), d their `num_columns`."""
  splits = points.row_splits.shape[0]
  return tf.TensorShape([None if splits is None else splits - 1,
                         points.num_columns])


def column_dtype(num_columns):
  """The dtype of `CsrPoints.columns` for d columns: int32 unless d
  exceeds it."""
  return tf.int32 if num_columns <= _INT32_COLUMNS + 1 else tf.int64


def is_sparse(points):
  """Whether `points` are sparse: `CsrPoints` or a `tf.SparseTensor` (a
  Python bool)."""
  return isinstance(points, (CsrPoints, tf.SparseTensor))


def from_row_major(sparse_tensor, num_columns=None):
  """`CsrPoints` of a row-major `tf.SparseTensor` (n, d) without repeated
  indices (the caller reorders and checks; see `data.sparse`).

  Args:
    sparse_tensor: row-major `tf.SparseTensor` of rank 2.
    num_columns: d when the SparseTensor's width is not static.

  Raises:
    ValueError: d neither static nor given.
  """
  if num_columns is None:
    num_columns = sparse_tensor.shape[1]
    if num_columns is None:
      static = tf.get_static_value(sparse_tensor.dense_shape)
      num_columns = None if static is None else static[1]
    if num_columns is None:
      raise ValueError('`num_columns` must be given for a SparseTensor of '
                       'unknown width. Received: shape '
                       f'{sparse_tensor.shape}')
  num_columns = int(num_columns)
  ids = sparse_tensor.indices[:, 0]
  n = sparse_tensor.dense_shape[0]
  row_splits = tf.searchsorted(ids, tf.range(n + 1), side='left',
                               out_type=tf.int64)
  return CsrPoints(row_splits,
                   tf.cast(sparse_tensor.indices[:, 1],
                           column_dtype(num_columns)),
                   sparse_tensor.values, num_columns)


def as_csr(points):
  """Sparse `points` as `CsrPoints` (themselves if they are)."""
  if isinstance(points, CsrPoints):
    return points
  return from_row_major(points)


def as_sparse_tensor(points):
  """Sparse `points` as a row-major `tf.SparseTensor` (n, d): int64
  (row, column) pairs for every stored value (16 bytes each), for callers
  that want TensorFlow's COO form; the maths never builds it whole."""
  if isinstance(points, tf.SparseTensor):
    return points
  indices = tf.stack([entry_rows(points), tf.cast(points.columns, tf.int64)],
                     axis=1)
  return tf.SparseTensor(indices, points.values,
                         tf.stack([tf.shape(points.row_splits,
                                            out_type=tf.int64)[0] - 1,
                                   tf.constant(points.num_columns,
                                               tf.int64)]))


def _like(given, result):
  """`result` (CsrPoints) in the form of the sparse points `given`."""
  return as_sparse_tensor(result) if isinstance(given, tf.SparseTensor) else (
      result)


def num_rows(points):
  """n: the static first dimension when known, else a scalar Tensor
  (int32 for a dense Tensor, as `tf.shape` gives it)."""
  if isinstance(points, CsrPoints):
    static = points.shape[0]
    if static is not None:
      return int(static)
    return tf.shape(points.row_splits)[0] - 1
  if isinstance(points, tf.SparseTensor):
    static = tf.get_static_value(points.dense_shape)
    if static is not None:
      return int(static[0])
    return tf.cast(points.dense_shape[0], tf.int32)
  return tf.shape(points)[0]


def num_columns(points):
  """d, as `num_rows` gives n (a Python int for `CsrPoints`)."""
  if isinstance(points, CsrPoints):
    return points.num_columns
  if isinstance(points, tf.SparseTensor):
    static = tf.get_static_value(points.dense_shape)
    if static is not None:
      return int(static[1])
    return tf.cast(points.dense_shape[1], tf.int32)
  return tf.shape(points)[1]


def num_entries(points):
  """nnz, the number of stored values: an int64 scalar Tensor."""
  return tf.shape(as_csr(points).values, out_type=tf.int64)[0]


_INT32_LIMIT = 2**31 - 1


def _fits_int32(row_splits):
  """Whether n and nnz of these row splits fit int32 (a bool Tensor)."""
  return ((tf.size(row_splits, out_type=tf.int64) <= _INT32_LIMIT) &
          (row_splits[-1] < _INT32_LIMIT))


def _segment_ids(row_splits, out_type):
  """The row of every entry of `row_splits` (starting at 0): at each entry,
  the number of rows that start at or before it, after the first. O(n +
  nnz) with temporaries of nnz; rows without entries count too.
  (`tf.ragged.row_splits_to_segment_ids` would build an (n, longest row)
  mask.) Counted in int32 when n and nnz allow, which moves half the
  bytes of int64 (about twice as fast), then cast to `out_type`."""

  def count(dtype):
    splits = tf.cast(row_splits, dtype)
    starts = splits[1:-1]
    marks = tf.math.unsorted_segment_sum(tf.ones_like(starts), starts,
                                         splits[-1] + 1)
    return tf.cast(tf.cumsum(marks[:-1]), out_type)

  return tf.cond(_fits_int32(row_splits), lambda: count(tf.int32),
                 lambda: count(tf.int64))


def row_ids(points):
  """int32 (nnz,): the row of every stored value."""
  return _segment_ids(as_csr(points).row_splits, tf.int32)


def entry_rows(points, start=None, stop=None):
  """int64 (stop - start,): the row of each stored value in the entries
  [start, stop) (all of them by default). A piece costs two binary
  searches and O(its entries and rows), never a pass over all the points.
  """
  points = as_csr(points)
  if start is None:
    return _segment_ids(points.row_splits, tf.int64)
  start = tf.cast(start, tf.int64)
  stop = tf.cast(stop, tf.int64)
  # The rows holding entry `start` and entry `stop` (or ending there).
  first, last = tf.unstack(tf.searchsorted(
      points.row_splits, tf.stack([start, stop]), side='right',
      out_type=tf.int64) - 1)
  splits = tf.clip_by_value(points.row_splits[first:last + 2], start,
                            stop) - start
  return first + _segment_ids(splits, tf.int64)


def entries(points, start=None, stop=None):
  """The stored values of sparse points with their places: (rows int64,
  columns int64, values), in row-major order: all nnz of them, or those
  at positions [start, stop) (their rows by `entry_rows`)."""
  points = as_csr(points)
  return (entry_rows(points, start, stop),
          tf.cast(points.columns[start:stop], tf.int64),
          points.values[start:stop])


def fold_entries(points, fn, initial):
  """fn(total, rows, columns, values) over pieces of `ENTRY_PIECE` stored
  values (`entries`), one piece at a time, starting from `initial` (a
  Tensor): a pass over all the stored values whose temporaries are bounded
  by a piece, not by nnz."""
  points = as_csr(points)
  nnz = num_entries(points)

  def body(start, total):
    stop = tf.minimum(start + ENTRY_PIECE, nnz)
    return stop, fn(total, *entries(points, start, stop))

  # One piece at a time: concurrent pieces would hold their temporaries
  # together.
  return tf.while_loop(lambda start, _: start < nnz, body,
                       (tf.constant(0, tf.int64), initial),
                       parallel_iterations=1)[1]


def rows_holding(points, stored_values):
  """Rows that hold about `stored_values` stored values at the points'
  average density (at least 1): an int32 scalar Tensor."""
  n = tf.cast(num_rows(points), tf.int64)
  nnz = tf.maximum(num_entries(points), 1)
  return tf.cast(tf.clip_by_value(stored_values * n // nnz, 1, _INT32_LIMIT),
                 tf.int32)


def row_lengths(points):
  """int64 (n,): the number of stored values of every row."""
  splits = as_csr(points).row_splits
  return splits[1:] - splits[:-1]


def rows(points, start, stop):
  """Rows [start, stop) of `points` (stop clipped to n), renumbered from 0.

  Dense: a slice. Sparse: the row splits [start, stop] less the first, and
  the entries between: O(1) to find, no pass over the points.
  """
  if not is_sparse(points):
    return points[start:stop]
  given, points = points, as_csr(points)
  n = tf.shape(points.row_splits, out_type=tf.int64)[0] - 1
  start = tf.minimum(tf.cast(start, tf.int64), n)
  stop = tf.minimum(tf.cast(stop, tf.int64), n)
  splits = points.row_splits[start:stop + 1]
  first, last = splits[0], splits[-1]
  return _like(given, CsrPoints(splits - first, points.columns[first:last],
                                points.values[first:last],
                                points.num_columns))


def _csr_product(points, dense, transpose_b):
  """points @ dense (or dense^T) through TensorFlow's CSR matrix, whose
  conversion takes the int64 (row, column) pairs of all these points."""

  def product():
    if points.columns.dtype == tf.int32:
      # Both halves of the pairs in int32, one cast of the whole.
      indices = tf.cond(
          _fits_int32(points.row_splits),
          lambda: tf.cast(tf.stack([
              _segment_ids(points.row_splits, tf.int32), points.columns],
                                   axis=1), tf.int64),
          lambda: tf.stack([entry_rows(points),
                            tf.cast(points.columns, tf.int64)], axis=1))
    else:
      indices = tf.stack([entry_rows(points),
                          tf.cast(points.columns, tf.int64)], axis=1)
    shape = tf.stack([tf.shape(points.row_splits, out_type=tf.int64)[0] - 1,
                      tf.constant(points.num_columns, tf.int64)])
    csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
        indices=indices, values=points.values, dense_shape=shape)
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


def matmul(points, dense, transpose_b=False, block_entries=None):
  """points @ dense (or dense^T): a dense Tensor (n, k).

  Sparse points go through TensorFlow's CSR matrix (`tf.linalg.sparse`'s
  kernels): its product is several times faster on CPU than
  `tf.sparse.sparse_dense_matmul`'s, with the same sums. Its conversion
  takes int64 (row, column) pairs (16 bytes per stored value, and the CSR
  matrix's own copy): points of more than `block_entries` stored values
  (`ENTRY_PIECE` by default: all the points, as the initialisers pass
  them; the chunked passes pass `PRODUCT_ENTRIES` for their chunks) are
  multiplied a block of rows at a time, about `block_entries` values at
  their average density,
  so that those temporaries are bounded by a block, not by nnz.
  """
  if not is_sparse(points):
    return tf.matmul(points, dense, transpose_b=transpose_b)
  if block_entries is None:
    block_entries = ENTRY_PIECE
  points = as_csr(points)
  n = tf.shape(points.row_splits, out_type=tf.int64)[0] - 1
  nnz = num_entries(points)
  columns = tf.shape(dense)[0 if transpose_b else 1]

  def blocks():
    rows_per_block = tf.maximum(block_entries * n // nnz, 1)
    num_blocks = (n + rows_per_block - 1) // rows_per_block
    parts = tf.TensorArray(dense.dtype, size=tf.cast(num_blocks, tf.int32),
                           infer_shape=False, element_shape=[None, None])

    def body(i, parts):
      start = tf.cast(i, tf.int64) * rows_per_block
      block = rows(points, start, start + rows_per_block)
      return i + 1, parts.write(i, _csr_product(block, dense, transpose_b))

    _, parts = tf.while_loop(
        lambda i, _: tf.cast(i, tf.int64) < num_blocks, body,
        (tf.constant(0), parts), parallel_iterations=1)
    return tf.reshape(parts.concat(), tf.stack([tf.cast(n, tf.int32),
                                                columns]))

  return tf.cond(nnz <= block_entries,
                 lambda: _csr_product(points, dense, transpose_b), blocks)


def squared_norms(points):
  """|x|^2 of every point: float (n,). A row with no entries has 0."""
  if not is_sparse(points):
    return tf.reduce_sum(tf.square(points), axis=1)
  points = as_csr(points)
  n = num_rows(points)
  return fold_entries(
      points,
      lambda total, rows, _, values: total + tf.math.unsorted_segment_sum(
          tf.square(values), rows, n),
      tf.zeros([n], points.dtype))


def scale_rows(points, scales):
  """Every point multiplied by its scale (n,): x_i * s_i."""
  if not is_sparse(points):
    return points * scales[:, tf.newaxis]
  given, points = points, as_csr(points)
  return _like(given, CsrPoints(
      points.row_splits, points.columns,
      points.values * tf.gather(scales, row_ids(points)),
      points.num_columns))


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
  if isinstance(points, tf.SparseTensor):
    return tf.SparseTensor(points.indices, tf.cast(points.values, dtype),
                           points.dense_shape)
  return CsrPoints(points.row_splits, points.columns,
                   tf.cast(points.values, dtype), points.num_columns)


def all_finite(points):
  """Whether every value is finite (bool scalar Tensor); the implicit
  zeros of sparse points are."""
  values = points.values if is_sparse(points) else points
  return tf.reduce_all(tf.math.is_finite(values))


def largest_magnitudes(points):
  """max |x_j| over the points, per column: float (d,). The implicit zeros
  count (a column without entries has 0)."""
  if not is_sparse(points):
    return tf.maximum(tf.reduce_max(points, axis=0),
                      -tf.reduce_min(points, axis=0))
  points = as_csr(points)
  d = points.num_columns
  # From 0 up: the implicit zeros, and no -inf of an unsorted_segment_max
  # over a column without entries.
  return fold_entries(
      points,
      lambda total, _, columns, values: tf.maximum(
          total, tf.math.unsorted_segment_max(tf.abs(values), columns, d)),
      tf.zeros([d], points.dtype))


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
    points: float Tensor or sparse points (n, d).
    index: int32 Tensor (n,), each point's segment.
    num_segments: k, a Python int or scalar Tensor.
    weights: optional float Tensor (n,), the points' weights.
  """
  if not is_sparse(points):
    if weights is not None:
      points = points * weights[:, tf.newaxis]
    return tf.math.unsorted_segment_sum(points, index, num_segments)
  points = as_csr(points)
  d = tf.constant(points.num_columns, tf.int64)
  rows_of = row_ids(points)
  values = points.values
  if weights is not None:
    values = values * tf.gather(weights, rows_of)
  segment = tf.cast(tf.gather(index, rows_of), tf.int64)
  ids = tf.where(segment >= 0,
                 segment * d + tf.cast(points.columns, tf.int64),
                 tf.constant(-1, tf.int64))
  total = tf.cast(num_segments, tf.int64) * d
  sums = tf.math.unsorted_segment_sum(values, ids, total)
  return tf.reshape(sums, [num_segments, points.num_columns])


def take_rows(points, indices):
  """The rows `indices` (m,) of `points`, in that order: sparse points
  (m, d) of sparse points (a row may be asked for more than once),
  `tf.gather` of dense ones. O(m) to find plus the rows' entries."""
  if not is_sparse(points):
    return tf.gather(points, indices)
  given, points = points, as_csr(points)
  indices = tf.cast(indices, tf.int64)
  starts = tf.gather(points.row_splits, indices)
  stops = tf.gather(points.row_splits, indices + 1)
  entries = tf.ragged.range(starts, stops)
  which = entries.flat_values
  return _like(given, CsrPoints(
      tf.cast(entries.row_splits, tf.int64), tf.gather(points.columns, which),
      tf.gather(points.values, which), points.num_columns))


def gather_rows(points, indices):
  """The rows `indices` (m,) of `points` as a dense float Tensor (m, d)
  ((d,) for a scalar index): the chosen centers or far points (m is k or
  so), never all n rows. A row may be asked for more than once."""
  if not is_sparse(points):
    return tf.gather(points, indices)
  indices = tf.convert_to_tensor(indices)
  if indices.shape.rank == 0:  # One row: (d,), as tf.gather gives it.
    return gather_rows(points, indices[tf.newaxis])[0]
  taken = take_rows(as_csr(points), indices)
  pairs = tf.stack([entry_rows(taken), tf.cast(taken.columns, tf.int64)],
                   axis=1)
  m = tf.shape(indices, out_type=tf.int64)[0]
  return tf.scatter_nd(pairs, taken.values,
                       tf.stack([m, tf.constant(taken.num_columns,
                                                tf.int64)]))


def _own_center_values(points, centers, assignments):
  """c_a(i)_j at every stored value x_ij: float (nnz,)."""
  rows_of = row_ids(points)
  flat = tf.reshape(centers, [-1])
  at = (tf.cast(tf.gather(assignments, rows_of), tf.int64) *
        points.num_columns + tf.cast(points.columns, tf.int64))
  return rows_of, tf.gather(flat, at)


def squared_distances_to(points, centers, assignments):
  """|x_i - c_a(i)|^2 for every point and its own center: float (n,).

  Dense: the norm of the difference. Sparse: |c|^2 plus, over the stored
  values only, (x_j - c_j)^2 - c_j^2: no dense (n, d) difference, and
  none of the cancellation of |x|^2 against 2 x.c; clamped at 0.

  Args:
    points: float Tensor or sparse points (n, d).
    centers: float Tensor (k, d).
    assignments: int Tensor (n,), each point's center.
  """
  if not is_sparse(points):
    return tf.reduce_sum(tf.square(points - tf.gather(centers, assignments)),
                         axis=1)
  points = as_csr(points)
  rows_of, own = _own_center_values(points, centers, assignments)
  terms = tf.square(points.values - own) - tf.square(own)
  center_norms = tf.reduce_sum(tf.square(centers), axis=1)
  squared = tf.gather(center_norms, assignments) + (
      tf.math.unsorted_segment_sum(terms, rows_of, num_rows(points)))
  return tf.maximum(squared, tf.zeros_like(squared))


def products_with(points, centers, assignments):
  """x_i . c_a(i) for every point and its own center: float (n,); over
  the stored values only for sparse points."""
  if not is_sparse(points):
    return tf.reduce_sum(points * tf.gather(centers, assignments), axis=1)
  points = as_csr(points)
  rows_of, own = _own_center_values(points, centers, assignments)
  return tf.math.unsorted_segment_sum(points.values * own, rows_of,
                                      num_rows(points))
