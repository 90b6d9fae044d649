"""Data given whole: numpy arrays, lists of rows, Tensors, dicts of them.

Two adapters, by what the data are read for:
- `TensorPoints` (kind `IN_MEMORY`) for training: the data converted once
  to one float Tensor (n, d) (with weights (n,)), all of it one batch: a
  full-batch step is one Lloyd iteration over it.
- `RowPoints` (kind `ROWS`) for prediction and evaluation: the data are
  never converted whole but read a chunk of rows at a time (`WholeRows`),
  so that memory beyond the input is bounded by a chunk; with a
  `batch_size` (data given directly) they are read as batches of that many
  rows, each in chunks.
"""

import numpy as np
import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.data import base
from kmeans_estimator.data import checks
from kmeans_estimator.data import features as features_lib
from kmeans_estimator.data import tensors


def shared_row_parts(array, dtype):
  """`array` (n, d) as Tensors of consecutive rows, most sharing its memory.

  A Tensor can share an array only from an address aligned as TensorFlow
  needs (64 bytes), and numpy's large buffers start 16 bytes past one. A
  row further in may start aligned (with 400-byte rows, d = 100 float32,
  row 3 does): the rows before it are copied, at most 63, and the rest is
  shared. Prediction then skips the copy of the whole array, a tenth of
  its time for 500,000 x 100 points. `WholeRows` reads the parts a chunk
  at a time as prediction advances, so the caller's changes to rows not
  yet read reach their chunks.

  Args:
    array: the points as the caller gave them.
    dtype: the float dtype of the computation.

  Returns:
    A tuple of one or two Tensors, or None where nothing is shared: not a
    large, writeable, C-contiguous 2-D numpy array of `dtype`, or no row
    starts aligned.
  """
  if not (isinstance(array, np.ndarray) and array.ndim == 2 and
          array.dtype == dtype.as_numpy_dtype and array.dtype.isnative and
          array.flags.c_contiguous and array.flags.writeable and
          array.nbytes >= tensors.LARGE_ARRAY_BYTES):
    return None
  address, row_bytes = array.ctypes.data, array.strides[0]
  alignment = tensors.TENSOR_ALIGNMENT
  first = next((row for row in range(alignment)
                if (address + row * row_bytes) % alignment == 0), None)
  if first is None or first >= array.shape[0]:
    return None
  try:
    shared = tf.experimental.dlpack.from_dlpack(array[first:].__dlpack__())
  except (AttributeError, BufferError, TypeError):  # An older numpy.
    return None
  if not first:
    return (shared,)
  return (tf.convert_to_tensor(array[:first]), shared)


def _rows_value(value):
  """`value` as an array or dense Tensor whose rows can be sliced, or None
  (a list, sparse or ragged, non-numeric: left to the whole conversion,
  which says what is wrong)."""
  if isinstance(value, (tf.Tensor, tf.Variable)):
    dtype = tf.as_dtype(value.dtype)
    numeric = (dtype.is_floating or dtype.is_integer) and not dtype.is_bool
    return value if numeric and value.shape.rank is not None else None
  if isinstance(value, np.ndarray) and value.dtype.kind in 'fiu':
    return value
  return None


