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

import itertools
import os
import random
import secrets
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from kmeans_estimator import (
  KMeansClustering,
  RunConfig,
  SessionRunArgs,
  SessionRunHook,
)
from kmeans_estimator import errors
from kmeans_estimator.data import files as file_inputs
from kmeans_estimator.io import checkpoints

_COMMANDS = ('train', 'predict', 'score', 'centers', 'export')
_WITH_FILES = ('train', 'predict', 'score')
_INIT_NAMES = (KMeansClustering.RANDOM_INIT,
               KMeansClustering.KMEANS_PLUS_PLUS_INIT,
               KMeansClustering.KMC2_INIT,
               KMeansClustering.KMEANS_PARALLEL_INIT)
# Checkpoint variable that names the metric a model was trained with
# (checkpoints of the legacy estimator lack it).
_METRIC_VARIABLE = 'distance_metric'
_PROG = 'kmeans-estimator'

FLAGS = flags.FLAGS

# Where the model lives.
flags.DEFINE_string('model_dir', None,
                    'Directory of the checkpoints (required). `train` '
                    'creates it or resumes from its latest checkpoint.')
# KMeansClustering's constructor.
flags.DEFINE_integer('num_clusters', None,
                     'Number of clusters k. Needed to train a new model '
                     '(unless --initial_clusters is a file); the other '
                     'commands read it from the checkpoint.')
flags.DEFINE_string('initial_clusters', KMeansClustering.RANDOM_INIT,
                    'random, kmeans_plus_plus, kmc2, or a .npy/.csv file of '
                    'initial centers of shape (num_clusters, d).')
flags.DEFINE_enum('distance_metric',
                  KMeansClustering.SQUARED_EUCLIDEAN_DISTANCE,
                  [KMeansClustering.SQUARED_EUCLIDEAN_DISTANCE,
                   KMeansClustering.COSINE_DISTANCE],
                  'Distance metric. Models that record their metric use it '
                  'and need no flag.')
flags.DEFINE_integer('seed', None,
                     'Integer seed of the initialisation (default: a random '
                     'seed, printed after training).')
flags.DEFINE_bool('use_mini_batch', True,
                  'Mini-batch updates (one step per batch, the default) or '
                  'full-batch Lloyd iterations (--nouse_mini_batch: one step '
                  'per pass over all the files).')
flags.DEFINE_integer('mini_batch_steps_per_iteration', 1,
                     'Refresh the assignment centers every this many '
                     'mini-batch steps.')
flags.DEFINE_integer('kmeans_plus_plus_num_retries', 2,
                     'Extra k-means++ candidates per center; negative means '
                     '2 + log(k).')
flags.DEFINE_integer('kmc2_chain_length', 200,
                     'Markov chain length per center for kmc2.')
flags.DEFINE_integer('kmeans_parallel_rounds', 5,
                     'Sampling rounds (passes over the files) of '
                     'kmeans_parallel.')
flags.DEFINE_float('kmeans_parallel_oversampling', 0.5,
                   'Candidates drawn per kmeans_parallel round, as a '
                   'multiple of k.')
flags.DEFINE_enum('empty_cluster', KMeansClustering.KEEP_EMPTY,
                  [KMeansClustering.KEEP_EMPTY,
                   KMeansClustering.FARTHEST_POINT],
                  'An empty cluster keeps its center (keep), or takes the '
                  'point farthest from its center (farthest_point, as '
                  'scikit-learn does).')
flags.DEFINE_integer('num_restarts', 1,
                     'Initialisations trained side by side, sharing each '
                     'pass over the files; the one of lowest loss is kept '
                     "(scikit-learn's n_init). Above 1 it needs "
                     '--nouse_mini_batch and a random --initial_clusters; '
                     'train resumes a model only with the same value.')
flags.DEFINE_float('relative_tolerance', None,
                   'Stop training when |loss - previous| / (1 + |previous|) '
                   'falls below this.')
