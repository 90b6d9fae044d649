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


def _spec_of(value, default_batch_size, name):
  """A `tf.TensorSpec` with batch size `default_batch_size` for `value`."""
  if isinstance(value, tf.TensorSpec):
    shape, dtype = value.shape, value.dtype
  elif isinstance(value, (tf.SparseTensor, tf.RaggedTensor)):
    raise TypeError(f'Serving feature {name!r} must be dense. Received a '
                    f'{type(value).__name__}.')
  else:
    value = tf.convert_to_tensor(value)
    shape, dtype = value.shape, value.dtype
  if shape.rank is None or shape.rank < 1:
    raise ValueError(f'Serving feature {name!r} must have a batch dimension '
                     f'(rank >= 1). Received: shape {shape}')
  return tf.TensorSpec([default_batch_size] + shape.as_list()[1:], dtype)


# A serving feature as `build_raw_serving_input_receiver_fn` takes it: an
# example value (its shape past the batch dimension and dtype) or the spec.
_RawFeature = Union[tf.Tensor, np.ndarray, tf.TensorSpec]


def build_raw_serving_input_receiver_fn(
    features: Union[Mapping[str, _RawFeature], _RawFeature],
    default_batch_size: Optional[int] = None,
) -> Callable[[], ServingInputReceiver]:
  """A receiver fn whose inputs are the features themselves, as in Estimator.

  Args:
    features: a dict of feature name -> Tensor, array or `tf.TensorSpec`
      (each feature becomes one input of the signature, with the given
      shape past the batch dimension and the given dtype), or a single one
      (one input, 'input').
    default_batch_size: the batch size of the inputs; None accepts any.

  Returns:
    A callable taking no arguments and returning a `ServingInputReceiver`.
  """
  if isinstance(features, Mapping):
    specs = {name: _spec_of(value, default_batch_size, name)
             for name, value in features.items()}
  else:
    specs = {DEFAULT_INPUT_KEY: _spec_of(features, default_batch_size,
                                         DEFAULT_INPUT_KEY)}
  receiver = ServingInputReceiver(
      features=(None if isinstance(features, Mapping) else
                lambda received: received[DEFAULT_INPUT_KEY]),
      receiver_tensors=specs)
  return lambda: receiver


def build_parsing_serving_input_receiver_fn(
    feature_spec: Mapping[str, tf.io.FixedLenFeature],
    default_batch_size: Optional[int] = None,
) -> Callable[[], ServingInputReceiver]:
  """A receiver fn that parses serialized `tf.Example` protos, as in Estimator.

  The signature takes one input, 'examples': a string Tensor of shape (n,)
  of serialized `tf.Example`s, parsed with `tf.io.parse_example`.

  Args:
    feature_spec: dict of feature name -> `tf.io.FixedLenFeature` (the
      features the model was trained on; variable-length features would be
      sparse, which k-means cannot take).
    default_batch_size: the number of examples per call; None accepts any.

  Returns:
    A callable taking no arguments and returning a `ServingInputReceiver`.
  """
  if not isinstance(feature_spec, Mapping) or not feature_spec:
    raise TypeError('`feature_spec` must be a non-empty dict of feature name '
                    '-> tf.io.FixedLenFeature. Received: '
                    f'feature_spec={feature_spec!r}')
  for name, spec in feature_spec.items():
    if not isinstance(spec, tf.io.FixedLenFeature):
      raise TypeError(
          f'`feature_spec[{name!r}]` must be a tf.io.FixedLenFeature (k-means '
          f'needs dense features). Received: {spec!r}')
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


class ServingModel(tf.Module):
  """The object a SavedModel export holds: centers, metadata, signatures.

  Attributes (readable after `tf.saved_model.load`):
    clusters: float variable (k, d), the cluster centers.
    distance_metric: string variable, 'squared_euclidean' or 'cosine'.
    num_clusters, num_features, global_step: int64 variables.
    top_k: int64 variable, only when exported with a `top_k` signature.
  """

  def __init__(self, clusters, distance_metric, global_step, receiver,
               outputs_fn, top_k=None):
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