class WholeRows:
  """Data given whole (an array, Tensor, or dict of them), read a chunk of
  rows at a time.

  For prediction and evaluation, which need one chunk at a time: the data
  are never converted whole (a copy as large as the input, and another for
  a cast or for dict features). Each chunk is combined and cast on its own
  (`combine_features`), from a slice of the caller's rows. A large
  C-contiguous array of the computation's dtype is shared where its rows
  start 64-byte aligned (`shared_row_parts`: all but a short head): its
  chunks are then slices of the caller's memory, not copies.

  The caller's data are read as the chunks are taken: whatever is changed
  in them before a chunk is taken is what that chunk holds.

  Attributes:
    num_points: n.
    num_features: d.
  """

  def __init__(self, values, names, dtype, weight_column, weights,
               num_points, num_features, shared=None, check_finite=False):
    self._values = values  # None (the features themselves) or name -> value.
    self._names = names
    self._dtype = dtype
    self._weight_column = weight_column
    self._weights = weights
    self.num_points = num_points
    self.num_features = num_features
    self._shared = shared
    self._check_finite = check_finite

  @classmethod
  def of(cls, raw, feature_columns, dtype, weight_column=None,
         weighted=False, check_finite=False):
    """`WholeRows` of `raw`, or None where the rows cannot be sliced as
    they are (a list, sparse, ragged or non-numeric features, no rows, the
    wrong rank, dict features of different lengths, weights not of shape
    (n,) or (n, 1)): those are converted whole, which raises the error
    that says what is wrong, or reads them. With `check_finite`, each
    chunk is checked for NaN and Inf as it is read (a ValueError)."""
    weights = None
    if isinstance(raw, dict):
      names = features_lib.feature_names(raw, feature_columns, weight_column)
      values = {name: _rows_value(raw[name]) for name in names}
      if any(value is None or not len(value.shape)
             for value in values.values()):
        return None
      shapes = [tuple(value.shape) for value in values.values()]
      num_points = shapes[0][0]
      if any(shape[0] != num_points for shape in shapes):
        return None
      num_features = sum(int(np.prod(shape[1:], dtype=np.int64))
                         for shape in shapes)
      if weighted:
        weights = _rows_value(raw.get(weight_column))
        if weights is None or len(weights.shape) not in (1, 2) or (
            weights.shape[0] != num_points) or (
                len(weights.shape) == 2 and weights.shape[1] != 1):
          return None
      features = values
    else:
      if weighted:
        return None
      features = _rows_value(raw)
      if features is None or len(features.shape) != 2:
        return None
      names = None
      num_points, num_features = (int(features.shape[0]),
                                  int(features.shape[1]))
    if not num_points or not num_features:
      return None
    shared = (shared_row_parts(features, dtype)
              if isinstance(features, np.ndarray) else None)
    return cls(features, names, dtype, weight_column, weights,
               int(num_points), int(num_features), shared, check_finite)

  def _slice(self, value, start, stop):
    if isinstance(value, np.ndarray):
      return tensors.to_tensor(value[start:stop], 'the features')
    return value[start:stop]

  def _points(self, start, stop):
    if self._names is not None:
      return features_lib.combine_features(
          {name: self._slice(self._values[name], start, stop)
           for name in self._names}, self._names, self._dtype)
    if self._shared is not None:
      # The head of `shared_row_parts` and the rest, sliced in TensorFlow
      # (which shares a slice of aligned rows rather than copying it).
      head = int(self._shared[0].shape[0]) if len(self._shared) > 1 else 0
      if stop <= head:
        part = self._shared[0][start:stop]
      else:
        part = self._shared[-1][start - head:stop - head]
      return tf.cast(part, self._dtype)
    return features_lib.combine_features(
        self._slice(self._values, start, stop), None, self._dtype)

  def _weights_chunk(self, start, stop):
    weights = self._slice(self._weights, start, stop)
    return tf.reshape(tf.cast(weights, self._dtype), [-1])

  def _edges(self, rows, start, stop):
    """Chunk boundaries: chunks of `rows` rows from `start`, and never one
    across the end of `shared_row_parts`' head."""
    head = (int(self._shared[0].shape[0])
            if self._shared is not None and len(self._shared) > 1 else 0)
    while start < stop:
      end = min(start + rows, stop)
      if start < head < end:
        end = head
      yield start, end
      start = end

  def chunks(self, rows, start=0, stop=None):
    """(chunk, last) over rows [start, stop), at most `rows` rows each:
    a `Batch` of points (m, d) and, when weighted, weights (m,)."""
    stop = self.num_points if stop is None else stop
    for begin, end in self._edges(rows, start, stop):
      points = self._points(begin, end)
      if self._check_finite and not checks.all_finite(points):
        raise errors.InvalidInputError(f'{checks.NON_FINITE_MESSAGE}.',
                                       kind='non_finite')
      chunk = base.Batch(points, None if self._weights is None else
                         self._weights_chunk(begin, end))
      yield chunk, end >= stop
      points = chunk = None  # Not held while the next chunk is made.

  def all_finite(self, rows=1 << 16):
    """Whether the points hold no NaN and no Inf, a chunk at a time."""
    return all(checks.all_finite(self._points(begin, end))
               for begin, end in self._edges(rows, 0, self.num_points))

  def check_weights(self, rows=1 << 16):
    """`check_total_weight` over the weights, a chunk at a time."""
    total = 0.0
    for begin, end in self._edges(rows, 0, self.num_points):
      weights = np.asarray(self._weights_chunk(begin, end))
      if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise errors.InvalidInputError(
            f'{checks.weights_message(self._weight_column)}.', kind='weights')
      total += float(np.sum(weights, dtype=np.float64))
    if not total > 0:
      raise errors.InvalidInputError(
          checks.zero_weight_message(self._weight_column), kind='weights')


