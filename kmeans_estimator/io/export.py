"""Exporting a trained model as a SavedModel that TensorFlow's tools serve.

A SavedModel written here is complete on its own: the cluster centers are a
variable inside it, its metadata (distance metric, k, d, global step) are
variables too, and it serves five signatures, each returning one tensor under
the key 'output' (as the legacy estimator's `PredictOutput`s did):

| signature         | input            | output                              |
|-------------------|------------------|-------------------------------------|
| `serving_default` | the points       | int64 (n,): index of nearest center |
| `cluster_index`   | the points       | the same                            |
| `all_distances`   | the points       | (n, k): squared Euclidean or 1-cos  |
| `transform`       | the points       | (n, k): Euclidean or 1-cos          |
| `cluster_centers` | none             | (k, d): the centers                 |

Exported with `top_k=m`, it serves a sixth signature, `top_k`, returning two
tensors: 'top_k_cluster_indices' (int64 (n, m)) and 'top_k_distances' ((n, m),
in the metric, as `predict(top_k=m)` gives them), the m nearest centers of each
point, nearest first, computed in bounded-memory chunks; `top_k` is then a
metadata variable too.

The first three are the legacy estimator's. What "the points" are is set by
the serving input receiver: by default one float32 input 'input' of shape
(None, d); `build_raw_serving_input_receiver_fn` gives each feature of a
dict-feature model its own input; `build_parsing_serving_input_receiver_fn`
takes serialized `tf.Example` protos under 'examples' (TF Serving's classic
input). Served inputs are checked at run time: NaN or Inf, or a width other
than d, fail the call with an `InvalidArgumentError` that says so.

Exported with `sparse=True`, every point signature but `serving_default`
also has a sparse twin named `sparse_<name>` (`sparse_cluster_index`,
`sparse_all_distances`, `sparse_transform`, and `sparse_top_k` with
`top_k`), returning what its dense twin returns for the same values, from
the three parts of a `tf.SparseTensor` of points (n, d):

| input         | dtype, shape     | what                                    |
|---------------|------------------|-----------------------------------------|
| `indices`     | int64 (nnz, 2)   | the (row, column) of each stored value  |
| `values`      | float32 (nnz,)   | the stored values                       |
| `dense_shape` | int64 (2,)       | (n, d)                                  |

Why three named dense inputs and not one `tf.SparseTensorSpec`: a
signature taking a SparseTensorSpec `x` is flattened by `tf.saved_model`
into three inputs named 'x', 'x_1' and 'x_2', names that say nothing of
which part is which; named dense tensors are what TF Serving's REST and
gRPC clients, `saved_model_cli run` and clients in other languages send.
Why twins and not one signature returning every output: a served call
computes all of its signature's outputs, and `sparse_cluster_index`, like
`cluster_index`, finds the nearest centers a chunk at a time, never holding
the (n, k) distances that `sparse_all_distances` returns; a client switches
from dense to sparse input by the signature's name alone. Why only when
asked: the set of signatures of an export is what clients list and rely
on; the twins add to the export's time and size; and the TFLite converter,
which converts every signature of a SavedModel, refuses them (their chunk
loops over a dynamic number of entries, and sparse products, are not
TFLite builtins), so the default export stays convertible.

Sparse served points follow the policies of sparse training data: entries
may come in any order (they are put in row-major order), an index stored
twice or outside `dense_shape` fails the call, as do a number of values
other than of indices, a negative `dense_shape`, NaN or Inf among the
values or a width other than d; a row without entries is the zero point.

`build_raw_serving_input_receiver_fn` also takes a `tf.SparseTensorSpec`
(or a `tf.SparseTensor`) of rank 2 as a feature: that feature is then
served as the same three inputs (named `<feature>_indices`,
`<feature>_values`, `<feature>_dense_shape` for a feature of a dict), and
every point signature takes them, as Estimator's receivers took
`sparse_placeholder`s.

Exports are written to a temporary directory beside the final one and renamed
into place when complete, so an export is either whole or absent, and an
existing export is never overwritten. The temporary directory is made
exclusively under an unpredictable name (`tempfile.mkdtemp`, see
`write_saved_model`), so no directory or symlink planted in
`export_dir_base` is ever written into; temporary directories left by
exports that were killed are removed by the next export.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from typing import Any, Callable, Mapping, Optional, Union

from absl import logging
import numpy as np
import tensorflow as tf

from google.protobuf import text_format  # pylint: disable=g-bad-import-order
from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-bad-import-order

from kmeans_estimator import errors
from kmeans_estimator.data import checks
from kmeans_estimator.data import features as features_lib
from kmeans_estimator.ops import sparse as sparse_lib

DEFAULT_INPUT_KEY = 'input'
EXAMPLES_INPUT_KEY = 'examples'
OUTPUT_KEY = 'output'
SERVING_DEFAULT = 'serving_default'
CLUSTER_INDEX_SIGNATURE = 'cluster_index'
ALL_DISTANCES_SIGNATURE = 'all_distances'
TRANSFORM_SIGNATURE = 'transform'
CLUSTER_CENTERS_SIGNATURE = 'cluster_centers'
# Only when exported with top_k; returns a dict of two tensors.
TOP_K_SIGNATURE = 'top_k'
# The signatures computed from points; `cluster_centers` takes no input.
POINT_SIGNATURES = (SERVING_DEFAULT, CLUSTER_INDEX_SIGNATURE,
                    ALL_DISTANCES_SIGNATURE, TRANSFORM_SIGNATURE)
# Exported with sparse=True, each point signature but serving_default has
# a twin named SPARSE_PREFIX + its name, taking the SPARSE_INPUT_KEYS.
SPARSE_PREFIX = 'sparse_'
SPARSE_INPUT_KEYS = ('indices', 'values', 'dense_shape')
SPARSE_SIGNATURES = tuple(SPARSE_PREFIX + name for name in POINT_SIGNATURES
                          if name != SERVING_DEFAULT)
# The messages of the checks that served sparse points are a SparseTensor.
SPARSE_INDICES_MESSAGE = (
    'The sparse input has an index outside dense_shape or stored twice')
SPARSE_SHAPE_MESSAGE = (
    'The sparse input must have a dense_shape (n, d) of sizes >= 0 and one '
    'value per row of indices')
# Rows without stored values that one call of a sparse signature serves:
# every result has a row per point, so a dense_shape of 10^11 rows and no
# values would otherwise make the server allocate terabytes for a request
# of a few bytes.
MAX_EMPTY_SERVED_ROWS = 1 << 20
SPARSE_ROWS_MESSAGE = (
    'The sparse input has more rows (dense_shape[0]) than a call serves: at '
    f'most {MAX_EMPTY_SERVED_ROWS:,} rows beyond its number of values; send '
    'fewer rows without values per call, or split the call')


@dataclasses.dataclass(frozen=True)
class ServingInputReceiver:
  """What a `serving_input_receiver_fn` returns, as in Estimator.

  In TensorFlow 2 there are no placeholders: the receiver names the inputs
  that a served signature accepts by their `tf.TensorSpec`s, and says how
  the received tensors become the model's features.

  Attributes:
    features: a callable taking the dict of received tensors (name ->
      Tensor) and returning the features as an `input_fn` gives them (a
      Tensor of shape (n, d) or a dict of features); or None, in which case
      the received tensors are the features (a single input is used as the
      Tensor itself, several as a dict).
    receiver_tensors: dict of input name -> `tf.TensorSpec`, or a single
      `tf.TensorSpec` (the input is then named 'input').
  """

  features: Optional[Callable[[Mapping[str, tf.Tensor]], Any]]
  receiver_tensors: Any

  def __post_init__(self) -> None:
    specs = self.receiver_tensors
    if isinstance(specs, tf.TensorSpec):
      specs = {DEFAULT_INPUT_KEY: specs}
    if not isinstance(specs, Mapping) or not specs:
      raise TypeError(
          '`receiver_tensors` must be a non-empty dict of input name -> '
          f'tf.TensorSpec. Received: receiver_tensors={self.receiver_tensors!r}')
    for name, spec in specs.items():
      if not isinstance(name, str) or not name.isidentifier():
        raise ValueError('Serving input names must be identifiers such as '
                         f"'x' or 'age'. Received: {name!r}")
      if isinstance(spec, tf.SparseTensorSpec):
        raise TypeError(
            f'`receiver_tensors[{name!r}]` must be a tf.TensorSpec; serve a '
            'tf.SparseTensorSpec as its three parts (indices, values, '
            'dense_shape), as build_raw_serving_input_receiver_fn does.')
      if not isinstance(spec, tf.TensorSpec):
        raise TypeError(
            f'`receiver_tensors[{name!r}]` must be a tf.TensorSpec. '
            f'Received: {spec!r}')
    if self.features is not None and not callable(self.features):
      raise TypeError('`features` must be None or a callable mapping the '
                      'received tensors to features. Received: '
                      f'features={self.features!r}')
    object.__setattr__(self, 'receiver_tensors', dict(specs))

  def input_signature(self) -> list[dict[str, tf.TensorSpec]]:
    """The signature's inputs: one dict of named `tf.TensorSpec`s."""
    return [{name: tf.TensorSpec(spec.shape, spec.dtype, name=name)
             for name, spec in self.receiver_tensors.items()}]

  def features_from(self, received: Mapping[str, tf.Tensor]) -> Any:
    """The features for a dict of received tensors."""
    if self.features is not None:
      return self.features(received)
    if len(received) == 1:
      return next(iter(received.values()))
    return dict(received)


