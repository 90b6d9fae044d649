"""k-means on files from the command line, over the kmeans_estimator API.

Usage:
  kmeans-estimator train   --model_dir=DIR --num_clusters=K [flags] FILE...
  kmeans-estimator predict --model_dir=DIR [--output=OUT] [--distances] FILE...
  kmeans-estimator score   --model_dir=DIR FILE...
  kmeans-estimator centers --model_dir=DIR [--output=OUT]
  kmeans-estimator export  --model_dir=DIR --export_dir_base=DIR

FILE is a .npy, .csv or TFRecord (.tfrecord, .tfrecords, .tfrec, .gz) file of
points, or a glob; files are streamed, never read whole. OUT ends in .npy or
.csv. See docs/cli.md for every flag and examples.
"""
# The docstring above is the usage `--help` prints. This module holds the
# commands, the progress hook and the entry points (`main`, and `run`, the
# console script); the flags and their checks are in flags.py, the output
# files in writers.py.

import itertools
import random
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, logging

from kmeans_estimator import (
  KMeansClustering,
  RunConfig,
  SessionRunArgs,
  SessionRunHook,
)
from kmeans_estimator.cli import flags
from kmeans_estimator.cli import writers
from kmeans_estimator.data import files as file_inputs

_COMMANDS = ('train', 'predict', 'score', 'centers', 'export')
_WITH_FILES = ('train', 'predict', 'score')
_PROG = flags.PROG

FLAGS = flags.FLAGS

# Errors that mean bad files, data or directories, not a bug: reported in one
# line on stderr, with exit status 1.
_EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError,
                    tf.errors.OpError)


# ----------------------------------------------------------- train progress
class _ProgressHook(SessionRunHook):
  """Prints step, loss, relative change of the loss and points per second."""

  def __init__(self, every, out):
    self._every = every
    self._out = out
    self._previous = None
    self._points = 0
    self._since = None
    self._first = True

  def begin(self):
    self._since = time.time()

  def before_run(self, run_context):
    return SessionRunArgs(['global_step', 'loss', 'num_points'])

  def after_run(self, run_context, run_values):
    step, loss, num_points = run_values.results
    step, loss = int(step), float(loss)
    self._points += int(num_points)
    change = (None if self._previous is None else
              abs(loss - self._previous) / (1 + abs(self._previous)))
    self._previous = loss
    if not self._every or not (self._first or step % self._every == 0):
      return
    now = time.time()
    rate = self._points / max(now - self._since, 1e-9)
    self._points, self._since, self._first = 0, now, False
    change = '-' if change is None else f'{change:.3e}'
    print(f'step {step:>6}  loss {loss:<12.6g}  relative change {change:<9}  '
          f'{rate:,.0f} points/s', file=self._out, flush=True)


# ----------------------------------------------------- the flags' estimator
def _estimator(model_dir, num_clusters, distance_metric,
               initial_clusters=KMeansClustering.RANDOM_INIT, seed=None):
  try:
    config = RunConfig(
        save_checkpoints_steps=flags.positive('save_checkpoints_steps'),
        keep_checkpoint_max=FLAGS.keep_checkpoint_max)
    return KMeansClustering(
        num_clusters=num_clusters,
        model_dir=model_dir,
        initial_clusters=initial_clusters,
        distance_metric=distance_metric,
        seed=seed,
        use_mini_batch=FLAGS.use_mini_batch,
        mini_batch_steps_per_iteration=FLAGS.mini_batch_steps_per_iteration,
        kmeans_plus_plus_num_retries=FLAGS.kmeans_plus_plus_num_retries,
        relative_tolerance=FLAGS.relative_tolerance,
        config=config,
        kmc2_chain_length=FLAGS.kmc2_chain_length,
        kmeans_parallel_rounds=FLAGS.kmeans_parallel_rounds,
        kmeans_parallel_oversampling=FLAGS.kmeans_parallel_oversampling,
        empty_cluster=FLAGS.empty_cluster,
        num_restarts=FLAGS.num_restarts,
        dtype=tf.as_dtype(FLAGS.dtype),
        run_eagerly=FLAGS.run_eagerly)
  except (ValueError, TypeError) as error:
    raise flags.library_errors_as_usage(error) from None


