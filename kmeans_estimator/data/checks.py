"""The checks on input data: finite values, width, rank, rows, weights.

Two kinds of check, with the same messages:
- checks of what is known before anything is read (a dtype, a rank, a width
  in an element_spec, the weights of an array), which raise a ValueError or
  TypeError at once;
- `Assert` ops attached to each batch as the input pipeline reads it
  (`check_points`, `features.weights_of`), which run inside `tf.data` and
  in served SavedModels alike and raise `tf.errors.InvalidArgumentError`
  showing one of the `*_MESSAGE`s below; they are `errors.graph_check`s, so
  the estimator turns them into the `errors.InvalidInputError`s they stand
  for (`errors.translate`, in `KMeansClustering._input_errors`).
The errors are `errors.InvalidInputError`s (ValueErrors) with a `kind`, or
`errors.InvalidArgumentError`/`InvalidArgumentTypeError`s naming the
argument.
"""

import numpy as np
import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.data import tensors

# The messages of the checks of the input (the in-pipeline checks raise
# `errors.InvalidInputError`s with them once translated, see `errors`).
NON_FINITE_MESSAGE = (
    'The input contains NaN or Inf values; remove or impute '
    'them before clustering')
WIDTH_MESSAGE = 'The input has rows of the wrong width'
WEIGHTS_MESSAGE = 'The weights of `weight_column`'
ROWS_MESSAGE = 'The features have different numbers of rows'
# Appended to the message of an in-pipeline check's error: the check ran as
# the input_fn's data were read.
FOUND_WHILE_READING = ' (found while reading the input_fn).'


def input_check(condition, kind, message):
  """A `graph_check` of the input that stands for an
  `errors.InvalidInputError` of `kind` (see `errors.graph_check`)."""
  return errors.graph_check(condition, errors.InvalidInputError, message,
                            suffix=FOUND_WHILE_READING, kind=kind)


def check_dense_numeric(value, what):
  """Raises TypeError unless `value` (a Tensor, array or TypeSpec) is a
  dense integer or float tensor; `what` names it in the message."""
  if isinstance(value, (tf.SparseTensor, tf.RaggedTensor, tf.SparseTensorSpec,
                        tf.RaggedTensorSpec)):
    raise errors.InvalidArgumentTypeError(
        f'{what} must be a dense numeric tensor of shape (n, d). Received a '
        f'{type(value).__name__}; densify it first (tf.sparse.to_dense, '
        'RaggedTensor.to_tensor).', 'input_fn')
  dtype = tf.as_dtype(value.dtype)
  if not (dtype.is_floating or dtype.is_integer) or dtype.is_bool:
    raise errors.InvalidArgumentTypeError(
        f'{what} must be numeric (integer or float). Received: dtype '
        f'{dtype.name}', 'input_fn')


def check_rank(shape, dict_feature=False):
  """Raises ValueError unless `shape` is (n, d), or unknown; a dict feature
  may also be (n,) or (n, ...), flattened to (n, -1) when combined."""
  if shape.rank is None or shape.rank == 2 or (dict_feature and
                                               shape.rank >= 1):
    return
  raise errors.InvalidInputError(
      'The features must be batches: 2-D tensors of shape (n, d). Received: '
      f'shape {shape}. Use reshape(-1, 1) for a single feature, or .batch(n) '
      'on an unbatched dataset.', kind='shape')


def check_points(points, num_features, screen_by_sum=False,
                 check_finite=True):
  """`points` with runtime checks attached: finite values and, if given, width.

  The checks are `Assert` ops, which run inside `tf.data` pipelines and
  served SavedModels alike (and which TFLite drops rather than rejects).
  A failure raises `tf.errors.InvalidArgumentError` showing
  `NON_FINITE_MESSAGE` or `WIDTH_MESSAGE`, which `errors.translate` turns
  into an `errors.InvalidInputError` of kind 'non_finite' or 'width'.

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
    checks.append(input_check(finite, 'non_finite', NON_FINITE_MESSAGE))
  if num_features is not None:
    checks.append(input_check(
        tf.equal(tf.shape(points)[1], num_features), 'width',
        f'{WIDTH_MESSAGE}; expected {num_features} features'))
  with tf.control_dependencies(checks):
    return tf.identity(points)


def weights_message(weight_column):
  return (f'{WEIGHTS_MESSAGE}={weight_column!r} must be finite and >= 0; '
          'remove the rows with NaN, Inf or negative weights, or fix them')


def check_weight_features(features, weight_column):
  """The features must be a dict (or its spec) holding `weight_column`."""
  if not isinstance(features, dict):
    raise errors.InvalidArgumentError(  # noqa: TRY004 (bad input data)
        f'`weight_column`={weight_column!r} names a feature, so the input '
        'must be a dict of features holding it; received '
        f'{type(features).__name__} features. Give a dict, or drop '
        'weight_column.', 'weight_column', weight_column)
  if weight_column not in features:
    raise errors.InvalidArgumentError(
        f'`weight_column`={weight_column!r} is not a feature of the input; '
        f'it has {sorted(features)}. Add the weights to the features dict or '
        'fix weight_column.', 'weight_column', weight_column)
  spec = features[weight_column]
  if not isinstance(spec, tf.TypeSpec):
    spec = tensors.to_tensor(spec, f'the weight feature {weight_column!r}')
  check_dense_numeric(spec, f'the weight feature {weight_column!r} '
                       '(`weight_column`)')
  if spec.shape.rank is not None and not (
      spec.shape.rank == 1 or (spec.shape.rank == 2 and
                               spec.shape[1] in (1, None))):
    raise errors.InvalidInputError(
        f'The weight feature `weight_column`={weight_column!r} must have '
        f'shape (n,) or (n, 1): one weight per point. Received: shape '
        f'{spec.shape}', kind='weights')


def all_finite(points):
  """Whether the Tensor `points` holds no NaN and no Inf (a Python bool)."""
  return bool(tf.reduce_all(tf.math.is_finite(points)))


def check_total_weight(weights, weight_column):
  """Raises `errors.InvalidInputError` (kind 'weights') unless `weights`
  are finite, >= 0, with sum > 0."""
  weights = np.asarray(weights)
  if not np.all(np.isfinite(weights) & (weights >= 0)):
    raise errors.InvalidInputError(f'{weights_message(weight_column)}.',
                                   kind='weights')
  if not np.sum(weights) > 0:
    raise errors.InvalidInputError(zero_weight_message(weight_column),
                                   kind='weights')


def zero_weight_message(weight_column):
  return (f'{WEIGHTS_MESSAGE}={weight_column!r} sum to 0: no point counts. '
          'Give some points a positive weight.')


def check_width(width, num_features):
  """Raises `errors.InvalidInputError` (kind 'width') for 0 features per
  point, or a width other than the model's `num_features` (when known)."""
  if width == 0:
    raise errors.InvalidInputError(
        'The input has 0 features per point (shape (n, 0)); each point needs '
        'at least one feature.', kind='width')
  if num_features is not None and width != num_features:
    raise errors.InvalidInputError(
        f'The input has {width} features per point but the model was trained '
        f'on {num_features}; give points of width {num_features}, or use a '
        'new model_dir for this data.', kind='width')
