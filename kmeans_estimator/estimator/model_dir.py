"""The estimator's `model_dir`: which checkpoint its core holds, and reading,
checking and writing checkpoints and summaries there.

`KMeansClustering` keeps one `ModelDir`. It remembers the checkpoint the core
was last loaded from or saved to (its stamp), so that calls in a row restore
once, and the num_restarts that checkpoint was trained with. The checks that
a checkpoint fits the estimator (num_clusters, distance_metric, width,
undamaged centers) live here, so that `train`, `predict`, `evaluate`,
`export_saved_model` and `cluster_centers` refuse the same checkpoints with
the same messages. The file format itself is `io.checkpoints`; the event
files are `io.summaries`.
"""

import os

from absl import logging
import numpy as np

from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.io import checkpoint_bundles
from kmeans_estimator.io import checkpoints
from kmeans_estimator.io import summaries


def _saved_num_restarts(values):
  """The num_restarts a checkpoint's values were trained with (1 without
  'restart_clusters': legacy models and num_restarts=1)."""
  restarts = values.get(constants.RESTART_CLUSTERS_VAR_NAME)
  return 1 if restarts is None else int(restarts.shape[0])


class ModelDir:
  """The checkpoints and summaries of one estimator's `model_dir`.

  Args:
    path: the model_dir (a str).
    num_clusters: the estimator's k, which a checkpoint must have.
    distance_metric: the estimator's metric, which a checkpoint must have
      (when it records one) and which every checkpoint written records.
    keep_checkpoint_max: how many checkpoints to keep (see `RunConfig`).
  """

  def __init__(self, path, num_clusters, distance_metric,
               keep_checkpoint_max):
    self._model_dir = path
    self.num_clusters = num_clusters
    self.distance_metric = distance_metric
    self._keep_checkpoint_max = keep_checkpoint_max
    self._summary_writer = None
    # The checkpoint the core holds, so that calls in a row restore once,
    # its global step, and the num_restarts it was trained with.
    self._restored_stamp = None
    self._restored_step = None
    self._restored_restarts = None

  def forget(self):
    """Marks the core as holding no checkpoint: the next `restore` reads
    (after a failed `train`, whose core may be ahead of the last checkpoint,
    or for a new core)."""
    self._restored_stamp = None

  def latest_checkpoint(self):
    """Path of the newest checkpoint in `model_dir`, or None."""
    return checkpoints.latest_checkpoint(self._model_dir)

  def restore(self, core, checkpoint_path=None, required=False):
    """Loads `core` from a checkpoint (the latest by default).

    Returns:
      The global step of the checkpoint the core now holds, or None when
      there is none (with `required`, a ValueError says to train instead);
      the caller then resets the core to its untrained state.
    """
    path = checkpoint_path or self.latest_checkpoint()
    stamp = None if path is None else checkpoints.checkpoint_stamp(path)
    if stamp is not None and stamp == self._restored_stamp:
      return self._restored_step  # The core holds this checkpoint already.
    self._restored_stamp = None
    if path is None:
      # A damaged state file is not "untrained": never start over on it.
      checkpoints.check_no_lost_checkpoint(self._model_dir)
      if required:
        raise ValueError(
            f'No trained model in model_dir={self._model_dir!r}: call '
            'train() first, or point model_dir at a trained model.')
      return None
    # Read by directory when we can: the read then starts over if a trainer
    # replaces (and deletes) this checkpoint while we read it.
    values = checkpoints.read_checkpoint(checkpoint_path or self._model_dir)
    self.check_compatible(values, path, core)
    saved_restarts = _saved_num_restarts(values)
    if saved_restarts != core.num_restarts:
      # Readers use `clusters` alone (training refuses this model_dir).
      values = {name: value for name, value in values.items()
                if name != constants.RESTART_CLUSTERS_VAR_NAME}
    core.restore(values)
    self._restored_restarts = saved_restarts
    self._restored_step = int(values.get(constants.GLOBAL_STEP_VAR_NAME, 0))
    # (If a newer checkpoint was read, the next call sees a newer latest
    # checkpoint than `stamp` names and reads again.)
    self._restored_stamp = stamp
    return self._restored_step

  def check_compatible(self, values, path, core):
    """Refuses checkpoint `values` (read from `path`) that this estimator
    cannot use: no or damaged centers, another distance_metric or
    num_clusters, centers of another width than `core`'s given initial
    centers, or damaged restart_clusters."""
    if constants.CLUSTER_CENTERS_VAR_NAME not in values:
      raise ValueError(f'The checkpoint {path!r} has no '
                       f'{constants.CLUSTER_CENTERS_VAR_NAME!r} variable; it '
                       'was not written by a k-means estimator.')
    centers = values[constants.CLUSTER_CENTERS_VAR_NAME]
    if centers.ndim != 2 or centers.dtype.kind != 'f' or not np.all(
        np.isfinite(centers)):
      raise ValueError(
          f'The checkpoint {path!r} holds invalid cluster centers (dtype '
          f'{centers.dtype}, shape {centers.shape}; they must be finite '
          'floats of shape (k, d)): it is damaged or was not written by a '
          'k-means estimator. Restore model_dir from a backup, or retrain '
          'into a new model_dir.')
    k, d = centers.shape
    metric = values.get(constants.DISTANCE_METRIC_VAR_NAME)
    if metric is not None and metric.item().decode() != self.distance_metric:
      raise ValueError(
          f'model_dir={self._model_dir!r} holds a model trained with '
          f'distance_metric={metric.item().decode()!r} but this estimator has '
          f'distance_metric={self.distance_metric!r}; use the same '
          'distance_metric or another model_dir.')
    if k != self.num_clusters:
      raise ValueError(
          f'model_dir={self._model_dir!r} holds a model with num_clusters={k}'
          f' but this estimator has num_clusters={self.num_clusters}; use the'
          ' same num_clusters or another model_dir.')
    if core.built and d != core.num_features:
      raise ValueError(
          f'model_dir={self._model_dir!r} holds centers of dimension {d} but '
          f'initial_clusters have dimension {core.num_features}; use '
          'matching data or another model_dir.')
    restarts = values.get(constants.RESTART_CLUSTERS_VAR_NAME)
    if restarts is not None and (
        restarts.ndim != 3 or restarts.shape[0] < 2 or
        restarts.shape[1:] != (k, d) or restarts.dtype != centers.dtype or
        not np.all(np.isfinite(restarts))):
      raise ValueError(
          f'The checkpoint {path!r} holds invalid restart_clusters (dtype '
          f'{restarts.dtype}, shape {restarts.shape}; they must be finite '
          f'floats of shape (num_restarts, {k}, {d}) like the clusters): it '
          'is damaged. Restore model_dir from a backup, or retrain into a '
          'new model_dir.')

  def check_restarts_match(self, num_restarts):
    """Refuses to resume training with another num_restarts."""
    saved, restarts = self._restored_restarts, num_restarts
    if saved is not None and saved != restarts:
      raise ValueError(
          f'model_dir={self._model_dir!r} holds a model trained with '
          f'num_restarts={saved} but this estimator has num_restarts='
          f'{restarts}; train with the same num_restarts, or into another '
          'model_dir (predict, evaluate and export read it with any '
          'num_restarts).')

  def save(self, core, global_step):
    """Writes `core`'s variables as the checkpoint of `global_step`, under
    the legacy variable names, with the global step and distance metric.

    Logs, as tf.estimator's checkpoint saver did, "Saving checkpoints for
    N into <model_dir>/model.ckpt." before writing; the writer then logs
    "Saved checkpoint for step N to <prefix>." once the files are in place.
    """
    tensors = {name: variable.read_value() for name, variable in
               core.checkpoint_variables().items()}
    tensors[constants.GLOBAL_STEP_VAR_NAME] = np.int64(global_step)
    tensors[constants.DISTANCE_METRIC_VAR_NAME] = np.bytes_(
        self.distance_metric.encode())
    logging.info('Saving checkpoints for %d into %s.', global_step,
                 os.path.join(self._model_dir,
                              checkpoint_bundles.PREFIX_BASENAME))
    path = checkpoints.save_checkpoint(self._model_dir, global_step,
                                       tensors, self._keep_checkpoint_max)
    self._restored_stamp = checkpoints.checkpoint_stamp(path)
    self._restored_step = global_step
    self._restored_restarts = core.num_restarts

  def require_checkpoint(self):
    """The latest checkpoint's path; a ValueError says to train without
    one."""
    path = self.latest_checkpoint()
    if path is None:
      checkpoints.check_no_lost_checkpoint(self._model_dir)
      raise ValueError(
          f'No trained model in model_dir={self._model_dir!r}: call train() '
          'first, or point model_dir at a trained model.')
    return path

  def variable_names(self):
    """Names of the variables in the latest checkpoint."""
    path = self.require_checkpoint()
    return [name for name, _ in checkpoints.list_checkpoint_variables(path)]

  def variable_value(self, name):
    """Value of the variable `name` in the latest checkpoint, unchecked."""
    self.require_checkpoint()
    values = checkpoints.read_checkpoint(self._model_dir)
    if name not in values:
      raise errors.InvalidArgumentError(
          f'`name` must be one of {sorted(values)}. Received: name={name!r}',
          'name', name)
    return values[name]

  def cluster_centers(self, core):
    """The latest checkpoint's centers, checked as `restore` checks them
    against `core`."""
    path = self.require_checkpoint()
    values = checkpoints.read_checkpoint(self._model_dir)
    self.check_compatible(values, path, core)
    return values[constants.CLUSTER_CENTERS_VAR_NAME]

  def summary_writer(self):
    """The `tf.summary` writer of this model_dir, made on first use."""
    if self._summary_writer is None:
      self._summary_writer = summaries.create_file_writer(self._model_dir)
    return self._summary_writer