def sparse_input_names(name):
  """The names of the three inputs (indices, values, dense_shape) of the
  sparse serving feature `name`: the bare `SPARSE_INPUT_KEYS` for the
  single feature ('input'), else prefixed with the feature's name."""
  if name == DEFAULT_INPUT_KEY:
    return SPARSE_INPUT_KEYS
  return tuple(f'{name}_{key}' for key in SPARSE_INPUT_KEYS)


def _is_sparse(value):
  return isinstance(value, (tf.SparseTensor, tf.SparseTensorSpec))


def _sparse_specs(value, name):
  """The three `tf.TensorSpec`s a sparse feature (a `tf.SparseTensor` or
  `tf.SparseTensorSpec` of rank 2) is served as. Its batch size and width
  are in `dense_shape`, given with each call."""
  shape = value.shape
  if shape.rank != 2:
    raise ValueError(f'Sparse serving feature {name!r} must be a batch of '
                     'points of rank 2, (n, d). Received: shape '
                     f'{shape}')
  indices, values, dense_shape = sparse_input_names(name)
  return {indices: tf.TensorSpec([None, 2], tf.int64),
          values: tf.TensorSpec([None], value.dtype),
          dense_shape: tf.TensorSpec([2], tf.int64)}


def sparse_tensor_of(received, name=DEFAULT_INPUT_KEY):
  """The `tf.SparseTensor` of the sparse serving feature `name` from the
  dict of received tensors (its three inputs, see `sparse_input_names`)."""
  return tf.SparseTensor(*(received[key] for key in sparse_input_names(name)))


