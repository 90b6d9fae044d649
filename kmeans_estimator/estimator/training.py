"""The training loop of `KMeansClustering.train`: what happens between steps.

`KMeansClustering._train` reads the input, initialises the centers and picks
the step function; `TrainingLoop.run` then calls it step after step and owns
everything around the steps: the step budget (`steps`, `max_steps`), the
checks of each step's figures (zero total weight, no points, a loss that
overflowed), hooks, log lines every `log_step_count_steps`, the
`relative_tolerance` test, checkpoints every `save_checkpoints_steps` or
`save_checkpoints_secs` with the saving listeners around them, TensorBoard
scalars every `save_summary_steps`, the reason training stopped, and the
`TrainingSummary` of the call. What each step is given comes from the
input's adapter (`inputs.Points.step_inputs`).
"""

import time

from absl import logging
import numpy as np

from kmeans_estimator import config as options
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.data import inputs
from kmeans_estimator.estimator import hooks as hooks_lib
from kmeans_estimator.estimator import training_summary as summary_lib
from kmeans_estimator.io import summaries as summaries_lib
from kmeans_estimator.ops import numerics

NO_TRAINING_DATA = ('The input_fn returned no points to train on (an empty '
                    'dataset); give it at least one batch of points.')


def check_steps(steps, max_steps):
  """Checks `train`'s step budget: positive ints, not both given."""
  # The global step is saved as an int64.
  options.check_positive_int('steps', steps, allow_none=True,
                             maximum=options.INT64_MAX)
  options.check_positive_int('max_steps', max_steps, allow_none=True,
                             maximum=options.INT64_MAX)
  if steps is not None and max_steps is not None:
    raise errors.InvalidArgumentError.from_template(
        'Give `{steps}` or `{max_steps}`, not both. Received: {steps=}, '
        '{max_steps=}', 'steps', steps, max_steps=max_steps)


def screened_by_loss(step, points):
  """`step` over batches read without the NaN and Inf check
  (`points.unscreened`), raising the check's error when they held any.

  Under squared Euclidean distance a NaN or Inf coordinate makes the
  point's distances, and so the loss of a full-batch step, NaN or Inf:
  the loss says whether such points were read, so the batches need no
  pass of their own. Only a step whose loss is not finite reads the data
  again, checked, to tell bad points (a ValueError) from overflow (the
  FloatingPointError of the training loop).
  """
  def screened_step(data):
    stats = step(data)
    if not np.isfinite(float(stats['loss'])):
      for _ in points.dataset:
        pass
    return stats
  return screened_step