def _batch_input_fn(source, repeat=False):
  return source.input_fn(flags.positive('batch_size', required=True),
                         tf.as_dtype(FLAGS.dtype), repeat=repeat)


# --------------------------------------------------------------- commands
def _train(paths):
  model_dir = flags.model_dir()
  steps, max_steps = flags.train_steps()
  flags.positive('batch_size', required=True)
  progress_every = flags.progress_every()
  initial = flags.initial_clusters()
  num_clusters, metric = flags.model_options(
      model_dir, 'train', None if isinstance(initial, str) else initial)
  # As KMeansClustering would draw it, but printed to repeat the run.
  seed = (random.SystemRandom().randrange(2**31) if FLAGS.seed is None
          else FLAGS.seed)
  estimator = _estimator(model_dir, num_clusters, metric, initial, seed=seed)
  source = flags.source(paths)
  logging.info('Training on %s (%d features per point) into %s.',
               ', '.join(source.paths), source.num_features, model_dir)
  # Mini-batch training for a number of steps cycles through the files.
  cycle = FLAGS.use_mini_batch and (steps is not None or
                                    max_steps is not None)
  start = time.time()
  estimator.train(_batch_input_fn(source, repeat=cycle),
                  hooks=[_ProgressHook(progress_every, sys.stdout)],
                  steps=steps, max_steps=max_steps)
  seconds = time.time() - start
  metrics = estimator.evaluate(_batch_input_fn(source))
  sizes = np.zeros(num_clusters, np.int64)
  for batch in estimator.predict(
      _batch_input_fn(source),
      predict_keys=[KMeansClustering.CLUSTER_INDEX],
      yield_single_examples=False):
    sizes += np.bincount(batch[KMeansClustering.CLUSTER_INDEX],
                         minlength=num_clusters)
  mean = ('mean squared distance'
          if metric == KMeansClustering.SQUARED_EUCLIDEAN_DISTANCE
          else 'mean cosine distance')
  print(f'Trained in {seconds:.1f} s.\n'
        f'  iterations (global step): {metrics["global_step"]}\n'
        f'  final inertia:            {metrics["inertia"]:.6g} '
        f'({metrics["num_points"]} points)\n'
        f'  {mean + ":":<26}{metrics["mean_squared_distance"]:.6g}\n'
        f'  cluster sizes:            {sizes.tolist()}\n'
        f'  checkpoint:               {estimator.latest_checkpoint()}\n'
        f'  seed:                     {seed}',
        flush=True)


def _predict(paths):
  output = flags.output()
  model_dir = flags.model_dir()
  num_clusters, metric = flags.model_options(model_dir, 'predict')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  source = flags.source(paths)
  if output is not None:
    flags.check_output_is_not_an_input(
        writers.PredictionWriter.paths_for(output, FLAGS.distances),
        source.paths)
  input_fn = _batch_input_fn(source)
  batches = estimator.predict(input_fn,
                              predict_keys=[KMeansClustering.CLUSTER_INDEX],
                              yield_single_examples=False)
  distances = estimator.transform(input_fn) if FLAGS.distances else None
  writer = writers.PredictionWriter(output, num_clusters, FLAGS.distances,
                                    np.dtype(FLAGS.dtype))
  with writer:
    for batch in batches:
      indices = batch[KMeansClustering.CLUSTER_INDEX]
      rows = None
      if distances is not None:
        rows = np.asarray(list(itertools.islice(distances, len(indices))))
      writer.write(indices, rows)
  if output is not None:
    print(f'Wrote {writer.count} predictions to '
          f'{", ".join(writer.paths)}.', flush=True)


