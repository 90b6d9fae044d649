"""k-means on files from the command line, over the kmeans_estimator API.

Usage:
  kmeans-estimator train   --model_dir=DIR --num_clusters=K [flags] FILE...
  kmeans-estimator predict --model_dir=DIR [--output=OUT] [--distances] FILE...
  kmeans-estimator score   --model_dir=DIR FILE...
  kmeans-estimator centers --model_dir=DIR [--output=OUT]
  kmeans-estimator export  --model_dir=DIR --export_dir_base=DIR [--top_k=K] [--sparse]

FILE is a .npy, .csv or TFRecord (.tfrecord, .tfrecords, .tfrec, .gz) file of
points, or a glob; files are streamed, never read whole. OUT ends in .npy or
.csv. The user guide's command-line page has every flag and examples.
"""
# The docstring above is the usage `--helpfull` prints. This module holds
# the entry points (`run`, the console script, and `main`), the answers
# that need no TensorFlow (--help, --helpfull, --version and usage errors)
# and the silencing of TensorFlow's start-up messages. It imports neither
# TensorFlow nor the library's TensorFlow modules: `main` imports the
# commands (commands.py) once the command line is parsed.

import difflib
import os
import sys
import textwrap

from absl import app, logging
from absl import flags as absl_flags

import kmeans_estimator
from kmeans_estimator.cli import flags

COMMANDS = ('train', 'predict', 'score', 'centers', 'export')
_WITH_FILES = ('train', 'predict', 'score')
_PROG = flags.PROG
# Exit statuses: success, bad files or data (the command ran and failed),
# and a usage error (a missing or bad command or flag), as argparse and
# most Unix tools use 2.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
_TRY_HELP = f"Try '{_PROG} --help'."

FLAGS = flags.FLAGS

_COMMAND_LINES = (
    ('train', '--model_dir=DIR --num_clusters=K FILE...',
     'train, or resume, a model'),
    ('predict', '--model_dir=DIR [--output=OUT] FILE...',
     "each point's cluster index"),
    ('score', '--model_dir=DIR FILE...', 'the inertia over the files'),
    ('centers', '--model_dir=DIR [--output=OUT]', 'print or save the centers'),
    ('export', '--model_dir=DIR --export_dir_base=DIR', 'write a SavedModel'),
)
# Arguments answered before absl parses the flags (absl's --help exits with
# status 1 and lists every flag of every module).
_HELP = ('-h', '-?', '--help', '-help', '--helpshort', '-helpshort')
_HELPFULL = ('--helpfull', '-helpfull')
_VERSION = ('--version', '-version')


# --------------------------------------------------------------- answers
def version_line():
  """`kmeans-estimator X.Y.Z`, the package's version from its metadata."""
  return f'{_PROG} {kmeans_estimator.__version__}'


def _shown_default(flag):
  """' [DEFAULT]' of a flag for `--help`: '' for None or false."""
  if flag.default is None or flag.default is False:
    return ''
  if flag.boolean:
    return ' [on]'
  return f' [{flag.default_as_str.strip(chr(39))}]'


def short_help(width=79):
  """The text of `--help`: usage, commands and the common flags by group
  (every flag is in `--helpfull`)."""
  defaults = flags.TRAINING_DEFAULTS

  def wrapped(text, indent=0, first=''):
    return textwrap.wrap(text, width, initial_indent=first or ' ' * indent,
                         subsequent_indent=' ' * indent)

  lines = [f'{_PROG} {kmeans_estimator.__version__}: k-means on .npy, .csv '
           'and TFRecord files.', '',
           f'Usage: {_PROG} COMMAND [flags] [FILE...]', '', 'Commands:']
  for name, synopsis, does in _COMMAND_LINES:
    lines.append(f'  {name:<8}{synopsis:<41}{does}')
  lines += wrapped('FILE: .npy, .csv or TFRecord files, or globs (streamed, '
                   'never read whole).')
  for title, entries in flags.HELP_GROUPS:
    lines += ['', f'{title}:' if title != 'The model' else
              'The model (defaults in [ ]):']
    for name, text in entries:
      lines += wrapped(f'{text}{_shown_default(FLAGS[name])}', 26,
                       f'  --{name:<22}')
  lines += ['']
  lines += wrapped(
      "The training defaults differ from the Python API's on purpose, to "
      'give good clusters on plain data: full batch, --initial_clusters='
      f'{defaults["initial_clusters"]}, --relative_tolerance='
      f'{defaults["relative_tolerance"]:g}, --steps={defaults["steps"]}.')
  lines += wrapped(' '.join(f'--{name}' for name in flags.OTHER_FLAGS),
                   2, 'More flags: ')
  lines += wrapped('--helpfull describes every flag; -v 0 (--verbosity=0) '
                   "shows the library's and TensorFlow's log messages.")
  return '\n'.join(lines)


