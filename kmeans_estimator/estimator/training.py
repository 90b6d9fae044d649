"""The training loop of `KMeansClustering.train`: what happens between steps.

`KMeansClustering._train` reads the input, initialises the centers and picks
the step function; `TrainingLoop.run` then calls it step after step and owns
everything around the steps: the step budget (`steps`, `max_steps`), the
checks of each step's figures (zero total weight, no points, a loss that
overflowed), hooks, log lines every `log_step_count_steps`, the
`relative_tolerance` test, checkpoints every `save_checkpoints_steps` or
`save_checkpoints_secs` with the saving listeners around them, TensorBoard
scalars every `save_summary_steps`, the reason training stopped, and the
`TrainingSummary` of the call. `step_inputs` says what each step is given.
"""

import time

from absl import logging
import numpy as np

from kmeans_estimator import config as options
from kmeans_estimator import constants
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
    raise ValueError('Give `steps` or `max_steps`, not both. Received: '
                     f'steps={steps!r}, max_steps={max_steps!r}')


def step_inputs(core, points, finite_by_default, unscreened=False):
  """Yields the argument of each training step, in order; full-batch
  steps over a stream read `points.unscreened` when `unscreened`.

  A mini-batch step, or a step over an endless dataset, takes the next
  batch (an in-memory dataset cycles when steps are counted). A full-batch
  step takes all the data: once without `steps` or `max_steps`
  (`finite_by_default`), else again and again.
  """
  if core.use_mini_batch or points.endless:
    if points.whole and not finite_by_default:
      yield from points.dataset.repeat()
    else:
      yield from points.dataset
    return
  whole = (points.data if points.whole else
           points.unscreened if unscreened else points.dataset)
  while True:
    yield whole
    if finite_by_default:
      return


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
      for _ in points.stream:
        pass
    return stats
  return screened_step


class TrainingLoop:
  """Runs the steps of one `train` call and everything between them.

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

  def run(self, runner, listeners, last_step, step_inputs, step_fn):  # pylint: disable=redefined-outer-name
    """Calls `step_fn` on each of `step_inputs` until a stop reason.

    Args:
      runner: the `hooks.HookRunner` of the call's hooks.
      listeners: the saving listeners (see `KMeansClustering.train`).
      last_step: stop once the global step reaches it (None: no limit).
      step_inputs: iterable of each step's argument.
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
    config = self._config
    runner.begin()
    for listener in listeners:
      listener.begin()
    summaries = []
    previous_loss = None
    stats, stopped_by, relocated_total = None, None, 0
    relocating = self._kmeans.empty_cluster == constants.FARTHEST_POINT
    start_step, start_time = self._global_step, time.time()
    last_log_step, last_log_time = start_step, start_time
    last_save_time, saved_step = start_time, None
    for data in step_inputs:
      if last_step is not None and self._global_step >= last_step:
        break
      context = runner.before_run() if runner else None
      stats = step_fn(data)
      last_data = data
      if 'total_weight' in stats:
        # Weighted: a full-batch step (all the data) of total weight 0.
        if not self._kmeans.use_mini_batch and not float(
            stats['total_weight']) > 0:
          raise ValueError(inputs.zero_weight_message(self._weight_column))
      elif not self._kmeans.use_mini_batch and int(
          stats['num_points']) == 0:
        raise ValueError(NO_TRAINING_DATA)
      self._global_step += 1
      loss = float(stats['loss'])
      step = self._global_step
      if not np.isfinite(loss):
        limit, widen = numerics.overflow_advice(self._kmeans.dtype)
        dtype = self._kmeans.dtype.name
        raise FloatingPointError(
            f'The loss became {loss} at step {step}; the data likely '
            f'overflow {dtype} (magnitudes near {limit} or more); ' + (
                'rescale them or use dtype=tf.float64.' if widen else
                f'rescale them ({dtype} is the widest dtype).'))
      empty = int(stats['empty_clusters'])
      relocated = int(stats['relocated_clusters'])
      relocated_total += relocated
      if (step - start_step) % config.save_summary_steps == 0 or (
          step == start_step + 1):
        summaries.append((step, loss, empty,
                          relocated if relocating else None))
      stop = runner.after_run(context, self._hook_values(
          loss, stats['num_points'], stats['empty_clusters'])
                             ) if runner else False
      if stop:
        stopped_by = summary_lib.HOOK
      # The empty clusters, and those relocated, as '..., empty clusters =
      # 2, relocated = 2' after the step.
      clusters_note = f', empty clusters = {empty}' + (
          f', relocated = {relocated}' if relocating else '')
      if step == start_step + 1:
        logging.info('loss = %g, step = %d%s', loss, step, clusters_note)
      elif step - last_log_step >= config.log_step_count_steps:
        now = time.time()
        logging.info('loss = %g, step = %d%s (%.3f steps/sec)', loss, step,
                     clusters_note,
                     (step - last_log_step) / max(now - last_log_time, 1e-9))
        last_log_step, last_log_time = step, now
      if self._relative_tolerance is not None and previous_loss is not None:
        change = abs(loss - previous_loss) / (1 + abs(previous_loss))
        if change < self._relative_tolerance:
          logging.info('Loss relative change %g < relative_tolerance %g at '
                       'step %d: stopping.', change,
                       self._relative_tolerance, step)
          stop = True
          stopped_by = summary_lib.RELATIVE_TOLERANCE
      previous_loss = loss
      if self._checkpoint_due(step, last_save_time):
        self._keep_best_restart(last_data)
        if self._save(listeners) and not stop:
          stop, stopped_by = True, summary_lib.SAVING_LISTENER
        self._write_summaries(summaries)
        summaries, last_save_time, saved_step = [], time.time(), step
      if stop:
        break
    if self._global_step == start_step:  # The dataset had no batches.
      raise ValueError(NO_TRAINING_DATA)
    runner.end()
    if previous_loss is not None:
      logging.info('Loss for final step: %g.', previous_loss)
    if saved_step != self._global_step:
      self._keep_best_restart(last_data)
      self._save(listeners)
    self._write_summaries(summaries)
    if stopped_by is None:
      stopped_by = (summary_lib.STEP_LIMIT if last_step is not None and
                    self._global_step >= last_step else
                    summary_lib.END_OF_INPUT)
    summary = summary_lib.TrainingSummary(
        steps=self._global_step - start_step,
        global_step=self._global_step,
        stopped_by=stopped_by,
        converged=stopped_by == summary_lib.RELATIVE_TOLERANCE,
        loss=previous_loss,
        cluster_sizes=tuple(int(size) for size in
                            np.asarray(stats['cluster_sizes'])),
        empty_clusters=int(stats['empty_clusters']),
        relocated_clusters=int(stats['relocated_clusters']),
        relocated_total=relocated_total)
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

  def _checkpoint_due(self, step, last_save_time):
    """Whether `step` ends with a checkpoint: every `save_checkpoints_steps`
    steps, or once `save_checkpoints_secs` have passed since the last."""
    config = self._config
    if config.save_checkpoints_steps is not None:
      return step % config.save_checkpoints_steps == 0
    if config.save_checkpoints_secs is not None:
      return time.time() - last_save_time >= config.save_checkpoints_secs
    return False

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

  def _write_summaries(self, summaries):
    """Writes buffered (step, loss, empty, relocated) as TensorBoard scalars
    (see `summaries.write_step_scalars`)."""
    summaries_lib.write_step_scalars(self._summary_writer, summaries)
