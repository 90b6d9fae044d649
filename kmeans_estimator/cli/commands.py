"""The commands of the command line, over the kmeans_estimator API.

Each command builds a `KMeansClustering` from the flags and calls the
method it is named for. This module imports TensorFlow: `app.main` imports
it once the command line is parsed (after `app` has silenced TensorFlow's
start-up messages, unless asked for them). The checks that read files or
checkpoints are here; those on the flags' values alone are in flags.py.
"""

import itertools
import random
import sys
import time

import numpy as np
import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.cli import flags
from kmeans_estimator.cli import writers
from kmeans_estimator.data import files as file_inputs
from kmeans_estimator.estimator.hooks import SessionRunArgs
from kmeans_estimator.estimator.hooks import SessionRunHook
from kmeans_estimator.estimator.kmeans_clustering import KMeansClustering
from kmeans_estimator.estimator.run_config import RunConfig
from kmeans_estimator.io import checkpoints

FLAGS = flags.FLAGS
_PROG = flags.PROG

# Errors that mean bad files, data or directories, not a bug: reported in one
# line on stderr, with exit status 1.
EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError,
                   tf.errors.OpError)


def error_message(error):
  """The one line that reports an `EXPECTED_ERRORS` error."""
  if isinstance(error, tf.errors.OpError):
    return error.message.splitlines()[0]
  return str(error)


# ----------------------------------------------------------- train progress
class Progress(SessionRunHook):
  """Shows training progress: step, loss, relative change, points/s.

  Policy: on a terminal (`out.isatty()`), one line is redrawn in place
  (carriage return) at most every `redraw_secs`, and left on screen with a
  newline when training ends; elsewhere (a log file, a pipe) a line is
  printed for the first step, then whenever `every_secs` have passed since
  the last one (0: every step), and for the last step. The rate is points
  per second since the previous line (or redraw).

  Args:
    out: the text stream written to.
    every_secs: seconds between lines when `out` is not a terminal.
    steps: the steps this train() asks for (shown as step i/total), or None.
    max_steps: the global step it trains to, or None.
    clock: seconds, monotonic (for tests).
  """

  redraw_secs = 0.1

  def __init__(self, out, every_secs, steps=None, max_steps=None,
               clock=time.monotonic):
    self._out = out
    self._every = every_secs
    self._steps = steps
    self._total = max_steps
    self._clock = clock
    self._tty = bool(getattr(out, 'isatty', lambda: False)())
    self._previous = None
    self._points = 0
    self._since = None
    self._shown = None  # The time of the last line or redraw.
    self._pending = None  # The last step's line, if not shown.
    self._width = 0  # Of the line on a terminal, to blank a longer one.

  def begin(self):
    self._since = self._clock()

  def before_run(self, run_context):
    return SessionRunArgs(['global_step', 'loss', 'num_points'])

  def after_run(self, run_context, run_values):
    step, loss, num_points = run_values.results
    step, loss = int(step), float(loss)
    if self._total is None and self._steps is not None:
      self._total = step - 1 + self._steps
    self._points += int(num_points)
    change = (None if self._previous is None else
              abs(loss - self._previous) / (1 + abs(self._previous)))
    self._previous = loss
    now = self._clock()
    rate = self._points / max(now - self._since, 1e-9)
    change = '-' if change is None else f'{change:.3e}'
    of = '' if self._total is None else f'/{self._total}'
    line = (f'step {step:>6}{of}  loss {loss:<12.6g}  relative change '
            f'{change:<9}  {rate:,.0f} points/s')
    wait = self.redraw_secs if self._tty else self._every
    if self._shown is not None and now - self._shown < wait:
      self._pending = line
      return
    self._show(line)
    self._shown, self._since, self._points = now, now, 0

  def _show(self, line):
    self._pending = None
    if self._tty:
      self._out.write('\r' + line.ljust(self._width))
      self._width = len(line)
    else:
      self._out.write(line + '\n')
    self._out.flush()

  def end(self, session=None):
    self.close()

  def close(self):
    """Shows the last step's line if it is not shown, and ends the line on
    a terminal; again is a no-op (called after training and on errors)."""
    if self._pending is not None:
      self._show(self._pending)
    if self._tty and self._width:
      self._out.write('\n')
      self._out.flush()
    self._width = 0