def _full_help():
  """The text of `--helpfull`: the usage, then every flag with its help and
  default, the command line's first, then absl's (--verbosity...)."""
  modules = sorted(FLAGS.flags_by_module_dict(),
                   key=lambda name: (name != flags.__name__, name))
  return '\n\n'.join([__doc__.strip(), 'Flags:'] + [
      FLAGS.module_help(module).strip('\n') for module in modules])


def _answer_at_once(argv):
  """Answers --help, --helpfull and --version (exit status 0) before the
  flags are parsed; returns otherwise. Arguments after `--` are not
  flags."""
  args = argv[1:]
  if '--' in args:
    args = args[:args.index('--')]
  answers = {**dict.fromkeys(_HELP, short_help),
             **dict.fromkeys(_HELPFULL, _full_help),
             **dict.fromkeys(_VERSION, version_line)}
  for arg in args:
    if arg in answers:
      try:
        print(answers[arg](), flush=True)
      except BrokenPipeError:  # `--helpfull | head`.
        _stop_writing_stdout()
      sys.exit(EXIT_OK)


# ----------------------------------------------------------- usage errors
def _suggestion(name, names, prefix=''):
  """' Did you mean X?' for the closest of `names` to `name`, or ''."""
  close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
  return f' Did you mean {prefix}{close[0]}?' if close else ''


def _usage_exit(message, command=None):
  """Prints a usage error in at most three lines and exits with status 2."""
  where = _PROG if command is None else f'{_PROG} {command}'
  sys.stdout.flush()
  print(f'{where}: error: {message}\n{_TRY_HELP}', file=sys.stderr,
        flush=True)
  return EXIT_USAGE


def _refused_value(argv):
  """(flag, value) of the first flag in `argv` whose parser refuses its
  value, or None. Finds the flag of absl's IllegalFlagValueError by
  parsing the values again (the error carries no flag)."""
  args = argv[1:]
  index = 0
  while index < len(args):
    arg = args[index]
    index += 1
    if arg == '--':
      return None
    if not arg.startswith('-') or arg == '-':
      continue
    name, equals, value = arg.lstrip('-').partition('=')
    if name not in FLAGS:
      continue
    flag = FLAGS[name]
    if not equals:
      if flag.boolean or index >= len(args):
        continue
      value = args[index]
      index += 1
    try:
      flag.parser.parse(value)
    except (TypeError, ValueError, OverflowError):
      return flag, value
  return None


def _what_values(flag):
  """What the values of `flag` must be, for a usage error."""
  kind = flag.flag_type()
  if kind == 'bool':
    return f'true or false (or --{flag.name} / --no{flag.name})'
  if kind == 'string enum':
    return f'one of {", ".join(flag.parser.enum_values)}'
  return {'int': 'an integer', 'float': 'a number'}.get(
      kind, flag.parser.syntactic_help)


def _parse_flags(argv):
  """absl's flags parser for `app.run`, with short answers and errors.

  --help, --helpfull and --version are answered with status 0. A flag that
  is unknown (with the closest known one suggested) or whose value does not
  parse is a usage error: two lines on stderr, status 2 (absl prints a
  fatal error and exits with 1).
  """
  _answer_at_once(argv)
  try:
    return FLAGS(argv)
  except absl_flags.UnrecognizedFlagError as error:
    name = error.flagname
    sys.exit(_usage_exit(f'unknown flag --{name}.'
                         + _suggestion(name, list(FLAGS), '--')))
  except absl_flags.IllegalFlagValueError as error:
    refused = _refused_value(argv)
    if refused is None:
      sys.exit(_usage_exit(str(error)))
    flag, value = refused
    sys.exit(_usage_exit(f'`{flag.name}` must be {_what_values(flag)}. '
                         f'Received: --{flag.name}={value}'))
  except absl_flags.Error as error:
    sys.exit(_usage_exit(str(error)))


