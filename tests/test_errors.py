"""Typed errors: the classes of `kmeans_estimator.errors`, the channel out of
compiled checks (`graph_check` -> op error -> `translate`), a typed error
from each layer (config, data, model, estimator, cli), and no module but
errors.py recognising an error by its message text."""

import io
import pathlib
import re
import tokenize

import numpy as np
import pytest
import tensorflow as tf
from absl import app

import kmeans_estimator
from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator import config
from kmeans_estimator import distribute
from kmeans_estimator import errors
from kmeans_estimator.data import files
from kmeans_estimator.data import inputs
from kmeans_estimator.io import checkpoints
from kmeans_estimator.io import locking

from helpers import run_cli

_POINTS = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)


# ---------------------------------------------------------------- classes
@pytest.mark.parametrize('error_class, builtin', [
    (errors.InvalidArgumentError, ValueError),
    (errors.InvalidArgumentTypeError, TypeError),
    (errors.SizeError, ValueError),
    (errors.InitialClustersError, ValueError),
    (errors.SparseInputError, ValueError),
    (errors.InvalidInputError, ValueError),
    (errors.DistanceOverflowError, FloatingPointError),
    (errors.WorkerFailedError, RuntimeError),
    (errors.CheckpointWriteError, OSError),
    (errors.CheckpointExistsError, OSError),
    (errors.ModelDirLockedError, OSError),
    (errors.KerasBackendError, RuntimeError),
    (errors.NotAdaptedError, RuntimeError),
])
def test_every_class_is_a_kmeans_error_and_the_builtin_callers_catch(
    error_class, builtin):
  assert issubclass(error_class, errors.KMeansError)
  assert issubclass(error_class, builtin)
  assert error_class.__doc__ and 'Raise' in error_class.__doc__


def test_the_specific_classes_derive_from_their_general_ones():
  assert issubclass(errors.SizeError, errors.InvalidArgumentError)
  assert issubclass(errors.InitialClustersError, errors.InvalidArgumentError)
  assert issubclass(errors.CheckpointExistsError, errors.CheckpointWriteError)


def test_argument_errors_carry_the_argument_and_what_it_received():
  error = errors.InvalidArgumentError('bad', 'num_clusters', 0)
  assert (str(error), error.argument, error.received) == (
      'bad', 'num_clusters', 0)
  assert error.has_received
  twin = errors.InvalidArgumentTypeError('bad type', 'seed')
  assert (twin.argument, twin.has_received, twin.received) == (
      'seed', False, None)
  size = errors.SizeError('num_clusters', 'too many')
  assert (size.argument, str(size)) == ('num_clusters', 'too many')
  assert errors.InitialClustersError('x').argument == 'initial_clusters'


def test_input_and_overflow_errors_carry_their_kind_and_dtype():
  error = errors.InvalidInputError('NaN', kind='non_finite')
  assert (error.kind, error.argument) == ('non_finite', 'input_fn')
  assert error.kind in errors.INPUT_KINDS
  assert errors.DistanceOverflowError('big', dtype='float32').dtype == (
      'float32')
  failed = errors.WorkerFailedError('lost', lost_tasks=['/job:worker/task:1'],
                                    model_dir='m', checkpoint='c')
  assert (failed.lost_tasks, failed.model_dir, failed.checkpoint) == (
      ('/job:worker/task:1',), 'm', 'c')


def test_a_template_renders_names_and_received_values_for_any_spelling():
  error = errors.InvalidArgumentError.from_template(
      '`{features}` applies to TFRecord files; pick columns with '
      '`{columns}`. Received: {features=}', 'features', ['a', 'b'],
      columns=None)
  assert str(error) == ("`features` applies to TFRecord files; pick columns "
                        "with `columns`. Received: features=['a', 'b']")
  assert (error.argument, error.received) == ('features', ['a', 'b'])
  flags = {'features': 'feature', 'columns': 'columns'}
  assert error.render_message(
      flags.get, lambda argument, value: f'--{flags[argument]}=a,b') == (
          '`feature` applies to TFRecord files; pick columns with '
          '`columns`. Received: --feature=a,b')
  # Braces that are no argument's field are text.
  assert errors.render('{x} {y=} {z}', {'x': 1, 'y': 2}) == 'x y=2 {z}'