class TensorPoints(base.Points):
  """All the data in memory as one batch (kind `IN_MEMORY`).

  A Tensor or array (or dict of them) that an input_fn returned, or that
  was given directly without a `batch_size`, read for training: converted
  once (`read_whole`). Iterating it needs no `tf.data` iterator (which
  costs milliseconds per call).

  Attributes:
    batch: the `Batch`: points float (n, d), weights float (n,) or None.
  """
  kind = base.IN_MEMORY

  def __init__(self, batch, checked=True):
    self.batch = batch
    self.num_features = int(batch.points.shape[1])
    self.weighted = batch.weights is not None
    self.checked = checked
    self._dataset = None

  @property
  def num_points(self):
    return self.batch.num_points

  @property
  def dataset(self):
    """A one-element dataset of the batch, built on first use (building it
    costs about a millisecond that `batches()` never needs)."""
    if self._dataset is None:
      self._dataset = tf.data.Dataset.from_tensors(self.batch.element())
    return self._dataset

  def batches(self):
    return iter([self.batch])

  def step_inputs(self, mini_batch, finite_by_default, unscreened=False):
    """The batch, once (one pass) or for every step: a full-batch step is
    one Lloyd iteration over all the data, a mini-batch step one update
    with all of them."""
    del mini_batch, unscreened  # All the data are the one batch.
    while True:
      yield self.batch
      if finite_by_default:
        return

  def all_finite(self):
    return checks.all_finite(self.batch.points)


class RowPoints(base.Points):
  """Data given whole, read a chunk of rows at a time (kind `ROWS`).

  For prediction and evaluation (`read_points(in_chunks=True)`): the rows
  come from a `WholeRows`, as the iterators of `chunked_batches` advance,
  so no copy of all of them is made.

  Attributes:
    rows: the `WholeRows` the chunks are read from.
    batch_rows: the rows of each batch (data given with a `batch_size`),
      or None: all of them are one batch.
  """
  kind = base.ROWS

  def __init__(self, rows, batch_rows=None, weighted=False, checked=True):
    self.rows = rows
    self.batch_rows = batch_rows
    self.num_features = rows.num_features
    self.weighted = weighted
    self.checked = checked

  @property
  def whole(self):
    return self.batch_rows is None

  def chunked_batches(self, rows):
    n = self.rows.num_points
    size = self.batch_rows or n
    for start in range(0, n, size):
      stop = min(start + size, n)
      yield stop - start, self.rows.chunks(rows, start, stop)

  def all_finite(self):
    """A pass over the points, a chunk at a time."""
    return self.rows.all_finite()


def read_rows(raw, feature_columns, dtype, num_features, weight_column,
              weighted, check_finite, batch_rows):
  """`RowPoints` of data given whole, or None where their rows cannot be
  sliced as they are (see `WholeRows.of`): the caller reads those whole."""
  rows = WholeRows.of(raw, feature_columns, dtype, weight_column, weighted,
                      check_finite)
  if rows is None:
    return None
  checks.check_width(rows.num_features, num_features)
  if weighted:
    rows.check_weights()
  return RowPoints(rows, batch_rows, weighted=weighted, checked=check_finite)


def read_whole(raw, feature_columns, dtype, num_features, weight_column,
               weighted, check_finite):
  """`TensorPoints` of data given whole, converted to one Tensor.

  The checks all run here, on the whole data: the width; NaN and Inf with
  `check_finite` (a pass over all the data; without it the caller's
  compiled step must fail on them); with weights, one finite weight >= 0
  per point and a positive total.
  """
  if weighted:
    checks.check_weight_features(raw, weight_column)
  points = features_lib.combine_features(raw, feature_columns, dtype,
                                         weight_column)
  if points.shape[0] == 0:
    raise errors.InvalidInputError(
        f'The input_fn returned no points (shape {tuple(points.shape)}); give '
        'at least one row.', kind='empty')
  checks.check_width(points.shape[1], num_features)
  if check_finite and not checks.all_finite(points):
    raise errors.InvalidInputError(f'{checks.NON_FINITE_MESSAGE}.',
                                   kind='non_finite')
  if not weighted:
    return TensorPoints(base.Batch(points), checked=check_finite)
  weights = tf.reshape(tf.cast(
      tensors.to_tensor(raw[weight_column], weight_column), dtype), [-1])
  if int(tf.size(weights)) != int(points.shape[0]):
    raise errors.InvalidInputError(
        f'The weight feature `weight_column`={weight_column!r} has '
        f'{int(tf.size(weights))} values for {int(points.shape[0])} points; '
        'give one weight per point.', kind='weights')
  checks.check_total_weight(weights, weight_column)
  return TensorPoints(base.Batch(points, weights), checked=check_finite)