flags.DEFINE_enum('dtype', 'float32', ['float32', 'float64'],
                  'Float type of the computation.')
flags.DEFINE_bool('run_eagerly', False,
                  'Run steps eagerly, not compiled (for debugging).')
# KMeansClustering.train.
flags.DEFINE_integer('steps', None,
                     'Train this many more steps. Without --steps or '
                     '--max_steps the data are read once, as in the Python '
                     'API (one full-batch step, or one pass of mini-batches); '
                     'with them mini-batches cycle through the files.')
flags.DEFINE_integer('max_steps', None,
                     'Train until the global step reaches this.')
# RunConfig.
flags.DEFINE_integer('save_checkpoints_steps', None,
                     'Also checkpoint every this many steps (a checkpoint is '
                     'always written at the end of training).')
flags.DEFINE_integer('keep_checkpoint_max', 5,
                     'Checkpoints to keep; 0 keeps all.')
# Reading the files.
flags.DEFINE_integer('batch_size', file_inputs.DEFAULT_BATCH_SIZE,
                     'Points read per batch: the mini-batch size, and the '
                     'memory bound of full-batch training and prediction.')
flags.DEFINE_list('columns', None,
                  '.csv/.npy: the columns to use, as header names or 0-based '
                  'indices (default: all).')
flags.DEFINE_list('feature', None,
                  'TFRecord: the tf.train.Example features to use, in order, '
                  'as NAME or NAME:WIDTH (default: every float or int64 '
                  'feature of the first record, by name).')
flags.DEFINE_enum('csv_header', 'auto', ['auto', 'yes', 'no'],
                  '.csv: whether the first row is a header (auto detects '
                  'it).')
# Outputs.
flags.DEFINE_string('output', None,
                    'predict, centers: write to this .npy or .csv file '
                    '(default: print CSV).')
flags.DEFINE_bool('distances', False,
                  'predict: also write the distances to every center (those '
                  'of KMeansClustering.transform).')
flags.DEFINE_string('export_dir_base', None,
                    'export: the SavedModel goes to a new timestamped '
                    'directory under this one.')
flags.DEFINE_integer('progress_every', 1,
                     'train: print progress every this many steps; 0 for '
                     'none.')

# Errors that mean bad files, data or directories, not a bug: reported in one
# line on stderr, with exit status 1.
_EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError,
                    tf.errors.OpError)


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


# ------------------------------------------------------------------ flags
def _flag_error(name, must, value=None):
  """An app.UsageError in the error idiom, naming the flag."""
  if value is None:
    value = FLAGS[name].value
  if isinstance(value, list):
    value = ','.join(value)
  received = (f'--{name}={value}' if FLAGS[name].present or value is not None
              else f'no --{name}')
  return app.UsageError(f'`{name}` must {must}. Received: {received}')


def _positive_flag(name, required=False):
  value = FLAGS[name].value
  if value is None and not required:
    return None
  if value is None or value < 1:
    raise _flag_error(name, 'be a positive integer')
  return value


def _model_dir():
  if not FLAGS.model_dir:
    raise _flag_error('model_dir', 'be given: the directory that holds (or, '
                      'for train, will hold) the checkpoints')
  # A leading ~ is expanded, as the library does (a shell leaves
  # --model_dir=~/dir as it is).
  model_dir = os.path.expanduser(FLAGS.model_dir)
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise _flag_error('model_dir', 'be a directory, not a file')
  return model_dir


# The library's arguments whose flag has another name; every other argument
# that is a flag has the flag's name.
_FLAG_OF_ARGUMENT = {'features': 'feature', 'header': 'csv_header'}


def _flag_of(argument):
  """The flag that sets the library's `argument`, or None."""
  flag = _FLAG_OF_ARGUMENT.get(argument, argument)
  return flag if flag in FLAGS else None


