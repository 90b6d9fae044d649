"""Sparse data: `tf.SparseTensor`s and scipy.sparse matrices.

The adapter of sparse points (the classic text case: TF-IDF, bag of words,
one-hot features). A sparse input is converted once, here, into
`ops.sparse.CsrPoints` (n, d): compressed sparse rows of the computation's
dtype, 8 bytes per stored value (int32 column, float32 value) and 8 per row,
never densified: the maths of `ops.sparse` computes distances from
sparse-dense products and center sums from segment sums of the stored
values, so memory is O(nnz + k d + a chunk). Centers stay dense (k, d). A
canonical scipy CSR matrix of that dtype is taken as it is where TensorFlow
can share its buffers (`_from_scipy`).

Accepted:
- a `tf.SparseTensor` of rank 2;
- a scipy.sparse matrix or array of any format (CSR, CSC, COO, ...),
  converted through CSR. scipy is an optional dependency: it is never
  imported here; a scipy object is recognised by its module;
- either as the features of a dict (`{'x': sparse, 'w': weights}`), the
  only point feature, beside a dense `weight_column`;
- a `tf.data.Dataset` of SparseTensor batches (finite or endless), or of
  dicts of one SparseTensor feature and the weights, read as a stream of
  batches as dense ones are (`read_dataset`).

Policies:
- Entries stored at the same position (a COO matrix may hold duplicates)
  are summed, as scipy's `tocsr` sums them; a SparseTensor with repeated
  indices is refused (`tf.sparse.reorder` keeps them apart, and sums of
  squares would count them wrong).
- Explicitly stored zeros are zeros; a row without entries is the zero
  point (under cosine, it stays zero, at distance 1 from every center).
- NaN or Inf among the stored values is an error, as for dense data.
- Sparse points train with every registered algorithm that says so
  (`Algorithm.supports_sparse`: all of them today), mini-batch included,
  with either metric, weights and restarts, and are read by every
  inference method; what does not take them yet (a dict with another
  point feature beside the sparse one, a `tf.distribute` strategy) raises
  `SparseInputError` naming the argument to change.
"""

import numpy as np
import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.data import arrays
from kmeans_estimator.data import base
from kmeans_estimator.data import checks
from kmeans_estimator.data import datasets
from kmeans_estimator.data import features as features_lib
from kmeans_estimator.ops import sparse as sparse_lib


def is_scipy_sparse(value):
  """Whether `value` is a scipy.sparse matrix or array (scipy not
  imported: recognised by its module and its `tocsr` method)."""
  module = type(value).__module__ or ''
  return module.startswith('scipy.sparse') and hasattr(value, 'tocsr')


def is_sparse_input(value):
  """Whether `value` is sparse data this adapter reads: a SparseTensor or
  a scipy.sparse matrix."""
  return isinstance(value, tf.SparseTensor) or is_scipy_sparse(value)


def has_sparse_features(raw):
  """Whether `raw` (what an input_fn returned) holds sparse points: is
  sparse, or a dict with a sparse feature."""
  if isinstance(raw, dict):
    return any(is_sparse_input(value) for value in raw.values())
  return is_sparse_input(raw)


# The alignment TensorFlow requires of a buffer it takes over (DLPack).
_ALIGNMENT = 64


