"""Features to points: dicts of features, `feature_columns`, sample weights.

What an input gives (a Tensor, an array, or a dict of them; a dataset's
elements alike) becomes one float Tensor of points of shape (n, d):
- a dict's features are flattened to (n, -1) each and concatenated in
  sorted key order, or in the order of `feature_columns` (names, or objects
  with a `key` such as numeric columns), which also selects them;
- integer and float features are cast to the computation's dtype (float32
  unless asked otherwise).

With a `weight_column` (sample weights) the features must be a dict; that
feature is taken out of the points (whatever `feature_columns` says) and
becomes each point's weight, float (n,) (`weights_of`).
"""

import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.data import checks
from kmeans_estimator.data import tensors

def feature_names(features, feature_columns, weight_column=None):
  """The names of the point features of a dict (or a dict of specs), in
  the order they are concatenated; raises ValueError for an empty dict, a
  dict of only the weight feature, or `feature_columns` naming missing
  features."""
  if not features:
    raise errors.InvalidInputError(
        'The features dict is empty; give at least one feature.', kind='empty')
  if feature_columns is None:
    names = sorted(name for name in features if name != weight_column)
    if not names:
      raise errors.InvalidInputError(
          f'The features dict has only the weight feature {weight_column!r} '
          '(`weight_column`); give at least one feature to cluster on.',
          kind='empty')
    return names
  names = [getattr(column, 'key', column) for column in feature_columns]
  missing = [name for name in names if name not in features]
  if missing:
    raise errors.InvalidArgumentError(
        f'`feature_columns` names {missing}, which the features dict does not '
        f'have; it has {sorted(features)}.', 'feature_columns',
        feature_columns)
  return names


def combine_features(features, feature_columns, dtype, weight_column=None):
  """Features (a Tensor, array or dict of them) -> one float (n, d) Tensor.

  The dict feature named `weight_column` (if any) is left out. Dict
  features must have one row per point each: where their lengths are known
  (arrays, Tensors) different lengths are a ValueError here; where not
  (dataset batches, served inputs) an `Assert` fails with `ROWS_MESSAGE`
  as the batch is read.
  """
  if isinstance(features, dict):
    names = feature_names(features, feature_columns, weight_column)
    parts = []
    for name in names:
      part = tensors.to_tensor(features[name], f'feature {name!r}')
      checks.check_dense_numeric(part, f'feature {name!r}')
      part = tf.cast(part, dtype)
      parts.append(tf.reshape(part, [tf.shape(part)[0], -1]))
    if len(parts) == 1:
      return parts[0]
    lengths = {name: part.shape[0] for name, part in zip(names, parts)}
    if None not in lengths.values():
      if len(set(lengths.values())) > 1:
        raise errors.InvalidInputError(
            f'{checks.ROWS_MESSAGE}: {lengths}; give every feature one row '
            'per point.', kind='rows')
      return tf.concat(parts, axis=1)
    rows = tf.stack([tf.shape(part)[0] for part in parts])
    check = checks.input_check(
        tf.reduce_all(tf.equal(rows, rows[0])), 'rows',
        f'{checks.ROWS_MESSAGE} (features {", ".join(map(str, names))}); '
        'give every feature one row per point')
    with tf.control_dependencies([check]):
      return tf.concat(parts, axis=1)
  features = tensors.to_tensor(features, 'the features')
  checks.check_dense_numeric(features, 'the features')
  checks.check_rank(features.shape)
  return tf.cast(features, dtype)


def features_of(element):
  """The features of a dataset element or input: the first of a
  `(features, labels)` pair (labels are ignored, as Estimator's were)."""
  if isinstance(element, tuple) and len(element) == 2:
    return element[0]
  return element


def weights_of(features, weight_column, num_points, dtype):
  """The float (n,) weights of a dict of features, with runtime checks.

  The checks (finite, >= 0, one per point) are `Assert` ops whose message
  starts with `WEIGHTS_MESSAGE`, like `check_points` (kind 'weights').
  """
  weights = tensors.to_tensor(features[weight_column], weight_column)
  weights = tf.reshape(tf.cast(weights, dtype), [-1])
  asserts = [
      checks.input_check(
          tf.reduce_all(tf.math.is_finite(weights) & (weights >= 0)),
          'weights', checks.weights_message(weight_column)),
      checks.input_check(
          tf.equal(tf.size(weights), num_points), 'weights',
          f'{checks.WEIGHTS_MESSAGE}={weight_column!r} must hold one weight '
          'per point (shape (n,) or (n, 1))'),
  ]
  with tf.control_dependencies(asserts):
    return tf.identity(weights)