# ------------------------------------------------------ checks on the files
def _trained_model(model_dir):
  """(num_clusters, distance_metric or None) of model_dir's model, or None.

  The model is the library's latest checkpoint (which, unlike
  `tf.train.latest_checkpoint`, is found without a state file). A
  damaged model_dir (a state file that is unreadable or names a missing
  checkpoint) raises its ValueError rather than pass for untrained.
  """
  prefix = checkpoints.latest_checkpoint(model_dir)
  if prefix is None:
    checkpoints.check_no_lost_checkpoint(model_dir)
    return None
  try:
    # Read whole (a few small variables): a damaged data file then gives
    # read_checkpoint's error, naming the file.
    values = checkpoints.read_checkpoint(model_dir)
    shapes = {name: value.shape for name, value in values.items()}
    if constants.CLUSTER_CENTERS_VAR_NAME not in shapes:
      raise ValueError(
          f'The checkpoint in model_dir={model_dir!r} has no '
          f'{constants.CLUSTER_CENTERS_VAR_NAME!r} variable; it is '
          'not a k-means model. Use another --model_dir.')
    metric = None
    if constants.DISTANCE_METRIC_VAR_NAME in shapes:
      metric = values[constants.DISTANCE_METRIC_VAR_NAME].item()
      metric = metric.decode() if isinstance(metric, bytes) else str(metric)
  except tf.errors.OpError as error:
    raise ValueError(
        f'The checkpoint in model_dir={model_dir!r} is unreadable '
        f'({error.message.splitlines()[0]}); restore it or retrain.'
    ) from None
  return shapes[constants.CLUSTER_CENTERS_VAR_NAME][0], metric


def model_options(model_dir, command, initial_centers=None):
  """(num_clusters, distance_metric) from the checkpoint and the flags."""
  model = _trained_model(model_dir)
  if model is None and command != 'train':
    raise flags.flag_error('model_dir', 'hold a trained model (run '
                           f'`{_PROG} train` first)')
  flags.positive('num_clusters')
  num_clusters = FLAGS.num_clusters
  if model is not None:
    if FLAGS['num_clusters'].present and num_clusters != model[0]:
      raise flags.flag_error(
          'num_clusters', f'match the model in --model_dir={model_dir}, '
          f'which has {model[0]} clusters (or be left out)')
    num_clusters = model[0]
  elif num_clusters is None and initial_centers is not None:
    num_clusters = len(initial_centers)
  elif num_clusters is None:
    raise flags.flag_error('num_clusters', 'be given to train a new model '
                           f'in --model_dir={model_dir}')
  metric = FLAGS.distance_metric
  if model is not None and model[1] is not None:
    if FLAGS['distance_metric'].present and metric != model[1]:
      raise flags.flag_error(
          'distance_metric', f'match the model in --model_dir={model_dir}, '
          f'trained with {model[1]} (or be left out)')
    metric = model[1]
  return num_clusters, metric


def source(paths, weighted=False):
  """The checked input files (a `file_inputs.FileSource`); with `weighted`,
  reading --weight_column too."""
  header = {'auto': None, 'yes': True, 'no': False}[FLAGS.csv_header]
  try:
    return file_inputs.open_files(
        paths, columns=FLAGS.columns, features=flags.feature_flag(),
        header=header,
        weight_column=flags.weight_column() if weighted else None)
  except errors.InvalidArgumentError as error:
    # A column or feature the files lack is a bad flag: say which.
    if error.argument in ('columns', 'features', 'weight_column'):
      raise flags.library_errors_as_usage(error) from None
    raise


def initial_clusters():
  """The --initial_clusters name, or the centers read from its file."""
  path = flags.initial_clusters_file()
  if path is None:
    return flags.initial_clusters_name()
  return file_inputs.open_files(path).read_all(FLAGS.dtype)


