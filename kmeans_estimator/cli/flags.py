"""The command line's flags and the checks that need only their values.

absl flags are defined only in the CLI, and all of them here. This module
imports neither TensorFlow nor the library's TensorFlow modules (option
names come from `kmeans_estimator.constants`), so that `--help`,
`--version` and a usage error are answered at once; the checks that read
files or checkpoints are in `commands.py`. A check raises `app.UsageError`
in the error idiom ("`flag` must ... Received: --flag=value") before
anything is read or written; `library_errors_as_usage` does the same for a
library error about an argument that a flag sets, through the
argument->flag table.

Every `KMeansClustering` constructor argument is a flag of the same name,
except `feature_columns` (`--columns` and `--feature` pick the files'
columns and features), `config` (its parts `--save_checkpoints_steps`,
`--save_checkpoints_secs`, `--save_summary_steps`, `--keep_checkpoint_max`)
and `model_dir` itself. Some defaults differ from the Python API's on
purpose (see `TRAINING_DEFAULTS`).
"""

import os
from typing import Any

from absl import app, flags

from kmeans_estimator import constants

# The program's name in messages.
PROG = 'kmeans-estimator'

FLAGS = flags.FLAGS

# The command line's defaults that differ from the Python API's legacy ones
# (which stay as they were for compatibility), chosen to give good clusters
# on plain data without flags: full-batch Lloyd steps from k-means||
# centers (which, unlike k-means++ here, sample every batch of the files,
# not the first one), until the loss stops improving or the step cap.
TRAINING_DEFAULTS: dict[str, Any] = {
    'use_mini_batch': False,
    'initial_clusters': constants.KMEANS_PARALLEL_INIT,
    'relative_tolerance': 1e-4,
    'steps': 300,
}
# The full-batch algorithms, as `kmeans_estimator.algorithms.names()` lists
# them (a test checks that they agree).
ALGORITHMS = (constants.LLOYD, constants.HAMERLY, constants.YINYANG)
_INITS = ', '.join(constants.INIT_METHODS)

# --------------------------------------------------------------- the model
flags.DEFINE_string(
    'model_dir', None,
    'Directory of the checkpoints (required). `train` creates it or resumes '
    'from its latest checkpoint.')
flags.DEFINE_integer(
    'num_clusters', None,
    'Number of clusters k. Needed to train a new model (unless '
    '--initial_clusters is a file); the other commands read it from the '
    'checkpoint.')
flags.DEFINE_string(
    'initial_clusters', TRAINING_DEFAULTS['initial_clusters'],
    f'{_INITS}, or a .npy/.csv file of initial centers of shape '
    '(num_clusters, d). kmeans_parallel samples all the files; '
    'kmeans_plus_plus and kmc2 choose from the first batch (with '
    '--use_mini_batch the default is kmeans_plus_plus).')
flags.DEFINE_enum(
    'distance_metric', constants.SQUARED_EUCLIDEAN_DISTANCE,
    list(constants.DISTANCE_METRICS),
    'Distance metric. Models that record their metric use it and need no '
    'flag.')
flags.DEFINE_integer(
    'seed', None,
    'Integer seed of the initialisation (default: a random seed, printed '
    'after training).')
# ------------------------------------------------------------ training
flags.DEFINE_integer(
    'steps', TRAINING_DEFAULTS['steps'],
    'Train at most this many more steps (stopping earlier at '
    '--relative_tolerance). A full-batch step is one pass over the files; '
    'mini-batches cycle through the files.')
flags.DEFINE_integer(
    'max_steps', None,
    'Train until the global step reaches this (instead of --steps).')
flags.DEFINE_float(
    'relative_tolerance', TRAINING_DEFAULTS['relative_tolerance'],
    'Stop when |loss - previous| / (1 + |previous|) falls below this; 0 '
    'never stops early. With --use_mini_batch the default is none (batch '
    'losses differ by chance).')