def test_the_old_import_paths_name_the_same_classes():
  assert config.SizeError is errors.SizeError
  assert distribute.WorkerFailedError is errors.WorkerFailedError
  assert checkpoints.CheckpointWriteError is errors.CheckpointWriteError
  assert checkpoints.CheckpointExistsError is errors.CheckpointExistsError
  assert locking.ModelDirLockedError is errors.ModelDirLockedError


def test_the_classes_are_public_through_the_errors_module_only():
  assert kmeans_estimator.errors is errors
  assert 'errors' not in kmeans_estimator.__all__
  assert 'InvalidArgumentError' not in kmeans_estimator.__all__


# ----------------------------------------------------------- graph checks
def _checked(values, message='The values must be positive'):
  check = errors.graph_check(
      tf.reduce_all(values > 0), errors.InvalidInputError, message,
      suffix=' (found here).', kind='non_finite')
  with tf.control_dependencies([check] if check is not None else []):
    return tf.identity(values)


_TRICKY = "it's \"quoted\", ]bracketed[, back\\slash,\nnew line, caf\u00e9"


@pytest.mark.parametrize('where', ['eager', 'tf.function', 'tf.data',
                                   'tf.data in tf.function'])
@pytest.mark.parametrize('message', [
    'The values must be positive', _TRICKY], ids=['plain', 'tricky'])
def test_a_graph_check_translates_to_its_typed_error_wherever_it_runs(
    where, message):
  bad = tf.constant([1.0, -1.0])
  run = {
      'eager': lambda: _checked(bad, message),
      'tf.function': lambda: tf.function(
          lambda x: _checked(x, message))(bad),
      'tf.data': lambda: list(tf.data.Dataset.from_tensors(bad).map(
          lambda x: _checked(x, message))),
      'tf.data in tf.function': lambda: tf.function(
          lambda: tf.data.Dataset.from_tensors(bad).map(
              lambda x: _checked(x, message)).reduce(
                  0.0, lambda total, x: total + tf.reduce_sum(x)))(),
  }[where]
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    run()
  assert message.split('\n')[0].split("'")[0] in raised.value.message
  typed = errors.translate(raised.value)
  assert type(typed) is errors.InvalidInputError
  assert str(typed) == message + ' (found here).'
  assert typed.kind == 'non_finite'
  with pytest.raises(errors.InvalidInputError) as again:
    with errors.translated():
      run()
  assert str(again.value) == str(typed)
  assert again.value.__cause__ is None


def test_a_check_whose_message_is_computed_in_the_graph_round_trips():
  @tf.function
  def check(values):
    count = tf.strings.as_string(tf.size(values))
    op = errors.graph_check(
        False, errors.InvalidArgumentError,
        ["row ", count, " of 'x' is ]bad["], argument='x')
    with tf.control_dependencies([op]):
      return tf.identity(values)

  with pytest.raises(errors.InvalidArgumentError,
                     match=re.escape("row 3 of 'x' is ]bad[")) as raised:
    with errors.translated():
      check(tf.zeros([3]))
  assert str(raised.value) == "row 3 of 'x' is ]bad["
  assert raised.value.argument == 'x'


def test_a_tagged_message_from_python_in_a_pipeline_round_trips():
  message = errors.tagged_message(errors.InvalidInputError,
                                  "'a.npy' cannot be read", kind='file')

  def fail(unused):
    raise ValueError(message)

  dataset = tf.data.Dataset.range(1).map(
      lambda i: tf.numpy_function(fail, [i], tf.int64))
  with pytest.raises(errors.InvalidInputError) as raised:
    with errors.translated():
      list(dataset)
  assert (str(raised.value), raised.value.kind) == (
      "'a.npy' cannot be read", 'file')


def test_errors_of_no_registered_check_pass_unchanged():
  with pytest.raises(tf.errors.InvalidArgumentError, match='plain'):
    with errors.translated():
      tf.debugging.Assert(False, ['plain'])
  unknown = tf.errors.InvalidArgumentError(
      None, None, 'x [kmeans_estimator.check:0123456789abcdef]')
  assert errors.translate(unknown) is None
  assert errors.translate(ValueError('nothing')) is None
  with pytest.raises(KeyError):
    with errors.translated():
      raise KeyError('other')


def test_graph_check_takes_only_the_library_error_classes():
  with pytest.raises(TypeError, match='error_class'):
    errors.graph_check(True, ValueError, 'message')