# ------------------------------------------------ TensorFlow's messages
def _import_tensorflow(verbosity):
  """Imports TensorFlow with the log messages --verbosity asks for.

  Policy: without --verbosity (None) TensorFlow prints nothing: its C++ log
  level goes to TF_CPP_MIN_LOG_LEVEL=3, which hides the notices of a run
  (the CUDA 'failed call to cuInit' error on a machine without a GPU,
  XLA's service lines), and the import runs with file descriptor 2 on
  /dev/null, since its shared libraries log as they load (oneDNN, CUDA
  stubs, absl's 'before InitializeLog' line), before any setting applies.
  With --verbosity=v, absl's levels map to TensorFlow's: v >= 0 (INFO)
  shows everything, -1 warnings and errors, -2 errors, -3 nothing; the
  import is silenced below INFO (its messages are INFO). A level the
  environment sets (TF_CPP_MIN_LOG_LEVEL) is kept. A failed import
  restores stderr first, so its traceback shows.
  """
  level = 3 if verbosity is None else min(3, max(0, -verbosity))
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', str(level))
  if 'tensorflow' in sys.modules or level == 0:
    import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
    return
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, 'w', encoding='utf-8') as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow  # pylint: disable=import-outside-toplevel,unused-import,redefined-outer-name,reimported
  finally:
    os.dup2(saved, 2)
    os.close(saved)


# ------------------------------------------------------------------- main
def _command(argv):
  """(command, input files) from the positional arguments."""
  args = list(argv[1:])
  if not args:
    raise app.UsageError(
        f'Give a command: one of {", ".join(COMMANDS)}. For example: '
        f'{_PROG} train --model_dir=model --num_clusters=5 points.npy')
  command, paths = args[0], args[1:]
  if command not in COMMANDS:
    raise app.UsageError(f'The command must be one of {", ".join(COMMANDS)}'
                         f'.{_suggestion(command, COMMANDS)} Received: '
                         f'{command}')
  if command in _WITH_FILES and not paths:
    raise app.UsageError(
        f'`{command}` needs input files (.npy, .csv or TFRecord) after the '
        f'command. For example: {_PROG} {command} --model_dir=model '
        'points.npy. Received: no files')
  if command not in _WITH_FILES and paths:
    raise app.UsageError(f'`{command}` takes no input files. Received: '
                         f'{" ".join(paths)}')
  return command, paths


def _stop_writing_stdout():
  """After the reader of stdout has gone (`predict ... | head`): the
  output it did not want is dropped, quietly, as `head` asked for no more;
  stdout goes to /dev/null so that Python's flush at exit does not fail
  again."""
  try:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
  except (OSError, ValueError):  # Not a file descriptor (a test's stream).
    pass


def main(argv):
  """Runs the command named by argv[1] on the files that follow it.

  Args:
    argv: the positional arguments left after absl parsed the flags:
      [program, command, file, ...].

  Returns:
    0 on success (also when the reader of stdout stops reading, as
    `predict ... | head` does), 1 when the files, data or model_dir are bad
    (the reason is printed on stderr in one line, without a traceback).

  Raises:
    app.UsageError: a missing or bad command or flag (`run` prints it in
      two lines and exits with status 2).
  """
  command, paths = _command(argv)
  flags.check_before_reading(command)
  # Imported here, not above: it imports TensorFlow, which --help and
  # usage errors do without.
  from kmeans_estimator.cli import commands  # pylint: disable=import-outside-toplevel
  try:
    with commands.file_inputs.readable_errors():
      commands.RUNNERS[command](paths)
  except BrokenPipeError:
    _stop_writing_stdout()
    return EXIT_OK
  except commands.EXPECTED_ERRORS as error:
    print(f'{_PROG} {command}: error: {commands.error_message(error)}',
          file=sys.stderr, flush=True)
    return EXIT_FAILURE
  return EXIT_OK


def _main_quietly(argv):
  """`main` with the library's INFO logs and TensorFlow's messages hidden
  unless --verbosity (-v) asks for them (`_import_tensorflow`); usage
  errors in two lines, status 2."""
  if not FLAGS['verbosity'].present:
    # The library logs every checkpoint and loss at INFO; the progress
    # lines say that already, so the command line shows warnings.
    logging.set_verbosity(logging.WARNING)
  try:
    command, _ = _command(argv)
  except app.UsageError as error:
    return _usage_exit(str(error))
  try:
    flags.check_before_reading(command)
    _import_tensorflow(FLAGS.verbosity if FLAGS['verbosity'].present
                       else None)
    return main(argv)
  except app.UsageError as error:
    return _usage_exit(str(error), command)


def run():
  """The console script `kmeans-estimator`: `app.run` over `main`."""
  app.run(_main_quietly, flags_parser=_parse_flags)
