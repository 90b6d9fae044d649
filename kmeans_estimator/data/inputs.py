"""Turning what an `input_fn` returns into batches of points.

An `input_fn` may return a `tf.data.Dataset` of batches, a Tensor, a numpy
array, a dict of features, or a `(features, labels)` tuple (labels are
ignored), as Estimator's did. Every form becomes a dataset of float Tensors
of shape (n, d):
- dict features are flattened to (n, -1) each and concatenated in sorted key
  order, or in the order of `feature_columns` (names, or objects with a
  `key` such as numeric columns), which also selects them;
- integer and float inputs are cast to the estimator's dtype (float32 unless
  asked otherwise);
- NaN or Inf anywhere is an error, raised while the batch is read (or, for
  a Tensor or array read with `check_finite=False`, by the caller's compiled
  step, which finds it without a pass of its own; see `read_points`).

With a `weight_column` (sample weights), the features must be a dict; that
feature is taken out of the points (whatever `feature_columns` says) and
becomes each point's weight, shape (n,) or (n, 1). Weights must be finite
and >= 0 (checked while the batch is read, like NaN points) with a positive
total (checked here for a Tensor or array, by the estimator for a dataset).
Weighted batches are `(points (n, d), weights (n,))` pairs.

A Tensor or array is the whole data in one batch (which prediction and
evaluation read a chunk of rows at a time: `WholeRows`). A dataset is a
stream of batches; `Dataset.cardinality() == INFINITE` marks an endless
stream, whose elements keep the legacy meaning (one element per step).

The estimator's methods also take the data itself where an `input_fn` goes (an
array, list of rows, Tensor, dict of features or `tf.data.Dataset`, with an
optional `batch_size`); `as_input_fn` turns it into an input_fn, in this one
place.
"""

import collections.abc
import concurrent.futures
import dataclasses
import functools
import inspect
import os
import threading
from typing import Optional

import numpy as np
import tensorflow as tf

from kmeans_estimator import config as options

# Marks the messages of the checks that run inside the input pipeline, so the
# shell can turn TF's runtime error into a ValueError that names the input.
NON_FINITE_MESSAGE = (
    'The input contains NaN or Inf values; remove or impute '
    'them before clustering')
WIDTH_MESSAGE = 'The input has rows of the wrong width'
WEIGHTS_MESSAGE = 'The weights of `weight_column`'
ROWS_MESSAGE = 'The features have different numbers of rows'


@dataclasses.dataclass(frozen=True)
class Points:
  """Batches of points read from an input_fn.

  Attributes:
    num_features: d.
    endless: whether the stream never ends (legacy one-element-per-step).
    whole: whether the input was one Tensor or array (all the data).
    tensor: that Tensor, when `whole` (iterating it needs no tf.data
      iterator, which costs milliseconds per call).
    weights: with sample weights and `whole`, the float Tensor (n,) of the
      weights of `tensor`.
    weighted: whether there are sample weights: the dataset's elements are
      then (points (n, d), weights (n,)) pairs.
    checked: whether NaN and Inf are already ruled out (always, except for a
      Tensor or array read with `check_finite=False`).
    stream: the dataset of batches, when the input_fn returned a dataset.
    unscreened: `stream` without the check for NaN and Inf (the width and
      the weights are still checked), for a step whose results show such
      points anyway: a full-batch Lloyd step under squared Euclidean
      distance, where any NaN or Inf makes the loss NaN or Inf. Skipping
      the check saves a pass over every batch; a caller that sees a
      non-finite loss reads `stream` to say which it was.
    rows: for data given whole and read `in_chunks` (prediction and
      evaluation), instead of `tensor`: the `WholeRows` they are read from,
      a chunk of rows at a time (`chunked_batches`).
    batch_rows: with `rows`, the rows of each batch (data given with a
      `batch_size`), or None: all of them are one batch.
    dataset: `tf.data.Dataset` of float Tensors of shape (n, d): `stream`,
      or for a whole Tensor a one-element dataset built on first use
      (building it costs about a millisecond that `batches()` never needs).
  """
  num_features: int
  endless: bool
  whole: bool
  tensor: Optional[tf.Tensor] = None
  weights: Optional[tf.Tensor] = None
  weighted: bool = False
  checked: bool = True
  stream: Optional[tf.data.Dataset] = None
  unscreened: Optional[tf.data.Dataset] = None
  rows: Optional['WholeRows'] = None
  batch_rows: Optional[int] = None

  @property
  def data(self):
    """All the data when `whole`: the Tensor, or (Tensor, weights)."""
    if self.weighted:
      return (self.tensor, self.weights)
    return self.tensor

  @functools.cached_property
  def dataset(self):
    if self.stream is not None:
      return self.stream
    return tf.data.Dataset.from_tensors(self.data)

  def batches(self):
    """Iterates the batches (pairs, when weighted); all the data without
    tf.data when `whole`. Not for data read `in_chunks`."""
    if self.rows is not None:
      raise ValueError('Points read in chunks are read by chunked_batches.')
    if self.tensor is not None:
      return iter([self.data])
    return iter(self.dataset)

  def chunked_batches(self, rows):
    """Iterates the batches, each as (its rows, an iterator of its chunks).

    Every chunk has at most `rows` rows, consecutive and in order, and
    comes as `(chunk, last)`: the chunk (a Tensor, or a (points, weights)
    pair when weighted) and whether it ends its batch. Data read
    `in_chunks` are read a chunk at a time, as the iterators advance, so
    no copy of all of them is made; a batch of a dataset, which tf.data
    has made already, is sliced.
    """
    if self.rows is not None:
      n = self.rows.num_points
      size = self.batch_rows or n
      for start in range(0, n, size):
        stop = min(start + size, n)
        yield stop - start, self.rows.chunks(rows, start, stop)
      return
    for batch in self.batches():
      yield (int((batch[0] if isinstance(batch, tuple) else batch).shape[0]),
             _row_chunks_of(batch, rows))

  def all_finite(self):
    """Whether the whole points hold no NaN and no Inf (a pass over them,
    a chunk at a time when read `in_chunks`)."""
    if self.rows is not None:
      return self.rows.all_finite()
    return all_finite(self.tensor)