def test_a_typed_error_raised_while_tracing_keeps_its_class_and_fields():
  # AutoGraph would turn it into a StagingError, which is no ValueError.
  @tf.function
  def trace(x):
    raise errors.InvalidArgumentError('bad x', 'x', 1)

  with pytest.raises(errors.InvalidArgumentError) as raised:
    trace(tf.zeros([1]))
  assert (str(raised.value), raised.value.argument) == ('bad x', 'x')


# ------------------------------------------------------ one from each layer
def test_config_checks_raise_typed_errors_naming_the_argument():
  with pytest.raises(errors.InvalidArgumentError,
                     match='Received: num_clusters=0') as raised:
    config.check_positive_int('num_clusters', 0)
  assert (raised.value.argument, raised.value.received) == ('num_clusters', 0)
  with pytest.raises(errors.InvalidArgumentTypeError) as raised:
    config.check_bool('use_mini_batch', 'no')
  assert raised.value.argument == 'use_mini_batch'
  with pytest.raises(errors.SizeError) as raised:
    config.check_positive_int('steps', 2**63, maximum=config.INT64_MAX)
  assert raised.value.argument == 'steps'


def test_the_estimator_constructor_raises_typed_errors():
  with pytest.raises(errors.InvalidArgumentError,
                     match=r"Received: distance_metric='manhattan'") as raised:
    KMeansClustering(3, distance_metric='manhattan')
  assert raised.value.argument == 'distance_metric'


def test_data_adapters_raise_typed_input_errors():
  bad = _POINTS.copy()
  bad[3, 1] = np.nan
  with pytest.raises(errors.InvalidInputError,
                     match=re.escape(inputs.NON_FINITE_MESSAGE)) as raised:
    inputs.read_points(bad)
  assert raised.value.kind == 'non_finite'
  with pytest.raises(errors.InvalidArgumentTypeError) as raised:
    inputs.as_input_fn(object())
  assert raised.value.argument == 'input_fn'


def test_file_readers_raise_typed_errors(tmp_path):
  path = tmp_path / 'points.csv'
  path.write_text('x,y\n1,2\n3,oops\n')
  with pytest.raises(errors.InvalidArgumentError,
                     match=r"'w' is neither\. Received: columns=\['w'\]"
                     ) as raised:
    files.open_files(str(path), columns=['w'])
  assert raised.value.argument == 'columns'
  with pytest.raises(errors.InvalidInputError,
                     match=r"line 3, column y: 'oops' is not a number"
                     ) as raised:
    files.open_files(str(path)).read_all()
  assert raised.value.kind == 'file'
  with pytest.raises(errors.InvalidInputError, match='File not found') as (
      raised):
    files.open_files(str(tmp_path / 'missing.npy'))
  assert (raised.value.kind, raised.value.argument) == ('file', 'patterns')


def test_the_model_raises_op_errors_that_translate_to_typed_ones():
  km = KMeans(3, num_features=2, initial_clusters=lambda x, k: x[:k] * np.inf)
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    km.initialize(_POINTS)
  typed = errors.translate(raised.value)
  assert isinstance(typed, errors.InitialClustersError)
  assert str(typed) == ('`initial_clusters` (a callable) returned NaN or Inf '
                        'values; make it return finite centers.')
  too_few = KMeans(20, num_features=2, initial_clusters='kmeans_plus_plus')
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    too_few.initialize(_POINTS)
  typed = errors.translate(raised.value)
  assert (type(typed), typed.kind) == (errors.InvalidInputError,
                                       'too_few_points')


@pytest.mark.parametrize('dataset', [False, True], ids=['array', 'dataset'])
def test_the_estimator_raises_typed_errors_from_its_compiled_steps(
    dataset, tmp_path):
  bad = _POINTS.copy()
  bad[5, 0] = np.inf
  data = tf.data.Dataset.from_tensor_slices(bad).batch(4) if dataset else bad
  estimator = KMeansClustering(3, model_dir=str(tmp_path / 'm'), seed=0,
                               use_mini_batch=False)
  with pytest.raises(errors.InvalidInputError,
                     match=re.escape(inputs.NON_FINITE_MESSAGE)) as raised:
    estimator.train(data, steps=1)
  assert raised.value.kind == 'non_finite'
  assert not (tmp_path / 'm').exists()


