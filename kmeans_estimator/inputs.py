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

A Tensor or array is the whole data in one batch. A dataset is a stream of
batches; `Dataset.cardinality() == INFINITE` marks an endless stream, whose
elements keep the legacy meaning (one element per step).
"""

import dataclasses
import functools
import inspect
from typing import Optional

import numpy as np
import tensorflow as tf

# Marks the messages of the checks that run inside the input pipeline, so the
# shell can turn TF's runtime error into a ValueError that names the input.
NON_FINITE_MESSAGE = (
    'The input contains NaN or Inf values; remove or impute '
    'them before clustering')
WIDTH_MESSAGE = 'The input has rows of the wrong width'


@dataclasses.dataclass(frozen=True)
class Points:
  """Batches of points read from an input_fn.

  Attributes:
    num_features: d.
    endless: whether the stream never ends (legacy one-element-per-step).
    whole: whether the input was one Tensor or array (all the data).
    tensor: that Tensor, when `whole` (iterating it needs no tf.data
      iterator, which costs milliseconds per call).
    checked: whether NaN and Inf are already ruled out (always, except for a
      Tensor or array read with `check_finite=False`).
    stream: the dataset of batches, when the input_fn returned a dataset.
    dataset: `tf.data.Dataset` of float Tensors of shape (n, d): `stream`,
      or for a whole Tensor a one-element dataset built on first use
      (building it costs about a millisecond that `batches()` never needs).
  """
  num_features: int
  endless: bool
  whole: bool
  tensor: Optional[tf.Tensor] = None
  checked: bool = True
  stream: Optional[tf.data.Dataset] = None

  @functools.cached_property
  def dataset(self):
    if self.stream is not None:
      return self.stream
    return tf.data.Dataset.from_tensors(self.tensor)

  def batches(self):
    """Iterates the batches; all the data without tf.data when `whole`."""
    if self.tensor is not None:
      return iter([self.tensor])
    return iter(self.dataset)


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


def _feature_names(features, feature_columns):
  if not features:
    raise ValueError('The features dict is empty; give at least one feature.')
  if feature_columns is None:
    return sorted(features)
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
  np.copyto(copy, array)
  try:
    return tf.experimental.dlpack.from_dlpack(copy.__dlpack__())
  except (AttributeError, BufferError, TypeError):  # An older numpy.
    return tf.convert_to_tensor(copy)


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


def combine_features(features, feature_columns, dtype):
  """Features (a Tensor, array or dict of them) -> one float (n, d) Tensor."""
  if isinstance(features, dict):
    names = _feature_names(features, feature_columns)
    parts = []
    for name in names:
      part = _to_tensor(features[name], f'feature {name!r}')
      _check_dense_numeric(part, f'feature {name!r}')
      part = tf.cast(part, dtype)
      parts.append(tf.reshape(part, [tf.shape(part)[0], -1]))
    return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
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


def _check_element_spec(element, feature_columns):
  """Checks a dataset's element_spec before anything is read."""
  if isinstance(element, dict):
    for name in _feature_names(element, feature_columns):
      _check_dense_numeric(element[name], f'feature {name!r}')
      _check_rank(element[name].shape, dict_feature=True)
  else:
    _check_dense_numeric(element, 'the features')
    _check_rank(element.shape)


def _features_of(element):
  if isinstance(element, tuple) and len(element) == 2:
    return element[0]
  return element


def check_points(points, num_features):
  """`points` with runtime checks attached: finite values and, if given, width.

  The checks are `Assert` ops, which run inside `tf.data` pipelines and
  served SavedModels alike (and which TFLite drops rather than rejects).
  A failure raises `tf.errors.InvalidArgumentError` carrying
  `NON_FINITE_MESSAGE` or `WIDTH_MESSAGE`.

  Args:
    points: float Tensor of shape (n, d).
    num_features: the width d the model expects, or None.

  Returns:
    `points`, after the checks.
  """
  checks = [tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(points)),
                                [NON_FINITE_MESSAGE])]
  if num_features is not None:
    checks.append(tf.debugging.Assert(
        tf.equal(tf.shape(points)[1], num_features),
        [f'{WIDTH_MESSAGE}; expected {num_features} features']))
  with tf.control_dependencies(checks):
    return tf.identity(points)


def read_points(raw, feature_columns=None, dtype=tf.float32,
                num_features: Optional[int] = None, check_finite=True):
  """Wraps what an input_fn returned as `Points`.

  Args:
    raw: the input_fn's return value.
    feature_columns: None, or the feature names (or columns with `.key`) to
      take from dict features, in order.
    dtype: the float dtype of the computation.
    num_features: the width the model expects, if known.
    check_finite: whether to check a Tensor or array for NaN and Inf here
      (a pass over all the data). False leaves it to the caller, whose
      compiled step must then fail on such points (`Points.checked` is
      False); batches of a dataset are always checked as they are read.

  Returns:
    `Points`.

  Raises:
    TypeError: non-numeric, sparse or ragged features, or a non-callable.
    ValueError: wrong rank, empty or zero-width data, a width other than
      `num_features`, or NaN/Inf in a Tensor or array.
  """
  if isinstance(raw, tuple) and len(raw) == 2 and not isinstance(
      raw[0], (int, float)):
    raw = raw[0]
  if isinstance(raw, tf.data.Dataset):
    _check_element_spec(_features_of(raw.element_spec), feature_columns)
    # Plain Python on Python values: no AutoGraph conversion needed.
    no_autograph = tf.autograph.experimental.do_not_convert
    dataset = raw.map(no_autograph(
        lambda *e: combine_features(_features_of(e if len(e) > 1 else e[0]),
                            feature_columns, dtype)))
    width = dataset.element_spec.shape[-1]
    if width is None:
      width = _first_width(dataset)
    _check_width(width, num_features)
    dataset = dataset.map(no_autograph(lambda x: check_points(x, width)))
    endless = bool(raw.cardinality() == tf.data.INFINITE_CARDINALITY)
    return Points(int(width), endless, whole=False, stream=dataset)

  points = combine_features(raw, feature_columns, dtype)
  if points.shape[0] == 0:
    raise ValueError('The input_fn returned no points (shape '
                     f'{tuple(points.shape)}); give at least one row.')
  _check_width(points.shape[1], num_features)
  if check_finite and not all_finite(points):
    raise ValueError(f'{NON_FINITE_MESSAGE}.')
  return Points(int(points.shape[1]), endless=False, whole=True,
                tensor=points, checked=check_finite)


def all_finite(points):
  """Whether the Tensor `points` holds no NaN and no Inf (a Python bool)."""
  return bool(tf.reduce_all(tf.math.is_finite(points)))


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