def _aligned_empty(shape, dtype):
  """An uninitialised C-ordered numpy array whose data start on a
  `_ALIGNMENT`-byte boundary, as TensorFlow's own buffers do."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape)) * dtype.itemsize
  raw = np.empty(nbytes + _ALIGNMENT, np.uint8)
  offset = -raw.ctypes.data % _ALIGNMENT
  return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def _from_dlpack(array):
  """A Tensor sharing the memory of the numpy `array` through DLPack, or
  None where TensorFlow cannot take it as it is (no DLPack, a read-only
  or misaligned buffer, a dtype DLPack does not carry)."""
  from_dlpack = getattr(getattr(tf.experimental, 'dlpack', None),
                        'from_dlpack', None)
  if (from_dlpack is None or not hasattr(array, '__dlpack__') or
      not array.flags.c_contiguous or array.ctypes.data % _ALIGNMENT):
    return None
  try:
    return from_dlpack(array.__dlpack__())
  except (BufferError, TypeError, ValueError, tf.errors.OpError):
    return None


def _shared_tensor(array, dtype):
  """A 1-D Tensor of `dtype` with the values of the numpy `array`: the
  array's own memory where TensorFlow can take it (of `dtype`, aligned:
  `_from_dlpack`), else one copy, written into an aligned buffer that
  TensorFlow then takes."""
  dtype = tf.as_dtype(dtype)
  if array.dtype == np.dtype(dtype.as_numpy_dtype):
    shared = _from_dlpack(array)
    if shared is not None:
      return shared
  copy = _aligned_empty(array.shape, dtype.as_numpy_dtype)
  copy[...] = array
  shared = _from_dlpack(copy)
  return shared if shared is not None else tf.constant(copy, dtype)


def _from_scipy(matrix, dtype):
  """A scipy.sparse matrix as `CsrPoints` of `dtype`, duplicates summed.

  A CSR matrix already in canonical form (sorted columns, no duplicates)
  is read as it is; any other is converted by `tocsr` (a copy of the
  caller's CSR when its duplicates must be summed in place). Its column
  indices (int32) and values (of `dtype`) are then taken by TensorFlow
  without a copy where their buffers allow it (`_shared_tensor`: aligned
  for TensorFlow, which numpy's large arrays often are not), else copied
  once; its row pointers become the int64 row splits ((n + 1,), a copy).
  Shared buffers are the caller's: they must not be written while the
  call that reads them runs.
  """
  csr = matrix.tocsr()
  if not csr.has_canonical_format:
    if csr is matrix:
      csr = csr.copy()  # sum_duplicates sorts in place: not the caller's.
    csr.sum_duplicates()
  n, d = csr.shape
  return sparse_lib.CsrPoints(
      tf.constant(np.asarray(csr.indptr, np.int64)),
      _shared_tensor(csr.indices, sparse_lib.column_dtype(d)),
      _shared_tensor(csr.data, dtype), int(d))


def to_csr_points(value, dtype, what='the features'):
  """`value` (see `is_sparse_input`) as `ops.sparse.CsrPoints` of `dtype`.

  A SparseTensor is put in row-major order (`tf.sparse.reorder`) and
  checked for repeated indices before its row splits are found.

  Raises:
    InvalidArgumentTypeError: non-numeric values.
    InvalidInputError: not of rank 2, repeated indices.
  """
  if is_scipy_sparse(value):
    if value.ndim != 2:
      raise errors.InvalidInputError(
          f'{what} must be a 2-D sparse matrix (n, d). Received: shape '
          f'{value.shape}', kind='shape')
    if np.dtype(value.dtype).kind not in 'fiu':
      raise errors.InvalidArgumentTypeError(
          f'{what} must be numeric (integer or float). Received: dtype '
          f'{value.dtype}', 'input_fn')
    return _from_scipy(value, dtype)
  value_dtype = tf.as_dtype(value.dtype)
  if not (value_dtype.is_floating or value_dtype.is_integer) or (
      value_dtype.is_bool):
    raise errors.InvalidArgumentTypeError(
        f'{what} must be numeric (integer or float). Received: dtype '
        f'{value_dtype.name}', 'input_fn')
  if value.shape.rank is not None and value.shape.rank != 2:
    raise errors.InvalidInputError(
        f'{what} must be a 2-D SparseTensor (n, d). Received: shape '
        f'{value.shape}', kind='shape')
  ordered = tf.sparse.reorder(value)
  indices = ordered.indices
  if int(tf.shape(indices)[0]) > 1 and bool(tf.reduce_any(tf.reduce_all(
      tf.equal(indices[1:], indices[:-1]), axis=1))):
    raise errors.InvalidInputError(
        f'{what} hold values stored twice at the same index; sum them first '
        '(e.g. scipy.sparse.coo_matrix(...).tocsr()).', kind='shape')
  return sparse_lib.from_row_major(
      sparse_lib.cast(ordered, dtype), int(ordered.dense_shape[1]))


class SparsePoints(arrays.TensorPoints):
  """Sparse points in memory (kind `IN_MEMORY`): one
  `ops.sparse.CsrPoints` (n, d), all the data one batch, read for training as
  `arrays.TensorPoints` is (its `dataset`, `batches` and `step_inputs`), and
  for inference a chunk of rows at a time (`ops.sparse.rows`: a chunk's
  entries, never a dense copy), in batches of `batch_rows` rows when data
  were given with a `batch_size`.

  Attributes:
    batch: the `Batch`: points float `CsrPoints` (n, d), weights float
      (n,) or None.
    batch_rows: None, or the rows of each batch for inference.
  """
  sparse = True

  def __init__(self, batch, batch_rows=None):
    super().__init__(batch, checked=True)
    self.batch_rows = batch_rows

  @property
  def whole(self):
    return self.batch_rows is None

  @property
  def num_points(self):
    return sparse_lib.num_rows(self.batch.points)

  def chunked_batches(self, rows):
    n = self.num_points
    size = self.batch_rows or n
    for start in range(0, n, size):
      batch = self.batch.rows(start, min(start + size, n))
      yield batch.num_points, base.row_chunks(batch, rows)

  def all_finite(self):
    return bool(sparse_lib.all_finite(self.batch.points))


_SPARSE_SPECS = (tf.SparseTensorSpec, sparse_lib.CsrPoints.Spec)


def is_sparse_dataset(dataset):
  """Whether a dataset's elements (or their features) are sparse: a
  SparseTensor, or `CsrPoints` (the slices of `slices`)."""
  spec = dataset.element_spec
  if isinstance(spec, tuple) and spec:
    spec = spec[0]
  if isinstance(spec, dict):
    return any(isinstance(value, _SPARSE_SPECS) for value in spec.values())
  return isinstance(spec, _SPARSE_SPECS)


def read_dataset(dataset, dtype, num_features, weighted, feature_columns=None,
                 weight_column=None):
  """`datasets.StreamPoints` (marked `sparse`) of a dataset of SparseTensor
  (or `CsrPoints`) batches, or of dicts whose one point feature is one
  (beside the dense `weight_column`): each batch is put in row-major order,
  cast to `dtype`, checked (finite values, the width, the weights) and
  converted to `CsrPoints` as it is read. Full-batch steps sum over its batches, mini-batch steps read one
  batch each, as for dense batches.

  Raises:
    SparseInputError: a dict with another point feature beside the sparse
      one.
    InvalidInputError: an empty dataset, the wrong width.
  """
  spec = features_lib.features_of(dataset.element_spec)
  name = None
  if isinstance(spec, dict):
    if weighted:
      checks.check_weight_features(spec, weight_column)
    names = features_lib.feature_names(spec, feature_columns, weight_column)
    if len(names) != 1 or not isinstance(spec[names[0]], _SPARSE_SPECS):
      raise errors.SparseInputError(
          'Sparse features must be the only point feature of a dict (beside '
          f'the weight_column); received the features {list(names)}. Stack '
          'them into one SparseTensor (tf.sparse.concat(axis=1)).',
          'input_fn')
    name = names[0]
    points_spec = spec[name]
  elif weighted:
    checks.check_weight_features(spec, weight_column)
  else:
    points_spec = spec
  value_dtype = tf.as_dtype(points_spec.dtype)
  if not (value_dtype.is_floating or value_dtype.is_integer) or (
      value_dtype.is_bool):
    raise errors.InvalidArgumentTypeError(
        'the features must be numeric (integer or float). Received: dtype '
        f'{value_dtype.name}', 'input_fn')
  if points_spec.shape.rank is not None and points_spec.shape.rank != 2:
    checks.check_rank(points_spec.shape)
  no_autograph = tf.autograph.experimental.do_not_convert

  def points_of(*element):
    features = features_lib.features_of(
        element if len(element) > 1 else element[0])
    return features, features if name is None else features[name]

  width = points_spec.shape[-1] if points_spec.shape.rank is not None else (
      None)
  if width is None:
    for _, batch in dataset.map(no_autograph(points_of)).take(1):
      width = int(sparse_lib.num_columns(batch))
    if width is None:
      raise errors.InvalidInputError(
          'The input_fn returned an empty dataset; give it at least one '
          'batch of points.', kind='empty')
  width = int(width)
  checks.check_width(width, num_features)

  def read(check_finite):
    def checked(*element):
      features, points = points_of(*element)
      found = []
      if isinstance(points, tf.SparseTensor):
        found.append(checks.input_check(
            tf.equal(points.dense_shape[1], width), 'width',
            f'{checks.WIDTH_MESSAGE}; expected {width} features'))
        points = sparse_lib.from_row_major(
            sparse_lib.cast(tf.sparse.reorder(points), dtype), width)
      else:  # CsrPoints: row-major, their width static (checked above).
        points = sparse_lib.cast(points, dtype)
      if check_finite:
        found.append(checks.input_check(
            sparse_lib.all_finite(points), 'non_finite',
            checks.NON_FINITE_MESSAGE))
      with tf.control_dependencies(found):
        points = sparse_lib.CsrPoints(
            tf.identity(points.row_splits), points.columns, points.values,
            points.num_columns)
      if not weighted:
        return points
      return points, features_lib.weights_of(
          features, weight_column, sparse_lib.num_rows(points), dtype)
    return dataset.map(no_autograph(checked))

  endless = bool(dataset.cardinality() == tf.data.INFINITE_CARDINALITY)
  points = datasets.StreamPoints(width, read(True), read(False),
                                 weighted=weighted, endless=endless)
  points.sparse = True
  return points


def slices(data, batch_size, repeat, first_batch=0):
  """A dataset of consecutive `batch_size`-row slices of sparse `data`
  (see `direct.slices`), each `CsrPoints` taken from the data converted
  once (`ops.sparse.rows`: O(1) to find), never densified.

  Raises:
    SparseInputError: a dict of features (not sliced yet).
  """
  if isinstance(data, dict):
    raise errors.SparseInputError(
        'A dict with sparse features is not sliced by `batch_size` yet; '
        'give the SparseTensor or scipy.sparse matrix itself, or drop '
        f'batch_size. Received: batch_size={batch_size}', 'batch_size',
        batch_size)
  # Of the data's own dtype: each batch is cast as the stream reads it.
  points = to_csr_points(data, tf.as_dtype(data.dtype))
  num_points = sparse_lib.num_rows(points)
  starts = tf.data.Dataset.range(0, num_points, batch_size)
  if repeat:
    starts = starts.repeat()
  if first_batch:
    starts = starts.skip(first_batch)
  return starts.map(tf.autograph.experimental.do_not_convert(
      lambda start: sparse_lib.rows(points, start, start + batch_size)))


def read_sparse(raw, feature_columns, dtype, num_features, weight_column,
                weighted, batch_rows=None):
  """`SparsePoints` of sparse data given whole, or of a dict whose only
  point feature is sparse.

  The width, NaN and Inf among the stored values, and with weights one
  finite weight >= 0 per point with a positive total, are checked here.

  Raises:
    SparseInputError: a dict with a sparse feature beside other point
      features.
    InvalidInputError: no rows or columns, the wrong width, NaN or Inf,
      bad weights.
  """
  weights = None
  if isinstance(raw, dict):
    names = features_lib.feature_names(raw, feature_columns, weight_column)
    if len(names) != 1:
      raise errors.SparseInputError(
          'Sparse features must be the only point feature of a dict (beside '
          f'the weight_column); received the features {list(names)}. Stack '
          'them into one sparse matrix (scipy.sparse.hstack or '
          'tf.sparse.concat(axis=1)).', 'input_fn')
    if weighted:
      checks.check_weight_features(raw, weight_column)
      weights = tf.reshape(tf.cast(tf.convert_to_tensor(raw[weight_column]),
                                   dtype), [-1])
    points = raw[names[0]]
    if not is_sparse_input(points):
      return None
  elif weighted:
    checks.check_weight_features(raw, weight_column)
  else:
    points = raw
  points = to_csr_points(points, dtype)
  n, d = sparse_lib.num_rows(points), sparse_lib.num_columns(points)
  if not n or not d:
    raise errors.InvalidInputError(
        f'The input_fn returned no points (shape {(n, d)}); give at least '
        'one row and one column.', kind='empty')
  checks.check_width(d, num_features)
  if not bool(sparse_lib.all_finite(points)):
    raise errors.InvalidInputError(f'{checks.NON_FINITE_MESSAGE}.',
                                   kind='non_finite')
  if weights is not None:
    if int(tf.size(weights)) != n:
      raise errors.InvalidInputError(
          f'The weight feature `weight_column`={weight_column!r} has '
          f'{int(tf.size(weights))} values for {n} points; give one weight '
          'per point.', kind='weights')
    checks.check_total_weight(weights, weight_column)
  return SparsePoints(base.Batch(points, weights), batch_rows)