def sparse_receiver(num_features):
  """The `ServingInputReceiver` of the sparse twins: one float32
  `tf.SparseTensor` (n, num_features) of points, served as its three parts
  `SPARSE_INPUT_KEYS`."""
  return build_raw_serving_input_receiver_fn(
      tf.SparseTensorSpec([None, num_features], tf.float32))()


def _spec_of(value, default_batch_size, name):
  """A `tf.TensorSpec` with batch size `default_batch_size` for `value`."""
  if isinstance(value, tf.TensorSpec):
    shape, dtype = value.shape, value.dtype
  elif isinstance(value, tf.RaggedTensor):
    raise TypeError(f'Serving feature {name!r} must be dense or sparse. '
                    f'Received a {type(value).__name__}.')
  else:
    value = tf.convert_to_tensor(value)
    shape, dtype = value.shape, value.dtype
  if shape.rank is None or shape.rank < 1:
    raise ValueError(f'Serving feature {name!r} must have a batch dimension '
                     f'(rank >= 1). Received: shape {shape}')
  return tf.TensorSpec([default_batch_size] + shape.as_list()[1:], dtype)


# A serving feature as `build_raw_serving_input_receiver_fn` takes it: an
# example value (its shape past the batch dimension and dtype) or the spec;
# sparse ones are served as their three parts.
_RawFeature = Union[tf.Tensor, np.ndarray, tf.TensorSpec, tf.SparseTensor,
                    tf.SparseTensorSpec]


