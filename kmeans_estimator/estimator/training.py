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

Where no hook needs the host between steps, several steps run in one
compiled call (`run_steps`, Keras's `steps_per_execution`) and the loop
replays their figures afterwards, one step at a time, through the same
checks, logging, summaries and stop reasons (see `TrainingLoop`).
"""

import time

from absl import logging
import numpy as np
import tensorflow as tf

from kmeans_estimator import config as options
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.data import inputs
from kmeans_estimator.estimator import compiled
from kmeans_estimator.estimator import hooks as hooks_lib
from kmeans_estimator.estimator import training_summary as summary_lib
from kmeans_estimator.io import summaries as summaries_lib
from kmeans_estimator.ops import numerics

# The most steps one compiled call runs (`run_steps`). A call's fixed cost
# (the dispatch, one transfer of the figures) shared by a hundred steps is
# small next to even the smallest step; longer calls would save little more
# and would delay what the host does between calls (the time-based
# checkpoint cadence, KeyboardInterrupt). 1: one step per call, as hooks get.
STEPS_PER_CALL = 100
# The wall time a call of several steps aims at: each call runs the number of
# steps the last call ran in this time (from 1 to STEPS_PER_CALL), so steps
# whose own cost dwarfs a call's run one per call, and a time-based
# checkpoint comes at most about this much (or one step) later than with one
# step per call.
CALL_SECONDS = 0.05

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


def run_steps(step, core, points, state, weights, num_steps, previous_loss,
              relative_tolerance):
  """Up to `num_steps` carried steps in one graph, stopping after the step
  at which `TrainingLoop` would stop or raise: the body of the compiled
  function that runs several steps per call.

  A `tf.while_loop` over `step`, carrying the centers (in the core's
  variables), the step's state and the figures the host needs of each
  step. It stops early after a step whose loss is not finite (NaN or Inf),
  that saw no points (weighted: a total weight that is not > 0), or whose
  loss changed by less than the tolerance: |loss - previous| /
  (1 + |previous|) < relative_tolerance, computed in float64 from the
  losses as float64, the operations the host does with Python floats, so
  both take the same decision at the same step. The previous loss is
  carried from step to step; the first step's is the host's.

  Args:
    step: callable(core, points, state, weights) -> (stats, state), a
      carried step (e.g. `KMeans.lloyd_step`); stats as `TrainingLoop.run`
      documents them.
    core: the `KMeans` (a view, in a shared function) the step moves.
    points: float Tensor of shape (n, d), all the data.
    state: the step's state, a structure of Tensors (None where it holds
      none).
    weights: None, or float Tensor of shape (n,): the sample weights.
    num_steps: int32 scalar Tensor, at least 1: the most steps to run.
    previous_loss: float64 scalar Tensor, the loss of the step before the
      first; NaN when there was none.
    relative_tolerance: float64 scalar Tensor; -inf for no tolerance test.

  Returns:
    (figures, cluster_sizes, state): `figures` a dict of Tensors of shape
    (s,), one value per step run: 'loss' (float64), 'num_points',
    'empty_clusters', 'relocated_clusters' (int64) and, weighted,
    'total_weight' (float64), each the step's value widened without
    rounding; `cluster_sizes` the last step's, int64 of shape (k,); `state`
    the state after the last step.
  """
  leaves = tf.nest.flatten(state)
  present = [i for i, leaf in enumerate(leaves) if leaf is not None]

  def tensors_of(structure):
    return [leaf for leaf in tf.nest.flatten(structure) if leaf is not None]

  def state_of(tensors):
    full = list(leaves)
    for i, tensor in zip(present, tensors):
      full[i] = tensor
    return tf.nest.pack_sequence_as(state, full)

  names = _FIGURES + (('total_weight',) if weights is not None else ())
  arrays = [tf.TensorArray(_FIGURE_DTYPES.get(name, tf.int64), size=0,
                           dynamic_size=True) for name in names]

  def body(i, previous, unused_stop, unused_sizes, arrays, tensors):
    stats, new_state = step(core, points, state_of(tensors), weights)
    loss = tf.cast(stats['loss'], tf.float64)
    arrays = [array.write(i, tf.cast(stats[name], array.dtype))
              for array, name in zip(arrays, names)]
    change = tf.abs(loss - previous) / (1 + tf.abs(previous))
    if weights is not None:
      no_points = tf.logical_not(stats['total_weight'] > 0)
    else:
      no_points = tf.equal(stats['num_points'], 0)
    stop = tf.logical_or(
        tf.logical_or(change < relative_tolerance, no_points),
        tf.logical_not(tf.math.is_finite(loss)))
    return (i + 1, loss, stop, tf.cast(stats['cluster_sizes'], tf.int64),
            arrays, tensors_of(new_state))

  tensors = tensors_of(state)
  _, _, _, sizes, arrays, tensors = tf.while_loop(
      lambda i, previous, stop, *_: tf.logical_and(
          i < num_steps, tf.logical_not(stop)),
      body,
      (tf.constant(0), previous_loss, tf.constant(False),
       tf.zeros([0], tf.int64), arrays, tensors),
      shape_invariants=(
          tf.TensorShape([]), tf.TensorShape([]), tf.TensorShape([]),
          tf.TensorShape(None), [tf.TensorShape(None)] * len(arrays),
          [_any_size(tensor) for tensor in tensors]))
  return ({name: array.stack() for name, array in zip(names, arrays)},
          sizes, state_of(tensors))


# The figures `run_steps` returns for each step, and the dtypes they are
# widened to (the others int64).
_FIGURES = ('loss', 'num_points', 'empty_clusters', 'relocated_clusters')
_FIGURE_DTYPES = {'loss': tf.float64, 'total_weight': tf.float64}


def _any_size(tensor):
  """The shape of `tensor`'s rank with every dimension unknown: a step may
  return its state's tensors with shapes more or less specific than it
  took them."""
  rank = tensor.shape.rank
  return tf.TensorShape(None if rank is None else [None] * rank)


def _concrete(function, *args):
  """`function`'s traced graph for `args` (Tensors or specs), called
  without matching the arguments to traces on each call; `function`
  itself when it is not a `tf.function` (run eagerly)."""
  if hasattr(function, 'get_concrete_function'):
    return function.get_concrete_function(*args)
  return function


class CarriedSteps:
  """Steps carrying their state over the same in-memory data, run one per
  call (`__call__`, `TrainingLoop.run`'s `step_fn`) or several per call
  (`run`, its `steps_fn`), sharing one state.

  Every step gets the same points and a state of the same structure and
  shapes, so the traced graph is called directly, without the
  `tf.function`'s matching of the arguments on each call; the state's
  shapes (which hold k) are left unknown: one trace for every k.

  Args:
    start: compiled callable(points, weights) -> the first state.
    one_step: returns the compiled callable(points, state, weights) ->
      (stats, state); called the first time a single step runs.
    many_steps: returns the compiled `run_steps` of that step, as a
      callable of (points, state, weights, num_steps, previous_loss,
      relative_tolerance); called the first time several steps run. (Each
      is made only when used, so a run compiles only what it calls.)
  """

  def __init__(self, start, one_step, many_steps):
    self._start = start
    self._one_step, self._many_steps = one_step, many_steps
    self._state = self._one = self._many = None

  def _inputs(self, data):
    points, weights = data  # A `Batch`.
    if self._state is None:
      self._state = self._start(points, weights)
    return points, weights

  def __call__(self, data):
    """One step on `data` (a `Batch`); returns its stats."""
    points, weights = self._inputs(data)
    if self._one is None:
      self._one = _concrete(self._one_step(), points,
                            compiled.relaxed_spec(self._state), weights)
    stats, self._state = self._one(points, self._state, weights)
    return stats

  def run(self, data, num_steps, previous_loss, relative_tolerance):
    """Up to `num_steps` steps on `data` in one call (`run_steps`).

    Args:
      data: the steps' `Batch` (all the data, the same at every step).
      num_steps: the most steps to run, a positive int.
      previous_loss: the loss of the step before (a float), or None.
      relative_tolerance: the tolerance (a float), or None for none.

    Returns:
      list of the stats of each step run, in order: dicts of numpy
      scalars as `run_steps` gives them, the last with 'cluster_sizes'.
    """
    points, weights = self._inputs(data)
    if self._many is None:
      self._many = _concrete(
          self._many_steps(), points, compiled.relaxed_spec(self._state),
          weights, tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float64),
          tf.TensorSpec([], tf.float64))
    figures, sizes, self._state = self._many(
        points, self._state, weights, tf.constant(num_steps, tf.int32),
        tf.constant(np.nan if previous_loss is None else previous_loss,
                    tf.float64),
        tf.constant(-np.inf if relative_tolerance is None else
                    relative_tolerance, tf.float64))
    figures = {name: values.numpy() for name, values in figures.items()}
    steps = [{name: values[i] for name, values in figures.items()}
             for i in range(len(figures['loss']))]
    steps[-1]['cluster_sizes'] = sizes.numpy()
    return steps


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

  Several steps per call: given a `steps_fn` and no hooks (hooks need the
  host after every step; saving listeners act only at checkpoints, between
  calls), each call runs up to `STEPS_PER_CALL` steps in one compiled
  function (`CarriedSteps.run`), and their figures are then replayed one
  step at a time through everything above, so logs, summaries, stop reasons,
  errors (at the step they name) and the `TrainingSummary` are those of one
  step per call. A call ends at the step budget and at every
  `save_checkpoints_steps` boundary, so step-based checkpoints hold the
  same steps' centers; the graph stops after the step at which the loop
  stops or raises (`run_steps`). Time-based checkpoints
  (`save_checkpoints_secs`) are looked at only after a call's last step,
  so one can come up to one call (about `CALL_SECONDS`) later than with
  one step per call. The log lines' steps/sec are the steps run between
  two log lines over the wall time they took, counted in whole calls (see
  `_log`), not the pace at which the figures are replayed.

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
    clock: callable() -> seconds, monotonic: what every duration of the
      loop is measured with (steps/sec, a call's length, the time-based
      checkpoint cadence).
  """

  def __init__(self, core, config, relative_tolerance, weight_column,
               global_step, save, keep_best_restart, summary_writer, chief,
               clock=time.perf_counter):
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
    self._clock = clock
    started = clock()
    self._last_log_step = global_step
    # For the steps/sec of the log lines (see `_log`): the last step known
    # run, when the call that ran it returned, and that call's steps and
    # seconds; and the step and time as they were at the last rate logged.
    self._ran = (global_step, started, 0, 0.)
    self._rate_mark = (global_step, started)
    self._last_save_time, self._saved_step = started, None
    self._steps_per_call = 1  # Then set from each call's time per step.

  def run(self, runner, listeners, last_step, inputs_of_steps, step_fn,
          steps_fn=None):
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
      steps_fn: None, or `steps_fn(data, num_steps, previous_loss,
        relative_tolerance)` -> the stats of each of up to num_steps steps
        on `data` (`CarriedSteps.run`), used without hooks; given only when
        every item of `inputs_of_steps` is the same data, endlessly.

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
    many = steps_fn is not None and not runner and STEPS_PER_CALL > 1
    for data in inputs_of_steps:
      if last_step is not None and self._global_step >= last_step:
        break
      if many:
        stop = self._run_steps(steps_fn, data, listeners, last_step)
      else:
        context = runner.before_run() if runner else None
        stop = self._after_step(step_fn(data), data, listeners, runner,
                                context, one_step_call=True)
      if stop:
        break
    if self._global_step == self._start_step:  # The dataset had no batches.
      raise errors.InvalidInputError(NO_TRAINING_DATA, kind='empty')
    runner.end()
    return self._finish(listeners, last_step)

  def _after_step(self, stats, data, listeners, runner=None, context=None,
                  last_of_call=True, one_step_call=False):
    """Everything after a step, in the order of the class docstring;
    returns True when training stops there. `one_step_call`: the step ran
    in a call of its own, done once its figures are read."""
    self._stats, self._last_data = stats, data
    self._check_points(stats)
    self._global_step += 1
    step = self._global_step
    loss = self._finite_loss(stats, step)
    if one_step_call:
      now = self._clock()
      self._ran = (step, now, 1, now - self._ran[1])
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
    if self._checkpoint_due(step, self._last_save_time, last_of_call):
      if self._checkpoint(listeners) and self._stopped_by is None:
        self._stopped_by = summary_lib.SAVING_LISTENER
    return self._stopped_by is not None

  def _run_steps(self, steps_fn, data, listeners, last_step):
    """One call of several steps (`steps_fn`), then each step's figures
    through `_after_step`; returns True when training stops.

    The call runs at most `_steps_per_call` steps, none past the step
    budget or the next `save_checkpoints_steps` boundary; the next call's
    number is set from this one's time per step (see `CALL_SECONDS`).
    """
    num_steps = self._steps_per_call
    if last_step is not None:
      num_steps = min(num_steps, last_step - self._global_step)
    every = self._config.save_checkpoints_steps
    if every is not None:
      num_steps = min(num_steps, every - self._global_step % every)
    started = self._clock()
    steps = steps_fn(data, num_steps, self._previous_loss,
                     self._relative_tolerance)
    ended = self._clock()
    seconds = ended - started
    self._ran = (self._global_step + len(steps), ended, len(steps), seconds)
    self._steps_per_call = max(1, min(STEPS_PER_CALL, int(
        CALL_SECONDS * len(steps) / max(seconds, 1e-9))))
    for i, stats in enumerate(steps):
      last = i == len(steps) - 1
      if self._after_step(stats, data, listeners, last_of_call=last):
        if not last:
          # `run_steps` stops where this loop stops; anything else would
          # leave the centers ahead of the global step.
          raise RuntimeError(
              f'Training stopped at step {self._global_step}, inside a call '
              f'of {len(steps)} steps.')
        return True
    return False

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
    `log_step_count_steps`, with the rate since the last line.

    The rate is the steps run since the last rate logged over the wall time
    they took, both counted in whole calls: from the end of the call behind
    the last rate (or the start of `train`) to the end of the call that ran
    `step`. With several steps per call a call's figures are replayed after
    it returned, so a line's steps are those of the calls that ran since,
    which may end past `step`; a second line from the replay of the same
    call gives that call's own rate (its steps over its seconds).
    """
    # The empty clusters, and those relocated, as '..., empty clusters =
    # 2, relocated = 2' after the step.
    clusters_note = f', empty clusters = {empty}' + (
        f', relocated = {relocated}' if self._relocating else '')
    if step == self._start_step + 1:
      logging.info('loss = %g, step = %d%s', loss, step, clusters_note)
    elif step - self._last_log_step >= self._config.log_step_count_steps:
      ran_to, ended, call_steps, call_seconds = self._ran
      marked_step, marked_time = self._rate_mark
      if ran_to > marked_step:
        rate = (ran_to - marked_step) / max(ended - marked_time, 1e-9)
        self._rate_mark = (ran_to, ended)
      else:  # A line before this one came from the same call.
        rate = call_steps / max(call_seconds, 1e-9)
      logging.info('loss = %g, step = %d%s (%.3f steps/sec)', loss, step,
                   clusters_note, rate)
      self._last_log_step = step

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

  def _checkpoint_due(self, step, last_save_time, last_of_call=True):
    """Whether `step` ends with a checkpoint: every `save_checkpoints_steps`
    steps, or once `save_checkpoints_secs` have passed since the last (only
    after a call's last step, the one whose centers the variables hold)."""
    config = self._config
    if config.save_checkpoints_steps is not None:
      return step % config.save_checkpoints_steps == 0
    if config.save_checkpoints_secs is not None and last_of_call:
      return (self._clock() - last_save_time >=
              config.save_checkpoints_secs)
    return False

  def _checkpoint(self, listeners):
    """Keeps the best restart, saves, then writes the buffered summaries;
    returns True if a saving listener asks to stop."""
    self._keep_best_restart(self._last_data)
    stop = self._save(listeners)
    self._write_summaries()
    self._last_save_time = self._clock()
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