def _library_errors_as_usage(error):
  """A library error about an argument -> an app.UsageError on its flag.

  The message is rendered again from the error's template
  (`errors.InvalidArgumentError.render_message`) with the flags' names for
  the arguments' names, and `--flag=value` (the value as given on the
  command line, for list flags) for what they received.
  """
  def name(argument):
    return _flag_of(argument) or argument

  def received(argument, value):
    flag = _flag_of(argument)
    if flag is None:
      return f'{argument}={value!r}'
    if isinstance(FLAGS[flag].value, list):
      return f'--{flag}={",".join(FLAGS[flag].value)}'
    return f'--{flag}={value!r}'

  render = getattr(error, 'render_message', None)
  return app.UsageError(render(name, received) if render else str(error))


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
    if KMeansClustering.CLUSTER_CENTERS_VAR_NAME not in shapes:
      raise ValueError(
          f'The checkpoint in model_dir={model_dir!r} has no '
          f'{KMeansClustering.CLUSTER_CENTERS_VAR_NAME!r} variable; it is '
          'not a k-means model. Use another --model_dir.')
    metric = None
    if _METRIC_VARIABLE in shapes:
      metric = values[_METRIC_VARIABLE].item()
      metric = metric.decode() if isinstance(metric, bytes) else str(metric)
  except tf.errors.OpError as error:
    raise ValueError(
        f'The checkpoint in model_dir={model_dir!r} is unreadable '
        f'({error.message.splitlines()[0]}); restore it or retrain.'
    ) from None
  return shapes[KMeansClustering.CLUSTER_CENTERS_VAR_NAME][0], metric


def _model_options(model_dir, command, initial_centers=None):
  """(num_clusters, distance_metric) from the checkpoint and the flags."""
  model = _trained_model(model_dir)
  if model is None and command != 'train':
    raise _flag_error('model_dir', 'hold a trained model (run '
                      f'`{_PROG} train` first)')
  _positive_flag('num_clusters')
  num_clusters = FLAGS.num_clusters
  if model is not None:
    if FLAGS['num_clusters'].present and num_clusters != model[0]:
      raise _flag_error(
          'num_clusters', f'match the model in --model_dir={model_dir}, '
          f'which has {model[0]} clusters (or be left out)')
    num_clusters = model[0]
  elif num_clusters is None and initial_centers is not None:
    num_clusters = len(initial_centers)
  elif num_clusters is None:
    raise _flag_error('num_clusters', 'be given to train a new model in '
                      f'--model_dir={model_dir}')
  metric = FLAGS.distance_metric
  if model is not None and model[1] is not None:
    if FLAGS['distance_metric'].present and metric != model[1]:
      raise _flag_error(
          'distance_metric', f'match the model in --model_dir={model_dir}, '
          f'trained with {model[1]} (or be left out)')
    metric = model[1]
  return num_clusters, metric