# ----------------------------------------------------- the flags' estimator
def _estimator(model_dir, num_clusters, distance_metric,
               initial=constants.RANDOM_INIT, seed=None, source_=None,
               relative_tolerance=None):
  """The `KMeansClustering` of the flags (and of `source_`'s weights)."""
  weights = ({} if source_ is None else source_.estimator_options())
  try:
    secs = flags.save_checkpoints_secs()
    secs = {} if secs is None else {'save_checkpoints_secs': secs}
    config = RunConfig(
        save_checkpoints_steps=flags.positive('save_checkpoints_steps'),
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        save_summary_steps=FLAGS.save_summary_steps, **secs)
    return KMeansClustering(
        num_clusters=num_clusters,
        model_dir=model_dir,
        initial_clusters=initial,
        distance_metric=distance_metric,
        seed=seed,
        use_mini_batch=FLAGS.use_mini_batch,
        mini_batch_steps_per_iteration=FLAGS.mini_batch_steps_per_iteration,
        kmeans_plus_plus_num_retries=FLAGS.kmeans_plus_plus_num_retries,
        relative_tolerance=relative_tolerance,
        config=config,
        kmc2_chain_length=FLAGS.kmc2_chain_length,
        kmeans_parallel_rounds=FLAGS.kmeans_parallel_rounds,
        kmeans_parallel_oversampling=FLAGS.kmeans_parallel_oversampling,
        empty_cluster=FLAGS.empty_cluster,
        num_restarts=FLAGS.num_restarts,
        algorithm=FLAGS.algorithm,
        dtype=tf.as_dtype(FLAGS.dtype),
        run_eagerly=FLAGS.run_eagerly,
        **weights)
  except (ValueError, TypeError) as error:
    raise flags.library_errors_as_usage(error) from None


def _batch_input_fn(source_, repeat=False):
  return source_.input_fn(flags.positive('batch_size', required=True),
                          tf.as_dtype(FLAGS.dtype), repeat=repeat)


# --------------------------------------------------------------- commands
def train(paths):
  """Trains; prints progress and a summary evaluated over all the files.

  Policy: the files are streamed in batches, except for
  --algorithm=hamerly or yinyang (full batch), whose bounds are kept per
  point over the same data from step to step: the files are then read into
  memory once, and every step runs over that array.
  """
  model_dir = flags.model_dir()
  steps, max_steps = flags.train_steps()
  flags.positive('batch_size', required=True)
  every_secs = flags.progress_every_secs()
  tolerance = flags.relative_tolerance()
  initial = initial_clusters()
  num_clusters, metric = model_options(
      model_dir, 'train', None if isinstance(initial, str) else initial)
  # As KMeansClustering would draw it, but printed to repeat the run.
  seed = (random.SystemRandom().randrange(2**31) if FLAGS.seed is None
          else FLAGS.seed)
  files = source(paths, weighted=True)
  estimator = _estimator(model_dir, num_clusters, metric, initial, seed=seed,
                         source_=files, relative_tolerance=tolerance)
  in_memory = (not FLAGS.use_mini_batch and
               FLAGS.algorithm != constants.LLOYD)
  # Mini-batch training for a number of steps cycles through the files.
  data = (files.read_all(FLAGS.dtype) if in_memory else
          _batch_input_fn(files, repeat=FLAGS.use_mini_batch))
  hooks = []
  progress = None
  if FLAGS.progress:
    progress = Progress(sys.stdout, every_secs, steps, max_steps)
    hooks.append(progress)
  start = time.time()
  try:
    estimator.train(data, hooks=hooks, steps=steps, max_steps=max_steps)
  finally:
    if progress is not None:
      progress.close()
  seconds = time.time() - start
  summary = estimator.training_summary
  metrics = estimator.evaluate(_batch_input_fn(files))
  sizes = np.zeros(num_clusters, np.int64)
  for batch in estimator.predict(
      _batch_input_fn(files), predict_keys=[constants.CLUSTER_INDEX],
      yield_single_examples=False):
    sizes += np.bincount(batch[constants.CLUSTER_INDEX],
                         minlength=num_clusters)
  mean = ('mean squared distance'
          if metric == constants.SQUARED_EUCLIDEAN_DISTANCE
          else 'mean cosine distance')
  inertia = ('final weighted inertia:' if files.weight_column is not None
             else 'final inertia:')
  print(f'Trained {summary.steps} steps in {seconds:.1f} s '
        f'({_STOPPED_BY.get(summary.stopped_by, summary.stopped_by)}).\n'
        f'  iterations (global step): {metrics["global_step"]}\n'
        f'  {inertia:<26}{metrics["inertia"]:.6g} '
        f'({metrics["num_points"]} points)\n'
        f'  {mean + ":":<26}{metrics["mean_squared_distance"]:.6g}\n'
        f'  cluster sizes:            {sizes.tolist()}\n'
        f'  checkpoint:               {estimator.latest_checkpoint()}\n'
        f'  seed:                     {seed}',
        flush=True)