def _row_chunks_of(batch, rows):
  """(chunk, last) for chunks of at most `rows` rows of a batch (a Tensor,
  or a (points, weights) pair)."""
  parts = batch if isinstance(batch, tuple) else (batch,)
  n = int(parts[0].shape[0])
  if n <= rows:
    yield batch, True
    return
  for start in range(0, n, rows):
    chunk = tuple(part[start:start + rows] for part in parts)
    yield (chunk if isinstance(batch, tuple) else chunk[0],
           start + rows >= n)


def takes_argument(input_fn, name):
  """Whether `input_fn` declares a parameter called `name`."""
  try:
    return name in inspect.signature(input_fn).parameters
  except (TypeError, ValueError):
    return False


def call_input_fn(input_fn, mode, config, params=None, input_context=None):
  """Calls `input_fn`, passing `params`, `config`, `mode` and `input_context`
  (a `tf.distribute.InputContext`) if it takes them."""
  if not callable(input_fn):
    raise TypeError('`input_fn` must be a callable returning the data (a '
                    'Dataset, Tensor, array or dict of features). Received: '
                    f'input_fn={input_fn!r}')
  available = {'params': params or {}, 'config': config, 'mode': mode,
               'input_context': input_context}
  kwargs = {name: value for name, value in available.items()
            if takes_argument(input_fn, name)}
  return input_fn(**kwargs)


column_name = options.column_name


def _feature_names(features, feature_columns, weight_column=None):
  if not features:
    raise ValueError('The features dict is empty; give at least one feature.')
  if feature_columns is None:
    names = sorted(name for name in features if name != weight_column)
    if not names:
      raise ValueError(
          f'The features dict has only the weight feature {weight_column!r} '
          '(`weight_column`); give at least one feature to cluster on.')
    return names
  names = [getattr(column, 'key', column) for column in feature_columns]
  missing = [name for name in names if name not in features]
  if missing:
    raise ValueError(f'`feature_columns` names {missing}, which the features '
                     f'dict does not have; it has {sorted(features)}.')
  return names


def _check_dense_numeric(value, what):
  if isinstance(value, (tf.SparseTensor, tf.RaggedTensor, tf.SparseTensorSpec,
                        tf.RaggedTensorSpec)):
    raise TypeError(
        f'{what} must be a dense numeric tensor of shape (n, d). Received a '
        f'{type(value).__name__}; densify it first (tf.sparse.to_dense, '
        'RaggedTensor.to_tensor).')
  dtype = tf.as_dtype(value.dtype)
  if not (dtype.is_floating or dtype.is_integer) or dtype.is_bool:
    raise TypeError(f'{what} must be numeric (integer or float). Received: '
                    f'dtype {dtype.name}')