flags.DEFINE_bool(
    'use_mini_batch', TRAINING_DEFAULTS['use_mini_batch'],
    'Mini-batch updates (one step per batch of --batch_size points) '
    'instead of full-batch Lloyd steps (one step per pass over the files).')
flags.DEFINE_enum(
    'algorithm', constants.LLOYD, list(ALGORITHMS),
    'Full-batch algorithm: lloyd, or hamerly or yinyang, which skip '
    'distances that bounds rule out; those two read the files into '
    'memory.')
flags.DEFINE_integer(
    'num_restarts', 1,
    'Initialisations trained side by side, sharing each pass over the '
    "files; the one of lowest loss is kept (scikit-learn's n_init). Above 1 "
    'it needs full batch and a named --initial_clusters; train resumes a '
    'model only with the same value.')
flags.DEFINE_enum(
    'empty_cluster', constants.KEEP_EMPTY,
    list(constants.EMPTY_CLUSTER_POLICIES),
    'An empty cluster keeps its center (keep), or takes a point far from '
    'its center (farthest_point, as scikit-learn does).')
flags.DEFINE_integer(
    'batch_size', 1024,
    'Points read per batch: the mini-batch size, and the memory bound of '
    'full-batch training and prediction.')
flags.DEFINE_integer(
    'mini_batch_steps_per_iteration', 1,
    'Refresh the assignment centers every this many mini-batch steps.')
flags.DEFINE_integer(
    'kmeans_plus_plus_num_retries', 2,
    'Extra k-means++ candidates per center; negative means 2 + log(k).')
flags.DEFINE_integer(
    'kmc2_chain_length', 200, 'Markov chain length per center for kmc2.')
flags.DEFINE_integer(
    'kmeans_parallel_rounds', 5,
    'Sampling rounds (passes over the files) of kmeans_parallel.')
flags.DEFINE_float(
    'kmeans_parallel_oversampling', 0.5,
    'Candidates drawn per kmeans_parallel round, as a multiple of k.')
flags.DEFINE_enum(
    'dtype', 'float32', ['float32', 'float64'],
    'Float type of the centers and the computation.')
flags.DEFINE_bool(
    'run_eagerly', False, 'Run steps eagerly, not compiled (for debugging).')
# RunConfig.
flags.DEFINE_integer(
    'save_checkpoints_steps', None,
    'Also checkpoint every this many steps (a checkpoint is always written '
    'at the end of training).')
flags.DEFINE_float(
    'save_checkpoints_secs', None,
    'Also checkpoint when this many seconds have passed (default 600 '
    'unless --save_checkpoints_steps).')
flags.DEFINE_integer(
    'save_summary_steps', 100,
    'Write the TensorBoard loss summary every this many steps.')
flags.DEFINE_integer(
    'keep_checkpoint_max', 5, 'Checkpoints to keep; 0 keeps all.')
# ---------------------------------------------------------- input files
flags.DEFINE_list(
    'columns', None,
    '.csv/.npy: the columns of the points, as header names or 0-based '
    'indices (default: all but --weight_column).')
flags.DEFINE_list(
    'feature', None,
    'TFRecord: the tf.train.Example features of the points, in order, as '
    'NAME or NAME:WIDTH (default: every float or int64 feature of the '
    'first record but --weight_column, by name).')
flags.DEFINE_string(
    'weight_column', None,
    'The sample weight of each point: a column (header name or 0-based '
    'index) of .csv/.npy files, or a one-value feature of TFRecords. A '
    'point of weight w counts as w copies of it.')
flags.DEFINE_enum(
    'csv_header', 'auto', ['auto', 'yes', 'no'],
    '.csv: whether the first row is a header (auto detects it).')
# -------------------------------------------------------------- outputs
flags.DEFINE_string(
    'output', None,
    'predict, centers: write to this .npy or .csv file (default: print '
    'CSV).')
flags.DEFINE_bool(
    'distances', False,
    'predict: also write the distances to every center (those of '
    'KMeansClustering.transform).')