def build_raw_serving_input_receiver_fn(
    features: Union[Mapping[str, _RawFeature], _RawFeature],
    default_batch_size: Optional[int] = None,
) -> Callable[[], ServingInputReceiver]:
  """A receiver fn whose inputs are the features themselves, as in Estimator.

  A sparse feature (a `tf.SparseTensorSpec` or `tf.SparseTensor` of rank 2,
  points (n, d)) is served as three dense inputs, the parts of the
  SparseTensor that the model receives: int64 'indices' (nnz, 2), 'values'
  (nnz,) of its dtype and int64 'dense_shape' (2,), as Estimator's
  receivers took a `sparse_placeholder`. For a feature of a dict they are
  named after it: '<name>_indices', '<name>_values', '<name>_dense_shape'.
  (`tf.saved_model` would flatten a SparseTensorSpec input into inputs
  named 'x', 'x_1', 'x_2'.) Its number of rows is in 'dense_shape', so
  `default_batch_size` does not apply to it.

  Args:
    features: a dict of feature name -> Tensor, array or `tf.TensorSpec`
      (each feature becomes one input of the signature, with the given
      shape past the batch dimension and the given dtype) or sparse feature
      (three inputs), or a single one (one input, 'input'; or the three
      'indices', 'values', 'dense_shape').
    default_batch_size: the batch size of the dense inputs; None accepts
      any.

  Returns:
    A callable taking no arguments and returning a `ServingInputReceiver`.

  Raises:
    ValueError: a feature of rank 0 (or a sparse one not of rank 2), or two
      features served under one input name.
    TypeError: a RaggedTensor.
  """
  named = (dict(features) if isinstance(features, Mapping) else
           {DEFAULT_INPUT_KEY: features})
  specs: dict[str, tf.TensorSpec] = {}
  sparse: list[str] = []
  for name, value in named.items():
    if _is_sparse(value):
      sparse.append(name)
      parts = _sparse_specs(value, name)
    else:
      parts = {name: _spec_of(value, default_batch_size, name)}
    taken = sorted(set(parts) & set(specs))
    if taken:
      raise ValueError(
          'Two serving features would be served under the same input name '
          f"{taken[0]!r} (a sparse feature 'x' is served as 'x_indices', "
          "'x_values' and 'x_dense_shape'); rename one of them.")
    specs.update(parts)

  def received_features(received):
    values = {name: (sparse_tensor_of(received, name) if name in sparse else
                     received[name]) for name in named}
    if isinstance(features, Mapping):
      return values
    return values[DEFAULT_INPUT_KEY]

  receiver = ServingInputReceiver(
      features=(None if isinstance(features, Mapping) and not sparse else
                received_features),
      receiver_tensors=specs)
  return lambda: receiver


def build_parsing_serving_input_receiver_fn(
    feature_spec: Mapping[str, Union[tf.io.FixedLenFeature,
                                     tf.io.SparseFeature]],
    default_batch_size: Optional[int] = None,
) -> Callable[[], ServingInputReceiver]:
  """A receiver fn that parses serialized `tf.Example` protos, as in Estimator.

  The signature takes one input, 'examples': a string Tensor of shape (n,)
  of serialized `tf.Example`s, parsed with `tf.io.parse_example`.

  Args:
    feature_spec: dict of feature name -> `tf.io.FixedLenFeature` (the
      features the model was trained on), or one `tf.io.SparseFeature`
      (`size=d`: each example lists the columns and values of its stored
      entries, parsed into a SparseTensor of points (n, d)).
      Variable-length features (`tf.io.VarLenFeature`) are refused: their
      entries have no column, only a position in a list.
    default_batch_size: the number of examples per call; None accepts any.

  Returns:
    A callable taking no arguments and returning a `ServingInputReceiver`.
  """
  if not isinstance(feature_spec, Mapping) or not feature_spec:
    raise TypeError('`feature_spec` must be a non-empty dict of feature name '
                    '-> tf.io.FixedLenFeature. Received: '
                    f'feature_spec={feature_spec!r}')
  for name, spec in feature_spec.items():
    if not isinstance(spec, (tf.io.FixedLenFeature, tf.io.SparseFeature)):
      raise TypeError(
          f'`feature_spec[{name!r}]` must be a tf.io.FixedLenFeature, or a '
          'tf.io.SparseFeature of the columns and values of sparse points '
          f'(k-means needs points of a fixed width). Received: {spec!r}')
  feature_spec = dict(feature_spec)
  receiver = ServingInputReceiver(
      features=lambda received: tf.io.parse_example(
          received[EXAMPLES_INPUT_KEY], feature_spec),
      receiver_tensors={EXAMPLES_INPUT_KEY: tf.TensorSpec(
          [default_batch_size], tf.string)})
  return lambda: receiver