def _score(paths):
  model_dir = flags.model_dir()
  num_clusters, metric = flags.model_options(model_dir, 'score')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  metrics = estimator.evaluate(_batch_input_fn(flags.source(paths)))
  for key in ('inertia', 'mean_squared_distance', 'num_points', 'score',
              'loss', 'global_step'):
    print(f'{key}: {metrics[key]}')


def _centers(paths):
  del paths
  output = flags.output()
  model_dir = flags.model_dir()
  num_clusters, metric = flags.model_options(model_dir, 'centers')
  centers = _estimator(model_dir, num_clusters, metric,
                       seed=0).cluster_centers()
  writers.write_array(output, centers)
  if output is None:
    return
  print(f'Wrote {centers.shape[0]} centers of dimension {centers.shape[1]} '
        f'to {output}.')


def _export(paths):
  del paths
  export_dir_base = flags.export_dir_base()
  model_dir = flags.model_dir()
  num_clusters, metric = flags.model_options(model_dir, 'export')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  path = estimator.export_saved_model(export_dir_base)
  print(path.decode() if isinstance(path, bytes) else path)


_RUNNERS = {'train': _train, 'predict': _predict, 'score': _score,
            'centers': _centers, 'export': _export}


# ------------------------------------------------------------------- main
def _command(argv):
  """(command, input files) from the positional arguments."""
  args = list(argv[1:])
  if not args:
    raise app.UsageError(
        f'Give a command: one of {", ".join(_COMMANDS)}. For example: '
        f'{_PROG} train --model_dir=model --num_clusters=5 points.npy')
  command, paths = args[0], args[1:]
  if command not in _COMMANDS:
    raise app.UsageError(f'The command must be one of {", ".join(_COMMANDS)}'
                         f'. Received: {command}')
  if command in _WITH_FILES and not paths:
    raise app.UsageError(
        f'`{command}` needs input files (.npy, .csv or TFRecord) after the '
        f'command. For example: {_PROG} {command} --model_dir=model '
        'points.npy. Received: no files')
  if command not in _WITH_FILES and paths:
    raise app.UsageError(f'`{command}` takes no input files. Received: '
                         f'{" ".join(paths)}')
  return command, paths


def main(argv):
  """Runs the command named by argv[1] on the files that follow it.

  Args:
    argv: the positional arguments left after absl parsed the flags:
      [program, command, file, ...].

  Returns:
    0 on success, 1 when the files, data or model_dir are bad (the reason
    is printed on stderr, without a traceback).

  Raises:
    app.UsageError: a missing or bad command or flag.
  """
  command, paths = _command(argv)
  try:
    with file_inputs.readable_errors():
      _RUNNERS[command](paths)
  except _EXPECTED_ERRORS as error:
    message = (error.message.splitlines()[0]
               if isinstance(error, tf.errors.OpError) else str(error))
    print(f'{_PROG} {command}: error: {message}', file=sys.stderr,
          flush=True)
    return 1
  return 0


def _main_quietly(argv):
  # The library logs every checkpoint and loss at INFO; the progress lines
  # say that already, so the command line shows warnings unless asked.
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  return main(argv)


def run():
  """The console script `kmeans-estimator`: `app.run(main)`."""
  # absl prints the main module's docstring as the usage: make it ours when
  # the main module is the console script or `python -m kmeans_estimator`.
  main_module = sys.modules['__main__']
  spec = getattr(main_module, '__spec__', None)
  if not getattr(main_module, '__doc__', None) or (
      spec is not None and spec.name == 'kmeans_estimator.__main__'):
    main_module.__doc__ = __doc__
  # `--help` lists the flags of the main module: make them ours (they are
  # defined in cli/flags.py).
  for flag in FLAGS.get_key_flags_for_module(flags.__name__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(_main_quietly)