flags.DEFINE_string(
    'export_dir_base', None,
    'export: the SavedModel goes to a new timestamped directory under this '
    'one.')
flags.DEFINE_integer(
    'top_k', None,
    'export: also serve a \'top_k\' signature: each point\'s nearest this '
    'many centers, nearest first (export_saved_model\'s top_k).')
flags.DEFINE_bool(
    'sparse', False,
    'export: also serve sparse twins of the point signatures, taking '
    'indices, values and dense_shape (export_saved_model\'s sparse).')
flags.DEFINE_bool(
    'progress', True,
    'train: show progress (--noprogress: only the final summary).')
flags.DEFINE_float(
    'progress_every_secs', 10,
    'train, when the output is not a terminal: print a progress line every '
    'this many seconds (0: every step). On a terminal one line is updated '
    'in place.')
flags.DEFINE_bool('version', False, 'Print the version and exit.')

# The flags `--help` shows, by group, each with a few words (the flags'
# own help is in --helpfull, which lists every flag).
HELP_GROUPS = (
    ('The model', (
        ('model_dir', 'checkpoint directory (required)'),
        ('num_clusters', 'k, to train a new model'),
        ('initial_clusters', f'{_INITS}, or a .npy/.csv file of centers'),
        ('distance_metric', 'squared_euclidean or cosine'),
        ('seed', 'seed of the initialisation (default: drawn, printed)'),
    )),
    ('Training', (
        ('steps', 'at most this many more steps'),
        ('max_steps', 'or: until this global step'),
        ('relative_tolerance', 'stop when the loss changes less; 0: never; '
                               'none with --use_mini_batch'),
        ('use_mini_batch', 'mini-batch steps instead of full-batch passes'),
        ('algorithm', ', '.join(ALGORITHMS) + ' (full-batch steps)'),
        ('num_restarts', "trainings side by side; keep the best (n_init)"),
        ('empty_cluster', 'keep or farthest_point'),
        ('batch_size', 'points per batch read (or per mini-batch)'),
    )),
    ('Input files', (
        ('columns', '.csv/.npy columns of the points (names or indices)'),
        ('feature', 'TFRecord features of the points, NAME or NAME:WIDTH'),
        ('weight_column', 'column or feature of the sample weights'),
        ('csv_header', 'yes, no or auto'),
    )),
    ('Output', (
        ('output', 'predict, centers: .npy or .csv file (default: print)'),
        ('distances', 'predict: also the distances to every center'),
        ('export_dir_base', 'export: directory of the SavedModels'),
        ('top_k', "export: also a 'top_k' signature of this k"),
        ('sparse', 'export: also the sparse-input twins'),
        ('progress_every_secs', 'seconds between progress lines when not on '
                                'a terminal (0: every step)'),
    )),
)
# The rest of the flags defined here, named at the end of `--help`.
OTHER_FLAGS = ('mini_batch_steps_per_iteration', 'kmeans_plus_plus_num_retries',
               'kmc2_chain_length', 'kmeans_parallel_rounds',
               'kmeans_parallel_oversampling', 'dtype', 'run_eagerly',
               'save_checkpoints_steps', 'save_checkpoints_secs',
               'save_summary_steps', 'keep_checkpoint_max', 'progress')


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


def feature_flag():
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


def weight_column():
  """--weight_column, or None; not empty."""
  value = FLAGS.weight_column
  if value is not None and not value.strip():
    raise flag_error('weight_column', 'name a column or feature (or be left '
                     'out)', value=repr(value))
  return value


def initial_clusters_name():
  """The initialisation method --initial_clusters names (None for a file).

  Policy: mini-batch training cycles through the files without end, and
  kmeans_parallel needs whole passes over them, so with --use_mini_batch
  the default is kmeans_plus_plus (from the first batch), and an explicit
  kmeans_parallel is a usage error.
  """
  value = FLAGS.initial_clusters
  if value not in constants.INIT_METHODS:
    return None
  if FLAGS.use_mini_batch and value == constants.KMEANS_PARALLEL_INIT:
    if FLAGS['initial_clusters'].present:
      raise flag_error('initial_clusters', 'not be kmeans_parallel with '
                       '--use_mini_batch, which cycles through the files '
                       'without end; use kmeans_plus_plus (the first batch) '
                       'or full batch')
    return constants.KMEANS_PLUS_PLUS_INIT
  return value