class TrainingLoop:
  """Runs the steps of one `train` call and everything between them.

  After each step, in this order: the step's figures are checked (zero
  total weight, no points, a loss that overflowed), the global step
  advances, the figures are buffered for TensorBoard every
  `save_summary_steps`, hooks run, a log line is written every
  `log_step_count_steps`, `relative_tolerance` is tested, and a checkpoint
  is written when one is due (with the saving listeners around it, and the
  buffered summaries after it). Training stops at the step budget, at the
  end of the input, or when a hook, the tolerance or a saving listener asks
  (`stopped_by` is the first of hook, tolerance, listener, except that the
  tolerance overrides a hook's stop of the same step); it ends with a
  checkpoint of the last step.

  Args:
    core: the `KMeans` core being trained.
    config: the estimator's `RunConfig` (checkpoint, summary and log
      cadence).
    relative_tolerance: None, or stop once the loss changes by less.
    weight_column: the weight feature's name (for messages), or None.
    global_step: the global step before this call's first step.
    save: `save(global_step)` writes the core's checkpoint.
    keep_best_restart: `keep_best_restart(data)` runs before each
      checkpoint, with the last step's input (see
      `KMeansClustering._keep_best_restart`).
    summary_writer: returns the `tf.summary` writer of `model_dir`.
    chief: whether this process writes checkpoints and summaries (False on
      the other workers of a distributed run).
  """

  def __init__(self, core, config, relative_tolerance, weight_column,
               global_step, save, keep_best_restart, summary_writer, chief):
    self._kmeans = core
    self._config = config
    self._relative_tolerance = relative_tolerance
    self._weight_column = weight_column
    self._global_step = global_step
    self._write_checkpoint = save
    self._keep_best_restart = keep_best_restart
    self._summary_writer = summary_writer
    self._chief = chief
    self._relocating = core.empty_cluster == constants.FARTHEST_POINT
    # What the loop carries from step to step.
    self._start_step = global_step
    self._stats = self._last_data = self._previous_loss = None
    self._stopped_by = None
    self._relocated_total = 0
    self._summaries = []  # (step, loss, empty, relocated) not yet written
    self._last_log_step, self._last_log_time = global_step, time.time()
    self._last_save_time, self._saved_step = self._last_log_time, None

  def run(self, runner, listeners, last_step, inputs_of_steps, step_fn):
    """Calls `step_fn` on each of `inputs_of_steps` until a stop reason.

    Args:
      runner: the `hooks.HookRunner` of the call's hooks.
      listeners: the saving listeners (see `KMeansClustering.train`).
      last_step: stop once the global step reaches it (None: no limit).
      inputs_of_steps: iterable of each step's argument
        (`inputs.Points.step_inputs`).
      step_fn: one training step: input -> dict of the step's statistics
        ('loss', 'num_points', 'empty_clusters', 'relocated_clusters',
        'cluster_sizes', and 'total_weight' when weighted).

    Returns:
      The `TrainingSummary` of the call (its `global_step` is the new
      global step).

    Raises:
      ValueError: the input had no points (or, weighted, zero total weight).
      FloatingPointError: the loss became NaN or Inf (overflow).
    """
    runner.begin()
    for listener in listeners:
      listener.begin()
    for data in inputs_of_steps:
      if last_step is not None and self._global_step >= last_step:
        break
      context = runner.before_run() if runner else None
      stats = step_fn(data)
      self._stats, self._last_data = stats, data
      self._check_points(stats)
      self._global_step += 1
      step = self._global_step
      loss = self._finite_loss(stats, step)
      empty = int(stats['empty_clusters'])
      relocated = int(stats['relocated_clusters'])
      self._relocated_total += relocated
      self._buffer_summary(step, loss, empty, relocated)
      if runner and runner.after_run(context, self._hook_values(
          loss, stats['num_points'], stats['empty_clusters'])):
        self._stopped_by = summary_lib.HOOK
      self._log(step, loss, empty, relocated)
      if self._tolerance_met(step, loss):
        self._stopped_by = summary_lib.RELATIVE_TOLERANCE
      self._previous_loss = loss
      if self._checkpoint_due(step, self._last_save_time):
        if self._checkpoint(listeners) and self._stopped_by is None:
          self._stopped_by = summary_lib.SAVING_LISTENER
      if self._stopped_by is not None:
        break
    if self._global_step == self._start_step:  # The dataset had no batches.
      raise errors.InvalidInputError(NO_TRAINING_DATA, kind='empty')
    runner.end()
    return self._finish(listeners, last_step)

  def _check_points(self, stats):
    """Refuses a full-batch step over no points, or of total weight 0."""
    if 'total_weight' in stats:
      # Weighted: a full-batch step (all the data) of total weight 0.
      if not self._kmeans.use_mini_batch and not float(
          stats['total_weight']) > 0:
        raise errors.InvalidInputError(
            inputs.zero_weight_message(self._weight_column), kind='weights')
    elif not self._kmeans.use_mini_batch and int(
        stats['num_points']) == 0:
      raise errors.InvalidInputError(NO_TRAINING_DATA, kind='empty')

  def _finite_loss(self, stats, step):
    """The step's loss as a float; NaN or Inf (overflow: the data were
    checked to be finite) is an `errors.DistanceOverflowError` (a
    FloatingPointError) with the dtype's advice."""
    loss = float(stats['loss'])
    if not np.isfinite(loss):
      limit, widen = numerics.overflow_advice(self._kmeans.dtype)
      dtype = self._kmeans.dtype.name
      raise errors.DistanceOverflowError(
          f'The loss became {loss} at step {step}; the data likely '
          f'overflow {dtype} (magnitudes near {limit} or more); ' + (
              'rescale them or use dtype=tf.float64.' if widen else
              f'rescale them ({dtype} is the widest dtype).'), dtype=dtype)
    return loss

  def _buffer_summary(self, step, loss, empty, relocated):
    """Keeps the step's scalars for TensorBoard (the call's first step and
    every `save_summary_steps`); they are written with the next checkpoint."""
    if (step - self._start_step) % self._config.save_summary_steps == 0 or (
        step == self._start_step + 1):
      self._summaries.append((step, loss, empty,
                              relocated if self._relocating else None))

  def _log(self, step, loss, empty, relocated):
    """Logs the call's first step, then a step every
    `log_step_count_steps`, with the rate since the last line."""
    # The empty clusters, and those relocated, as '..., empty clusters =
    # 2, relocated = 2' after the step.
    clusters_note = f', empty clusters = {empty}' + (
        f', relocated = {relocated}' if self._relocating else '')
    if step == self._start_step + 1:
      logging.info('loss = %g, step = %d%s', loss, step, clusters_note)
    elif step - self._last_log_step >= self._config.log_step_count_steps:
      now = time.time()
      logging.info('loss = %g, step = %d%s (%.3f steps/sec)', loss, step,
                   clusters_note, (step - self._last_log_step) / max(
                       now - self._last_log_time, 1e-9))
      self._last_log_step, self._last_log_time = step, now

  def _tolerance_met(self, step, loss):
    """Whether |loss - previous| / (1 + |previous|) < relative_tolerance."""
    previous_loss = self._previous_loss
    if self._relative_tolerance is not None and previous_loss is not None:
      change = abs(loss - previous_loss) / (1 + abs(previous_loss))
      if change < self._relative_tolerance:
        logging.info('Loss relative change %g < relative_tolerance %g at '
                     'step %d: stopping.', change,
                     self._relative_tolerance, step)
        return True
    return False

  def _checkpoint_due(self, step, last_save_time):
    """Whether `step` ends with a checkpoint: every `save_checkpoints_steps`
    steps, or once `save_checkpoints_secs` have passed since the last."""
    config = self._config
    if config.save_checkpoints_steps is not None:
      return step % config.save_checkpoints_steps == 0
    if config.save_checkpoints_secs is not None:
      return time.time() - last_save_time >= config.save_checkpoints_secs
    return False

  def _checkpoint(self, listeners):
    """Keeps the best restart, saves, then writes the buffered summaries;
    returns True if a saving listener asks to stop."""
    self._keep_best_restart(self._last_data)
    stop = self._save(listeners)
    self._write_summaries()
    self._last_save_time = time.time()
    self._saved_step = self._global_step
    return stop

  def _finish(self, listeners, last_step):
    """After the last step: the final checkpoint (unless the last step
    wrote one), the summaries, the stop reason and the `TrainingSummary`
    (logged, and written to TensorBoard by the chief)."""
    if self._previous_loss is not None:
      logging.info('Loss for final step: %g.', self._previous_loss)
    if self._saved_step != self._global_step:
      self._keep_best_restart(self._last_data)
      self._save(listeners)
    self._write_summaries()
    stopped_by = self._stopped_by
    if stopped_by is None:
      stopped_by = (summary_lib.STEP_LIMIT if last_step is not None and
                    self._global_step >= last_step else
                    summary_lib.END_OF_INPUT)
    stats = self._stats
    summary = summary_lib.TrainingSummary(
        steps=self._global_step - self._start_step,
        global_step=self._global_step,
        stopped_by=stopped_by,
        converged=stopped_by == summary_lib.RELATIVE_TOLERANCE,
        loss=self._previous_loss,
        cluster_sizes=tuple(int(size) for size in
                            np.asarray(stats['cluster_sizes'])),
        empty_clusters=int(stats['empty_clusters']),
        relocated_clusters=int(stats['relocated_clusters']),
        relocated_total=self._relocated_total)
    if self._chief:
      summary_lib.write(self._summary_writer(), summary)
    logging.info('Training summary: %s', summary)
    for listener in listeners:
      listener.end(None, self._global_step)
    return summary

  def _hook_values(self, loss, num_points, empty_clusters=0):
    """The values hooks may fetch by name after a step (see `hooks`)."""
    return hooks_lib.fetchable_values(loss, self._global_step,
                                      self._kmeans.clusters, num_points,
                                      empty_clusters)

  def _save(self, listeners=()):
    """Writes a checkpoint; returns True if a saving listener asks to stop.

    In a distributed run only the chief writes.
    """
    if not self._chief:
      return False
    for listener in listeners:
      listener.before_save(None, self._global_step)
    self._write_checkpoint(self._global_step)
    return any([bool(listener.after_save(None, self._global_step))
                for listener in listeners])

  def _write_summaries(self):
    """Writes the buffered step scalars (see `summaries.write_step_scalars`)
    and empties the buffer."""
    summaries_lib.write_step_scalars(self._summary_writer, self._summaries)
    self._summaries = []