# Arrays of at least this many bytes are copied by `_copy_to_tensor`.
_LARGE_ARRAY_BYTES = 1 << 20
_DLPACK_KINDS = 'fiu'
# TensorFlow's kernels need tensor buffers aligned to this many bytes.
_TENSOR_ALIGNMENT = 64
# Arrays of at least this many bytes are copied by several threads at once.
_PARALLEL_COPY_BYTES = 16 << 20
_COPY_THREADS = max(1, min(os.cpu_count() or 1, 8))
_copy_pool = None
_copy_pool_lock = threading.Lock()


def _forget_copy_pool():
  # A forked child has none of the parent's threads: a pool inherited from
  # the parent would never run its work, so the child starts its own.
  global _copy_pool, _copy_pool_lock
  _copy_pool, _copy_pool_lock = None, threading.Lock()


if hasattr(os, 'register_at_fork'):
  os.register_at_fork(after_in_child=_forget_copy_pool)


def _copy_rows(destination, source):
  """np.copyto in slabs of rows on several threads (numpy drops the GIL).

  Most of a large copy into a fresh buffer is the kernel faulting its pages
  in, which runs on as many cores as write at once.
  """
  global _copy_pool
  rows = source.shape[0] if source.ndim else 0
  if (source.nbytes < _PARALLEL_COPY_BYTES or _COPY_THREADS == 1 or
      rows < _COPY_THREADS):
    np.copyto(destination, source)
    return
  with _copy_pool_lock:
    if _copy_pool is None:
      _copy_pool = concurrent.futures.ThreadPoolExecutor(
          _COPY_THREADS, thread_name_prefix='kmeans_estimator_copy')
  edges = np.linspace(0, rows, _COPY_THREADS + 1).astype(int)
  list(_copy_pool.map(
      lambda i: np.copyto(destination[edges[i]:edges[i + 1]],
                          source[edges[i]:edges[i + 1]]),
      range(_COPY_THREADS)))


