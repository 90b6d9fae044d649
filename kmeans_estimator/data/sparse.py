"""Sparse data: `tf.SparseTensor`s and scipy.sparse matrices.

The adapter of sparse points (the classic text case: TF-IDF, bag of words,
one-hot features). A sparse input is read into one `tf.SparseTensor`
(n, d) in row-major order, of the computation's dtype, and never densified:
the maths of `ops.sparse` computes distances from sparse-dense products and
center sums from segment sums of the stored values, so memory is
O(nnz + k d + a chunk). Centers stay dense (k, d).

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


# Rows per block when the row ids of a scipy matrix's values are written:
# bounds the temporary of each block.
_ROW_BLOCK = 1 << 16
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


def _int64_tensor(array):
  """A Tensor of the numpy `array` (from `_aligned_empty`, never written
  again) sharing its memory through DLPack; a copy (`tf.constant`) where
  DLPack is not available."""
  from_dlpack = getattr(getattr(tf.experimental, 'dlpack', None),
                        'from_dlpack', None)
  if (from_dlpack is None or not hasattr(array, '__dlpack__') or
      array.ctypes.data % _ALIGNMENT):
    return tf.constant(array)
  return from_dlpack(array.__dlpack__())


def _from_scipy(matrix):
  """A scipy.sparse matrix as (indices int64 (nnz, 2), values, shape),
  row-major, duplicates summed.

  A CSR matrix already in canonical form (sorted columns, no duplicates)
  is read as it is, never copied; any other is converted by `tocsr` (a
  copy of the caller's CSR when its duplicates must be summed in place).
  The indices are written into their one (nnz, 2) array, the row ids a
  block of rows at a time: no other temporary of the size of the values.
  That array is aligned for TensorFlow, which takes it without a copy
  (`_int64_tensor`).
  """
  csr = matrix.tocsr()
  if not csr.has_canonical_format:
    if csr is matrix:
      csr = csr.copy()  # sum_duplicates sorts in place: not the caller's.
    csr.sum_duplicates()
  n, d = csr.shape
  indptr = csr.indptr
  indices = _aligned_empty((csr.nnz, 2), np.int64)
  indices[:, 1] = csr.indices
  for start in range(0, n, _ROW_BLOCK):
    stop = min(start + _ROW_BLOCK, n)
    indices[indptr[start]:indptr[stop], 0] = np.repeat(
        np.arange(start, stop, dtype=np.int64),
        np.diff(indptr[start:stop + 1]))
  return indices, csr.data, (n, d)


def to_sparse_tensor(value, dtype, what='the features'):
  """`value` (see `is_sparse_input`) as a row-major `tf.SparseTensor` of
  `dtype`.

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
    indices, values, shape = _from_scipy(value)
    return tf.SparseTensor(_int64_tensor(indices),
                           tf.cast(tf.constant(values), dtype),
                           tf.constant(shape, tf.int64))
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
  return sparse_lib.cast(ordered, dtype)


class SparsePoints(base.Points):
  """Sparse points in memory (kind `IN_MEMORY`): one row-major
  `tf.SparseTensor` (n, d), all the data one batch, read for training as
  `arrays.TensorPoints` is, and for inference a chunk of rows at a time
  (`ops.sparse.rows`: a chunk's entries, never a dense copy), in batches of
  `batch_rows` rows when data were given with a `batch_size`.

  Attributes:
    batch: the `Batch`: points a float SparseTensor (n, d), weights float
      (n,) or None.
    batch_rows: None, or the rows of each batch for inference.
  """
  kind = base.IN_MEMORY
  sparse = True

  def __init__(self, batch, batch_rows=None):
    self.batch = batch
    self.batch_rows = batch_rows
    self.num_features = sparse_lib.num_columns(batch.points)
    self.weighted = batch.weights is not None
    self.checked = True
    self._dataset = None

  @property
  def whole(self):
    return self.batch_rows is None

  @property
  def num_points(self):
    return sparse_lib.num_rows(self.batch.points)

  @property
  def dataset(self):
    if self._dataset is None:
      self._dataset = tf.data.Dataset.from_tensors(self.batch.element())
    return self._dataset

  def batches(self):
    return iter([self.batch])

  def chunked_batches(self, rows):
    n = self.num_points
    size = self.batch_rows or n
    for start in range(0, n, size):
      batch = self.batch.rows(start, min(start + size, n))
      yield batch.num_points, base.row_chunks(batch, rows)

  def step_inputs(self, mini_batch, finite_by_default, unscreened=False):
    del mini_batch, unscreened  # All the data are the one batch.
    while True:
      yield self.batch
      if finite_by_default:
        return

  def all_finite(self):
    return bool(sparse_lib.all_finite(self.batch.points))


def is_sparse_dataset(dataset):
  """Whether a dataset's elements (or their features) are sparse."""
  spec = dataset.element_spec
  if isinstance(spec, tuple) and spec:
    spec = spec[0]
  if isinstance(spec, dict):
    return any(isinstance(value, tf.SparseTensorSpec)
               for value in spec.values())
  return isinstance(spec, tf.SparseTensorSpec)


def read_dataset(dataset, dtype, num_features, weighted, feature_columns=None,
                 weight_column=None):
  """`datasets.StreamPoints` (marked `sparse`) of a dataset of SparseTensor
  batches, or of dicts whose one point feature is a SparseTensor (beside
  the dense `weight_column`): each batch is put in row-major order, cast
  to `dtype` and checked (finite values, the width, the weights) as it is
  read. Full-batch steps sum over its batches, mini-batch steps read one
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
    if len(names) != 1 or not isinstance(spec[names[0]],
                                         tf.SparseTensorSpec):
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

  def ordered(*element):
    features = features_lib.features_of(
        element if len(element) > 1 else element[0])
    points = features if name is None else features[name]
    return features, sparse_lib.cast(tf.sparse.reorder(points), dtype)

  width = points_spec.shape[-1] if points_spec.shape.rank is not None else (
      None)
  if width is None:
    for _, batch in dataset.map(no_autograph(ordered)).take(1):
      width = int(batch.dense_shape[1])
    if width is None:
      raise errors.InvalidInputError(
          'The input_fn returned an empty dataset; give it at least one '
          'batch of points.', kind='empty')
  width = int(width)
  checks.check_width(width, num_features)

  def read(check_finite):
    def checked(*element):
      features, points = ordered(*element)
      found = []
      if check_finite:
        found.append(checks.input_check(
            sparse_lib.all_finite(points), 'non_finite',
            checks.NON_FINITE_MESSAGE))
      found.append(checks.input_check(
          tf.equal(points.dense_shape[1], width), 'width',
          f'{checks.WIDTH_MESSAGE}; expected {width} features'))
      with tf.control_dependencies(found):
        points = tf.SparseTensor(tf.identity(points.indices), points.values,
                                 points.dense_shape)
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
  (see `direct.slices`), each a row-major SparseTensor taken by a binary
  search of its rows (`ops.sparse.rows`), never densified.

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
  points = to_sparse_tensor(data, tf.as_dtype(data.dtype))
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
  points = to_sparse_tensor(points, dtype)
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