def test_the_estimator_raises_a_typed_overflow_error(tmp_path):
  estimator = KMeansClustering(2, model_dir=str(tmp_path / 'm'), seed=0,
                               use_mini_batch=False)
  estimator.train(_POINTS, steps=1)
  with pytest.raises(errors.DistanceOverflowError,
                     match='The distances to the centers overflow') as raised:
    list(estimator.predict(np.full((3, 2), 3e38, np.float32)))
  assert raised.value.dtype == 'float32'


def test_the_cli_names_the_flag_of_the_argument_of_a_library_error(tmp_path):
  points = tmp_path / 'points.npy'
  np.save(points, _POINTS)
  with pytest.raises(app.UsageError, match=(
      r'`kmeans_parallel_oversampling` must be a finite number > 0\. '
      r'Received: --kmeans_parallel_oversampling=-1')):
    run_cli('train', f'--model_dir={tmp_path / "m"}', '--num_clusters=2',
            '--kmeans_parallel_oversampling=-1', points)
  assert not (tmp_path / 'm').exists()


# ------------------------------------------------ no message-text matching
_PACKAGE = pathlib.Path(errors.__file__).parent
# Ways of recognising an error by its text, in code (strings and comments
# are left out): `marker in str(error)`, `marker in error.message`,
# `message.index(marker)`, `message.startswith(...)`, a regex over a message.
_TEXT_MATCHING = [
    re.compile(r'\bin\s+(str|repr)\s*\('),
    re.compile(r'\bin\s+[\w.]*message\b'),
    re.compile(r'message\s*\.\s*(index|find|rfind|startswith|endswith|count|'
               r'replace)\s*\('),
    re.compile(r'\bre\s*\.\s*(search|match|fullmatch|findall)\s*\(.*'
               r'(message|str\s*\(\s*(error|err|exc|e)\s*\))'),
]


def _code_lines(source):
  """{line number: the line as code} of a readable `source`, with its
  strings (f-strings too) and comments left out."""
  skipped = {tokenize.COMMENT, tokenize.STRING, tokenize.NEWLINE, tokenize.NL}
  for name in ('FSTRING_START', 'FSTRING_MIDDLE', 'FSTRING_END'):
    if hasattr(tokenize, name):  # Python 3.12+
      skipped.add(getattr(tokenize, name))
  lines = {}
  for token in tokenize.generate_tokens(source.readline):
    if token.type not in skipped:
      lines.setdefault(token.start[0], []).append(token.string)
  return {number: re.sub(r'\s*\.\s*', '.', ' '.join(parts))
          for number, parts in lines.items()}


def test_the_text_matching_scan_finds_what_it_looks_for():
  source = io.StringIO(
      "if 'x' in str(error): pass\n"
      "if marker in error.message: pass\n"
      "detail = message[message.index(marker):]\n"
      "# marker in message, in a comment\n"
      "text = 'marker in message, in a string'\n")
  found = [number for number, line in
           _code_lines(source).items()
           if any(pattern.search(line) for pattern in _TEXT_MATCHING)]
  assert found == [1, 2, 3]


def test_no_module_but_errors_recognises_an_error_by_its_message_text():
  found = []
  for path in sorted(_PACKAGE.rglob('*.py')):
    if path == _PACKAGE / 'errors.py':
      continue
    with open(path, encoding='utf-8') as source:
      lines = _code_lines(source)
    for number, line in lines.items():
      if any(pattern.search(line) for pattern in _TEXT_MATCHING):
        found.append(f'{path.relative_to(_PACKAGE)}:{number}: {line}')
  assert not found, '\n'.join(found)


# ------------------------------------------- TensorFlow's words, quoted
# Op errors as TensorFlow 2.21 words them (from real runs): an eager
# iterator, a pipeline's check inside a tf.function, a graph's check.
_ITERATOR_ERROR = (
    '{{function_node __wrapped__IteratorGetNext_output_types_1_device_/job:'
    'localhost/replica:0/task:0/device:CPU:0}} corrupted record at 0 (Is '
    'this even a TFRecord file?) [Op:IteratorGetNext] name: ')
_PIPELINE_ERROR = (
    '{{function_node __inference_<lambda>_42}} Error in user-defined '
    'function passed to MapDataset:4 transformation with iterator: '
    'ReduceIterator::Root::ParallelMapV2: assertion failed: [The values must '
    'be positive]\n\t [[{{node Assert/Assert}}]]\n\t [[ReduceDataset]] '
    '[Op:__inference_<lambda>_42]')
