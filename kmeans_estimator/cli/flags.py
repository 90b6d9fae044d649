"""The command line's flags and the checks that read them.

absl flags are defined only in the CLI, and all of them here: `app.py` runs
the commands over them, and `--help` lists them as the main module's. The
checks turn a flag's value into what the library takes (a model_dir, the
input files, the initial centers, an output path) and raise `app.UsageError`
in the error idiom ("`flag` must ... Received: --flag=value") before anything
is read or written; `library_errors_as_usage` does the same for a library
error about an argument that a flag sets, through the argument->flag table.
"""

import os

import tensorflow as tf
from absl import app, flags

from kmeans_estimator import KMeansClustering
from kmeans_estimator import errors
from kmeans_estimator.data import files as file_inputs
from kmeans_estimator.io import checkpoints

# The program's name in messages.
PROG = 'kmeans-estimator'
_INIT_NAMES = (KMeansClustering.RANDOM_INIT,
               KMeansClustering.KMEANS_PLUS_PLUS_INIT,
               KMeansClustering.KMC2_INIT,
               KMeansClustering.KMEANS_PARALLEL_INIT)
# Checkpoint variable that names the metric a model was trained with
# (checkpoints of the legacy estimator lack it).
_METRIC_VARIABLE = 'distance_metric'

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


def flag_error(name, must, value=None):
  """An app.UsageError in the error idiom, naming the flag."""
  if value is None:
    value = FLAGS[name].value
  if isinstance(value, list):
    value = ','.join(value)
  received = (f'--{name}={value}' if FLAGS[name].present or value is not None
              else f'no --{name}')
  return app.UsageError(f'`{name}` must {must}. Received: {received}')


def positive(name, required=False):
  """The integer flag `name`: None when not given (unless `required`), or a
  positive integer."""
  value = FLAGS[name].value
  if value is None and not required:
    return None
  if value is None or value < 1:
    raise flag_error(name, 'be a positive integer')
  return value


def model_dir():
  """--model_dir, with a leading ~ expanded: given, and not a file."""
  if not FLAGS.model_dir:
    raise flag_error('model_dir', 'be given: the directory that holds (or, '
                     'for train, will hold) the checkpoints')
  # A leading ~ is expanded, as the library does (a shell leaves
  # --model_dir=~/dir as it is).
  path = os.path.expanduser(FLAGS.model_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise flag_error('model_dir', 'be a directory, not a file')
  return path


# The library's arguments whose flag has another name; every other argument
# that is a flag has the flag's name.
_FLAG_OF_ARGUMENT = {'features': 'feature', 'header': 'csv_header'}


def _flag_of(argument):
  """The flag that sets the library's `argument`, or None."""
  flag = _FLAG_OF_ARGUMENT.get(argument, argument)
  return flag if flag in FLAGS else None


def library_errors_as_usage(error):
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


def model_options(model_dir, command, initial_centers=None):
  """(num_clusters, distance_metric) from the checkpoint and the flags."""
  model = _trained_model(model_dir)
  if model is None and command != 'train':
    raise flag_error('model_dir', 'hold a trained model (run '
                     f'`{PROG} train` first)')
  positive('num_clusters')
  num_clusters = FLAGS.num_clusters
  if model is not None:
    if FLAGS['num_clusters'].present and num_clusters != model[0]:
      raise flag_error(
          'num_clusters', f'match the model in --model_dir={model_dir}, '
          f'which has {model[0]} clusters (or be left out)')
    num_clusters = model[0]
  elif num_clusters is None and initial_centers is not None:
    num_clusters = len(initial_centers)
  elif num_clusters is None:
    raise flag_error('num_clusters', 'be given to train a new model in '
                     f'--model_dir={model_dir}')
  metric = FLAGS.distance_metric
  if model is not None and model[1] is not None:
    if FLAGS['distance_metric'].present and metric != model[1]:
      raise flag_error(
          'distance_metric', f'match the model in --model_dir={model_dir}, '
          f'trained with {model[1]} (or be left out)')
    metric = model[1]
  return num_clusters, metric


def _feature_flag():
  """--feature as `file_inputs.open_files` takes it: NAME or (NAME, WIDTH)."""
  if FLAGS.feature is None:
    return None
  features = []
  for spec in FLAGS.feature:
    name, _, width = spec.partition(':')
    if not name or (width and (not width.isdigit() or int(width) < 1)):
      raise flag_error('feature', 'list NAME or NAME:WIDTH with a positive '
                       'WIDTH, separated by commas')
    features.append(name if not width else (name, int(width)))
  return features


def source(paths):
  """The checked input files (a `file_inputs.FileSource`)."""
  header = {'auto': None, 'yes': True, 'no': False}[FLAGS.csv_header]
  try:
    return file_inputs.open_files(paths, columns=FLAGS.columns,
                                  features=_feature_flag(), header=header)
  except errors.InvalidArgumentError as error:
    # A column or feature the files lack is a bad flag: say which.
    if error.argument in ('columns', 'features'):
      raise library_errors_as_usage(error) from None
    raise


def initial_clusters():
  """The --initial_clusters name, or the centers read from its file."""
  value = FLAGS.initial_clusters
  if value in _INIT_NAMES:
    return value
  value = os.path.expanduser(value)  # A file: ~ expanded, as for paths.
  if not value.lower().endswith(('.npy', '.csv')):
    raise flag_error('initial_clusters', f'be one of {list(_INIT_NAMES)} or '
                     'a .npy or .csv file of shape (num_clusters, d)')
  if not os.path.isfile(value):
    raise flag_error('initial_clusters', 'name an existing file (or be one '
                     f'of {list(_INIT_NAMES)})')
  return file_inputs.open_files(value).read_all(FLAGS.dtype)


def output(extensions=('.npy', '.csv')):
  """--output, with a leading ~ expanded, or None to print CSV."""
  if FLAGS.output is None:
    return None
  path = os.path.expanduser(FLAGS.output)  # As for --model_dir.
  if not path.lower().endswith(extensions):
    raise flag_error('output', f'end in {" or ".join(extensions)} (or be '
                     'left out to print CSV)')
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise flag_error('output', 'be in an existing directory')
  return path


def _same_file(a, b):
  """Whether paths `a` and `b` name one file (through links of any kind)."""
  try:
    return os.path.samefile(a, b)
  except OSError:  # One of them does not exist (yet).
    return os.path.realpath(a) == os.path.realpath(b)


def check_output_is_not_an_input(outputs, inputs):
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


def train_steps():
  """(--steps, --max_steps): each None or positive, not both given."""
  steps, max_steps = positive('steps'), positive('max_steps')
  if steps is not None and max_steps is not None:
    raise app.UsageError('Give `steps` or `max_steps`, not both. Received: '
                         f'--steps={steps} --max_steps={max_steps}')
  return steps, max_steps


def progress_every():
  """--progress_every: a non-negative integer."""
  if FLAGS.progress_every < 0:
    raise flag_error('progress_every', 'be a non-negative integer')
  return FLAGS.progress_every


def export_dir_base():
  """--export_dir_base, which must be given."""
  if not FLAGS.export_dir_base:
    raise flag_error('export_dir_base', 'be given: the directory under '
                     'which the SavedModel is written')
  return FLAGS.export_dir_base
