"""Datasets: a `tf.data.Dataset` of batches, read as a stream.

`StreamPoints` (kind `STREAM`, or `ENDLESS` when the dataset's cardinality
is INFINITE) maps the dataset's elements (Tensors, arrays' batches, dicts
of features, `(features, labels)` pairs) to float points (n, d), with the
checks attached as `Assert` ops that fail as each batch is read: NaN and
Inf, the width, and with a `weight_column` the weights (finite, >= 0, one
per point). Weighted elements are `(points (n, d), weights (n,))` pairs,
the form `KMeans.initialize_from_dataset` and `KMeans.statistics` take;
`StreamPoints.batches` gives them as `Batch`es. An endless stream keeps the
legacy meaning: one element per step.
"""

import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.data import base
from kmeans_estimator.data import checks
from kmeans_estimator.data import features as features_lib

def check_element_spec(element, feature_columns, weight_column=None):
  """Checks a dataset's element_spec before anything is read."""
  if isinstance(element, dict):
    for name in features_lib.feature_names(element, feature_columns,
                                           weight_column):
      checks.check_dense_numeric(element[name], f'feature {name!r}')
      checks.check_rank(element[name].shape, dict_feature=True)
  else:
    checks.check_dense_numeric(element, 'the features')
    checks.check_rank(element.shape)


def _first_width(dataset):
  for batch in dataset.take(1):
    return int(batch.shape[1])
  raise errors.InvalidInputError(
      'The input_fn returned an empty dataset; give it at least one batch of '
      'points.', kind='empty')


def dataset_input_fn(dataset, batch_size):
  """The input_fn of a Dataset given directly (see `direct.as_input_fn`):
  the dataset, or with `batch_size` its single rows batched."""
  features = features_lib.features_of(dataset.element_spec)
  rank = (None if isinstance(features, dict) or not hasattr(features, 'shape')
          else features.shape.rank)
  if batch_size is None:
    if rank == 1:
      raise errors.InvalidArgumentError(
          'The Dataset yields single rows (element shape '
          f'{features.shape}); pass batch_size= to batch them, or '
          '.batch(n) the dataset.',
          'batch_size', None)
    return lambda: dataset
  if rank is not None and rank != 1:
    raise errors.InvalidArgumentError(
        '`batch_size` batches a Dataset of single rows, but this Dataset '
        f'yields elements of shape {features.shape}; drop batch_size for a '
        f'dataset of batches. Received: batch_size={batch_size}',
        'batch_size', batch_size)
  batched = dataset.batch(batch_size)
  return lambda: batched


class StreamPoints(base.Points):
  """A dataset of batches (kind `STREAM`, or `ENDLESS` when its cardinality
  is INFINITE).

  Attributes:
    dataset: the batches as dataset elements (points (n, d), or `(points,
      weights)` pairs when weighted), checked as they are read.
    unscreened: the same batches without the check for NaN and Inf (the
      width and the weights are still checked), for a step whose results
      show such points anyway: a full-batch Lloyd step under squared
      Euclidean distance, where any NaN or Inf makes the loss NaN or Inf.
      Skipping the check saves a pass over every batch; a caller that sees
      a non-finite loss reads `dataset` to say which it was.
  """

  def __init__(self, num_features, dataset, unscreened, weighted=False,
               endless=False):
    self.kind = base.ENDLESS if endless else base.STREAM
    self.num_features = num_features
    self._dataset = dataset
    self.unscreened = unscreened
    self.weighted = weighted

  @property
  def dataset(self):
    return self._dataset

  def batches(self):
    return (base.Batch.of(element) for element in self._dataset)

  def step_inputs(self, mini_batch, finite_by_default, unscreened=False):
    """Mini-batch steps, and every step over an endless stream, read one
    batch each, one pass over the stream; a full-batch step reads the whole
    stream (`unscreened` with `unscreened`), once or for every step."""
    if mini_batch or self.endless:
      yield from self.batches()
      return
    whole = self.unscreened if unscreened else self._dataset
    while True:
      yield whole
      if finite_by_default:
        return


def read_dataset(raw, feature_columns, dtype, num_features, weight_column,
                 weighted):
  """`StreamPoints` of a `tf.data.Dataset` of batches.

  The element_spec is checked before anything is read (dense numeric
  features of rank 2, or dict features, holding the weight feature when
  `weighted`); a width the spec leaves unknown is learnt from the first
  batch, whose reading then fails as the steps' would.
  """
  features_spec = features_lib.features_of(raw.element_spec)
  if weighted:
    checks.check_weight_features(features_spec, weight_column)
  check_element_spec(features_spec, feature_columns, weight_column)
  # Plain Python on Python values: no AutoGraph conversion needed.
  no_autograph = tf.autograph.experimental.do_not_convert

  def combine(*element, with_weights=weighted):
    features = features_lib.features_of(
        element if len(element) > 1 else element[0])
    points = features_lib.combine_features(features, feature_columns, dtype,
                                           weight_column)
    if not with_weights:
      return points
    return points, features_lib.weights_of(features, weight_column,
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
  checks.check_width(width, num_features)

  def read(check_finite):
    # Read and check in one map: each stage of a pipeline costs time per
    # batch.
    def checked(*element):
      combined = combine(*element)
      points = combined[0] if weighted else combined
      points = checks.check_points(points, width, screen_by_sum=True,
                                   check_finite=check_finite)
      return (points, combined[1]) if weighted else points
    return raw.map(no_autograph(checked))

  unscreened = (
      # Batches of the width and dtype wanted: nothing left to check.
      raw if (not weighted and raw.element_spec == tf.TensorSpec(
          [None, width], dtype)) else read(check_finite=False))
  endless = bool(raw.cardinality() == tf.data.INFINITE_CARDINALITY)
  return StreamPoints(int(width), read(check_finite=True), unscreened,
                      weighted=weighted, endless=endless)
