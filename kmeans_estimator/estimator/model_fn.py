"""The k-means `model_fn`: `spec` builds the `EstimatorSpec` of a batch in
each mode (the training step, the evaluation metrics, the predictions and
what each serving signature returns), with `ModeKeys` and `EstimatorSpec`
as in Estimator. It runs inside compiled functions, on a `KMeans` or a view
of one (see `compiled`), with no estimator."""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.data import inputs
from kmeans_estimator.io import export as export_lib
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import numerics


class ModeKeys:
  """The three modes a `model_fn` is called in (Estimator's string values)."""
  TRAIN = 'train'
  EVAL = 'eval'
  PREDICT = 'infer'


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
  """What `KMeansClustering.model_fn` returns for one mode.

  Attributes:
    mode: a `ModeKeys` value.
    predictions: dict of Tensors ('all_distances' (n, k), 'cluster_index'
      (n,)) in PREDICT mode.
    loss: float scalar Tensor, the sum over the batch of distances to the
      nearest center, in TRAIN and EVAL modes.
    train_op: in TRAIN mode, the dict of step statistics that the executed
      training step returned (there are no graph ops to run later in TF 2:
      building the spec inside the compiled step runs the step).
    eval_metric_ops: in EVAL mode, dict of Tensors summed over batches by the
      evaluation loop ('score', 'num_points').
    export_outputs: in PREDICT mode, serving signature name -> the Tensor it
      serves ('serving_default' and 'cluster_index' (n,), 'all_distances'
      and 'transform' (n, k)), for the predictions that were asked for; the
      sparse twins of an export ('sparse_<name>') serve the same outputs,
      computed from sparse points.
    training_hooks: hooks the model adds to training.
  """

  mode: str
  predictions: Optional[Mapping[str, Any]] = None
  loss: Any = None
  train_op: Any = None
  eval_metric_ops: Optional[Mapping[str, Any]] = None
  export_outputs: Optional[Mapping[str, Any]] = None
  training_hooks: Sequence[Any] = ()


# How the message of the check that finite points gave finite distances
# starts, whatever the dtype.
OVERFLOW_MESSAGE = 'The distances to the centers overflow'


def overflow_message(dtype):
  """The overflow check's message, with the limit and advice of `dtype`
  (dtype=tf.float64 is advised only below float64)."""
  limit, widen = numerics.overflow_advice(dtype)
  dtype = tf.as_dtype(dtype).name
  return (f'{OVERFLOW_MESSAGE}: finite points gave Inf or NaN distances, so '
          'their magnitudes are too large for the dtype (above about '
          f'{limit} in {dtype}); ' + (
              'rescale the data, or use dtype=tf.float64' if widen else
              f'rescale the data ({dtype} is the widest dtype)'))


def after_overflow_check(dtype, distances, *outputs):
  """`outputs`, computed only once `distances` are checked to be finite
  (`distances` may also be a bool scalar that says whether they are).

  Points are finite by the time they get here, so a non-finite distance
  means float overflow; the check raises InvalidArgumentError showing
  `OVERFLOW_MESSAGE` (in `predict`, `evaluate` and served signatures alike;
  `errors.translate` turns it into an `errors.DistanceOverflowError`)
  instead of returning Inf or NaN distances and arbitrary cluster indices.
  `dtype` is the computation's, for the message. The one exception: a
  Tensor or array that `predict` or `evaluate` read without checking it
  (`inputs.Points.checked` is False; squared Euclidean only). Under that
  metric any NaN or Inf in a point makes its distances NaN or Inf too (its
  |x|^2 is), so this check fails on it as well, and the shell then tells
  the two causes apart (`KMeansClustering._input_errors`): the data are checked in a pass of
  their own only after a failure.
  """
  finite = distances if distances.dtype == tf.bool else tf.reduce_all(
      tf.math.is_finite(distances))
  check = errors.graph_check(finite, errors.DistanceOverflowError,
                             overflow_message(dtype), suffix='.',
                             dtype=tf.as_dtype(dtype).name)
  with tf.control_dependencies([check]):
    outputs = tuple(tf.identity(output) for output in outputs)
  return outputs[0] if len(outputs) == 1 else outputs