def initial_clusters_file():
  """None when --initial_clusters names a method, else its file's path
  (a leading ~ expanded), which must be an existing .npy or .csv file."""
  value = FLAGS.initial_clusters
  if initial_clusters_name() is not None:
    return None
  value = os.path.expanduser(value)  # A file: ~ expanded, as for paths.
  names = list(constants.INIT_METHODS)
  if not value.lower().endswith(('.npy', '.csv')):
    raise flag_error('initial_clusters', f'be one of {names} or a .npy or '
                     '.csv file of shape (num_clusters, d)')
  if not os.path.isfile(value):
    raise flag_error('initial_clusters', 'name an existing file (or be one '
                     f'of {names})')
  return value


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
  """(steps, max_steps) of `train`: each None or positive.

  Policy: --steps and --max_steps are not both given; without either,
  training runs at most `TRAINING_DEFAULTS['steps']` more steps (the
  default of --steps), so there is always a cap.
  """
  max_steps = positive('max_steps')
  if max_steps is not None:
    if FLAGS['steps'].present:
      raise app.UsageError(
          'Give `steps` or `max_steps`, not both. Received: '
          f'--steps={FLAGS.steps} --max_steps={max_steps}')
    return None, max_steps
  return positive('steps', required=True), None


def relative_tolerance():
  """--relative_tolerance as the estimator takes it.

  Policy: the default (1e-4) applies to full-batch training, whose step
  losses are of the same data; with --use_mini_batch each step's loss is of
  another batch, so two can be close by chance, and the default there is
  None (no early stop). A value given on the command line always applies
  (the library checks it).
  """
  if FLAGS.use_mini_batch and not FLAGS['relative_tolerance'].present:
    return None
  return FLAGS.relative_tolerance


def progress_every_secs():
  """--progress_every_secs: a finite number >= 0."""
  value = FLAGS.progress_every_secs
  if not 0 <= value < float('inf'):
    raise flag_error('progress_every_secs', 'be a number of seconds >= 0 '
                     '(0 prints every step)')
  return value


def save_checkpoints_secs():
  """--save_checkpoints_secs: None (RunConfig's default), or a finite
  number > 0."""
  value = FLAGS.save_checkpoints_secs
  if value is not None and not 0 < value < float('inf'):
    raise flag_error('save_checkpoints_secs', 'be a number of seconds > 0')
  return value


def export_dir_base():
  """--export_dir_base, which must be given."""
  if not FLAGS.export_dir_base:
    raise flag_error('export_dir_base', 'be given: the directory under '
                     'which the SavedModel is written')
  return FLAGS.export_dir_base


def check_before_reading(command):
  """The checks of `command`'s flags that need no file read, run before
  TensorFlow is imported, so that these usage errors come at once.

  The command runs them again, with the checks that read the files and the
  checkpoint (`commands.model_options`), in the same order; this is an
  early answer, not the only check.
  """
  path = model_dir()
  if command == 'export':
    export_dir_base()
    positive('top_k')
  if command in ('predict', 'centers'):
    output()
  if command != 'train':
    if not os.path.isdir(path):
      raise flag_error('model_dir', 'hold a trained model (run '
                       f'`{PROG} train` first)')
    return
  train_steps()
  positive('batch_size', required=True)
  progress_every_secs()
  positive('num_clusters')
  if (FLAGS.num_clusters is None and not os.path.isdir(path) and
      initial_clusters_file() is None):
    raise flag_error('num_clusters', 'be given to train a new model in '
                     f'--model_dir={path}')