def receiver_from_fn(serving_input_receiver_fn, num_features):
  """The `ServingInputReceiver` to export with.

  Args:
    serving_input_receiver_fn: None (one float32 input 'input' of shape
      (None, d)) or a callable returning a `ServingInputReceiver`.
    num_features: d.

  Returns:
    `ServingInputReceiver`.
  """
  if serving_input_receiver_fn is None:
    return ServingInputReceiver(
        features=None,
        receiver_tensors=tf.TensorSpec([None, num_features], tf.float32))
  if not callable(serving_input_receiver_fn):
    raise TypeError(
        '`serving_input_receiver_fn` must be None or a callable returning a '
        'ServingInputReceiver (see build_raw_serving_input_receiver_fn and '
        'build_parsing_serving_input_receiver_fn). Received: '
        f'serving_input_receiver_fn={serving_input_receiver_fn!r}')
  receiver = serving_input_receiver_fn()
  if not isinstance(receiver, ServingInputReceiver):
    raise TypeError(
        '`serving_input_receiver_fn` must return a '
        'kmeans_estimator.ServingInputReceiver. Received: '
        f'{type(receiver).__name__}')
  return receiver


def served_points(features, feature_columns, weight_column, dtype,
                  num_features):
  """The points of the features a receiver produced, with run-time checks.

  Dense features (a Tensor or dict of them) are combined as in training
  (`features.combine_features`) into a Tensor (n, d). A sparse feature (a
  `tf.SparseTensor` (n, d), itself or the only point feature of a dict) is
  kept sparse, of `dtype`, and put in row-major order (`tf.sparse.reorder`:
  served entries may come in any order), as the sparse maths need it.

  Checked at run time (an `Assert` failing the served call with
  `InvalidArgumentError`, as `checks.check_points` does): the values are
  finite (`checks.NON_FINITE_MESSAGE`), the width is d
  (`checks.WIDTH_MESSAGE`), and, sparse, every index lies inside
  `dense_shape` and none is stored twice (`SPARSE_INDICES_MESSAGE`: training
  refuses repeated indices too, whose sums of squares would count wrong),
  and the parts make a SparseTensor (`SPARSE_SHAPE_MESSAGE`: a negative
  `dense_shape` would abort the serving process in TensorFlow's shape
  code, not fail the call).

  Args:
    features: what `ServingInputReceiver.features_from` returned.
    feature_columns, weight_column: the estimator's.
    dtype: the model's float dtype.
    num_features: d.

  Returns:
    float Tensor or `ops.sparse.CsrPoints` (n, d) of `dtype`.

  Raises:
    InvalidArgumentError: a static width other than d.
    SparseInputError: a sparse feature beside other point features.
  """
  sparse = _sparse_feature(features, feature_columns, weight_column)
  if sparse is None:
    points = features_lib.combine_features(features, feature_columns, dtype,
                                           weight_column)
  else:
    value_dtype = tf.as_dtype(sparse.dtype)
    if not (value_dtype.is_floating or value_dtype.is_integer) or (
        value_dtype.is_bool):
      raise errors.InvalidArgumentTypeError(
          'Sparse serving features must have numeric values (integer or '
          f'float). Received: dtype {value_dtype.name}',
          'serving_input_receiver_fn')
    points = sparse_lib.cast(sparse, dtype)
  width = points.shape[-1]
  if width is not None and width != num_features:
    raise errors.InvalidArgumentError(
        f'The serving input receiver gives points of width {width} but '
        f'the model was trained on width {num_features}; give it the '
        'features the model was trained on.',
        'serving_input_receiver_fn')
  if sparse is None:
    return checks.check_points(points, num_features)
  return _check_sparse_points(points, num_features)


def _sparse_feature(features, feature_columns, weight_column):
  """The `tf.SparseTensor` of sparse served features, or None if dense."""
  if isinstance(features, tf.SparseTensor):
    return features
  if not isinstance(features, Mapping) or not any(
      isinstance(value, tf.SparseTensor) for value in features.values()):
    return None
  names = features_lib.feature_names(features, feature_columns,
                                     weight_column)
  if len(names) != 1 or not isinstance(features[names[0]], tf.SparseTensor):
    raise errors.SparseInputError(
        'A sparse serving feature must be the only point feature of the '
        f'receiver (beside the weight_column); it gives {list(names)}. '
        'Serve the points as one sparse matrix (n, d).',
        'serving_input_receiver_fn')
  return features[names[0]]