def spec(km, features, mode, params=None):
  """`KMeansClustering.model_fn` on the model `km` (a `KMeans` or a view of
  one, see `compiled`): the compiled functions call it with no estimator."""
  features, weights = inputs.Batch.of(features)
  if mode == ModeKeys.TRAIN:
    stats = km.step(features, weights)
    return EstimatorSpec(mode, loss=stats['loss'], train_op=stats)
  static_chunks = (params or {}).get('static_chunks', True)
  if mode == ModeKeys.EVAL:
    _, nearest = km.nearest(features, static_chunks)
    if weights is None:
      loss = tf.reduce_sum(nearest)
    else:
      loss = tf.reduce_sum(weights * nearest)
    loss = after_overflow_check(km.dtype, loss, loss)
    metrics = {constants.SCORE: loss,
               'num_points': tf.size(nearest, tf.int64),
               'num_batches': tf.minimum(tf.size(nearest), 1)}
    if weights is not None:
      metrics['total_weight'] = tf.reduce_sum(weights)
    return EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics)
  if mode == ModeKeys.PREDICT:
    keys = (params or {}).get('predict_keys', constants.PREDICT_KEYS)
    top_k = (params or {}).get('top_k')
    if constants.ALL_DISTANCES in keys:
      all_distances, index, _ = km.infer(features)
      predictions = {constants.ALL_DISTANCES: all_distances,
                     constants.CLUSTER_INDEX: index}
      if top_k is not None:
        # From the same distances, so that the first column is
        # cluster_index and the distances are entries of all_distances.
        predictions.update(zip(constants.TOP_K_PREDICT_KEYS,
                               distances_lib.smallest_k(all_distances,
                                                        top_k)))
      predictions = dict(zip(predictions, after_overflow_check(
          km.dtype, all_distances, *predictions.values())))
    elif top_k is not None:
      # Bounded-memory chunks; the nearest center is the first column.
      top_index, top_distances = km.nearest_k(features, top_k)
      top_distances, top_index = after_overflow_check(
          km.dtype, top_distances, top_distances, top_index)
      predictions = {constants.CLUSTER_INDEX: top_index[:, 0],
                     constants.TOP_K_CLUSTER_INDICES: top_index,
                     constants.TOP_K_DISTANCES: top_distances}
    else:
      # Only the nearest center is needed: bounded-memory chunks. In this
      # process, without the distances unless they might overflow.
      # `checked`: the distances, or whether they are finite.
      index, checked = (km.nearest(features) if static_chunks else
                        km.nearest_index(features))
      predictions = {
          constants.CLUSTER_INDEX: after_overflow_check(km.dtype, checked,
                                                         index)}
    return EstimatorSpec(mode,
                         predictions={k: predictions[k] for k in keys},
                         export_outputs=export_outputs(km, predictions))
  raise errors.InvalidArgumentError(
      f'`mode` must be one of {ModeKeys.TRAIN!r}, {ModeKeys.EVAL!r}, '
      f'{ModeKeys.PREDICT!r}. Received: mode={mode!r}', 'mode', mode)


def export_outputs(km, predictions):
  """What each serving signature returns, from the predictions made."""
  outputs = {}
  if constants.CLUSTER_INDEX in predictions:
    outputs[export_lib.SERVING_DEFAULT] = predictions[
        constants.CLUSTER_INDEX]
    outputs[export_lib.CLUSTER_INDEX_SIGNATURE] = predictions[
        constants.CLUSTER_INDEX]
  if constants.ALL_DISTANCES in predictions:
    distances = predictions[constants.ALL_DISTANCES]
    outputs[export_lib.ALL_DISTANCES_SIGNATURE] = distances
    outputs[export_lib.TRANSFORM_SIGNATURE] = transformed(km, distances)
  if constants.TOP_K_CLUSTER_INDICES in predictions:
    outputs[export_lib.TOP_K_SIGNATURE] = {
        key: predictions[key] for key in constants.TOP_K_PREDICT_KEYS}
  return outputs


def transformed(km, all_distances):
  """`transform`'s distances: Euclidean (not squared), or 1 - cos."""
  if km.distance_metric == constants.SQUARED_EUCLIDEAN_DISTANCE:
    return distances_lib.euclidean_distances(all_distances)
  return all_distances