_GRAPH_ERROR = (
    'Graph execution error:\n\nDetected at node Assert/Assert defined at '
    '(most recent call last):\n  File "/tmp/x.py", line 15, in <module>\n\n'
    '  File "/tmp/x.py", line 9, in g\n\nassertion failed: [The values must '
    'be positive]\n\t [[{{node Assert/Assert}}]] [Op:__inference_g_70]')


@pytest.mark.parametrize('message, want', [
    (_ITERATOR_ERROR, 'corrupted record at 0 (Is this even a TFRecord '
     'file?)'),
    (_PIPELINE_ERROR, 'assertion failed: [The values must be positive]'),
    (_GRAPH_ERROR, 'assertion failed: [The values must be positive]'),
], ids=['iterator', 'pipeline_in_function', 'graph'])
def test_tensorflow_text_is_tensorflow_s_words_without_graph_noise(
    message, want):
  assert errors.tensorflow_text(
      tf.errors.InvalidArgumentError(None, None, message)) == want
  assert errors.tensorflow_text(message, lines=5) == want


def test_an_unreadable_tfrecord_error_quotes_tensorflow_without_graph_noise(
    tmp_path):
  path = tmp_path / 'bad.tfrecord'
  path.write_bytes(b'not a record' * 8)
  with pytest.raises(errors.InvalidInputError) as raised:
    files.open_files(path)
  assert str(raised.value) == (
      f"{str(path)!r} is not a readable TFRecord file (corrupted record at 0 "
      "(Is this even a TFRecord file?)); write it with tf.io.TFRecordWriter, "
      'or give the file its right extension.')


def _bad_data(kind):
  """(points, weights) with the fault `kind` ('nan', 'inf', 'width',
  'negative_weight', 'nan_weight')."""
  points = _POINTS.copy()
  weights = np.ones(len(points), np.float32)
  if kind == 'nan':
    points[3, 1] = np.nan
  elif kind == 'inf':
    points[5, 0] = -np.inf
  elif kind == 'width':
    points = np.concatenate([points, points[:, :1]], axis=1)
  elif kind == 'negative_weight':
    weights[2] = -1.
  elif kind == 'nan_weight':
    weights[2] = np.nan
  return points, weights


def _as_input(kind, points, weights, weighted):
  """The data as `train`/`evaluate`/`predict` take it: an array (or dict),
  a Dataset, or an input_fn returning a Dataset."""
  features = {'x': points, 'w': weights} if weighted else points
  dataset = lambda: tf.data.Dataset.from_tensor_slices(features).batch(7)
  return {'array': lambda: features, 'dataset': dataset,
          'input_fn': lambda: dataset}[kind]()


@pytest.mark.parametrize('fault', ['nan', 'inf', 'width', 'negative_weight',
                                   'nan_weight'])
@pytest.mark.parametrize('form', ['array', 'dataset', 'input_fn'])
def test_every_input_error_is_the_library_s_sentence_alone(tmp_path, fault,
                                                            form):
  # Whichever check finds the fault (numpy, or an in-graph check translated
  # from TensorFlow's op error) and whichever call reads the data.
  weighted = fault.endswith('weight')
  options = dict(seed=0, use_mini_batch=False,
                 weight_column='w' if weighted else None)
  good = _as_input('array', _POINTS, np.ones(len(_POINTS), np.float32),
                   weighted)
  trained = KMeansClustering(3, model_dir=str(tmp_path / 'trained'),
                             **options)
  trained.train(good, steps=1)
  data = _as_input(form, *_bad_data(fault), weighted)
  calls = {
      'train': lambda: KMeansClustering(
          3, model_dir=str(tmp_path / 'new'), **options).train(data,
                                                                steps=1)}
  calls['evaluate'] = lambda: trained.evaluate(data)
  if not weighted:  # predict reads no weights.
    calls['predict'] = lambda: list(trained.predict(data))
  for call, run in calls.items():
    if fault == 'width' and call == 'train':
      continue  # A new model takes any width.
    with pytest.raises(errors.InvalidInputError) as raised:
      run()
    message = str(raised.value)
    assert raised.value.kind == ('weights' if weighted else
                                 'width' if fault == 'width' else
                                 'non_finite'), (call, message)
    assert message.startswith('The '), (call, message)
    for noise in ('{{', '[[', '[Op:', 'node ', errors._CHECK_TAG, '\n',  # pylint: disable=protected-access
                  'assertion failed'):
      assert noise not in message, (call, noise, message)