def _check_sparse_points(points, num_features):
  """`points` (a SparseTensor) after the checks of `served_points`, as
  `CsrPoints` of `num_features` columns; every part of
  the result depends on the checks, so nothing reads an unchecked part.

  A request may not claim more than `MAX_EMPTY_SERVED_ROWS` rows beyond
  its number of values (rows without values are valid points, but their
  results would cost the server memory that the request did not send).
  """
  indices, shape = points.indices, points.dense_shape
  num_values = tf.shape(points.values, out_type=tf.int64)[0]
  well_formed = checks.input_check(
      tf.reduce_all(shape >= 0) & tf.equal(tf.shape(indices)[0],
                                           tf.shape(points.values)[0]),
      'shape', SPARSE_SHAPE_MESSAGE)
  with tf.control_dependencies([well_formed]):
    bounded = checks.input_check(
        shape[0] <= num_values + MAX_EMPTY_SERVED_ROWS, 'shape',
        SPARSE_ROWS_MESSAGE)
  with tf.control_dependencies([well_formed, bounded]):
    indices, shape = tf.identity(indices), tf.identity(shape)
  received = [
      checks.input_check(
          tf.reduce_all(tf.math.is_finite(points.values)), 'non_finite',
          checks.NON_FINITE_MESSAGE),
      checks.input_check(
          tf.equal(shape[1], num_features), 'width',
          f'{checks.WIDTH_MESSAGE}; expected {num_features} features'),
      checks.input_check(
          tf.reduce_all((indices >= 0) & (indices < shape)), 'shape',
          SPARSE_INDICES_MESSAGE)]
  with tf.control_dependencies(received):
    ordered = tf.sparse.reorder(points)
  indices = ordered.indices
  distinct = checks.input_check(
      tf.reduce_all(tf.reduce_any(tf.not_equal(indices[1:], indices[:-1]),
                                  axis=1)), 'shape', SPARSE_INDICES_MESSAGE)
  with tf.control_dependencies([distinct]):
    # Held as the maths hold sparse points (`ops.sparse.CsrPoints`).
    return sparse_lib.from_row_major(
        tf.SparseTensor(tf.identity(indices), tf.identity(ordered.values),
                        tf.identity(ordered.dense_shape)), num_features)


class ServingModel(tf.Module):
  """The object a SavedModel export holds: centers, metadata, signatures.

  Attributes (readable after `tf.saved_model.load`):
    clusters: float variable (k, d), the cluster centers.
    distance_metric: string variable, 'squared_euclidean' or 'cosine'.
    num_clusters, num_features, global_step: int64 variables.
    top_k: int64 variable, only when exported with a `top_k` signature.
  """

  def __init__(self, clusters, distance_metric, global_step, receiver,
               outputs_fn, top_k=None, sparse_receiver=None):
    """Builds the signature functions.

    Args:
      clusters: the model's centers variable (k, d).
      distance_metric: the metric name.
      global_step: the step of the exported checkpoint.
      receiver: `ServingInputReceiver`.
      outputs_fn: callable(features, signature_name) -> Tensor, the output of
        one point signature for the features a receiver produced (served
        under 'output'), or a dict of named Tensors (served as they are).
      top_k: None, or the number of nearest centers of the `top_k`
        signature, which is served only when it is given.
      sparse_receiver: None, or the `ServingInputReceiver` of the sparse
        twins (`sparse_receiver`): each point signature but
        'serving_default' then has a twin 'sparse_<name>' taking its inputs
        and returning what `outputs_fn` gives for `<name>`.
    """
    super().__init__(name='kmeans_serving')
    k, d = clusters.shape
    self.clusters = clusters
    self.distance_metric = tf.Variable(distance_metric, trainable=False,
                                       name='distance_metric')
    self.num_clusters = tf.Variable(int(k), dtype=tf.int64, trainable=False,
                                    name='num_clusters')
    self.num_features = tf.Variable(int(d), dtype=tf.int64, trainable=False,
                                    name='num_features')
    self.global_step = tf.Variable(int(global_step), dtype=tf.int64,
                                   trainable=False, name='global_step')
    self._functions = {}
    point_signatures = POINT_SIGNATURES
    if top_k is not None:
      self.top_k = tf.Variable(int(top_k), dtype=tf.int64, trainable=False,
                               name='top_k')
      point_signatures += (TOP_K_SIGNATURE,)
    # Each signature is traced on its own, serving_default too: TFLite
    # cannot convert two signatures that share one function with a loop.
    for name in point_signatures:
      self._functions[name] = tf.function(
          self._point_signature(receiver, outputs_fn, name),
          input_signature=receiver.input_signature(), autograph=False)
    if sparse_receiver is not None:
      for name in point_signatures:
        if name != SERVING_DEFAULT:
          self._functions[SPARSE_PREFIX + name] = tf.function(
              self._point_signature(sparse_receiver, outputs_fn, name),
              input_signature=sparse_receiver.input_signature(),
              autograph=False)
    self._functions[CLUSTER_CENTERS_SIGNATURE] = tf.function(
        lambda: {OUTPUT_KEY: self.clusters.read_value()},
        input_signature=[], autograph=False)

  @staticmethod
  def _point_signature(receiver, outputs_fn, name):
    def signature(received):
      outputs = outputs_fn(receiver.features_from(received), name)
      return outputs if isinstance(outputs, dict) else {OUTPUT_KEY: outputs}
    return signature

  def signatures(self):
    """Signature name -> concrete function, for `tf.saved_model.save`."""
    return {name: function.get_concrete_function()
            for name, function in self._functions.items()}