def _estimator(model_dir, num_clusters, distance_metric,
               initial_clusters=KMeansClustering.RANDOM_INIT, seed=None):
  try:
    config = RunConfig(
        save_checkpoints_steps=_positive_flag('save_checkpoints_steps'),
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
    raise _library_errors_as_usage(error) from None


def _feature_flag():
  if FLAGS.feature is None:
    return None
  features = []
  for spec in FLAGS.feature:
    name, _, width = spec.partition(':')
    if not name or (width and (not width.isdigit() or int(width) < 1)):
      raise _flag_error('feature', 'list NAME or NAME:WIDTH with a positive '
                        'WIDTH, separated by commas')
    features.append(name if not width else (name, int(width)))
  return features


def _source(paths):
  """The checked input files (a `file_inputs.FileSource`)."""
  header = {'auto': None, 'yes': True, 'no': False}[FLAGS.csv_header]
  try:
    return file_inputs.open_files(paths, columns=FLAGS.columns,
                                  features=_feature_flag(), header=header)
  except errors.InvalidArgumentError as error:
    # A column or feature the files lack is a bad flag: say which.
    if error.argument in ('columns', 'features'):
      raise _library_errors_as_usage(error) from None
    raise


def _initial_clusters():
  """The --initial_clusters name, or the centers read from its file."""
  value = FLAGS.initial_clusters
  if value in _INIT_NAMES:
    return value
  value = os.path.expanduser(value)  # A file: ~ expanded, as for paths.
  if not value.lower().endswith(('.npy', '.csv')):
    raise _flag_error('initial_clusters', f'be one of {list(_INIT_NAMES)} or '
                      'a .npy or .csv file of shape (num_clusters, d)')
  if not os.path.isfile(value):
    raise _flag_error('initial_clusters', 'name an existing file (or be one '
                      f'of {list(_INIT_NAMES)})')
  return file_inputs.open_files(value).read_all(FLAGS.dtype)


def _output_flag(extensions=('.npy', '.csv')):
  if FLAGS.output is None:
    return None
  output = os.path.expanduser(FLAGS.output)  # As for --model_dir.
  if not output.lower().endswith(extensions):
    raise _flag_error('output', f'end in {" or ".join(extensions)} (or be '
                      'left out to print CSV)')
  directory = os.path.dirname(os.path.abspath(output))
  if not os.path.isdir(directory):
    raise _flag_error('output', 'be in an existing directory')
  return output


def _same_file(a, b):
  """Whether paths `a` and `b` name one file (through links of any kind)."""
  try:
    return os.path.samefile(a, b)
  except OSError:  # One of them does not exist (yet).
    return os.path.realpath(a) == os.path.realpath(b)


def _check_output_is_not_an_input(outputs, inputs):
  """Refuses outputs that are input files: writing them loses the data.

  Outputs are compared with the inputs (globs expanded) as files, not as
  names: a symlink, a hard link or another spelling of an input's path is
  that input.
  """
  for index, output in enumerate(outputs):
    for path in inputs:
      if _same_file(output, path):
        shown = (f'--output={FLAGS.output}' if index == 0 else
                 f'--output={FLAGS.output} (whose distances go to {output})')
        raise app.UsageError(
            f'`output` must not be an input file: the predictions would '
            f'overwrite the points. Give another path. Received: {shown}, '
            f'which is the input file {path}')


def _batch_input_fn(source, repeat=False):
  return source.input_fn(_positive_flag('batch_size', required=True),
                         tf.as_dtype(FLAGS.dtype), repeat=repeat)


# --------------------------------------------------------------- commands
def _train(paths):
  model_dir = _model_dir()
  steps, max_steps = _positive_flag('steps'), _positive_flag('max_steps')
  if steps is not None and max_steps is not None:
    raise app.UsageError('Give `steps` or `max_steps`, not both. Received: '
                         f'--steps={steps} --max_steps={max_steps}')
  _positive_flag('batch_size', required=True)
  if FLAGS.progress_every < 0:
    raise _flag_error('progress_every', 'be a non-negative integer')
  initial = _initial_clusters()
  num_clusters, metric = _model_options(
      model_dir, 'train', None if isinstance(initial, str) else initial)
  # As KMeansClustering would draw it, but printed to repeat the run.
  seed = (random.SystemRandom().randrange(2**31) if FLAGS.seed is None
          else FLAGS.seed)
  estimator = _estimator(model_dir, num_clusters, metric, initial, seed=seed)
  source = _source(paths)
  logging.info('Training on %s (%d features per point) into %s.',
               ', '.join(source.paths), source.num_features, model_dir)
  # Mini-batch training for a number of steps cycles through the files.
  cycle = FLAGS.use_mini_batch and (steps is not None or
                                    max_steps is not None)
  start = time.time()
  estimator.train(_batch_input_fn(source, repeat=cycle),
                  hooks=[_ProgressHook(FLAGS.progress_every, sys.stdout)],
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
  output = _output_flag()
  model_dir = _model_dir()
  num_clusters, metric = _model_options(model_dir, 'predict')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  source = _source(paths)
  if output is not None:
    _check_output_is_not_an_input(
        _PredictionWriter.paths_for(output, FLAGS.distances), source.paths)
  input_fn = _batch_input_fn(source)
  batches = estimator.predict(input_fn,
                              predict_keys=[KMeansClustering.CLUSTER_INDEX],
                              yield_single_examples=False)
  distances = estimator.transform(input_fn) if FLAGS.distances else None
  writer = _PredictionWriter(output, num_clusters, FLAGS.distances,
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
  model_dir = _model_dir()
  num_clusters, metric = _model_options(model_dir, 'score')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  metrics = estimator.evaluate(_batch_input_fn(_source(paths)))
  for key in ('inertia', 'mean_squared_distance', 'num_points', 'score',
              'loss', 'global_step'):
    print(f'{key}: {metrics[key]}')


def _centers(paths):
  del paths
  output = _output_flag()
  model_dir = _model_dir()
  num_clusters, metric = _model_options(model_dir, 'centers')
  centers = _estimator(model_dir, num_clusters, metric,
                       seed=0).cluster_centers()
  if output is None:
    _write_csv(sys.stdout, centers)
    return
  as_npy = output.lower().endswith('.npy')
  with _AtomicFile(output, 'wb' if as_npy else 'w') as f:
    if as_npy:
      np.save(f, centers)
    else:
      _write_csv(f, centers)
  print(f'Wrote {centers.shape[0]} centers of dimension {centers.shape[1]} '
        f'to {output}.')


def _export(paths):
  del paths
  if not FLAGS.export_dir_base:
    raise _flag_error('export_dir_base', 'be given: the directory under '
                      'which the SavedModel is written')
  model_dir = _model_dir()
  num_clusters, metric = _model_options(model_dir, 'export')
  estimator = _estimator(model_dir, num_clusters, metric, seed=0)
  path = estimator.export_saved_model(FLAGS.export_dir_base)
  print(path.decode() if isinstance(path, bytes) else path)


_RUNNERS = {'train': _train, 'predict': _predict, 'score': _score,
            'centers': _centers, 'export': _export}


# ---------------------------------------------------------------- outputs
def _float_format(array):
  return '%.17g' if array.dtype == np.float64 else '%.9g'


def _write_csv(f, array):
  np.savetxt(f, array, fmt=_float_format(array), delimiter=',')
  f.flush()


# Flags that create a new file and nothing else: never an existing file,
# never through a symlink (O_EXCL fails on any existing name, links
# included; O_NOFOLLOW says so again for the last component).
_CREATE_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL |
                 getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0))
_CREATE_ATTEMPTS = 100


class _AtomicFile:
  """A file written under a temporary name, renamed on success.

  A failed run leaves an existing file as it was and no partial file behind.
  The temporary file is created exclusively under an unpredictable name
  (`<path>.tmp-<random hex>`) in the output's directory, so a file or
  symlink someone planted there is never written through; the rename then
  replaces whatever directory entry `path` is (a symlink there is replaced
  by the new file, and what it pointed to is left untouched).
  """

  def __init__(self, path, mode):
    self.path = path
    self._mode = mode
    self._temp = None
    self._file = None

  def __enter__(self):
    for _ in range(_CREATE_ATTEMPTS):
      temp = f'{self.path}.tmp-{secrets.token_hex(8)}'
      try:
        fd = os.open(temp, _CREATE_FLAGS, 0o666)
      except FileExistsError:
        continue  # Taken (or planted): draw another name.
      self._temp = temp
      self._file = os.fdopen(fd, self._mode)
      return self._file
    raise FileExistsError(
        f'Could not create a temporary file beside {self.path!r}: '
        f'{_CREATE_ATTEMPTS} random names were all taken.')

  def __exit__(self, error_type, error, traceback):
    self._file.close()
    if error_type is None:
      os.replace(self._temp, self.path)
    else:
      try:
        os.remove(self._temp)
      except FileNotFoundError:
        pass
    return False


class _NpyStream:
  """Writes a .npy array row block by row block, its length unknown ahead.

  The header reserves room for any length and is rewritten on `close`.
  """

  _HEADER_BYTES = 128

  def __init__(self, f, dtype, row_shape):
    self._file = f
    self._dtype = np.dtype(dtype)
    self._row_shape = tuple(row_shape)
    self.rows = 0
    self._write_header()

  def _write_header(self):
    header = repr({'descr': np.lib.format.dtype_to_descr(self._dtype),
                   'fortran_order': False,
                   'shape': (self.rows,) + self._row_shape})
    size = self._HEADER_BYTES - 10  # magic (6), version (2), length (2).
    header = header.ljust(size - 1) + '\n'
    self._file.seek(0)
    self._file.write(b'\x93NUMPY\x01\x00' +
                     len(header).to_bytes(2, 'little') + header.encode())

  def write(self, block):
    block = np.ascontiguousarray(block, self._dtype)
    self._file.seek(0, os.SEEK_END)
    self._file.write(block.tobytes())
    self.rows += len(block)

  def close(self):
    self._write_header()


class _PredictionWriter:
  """Writes cluster indices (and distances) to .npy or .csv, or prints CSV.

  To `.npy`: cluster_index to OUT (int64, shape (n,)) and, with distances,
  the distances to OUT with `.distances.npy` for `.npy` (shape (n, k)). To
  `.csv` or standard output: a header row, then one row per point:
  cluster_index[,distance_0,...,distance_{k-1}].
  """

  def __init__(self, output, num_clusters, distances, dtype):
    self._output = output
    self._num_clusters = num_clusters
    self._distances = distances
    self._dtype = dtype
    self.count = 0
    self.paths = []
    self._files = []
    self._streams = None
    self._csv = None

  @staticmethod
  def paths_for(output, distances):
    """The files written for `output` (and `distances`)."""
    if output.lower().endswith('.csv') or not distances:
      return [output]
    return [output, output[:-len('.npy')] + '.distances.npy']

  def __enter__(self):
    if self._output is None:
      self._csv = sys.stdout
    else:
      mode = 'w' if self._output.lower().endswith('.csv') else 'w+b'
      self._files = [_AtomicFile(path, mode) for path in
                     self.paths_for(self._output, self._distances)]
    self.paths = [f.path for f in self._files]
    opened = [f.__enter__() for f in self._files]
    if self._output is not None and self._output.lower().endswith('.npy'):
      self._streams = [_NpyStream(opened[0], np.int64, ())]
      if self._distances:
        self._streams.append(
            _NpyStream(opened[1], self._dtype, (self._num_clusters,)))
    elif self._output is not None:
      self._csv = opened[0]
    header = KMeansClustering.CLUSTER_INDEX
    if self._distances:
      header += ''.join(f',distance_{j}' for j in range(self._num_clusters))
    if self._csv is not None:
      self._csv.write(header + '\n')
    return self

  def write(self, indices, distances=None):
    self.count += len(indices)
    if self._streams is not None:
      self._streams[0].write(indices)
      if distances is not None:
        self._streams[1].write(distances)
      return
    if distances is None:
      np.savetxt(self._csv, indices.reshape(-1, 1), fmt='%d')
    else:
      fmt = ['%d'] + [_float_format(distances)] * distances.shape[1]
      np.savetxt(self._csv, np.column_stack([indices, distances]), fmt=fmt,
                 delimiter=',')

  def __exit__(self, error_type, error, traceback):
    if error_type is None and self._streams is not None:
      for stream in self._streams:
        stream.close()
    if self._csv is not None:
      self._csv.flush()
    for f in reversed(self._files):
      f.__exit__(error_type, error, traceback)
    return False


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
  # `--help` lists the flags of the main module: make them ours.
  for flag in FLAGS.get_key_flags_for_module(__name__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(_main_quietly)