# Why training stopped (`TrainingSummary.stopped_by`), in the flags' words.
_STOPPED_BY = {
    'step_limit': 'reached --steps or --max_steps',
    'relative_tolerance': 'converged: the loss changed less than '
                          '--relative_tolerance',
    'end_of_input': 'read the files once',
}


def predict(paths):
  output = flags.output()
  model_dir = flags.model_dir()
  num_clusters, metric = model_options(model_dir, 'predict')
  # With --weight_column the weights are read and left out of the points
  # (the estimator's predict ignores them), as train and score read them.
  files = source(paths, weighted=True)
  estimator = _estimator(model_dir, num_clusters, metric, seed=0,
                         source_=files)
  if output is not None:
    flags.check_output_is_not_an_input(
        writers.PredictionWriter.paths_for(output, FLAGS.distances),
        files.paths)
  input_fn = _batch_input_fn(files)
  batches = estimator.predict(input_fn,
                              predict_keys=[constants.CLUSTER_INDEX],
                              yield_single_examples=False)
  distances = estimator.transform(input_fn) if FLAGS.distances else None
  writer = writers.PredictionWriter(output, num_clusters, FLAGS.distances,
                                    np.dtype(FLAGS.dtype))
  with writer:
    for batch in batches:
      indices = batch[constants.CLUSTER_INDEX]
      rows = None
      if distances is not None:
        rows = np.asarray(list(itertools.islice(distances, len(indices))))
      writer.write(indices, rows)
  if output is not None:
    print(f'Wrote {writer.count} predictions to '
          f'{", ".join(writer.paths)}.', flush=True)


def score(paths):
  model_dir = flags.model_dir()
  num_clusters, metric = model_options(model_dir, 'score')
  files = source(paths, weighted=True)
  estimator = _estimator(model_dir, num_clusters, metric, seed=0,
                         source_=files)
  metrics = estimator.evaluate(_batch_input_fn(files))
  for key in ('inertia', 'mean_squared_distance', 'num_points', 'score',
              'loss', 'global_step'):
    print(f'{key}: {metrics[key]}')


def centers(paths):
  del paths
  output = flags.output()
  model_dir = flags.model_dir()
  num_clusters, metric = model_options(model_dir, 'centers')
  values = _estimator(model_dir, num_clusters, metric,
                      seed=0).cluster_centers()
  writers.write_array(output, values)
  if output is None:
    return
  print(f'Wrote {values.shape[0]} centers of dimension {values.shape[1]} '
        f'to {output}.')


def export(paths):
  del paths
  export_dir_base = flags.export_dir_base()
  model_dir = flags.model_dir()
  num_clusters, metric = model_options(model_dir, 'export')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  path = estimator.export_saved_model(export_dir_base,
                                      top_k=flags.positive('top_k'),
                                      sparse=FLAGS.sparse)
  print(path.decode() if isinstance(path, bytes) else path)


RUNNERS = {'train': train, 'predict': predict, 'score': score,
           'centers': centers, 'export': export}