def _taken(path):
  """Whether a directory entry named `path` exists.

  A symlink counts, even one that points nowhere: `tf.io.gfile.exists`
  follows links, and a dangling one planted at the next timestamp's name
  would make the rename into place fail.
  """
  if '://' in path:
    return tf.io.gfile.exists(path)
  return os.path.lexists(path)


def _timestamped_dir(export_dir_base):
  """A path under `export_dir_base` named by the time, not yet taken."""
  stamp = int(time.time())
  while _taken(os.path.join(export_dir_base, str(stamp))):
    stamp += 1
  return os.path.join(export_dir_base, str(stamp))


# Temporary export directories are named
# `temp-kmeans_estimator-<host>-<pid>-<random>`: the host and pid say which
# process made one, so that a later export can tell one left by a dead
# process (stale) from one in use.
_TEMP_PREFIX = 'temp-kmeans_estimator-'
_TEMP_RE = re.compile(re.escape(_TEMP_PREFIX) +
                      r'(?P<host>[A-Za-z0-9.-]+)-(?P<pid>[0-9]+)-[a-z0-9_]+')
# The SavedModel goes to this subdirectory of the temporary directory (which
# `mkdtemp` makes private, mode 0700), and that subdirectory is what is
# renamed into place: the export keeps TensorFlow's ordinary permissions.
_TEMP_MODEL = 'model'


def _host():
  """This host's name as `_TEMP_RE` reads it back: other characters
  (an underscore, say) become '-'."""
  return re.sub(r'[^A-Za-z0-9.-]', '-', socket.gethostname()) or 'host'


def _make_temp_dir(export_dir_base):
  """A new, private, unpredictably named directory under export_dir_base."""
  if '://' in export_dir_base:  # No mkdtemp for URLs: a random name.
    temp_dir = os.path.join(export_dir_base,
                            f'{_TEMP_PREFIX}url-0-{uuid.uuid4().hex}')
    tf.io.gfile.makedirs(temp_dir)
    return temp_dir
  return tempfile.mkdtemp(prefix=f'{_TEMP_PREFIX}{_host()}-{os.getpid()}-',
                          dir=export_dir_base)


def _process_is_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # EPERM: it exists, as another user's process.
    return True
  return True


def remove_stale_temp_dirs(export_dir_base):
  """Removes the temporary directories of exports whose process is dead.

  Only directories this module makes are candidates: named
  `temp-kmeans_estimator-<host>-<pid>-...`, a real directory (never a
  symlink, which is left alone), made on this host by a process that no
  longer runs. A directory of a live process (an export in progress, in
  this process or another) is kept, and so is any other name; directories
  of other hosts (an `export_dir_base` on a shared file system) are kept,
  since their processes cannot be checked from here. Failures are logged.

  Args:
    export_dir_base: a local directory (URLs are skipped).

  Returns:
    The names of the directories removed.
  """
  if '://' in export_dir_base:
    return []
  try:
    names = os.listdir(export_dir_base)
  except OSError as error:
    logging.warning('Could not list %s for stale temporary exports: %s',
                    export_dir_base, error)
    return []
  host, removed = _host(), []
  for name in sorted(names):
    match = _TEMP_RE.fullmatch(name)
    path = os.path.join(export_dir_base, name)
    if (match is None or match['host'] != host or
        os.path.islink(path) or not os.path.isdir(path) or
        _process_is_alive(int(match['pid']))):
      continue
    logging.info('Removing %s, left by an export that was interrupted.',
                 path)
    try:
      shutil.rmtree(path)
    except FileNotFoundError:
      continue  # Another export removed it first.
    except OSError as error:
      logging.warning('Could not remove %s: %s', path, error)
      continue
    removed.append(name)
  return removed