def _copy_to_tensor(array):
  """A Tensor holding a copy of `array`, made by one copy.

  `tf.convert_to_tensor` copies an array twice (numpy's copy is not aligned
  as TensorFlow needs, so TensorFlow copies it again, into freshly faulted
  pages): six times slower than one copy on arrays of hundreds of MB. Here
  the array is copied once into an aligned numpy buffer that the Tensor then
  shares (DLPack). The Tensor never shares the caller's array.
  """
  buffer = np.empty(array.nbytes + _TENSOR_ALIGNMENT, np.uint8)
  offset = -buffer.ctypes.data % _TENSOR_ALIGNMENT
  copy = buffer[offset:offset + array.nbytes].view(array.dtype).reshape(
      array.shape)
  _copy_rows(copy, array)
  try:
    return tf.experimental.dlpack.from_dlpack(copy.__dlpack__())
  except (AttributeError, BufferError, TypeError):  # An older numpy.
    return tf.convert_to_tensor(copy)


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
          array.nbytes >= _LARGE_ARRAY_BYTES):
    return None
  address, row_bytes = array.ctypes.data, array.strides[0]
  first = next((row for row in range(_TENSOR_ALIGNMENT)
                if (address + row * row_bytes) % _TENSOR_ALIGNMENT == 0), None)
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
      names = _feature_names(raw, feature_columns, weight_column)
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
      return _to_tensor(value[start:stop], 'the features')
    return value[start:stop]

  def _points(self, start, stop):
    if self._names is not None:
      return combine_features(
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
    return combine_features(self._slice(self._values, start, stop), None,
                            self._dtype)

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
    points (m, d), or (points, weights (m,)) pairs when weighted."""
    stop = self.num_points if stop is None else stop
    for begin, end in self._edges(rows, start, stop):
      points = self._points(begin, end)
      if self._check_finite and not all_finite(points):
        raise ValueError(f'{NON_FINITE_MESSAGE}.')
      chunk = (points if self._weights is None else
               (points, self._weights_chunk(begin, end)))
      yield chunk, end >= stop
      points = chunk = None  # Not held while the next chunk is made.

  def all_finite(self, rows=1 << 16):
    """Whether the points hold no NaN and no Inf, a chunk at a time."""
    return all(all_finite(self._points(begin, end))
               for begin, end in self._edges(rows, 0, self.num_points))

  def check_weights(self, rows=1 << 16):
    """`check_total_weight` over the weights, a chunk at a time."""
    total = 0.0
    for begin, end in self._edges(rows, 0, self.num_points):
      weights = np.asarray(self._weights_chunk(begin, end))
      if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(f'{_weights_message(self._weight_column)}.')
      total += float(np.sum(weights, dtype=np.float64))
    if not total > 0:
      raise ValueError(zero_weight_message(self._weight_column))


def _to_tensor(value, what):
  if isinstance(value, (tf.Tensor, tf.Variable, tf.SparseTensor,
                        tf.RaggedTensor)):
    return value
  array = np.asarray(value)
  if array.dtype == object or array.dtype.kind in 'USb':
    raise TypeError(f'{what} must be numeric (integer or float). Received: '
                    f'dtype {array.dtype}')
  if (array.nbytes >= _LARGE_ARRAY_BYTES and array.dtype.kind in _DLPACK_KINDS
      and array.dtype.isnative):
    return _copy_to_tensor(array)
  return tf.convert_to_tensor(array)


def combine_features(features, feature_columns, dtype, weight_column=None):
  """Features (a Tensor, array or dict of them) -> one float (n, d) Tensor.

  The dict feature named `weight_column` (if any) is left out. Dict
  features must have one row per point each: where their lengths are known
  (arrays, Tensors) different lengths are a ValueError here; where not
  (dataset batches, served inputs) an `Assert` fails with `ROWS_MESSAGE`
  as the batch is read.
  """
  if isinstance(features, dict):
    names = _feature_names(features, feature_columns, weight_column)
    parts = []
    for name in names:
      part = _to_tensor(features[name], f'feature {name!r}')
      _check_dense_numeric(part, f'feature {name!r}')
      part = tf.cast(part, dtype)
      parts.append(tf.reshape(part, [tf.shape(part)[0], -1]))
    if len(parts) == 1:
      return parts[0]
    lengths = {name: part.shape[0] for name, part in zip(names, parts)}
    if None not in lengths.values():
      if len(set(lengths.values())) > 1:
        raise ValueError(f'{ROWS_MESSAGE}: {lengths}; give every feature '
                         'one row per point.')
      return tf.concat(parts, axis=1)
    rows = tf.stack([tf.shape(part)[0] for part in parts])
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(rows, rows[0])),
        [f'{ROWS_MESSAGE} (features {", ".join(map(str, names))}); give '
         'every feature one row '
         'per point'])
    with tf.control_dependencies([check]):
      return tf.concat(parts, axis=1)
  features = _to_tensor(features, 'the features')
  _check_dense_numeric(features, 'the features')
  _check_rank(features.shape)
  return tf.cast(features, dtype)


def _check_rank(shape, dict_feature=False):
  if shape.rank is None or shape.rank == 2 or (dict_feature and
                                               shape.rank >= 1):
    return
  raise ValueError(
      'The features must be batches: 2-D tensors of shape (n, d). Received: '
      f'shape {shape}. Use reshape(-1, 1) for a single feature, or .batch(n) '
      'on an unbatched dataset.')


def _check_element_spec(element, feature_columns, weight_column=None):
  """Checks a dataset's element_spec before anything is read."""
  if isinstance(element, dict):
    for name in _feature_names(element, feature_columns, weight_column):
      _check_dense_numeric(element[name], f'feature {name!r}')
      _check_rank(element[name].shape, dict_feature=True)
  else:
    _check_dense_numeric(element, 'the features')
    _check_rank(element.shape)


def _features_of(element):
  if isinstance(element, tuple) and len(element) == 2:
    return element[0]
  return element


def check_points(points, num_features, screen_by_sum=False,
                 check_finite=True):
  """`points` with runtime checks attached: finite values and, if given, width.

  The checks are `Assert` ops, which run inside `tf.data` pipelines and
  served SavedModels alike (and which TFLite drops rather than rejects).
  A failure raises `tf.errors.InvalidArgumentError` carrying
  `NON_FINITE_MESSAGE` or `WIDTH_MESSAGE`.

  Args:
    points: float Tensor of shape (n, d).
    num_features: the width d the model expects, or None.
    screen_by_sum: check the sum of the points first, and every value only
      when the sum is not finite. Any NaN or Inf makes the sum NaN or Inf, so
      the answer is the same; finite batches (nearly all) then cost one
      reduction instead of two passes (a third of the check's time per
      streamed batch). It adds a `tf.cond`, so the served signatures, which
      TFLite converts, keep the plain check.
    check_finite: False checks the width alone.

  Returns:
    `points`, after the checks.
  """
  checks = []
  if check_finite:
    if screen_by_sum:
      finite = tf.cond(tf.math.is_finite(tf.reduce_sum(points)),
                       lambda: tf.constant(True),
                       lambda: tf.reduce_all(tf.math.is_finite(points)))
    else:
      finite = tf.reduce_all(tf.math.is_finite(points))
    checks.append(tf.debugging.Assert(finite, [NON_FINITE_MESSAGE]))
  if num_features is not None:
    checks.append(tf.debugging.Assert(
        tf.equal(tf.shape(points)[1], num_features),
        [f'{WIDTH_MESSAGE}; expected {num_features} features']))
  with tf.control_dependencies(checks):
    return tf.identity(points)


def _weights_message(weight_column):
  return (f'{WEIGHTS_MESSAGE}={weight_column!r} must be finite and >= 0; '
          'remove the rows with NaN, Inf or negative weights, or fix them')


def _check_weight_features(features, weight_column):
  """The features must be a dict (or its spec) holding `weight_column`."""
  if not isinstance(features, dict):
    raise ValueError(  # noqa: TRY004 (bad input data, as for NaN points)
        f'`weight_column`={weight_column!r} names a feature, so the input '
        'must be a dict of features holding it; received '
        f'{type(features).__name__} features. Give a dict, or drop '
        'weight_column.')
  if weight_column not in features:
    raise ValueError(
        f'`weight_column`={weight_column!r} is not a feature of the input; '
        f'it has {sorted(features)}. Add the weights to the features dict or '
        'fix weight_column.')
  spec = features[weight_column]
  if not isinstance(spec, tf.TypeSpec):
    spec = _to_tensor(spec, f'the weight feature {weight_column!r}')
  _check_dense_numeric(spec, f'the weight feature {weight_column!r} '
                       '(`weight_column`)')
  if spec.shape.rank is not None and not (
      spec.shape.rank == 1 or (spec.shape.rank == 2 and
                               spec.shape[1] in (1, None))):
    raise ValueError(
        f'The weight feature `weight_column`={weight_column!r} must have '
        f'shape (n,) or (n, 1): one weight per point. Received: shape '
        f'{spec.shape}')


def weights_of(features, weight_column, num_points, dtype):
  """The float (n,) weights of a dict of features, with runtime checks.

  The checks (finite, >= 0, one per point) are `Assert` ops whose message
  starts with `WEIGHTS_MESSAGE`, like `check_points`.
  """
  weights = _to_tensor(features[weight_column], weight_column)
  weights = tf.reshape(tf.cast(weights, dtype), [-1])
  checks = [
      tf.debugging.Assert(
          tf.reduce_all(tf.math.is_finite(weights) & (weights >= 0)),
          [_weights_message(weight_column)]),
      tf.debugging.Assert(
          tf.equal(tf.size(weights), num_points),
          [(f'{WEIGHTS_MESSAGE}={weight_column!r} must hold one weight per '
            'point (shape (n,) or (n, 1))')]),
  ]
  with tf.control_dependencies(checks):
    return tf.identity(weights)


def read_points(raw, feature_columns=None, dtype=tf.float32,
                num_features: Optional[int] = None, weight_column=None,
                read_weights=True, check_finite=True, in_chunks=False,
                batch_rows=None):
  """Wraps what an input_fn returned as `Points`.

  Args:
    raw: the input_fn's return value.
    feature_columns: None, or the feature names (or columns with `.key`) to
      take from dict features, in order.
    dtype: the float dtype of the computation.
    num_features: the width the model expects, if known.
    weight_column: None, or the name of the dict feature holding sample
      weights; it is never a point feature.
    read_weights: whether to read the weights (False for prediction, which
      only leaves the weight feature out, and does not need it).
    check_finite: whether to check a Tensor or array for NaN and Inf here
      (a pass over all the data). False leaves it to the caller, whose
      compiled step must then fail on such points (`Points.checked` is
      False); batches of a dataset are always checked as they are read.
    in_chunks: for prediction and evaluation: data given whole are not
      converted whole but read a chunk of rows at a time (`rows`, a
      `WholeRows`; see `Points.chunked_batches`), where their rows can be
      sliced. A NaN or Inf in them is then found as its chunk is read
      (with `check_finite`, by the caller; or by the caller's step).
    batch_rows: with `in_chunks`, the rows of each batch (the `batch_size`
      of data given directly), or None for one batch of all of them.

  Returns:
    `Points` (weighted when `weight_column` and `read_weights`).

  Raises:
    TypeError: non-numeric, sparse or ragged features, or a non-callable.
    ValueError: wrong rank, empty or zero-width data, a width other than
      `num_features`, NaN/Inf in a Tensor or array; with weights, non-dict
      features, a missing weight feature, or weights of a Tensor or array
      that are not finite and >= 0 with a positive total.
  """
  if isinstance(raw, tuple) and len(raw) == 2 and not isinstance(
      raw[0], (int, float)):
    raw = raw[0]
  weighted = weight_column is not None and read_weights
  if in_chunks and not isinstance(raw, tf.data.Dataset):
    rows = WholeRows.of(raw, feature_columns, dtype, weight_column, weighted,
                        check_finite)
    if rows is not None:
      _check_width(rows.num_features, num_features)
      if weighted:
        rows.check_weights()
      return Points(rows.num_features, endless=False,
                    whole=batch_rows is None, weighted=weighted,
                    checked=check_finite, rows=rows, batch_rows=batch_rows)
    if batch_rows is not None:
      # Rows that cannot be sliced as they are: tf.data slices them.
      raw = _slices(raw, batch_rows, repeat=False)
  if isinstance(raw, tf.data.Dataset):
    features_spec = _features_of(raw.element_spec)
    if weighted:
      _check_weight_features(features_spec, weight_column)
    _check_element_spec(features_spec, feature_columns, weight_column)
    # Plain Python on Python values: no AutoGraph conversion needed.
    no_autograph = tf.autograph.experimental.do_not_convert

    def combine(*element, with_weights=weighted):
      features = _features_of(element if len(element) > 1 else element[0])
      points = combine_features(features, feature_columns, dtype,
                                weight_column)
      if not with_weights:
        return points
      return points, weights_of(features, weight_column,
                                tf.shape(points)[0], dtype)

    dataset = raw.map(no_autograph(combine))
    points_spec = (dataset.element_spec[0] if weighted else
                   dataset.element_spec)
    width = points_spec.shape[-1]
    if width is None:
      # Without the weights' checks, which fail inside the estimator's
      # error handling, when the batch is read for training.
      width = _first_width(raw.map(no_autograph(
          lambda *e: combine(*e, with_weights=False))))
    _check_width(width, num_features)

    def read(check_finite):
      # Read and check in one map: each stage of a pipeline costs time per
      # batch.
      def checked(*element):
        combined = combine(*element)
        points = combined[0] if weighted else combined
        points = check_points(points, width, screen_by_sum=True,
                              check_finite=check_finite)
        return (points, combined[1]) if weighted else points
      return raw.map(no_autograph(checked))

    unscreened = (
        # Batches of the width and dtype wanted: nothing left to check.
        raw if (not weighted and raw.element_spec == tf.TensorSpec(
            [None, width], dtype)) else read(check_finite=False))
    endless = bool(raw.cardinality() == tf.data.INFINITE_CARDINALITY)
    return Points(int(width), endless, whole=False, weighted=weighted,
                  stream=read(check_finite=True), unscreened=unscreened)

  if weighted:
    _check_weight_features(raw, weight_column)
  points = combine_features(raw, feature_columns, dtype, weight_column)
  if points.shape[0] == 0:
    raise ValueError('The input_fn returned no points (shape '
                     f'{tuple(points.shape)}); give at least one row.')
  _check_width(points.shape[1], num_features)
  if check_finite and not all_finite(points):
    raise ValueError(f'{NON_FINITE_MESSAGE}.')
  if not weighted:
    return Points(int(points.shape[1]), endless=False, whole=True,
                  tensor=points, checked=check_finite)
  weights = tf.reshape(tf.cast(
      _to_tensor(raw[weight_column], weight_column), dtype), [-1])
  if int(tf.size(weights)) != int(points.shape[0]):
    raise ValueError(
        f'The weight feature `weight_column`={weight_column!r} has '
        f'{int(tf.size(weights))} values for {int(points.shape[0])} points; '
        'give one weight per point.')
  check_total_weight(weights, weight_column)
  return Points(int(points.shape[1]), endless=False, whole=True,
                tensor=points, weights=weights, weighted=True,
                checked=check_finite)


def all_finite(points):
  """Whether the Tensor `points` holds no NaN and no Inf (a Python bool)."""
  return bool(tf.reduce_all(tf.math.is_finite(points)))


def check_total_weight(weights, weight_column):
  """Raises ValueError unless `weights` are finite, >= 0, with sum > 0."""
  weights = np.asarray(weights)
  if not np.all(np.isfinite(weights) & (weights >= 0)):
    raise ValueError(f'{_weights_message(weight_column)}.')
  if not np.sum(weights) > 0:
    raise ValueError(zero_weight_message(weight_column))


def zero_weight_message(weight_column):
  return (f'{WEIGHTS_MESSAGE}={weight_column!r} sum to 0: no point counts. '
          'Give some points a positive weight.')


def _first_width(dataset):
  for batch in dataset.take(1):
    return int(batch.shape[1])
  raise ValueError('The input_fn returned an empty dataset; give it at least '
                   'one batch of points.')


def _check_width(width, num_features):
  if width == 0:
    raise ValueError('The input has 0 features per point (shape (n, 0)); '
                     'each point needs at least one feature.')
  if num_features is not None and width != num_features:
    raise ValueError(
        f'The input has {width} features per point but the model was trained '
        f'on {num_features}; give points of width {num_features}, or use a '
        'new model_dir for this data.')


# The data a method takes directly, where an input_fn goes.
_DIRECT_TYPES = (np.ndarray, list, tf.Tensor, tf.Variable, tf.SparseTensor,
                 tf.RaggedTensor, collections.abc.Mapping)
_NOT_INPUT_MESSAGE = (
    '`input_fn` must be a callable returning the data, or the data itself: '
    'a numpy array (or list of rows) of shape (n, d), a Tensor, a dict of '
    'features or a tf.data.Dataset.')


def as_input_fn(data, batch_size=None, repeat=False):
  """An input_fn for what a method received where an input_fn goes.

  A callable is an input_fn already and is returned as it is. Data given
  directly become an input_fn returning:
  - an array, list of rows, Tensor or dict of features, with `batch_size`
    None: the data themselves, all of it in one batch (a full-batch step is
    one Lloyd iteration over it, as with an input_fn returning the array);
  - the same with `batch_size`: a dataset of consecutive slices of
    `batch_size` rows (the last one shorter), in order, sliced from one
    tensor (faster than `from_tensor_slices(x).batch(b)`, which gathers row
    by row); endless when `repeat`;
  - a `tf.data.Dataset`: the dataset as it is, or `dataset.batch(batch_size)`
    when `batch_size` is given (for a dataset of single rows).

  Args:
    data: an input_fn, or the data (see above).
    batch_size: None, or a positive int; only for data given directly.
    repeat: whether sliced arrays repeat without end (mini-batch training
      for a given number of steps cycles through the data).

  Returns:
    A callable returning the data, as an input_fn does.

  Raises:
    TypeError: `data` is none of the supported kinds, or `batch_size` is
      not a positive integer.
    ValueError: `batch_size` with an input_fn or a dataset of batches; a
      dataset of single rows without `batch_size`; dict features of
      different lengths.
  """
  batch_size = options.check_positive_int('batch_size', batch_size,
                                          allow_none=True,
                                          maximum=options.INT64_MAX)
  if isinstance(data, tf.data.Dataset):
    return _dataset_input_fn(data, batch_size)
  if callable(data):
    if batch_size is not None:
      raise ValueError(
          '`batch_size` applies to data given directly (an array, Tensor, '
          'dict of features or Dataset); an input_fn batches its own data. '
          f'Received: batch_size={batch_size} with input_fn={data!r}')
    return data
  if not isinstance(data, _DIRECT_TYPES) and not hasattr(data, '__array__'):
    shown = ' '.join(repr(data).split())
    if len(shown) > 80:
      shown = shown[:77] + '...'
    raise TypeError(f'{_NOT_INPUT_MESSAGE} Received: input_fn={shown} (type '
                    f'{type(data).__name__})')
  if isinstance(data, collections.abc.Mapping):
    data = dict(data)
  elif isinstance(data, list) or not isinstance(data, _DIRECT_TYPES):
    try:
      data = np.asarray(data)  # A list of rows, or an array-like (pandas).
    except ValueError as error:
      raise ValueError('The data must be rectangular: rows of shape (n, d), '
                       f'every row of the same length ({error}).') from None
  return DirectData(data, batch_size, repeat)


class DirectData:
  """The input_fn of data given directly (not a Dataset; see `as_input_fn`).

  Calling it returns the data themselves, or with `batch_size` a dataset of
  consecutive slices of `batch_size` rows (the last one shorter), in order,
  starting at slice `first_batch`: to the end of the data, or without end
  when `repeat` (cycling through the data). Prediction and evaluation read
  `data` themselves instead, in chunks of rows
  (`read_points(in_chunks=True, batch_rows=batch_size)`), so that the
  batches are not sliced from a whole copy of the data.

  Where mini-batch training resumes (`resumed`): it reads one slice per
  step, so a model at `global_step` g that was trained on these data with
  this `batch_size` stopped before slice g mod (number of slices). Training
  resumes there, so that `train(steps=a)` then `train(steps=b)`, or a run
  killed and resumed from its checkpoint, reads the slices that one
  `train(steps=a + b)` reads. Without `repeat` (train without steps or
  max_steps) it reads from there to the end of the data, the rest of the
  pass. The position is derived from `global_step` alone (nothing more is
  saved, so checkpoints keep the legacy variables and older checkpoints
  resume the same way); it is right when every step in the model_dir was
  a mini-batch step on these data with this `batch_size`. A
  `tf.data.Dataset` or an input_fn is read from its start on every call:
  the library cannot know where the user's pipeline stands (an input_fn
  can skip `global_step` batches itself).

  Attributes:
    data: the data as given (an array, Tensor or dict of features).
    batch_size: positive int, or None for the data whole.
    num_batches: int, slices per pass over the data (0 without batch_size).
    first_batch: int in [0, num_batches), the slice read first.
  """

  def __init__(self, data, batch_size=None, repeat=False, first_batch=0):
    self.data = data
    self.batch_size = batch_size
    self.repeat = repeat
    self.first_batch = first_batch
    self.num_batches = 0
    if batch_size is not None:
      first = next(iter(data.values()), None) if isinstance(data, dict) else (
          data)
      shape = np.shape(first) if first is not None else ()
      rows = int(shape[0]) if shape and shape[0] is not None else 0
      self.num_batches = -(-rows // batch_size)

  def resumed(self, global_step):
    """This input_fn starting where mini-batch training at `global_step`
    stopped (see the class docstring); itself without `batch_size`."""
    if not self.num_batches:
      return self
    return DirectData(self.data, self.batch_size, self.repeat,
                      int(global_step) % self.num_batches)

  def __call__(self):
    if self.batch_size is None:
      return self.data
    return _slices(self.data, self.batch_size, self.repeat, self.first_batch)

  def unbatched(self):
    """The data themselves (an input_fn)."""
    return self.data


def _dataset_input_fn(dataset, batch_size):
  features = _features_of(dataset.element_spec)
  rank = (None if isinstance(features, dict) or not hasattr(features, 'shape')
          else features.shape.rank)
  if batch_size is None:
    if rank == 1:
      raise ValueError(
          'The Dataset yields single rows (element shape '
          f'{features.shape}); pass batch_size= to batch them, or '
          '.batch(n) the dataset.')
    return lambda: dataset
  if rank is not None and rank != 1:
    raise ValueError(
        '`batch_size` batches a Dataset of single rows, but this Dataset '
        f'yields elements of shape {features.shape}; drop batch_size for a '
        f'dataset of batches. Received: batch_size={batch_size}')
  batched = dataset.batch(batch_size)
  return lambda: batched


def _slices(data, batch_size, repeat, first_batch=0):
  """A dataset of consecutive `batch_size`-row slices of `data`, from
  slice `first_batch` on."""
  named = data if isinstance(data, dict) else {None: data}
  tensors = {}
  for name, value in named.items():
    what = 'the features' if name is None else f'feature {name!r}'
    value = _to_tensor(value, what)
    _check_dense_numeric(value, what)
    if value.shape.rank == 0:
      _check_rank(value.shape)
    tensors[name] = tf.convert_to_tensor(value)
  lengths = {name: int(tensor.shape[0]) for name, tensor in tensors.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError('The features have different numbers of rows: '
                     f'{lengths}; give every feature one row per point.')
  num_points = next(iter(lengths.values()))

  def batch(start):
    sliced = {name: tensor[start:start + batch_size]
              for name, tensor in tensors.items()}
    return sliced if isinstance(data, dict) else sliced[None]

  starts = tf.data.Dataset.range(0, num_points, batch_size)
  if repeat:
    starts = starts.repeat()
  if first_batch:
    starts = starts.skip(first_batch)
  return starts.map(tf.autograph.experimental.do_not_convert(batch))