def _write_as_text(export_dir):
  """Replaces saved_model.pb with its text form, saved_model.pbtxt."""
  binary = os.path.join(export_dir, 'saved_model.pb')
  proto = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(binary, 'rb') as f:
    proto.ParseFromString(f.read())
  with tf.io.gfile.GFile(os.path.join(export_dir, 'saved_model.pbtxt'),
                         'w') as f:
    f.write(text_format.MessageToString(proto))
  tf.io.gfile.remove(binary)


def _copy_assets_extra(assets_extra, export_dir):
  """Copies {destination relative to assets.extra: source path} files."""
  for destination, source in assets_extra.items():
    target = os.path.join(export_dir, 'assets.extra', destination)
    tf.io.gfile.makedirs(os.path.dirname(target))
    tf.io.gfile.copy(source, target, overwrite=False)


def check_assets_extra(assets_extra):
  """Validates `assets_extra` before anything is written."""
  if assets_extra is None:
    return {}
  if not isinstance(assets_extra, Mapping):
    raise TypeError('`assets_extra` must be a dict of destination path (under '
                    'assets.extra/) -> source file. Received: '
                    f'assets_extra={assets_extra!r}')
  checked = {}
  for given, source in assets_extra.items():
    if not isinstance(given, (str, os.PathLike)) or not isinstance(
        source, (str, os.PathLike)):
      raise TypeError(
          '`assets_extra` must map destination paths to source files, both '
          'str or pathlib.Path. Received: '
          f'assets_extra={{{given!r}: {source!r}}}')
    source = os.fspath(source)
    destination = os.path.normpath(os.fspath(given))
    if destination == '.' or not os.fspath(given).strip():
      raise ValueError(
          '`assets_extra` destinations must name a file inside assets.extra/'
          ", such as 'vocab.txt'; an empty path names the directory itself. "
          f'Received: assets_extra={{{given!r}: {source!r}}}')
    if os.path.isabs(destination) or destination.startswith('..'):
      raise ValueError(
          '`assets_extra` destinations must be relative paths inside '
          f'assets.extra/. Received: {destination!r}')
    if not tf.io.gfile.exists(source):
      raise ValueError(f'`assets_extra` names a source file that does not '
                       f'exist: {source!r}')
    if tf.io.gfile.isdir(source):
      raise ValueError(
          f'`assets_extra` sources must be files; {source!r} is a directory. '
          'Name each file to copy. Received: '
          f'assets_extra={{{given!r}: {source!r}}}')
    if destination in checked:
      raise ValueError(
          f'`assets_extra` names the destination {destination!r} twice; '
          'give each file its own destination.')
    checked[destination] = source
  return checked


def write_saved_model(export_dir_base, model, assets_extra=None,
                      as_text=False):
  """Writes `model` as a new timestamped SavedModel under `export_dir_base`.

  The SavedModel is written to a temporary directory and renamed into place
  when complete; on any failure the temporary directory is removed. The
  temporary directory is made by `tempfile.mkdtemp` in `export_dir_base`
  (created exclusively, private, under a random name), so a directory or
  symlink someone planted there is never written into. Temporary
  directories that killed exports left behind are removed first (see
  `remove_stale_temp_dirs`).

  Args:
    export_dir_base: the directory holding exports (created if needed).
    model: `ServingModel`.
    assets_extra: validated dict (see `check_assets_extra`).
    as_text: write saved_model.pbtxt instead of saved_model.pb.

  Returns:
    The export directory, a str.
  """
  export_dir_base = os.fspath(export_dir_base)
  # Tracing first: a receiver that does not fit the model fails here,
  # before any directory exists.
  signatures = model.signatures()
  tf.io.gfile.makedirs(export_dir_base)
  remove_stale_temp_dirs(export_dir_base)
  temp_dir = _make_temp_dir(export_dir_base)
  saved = os.path.join(temp_dir, _TEMP_MODEL)
  try:
    tf.saved_model.save(model, saved, signatures=signatures)
    if as_text:
      _write_as_text(saved)
    _copy_assets_extra(assets_extra or {}, saved)
    export_dir = _timestamped_dir(export_dir_base)
    while True:
      try:
        tf.io.gfile.rename(saved, export_dir, overwrite=False)
        break
      except tf.errors.OpError:
        # Another export took the name first: keep it, take the next one.
        if not _taken(export_dir):
          raise
        export_dir = _timestamped_dir(export_dir_base)
  finally:
    if tf.io.gfile.exists(temp_dir):
      tf.io.gfile.rmtree(temp_dir)
  logging.info('SavedModel written to %s.', export_dir)
  return export_dir
