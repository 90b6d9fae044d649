"""A catalogue of bad and extreme data over every public entry point.

The table is entry point x case; every cell ends in a clear error (the type
and message are asserted) or in a documented result (asserted too), never in
NaN, a hang, or a changed model_dir. Entry points: `train` on a fresh
model_dir and on a trained one, `evaluate`, `score`, `predict`,
`predict_cluster_index`, `transform`, the command line's `train`, `predict`
and `score` (`cli.main`, on .npy/.csv files), and the four point signatures
of an exported SavedModel. The few cells that cannot exist (the command line
reads no sparse files) are listed in `_NOT_APPLICABLE` with the reason, and
a test checks that the table is complete.

Documented results (the "Edge cases" of the KMeansClustering docstring):
- 1e30 overflows float32 squared distances: training stops with a
  FloatingPointError, and reading (predict, evaluate, served signatures)
  fails with one that says to rescale the data or use dtype=tf.float64;
- 1e-30: squared distances underflow to 0 in float32, yet centers and
  distances stay finite (every point ties, and ties go to the lowest index);
- all-identical points: every center is that point; fewer distinct points
  than k: the centers are the distinct points, some repeated (their extra
  clusters stay empty); k == n: the centers are the points, inertia 0;
- zero vectors under cosine: at distance 1 from every center, cluster 0,
  and no center becomes NaN;
- a fresh model_dir learns its width from the data (so another width is no
  error there); a served call with no rows returns no rows.
The second part covers incompatible model_dirs (another num_clusters,
dimension or metric) through train, evaluate, predict and
export_saved_model, and files that must never run code (pickled .npy, CSV
cells that look like code, the package source itself).
"""

import ast
import collections
import dataclasses
import logging as std_logging
import pathlib
import pickle
import re
import shutil
from typing import Any, Callable, Optional

import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import KMeansClustering
from kmeans_estimator import build_raw_serving_input_receiver_fn
from kmeans_estimator import errors
from kmeans_estimator.io import checkpoints

import oracles
from helpers import run_cli

_K = 3
_POINTS = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
_IDENTICAL = np.array([1.5, -2.0, 0.5], np.float32)
_NON_FINITE = r'NaN or Inf'
_OVERFLOW_READ = (r'The distances to the centers overflow.*rescale the data, '
                  r'or use dtype=tf\.float64')
_OVERFLOW_TRAIN = (r'The loss became (nan|inf) at step \d+; the data likely '
                   r'overflow float32.*rescale them or use dtype=tf\.float64')

PY_TRAIN = ('train', 'train_resume')
PY_READ = ('evaluate', 'score', 'predict', 'predict_cluster_index',
           'transform')
CLI = ('cli_train', 'cli_predict', 'cli_score')
SERVE = ('serving_default', 'cluster_index', 'all_distances', 'transform_sig')
ENTRY_POINTS = PY_TRAIN + PY_READ + CLI + SERVE


def _with(value):
  points = _POINTS.copy()
  points[5, 1] = value
  return points


@dataclasses.dataclass(frozen=True)
class Case:
  """One kind of bad or extreme data.

  Attributes:
    data: the points as an input_fn returns them (also fed to signatures).
    file: writes the points to a file in a directory for the command line;
      None where no file can hold them.
    model: the trained model that reading entry points use: 'normal' (k=3,
      squared Euclidean, on _POINTS), 'cosine', or 'k_eq_n' (3 points, k=3).
    metric: distance metric of a fresh model trained on the case.
    errors: {'py' | 'cli' | 'serve' | entry point: (exception, regex)}; the
      entry point's own key wins. A kind without an error has a documented
      result, checked by `_check_result`.
  """
  data: Callable[[], Any]
  file: Optional[Callable[[pathlib.Path], pathlib.Path]]
  errors: dict
  model: str = 'normal'
  metric: str = oracles.SQUARED_EUCLIDEAN


def _npy(points):
  def write(directory):
    np.save(directory / 'points.npy', points)
    return directory / 'points.npy'
  return write


def _text(name, content):
  def write(directory):
    (directory / name).write_text(content)
    return directory / name
  return write


_NAN_ERRORS = {'py': (ValueError, _NON_FINITE), 'cli': (None, _NON_FINITE),
               'serve': (tf.errors.InvalidArgumentError, _NON_FINITE)}
_WRONG_WIDTH = r'2 features per point but the model was trained on 3'
_TRANSPOSED = (r'The input has only 2 points but num_clusters=3; .* The '
               r'input has 2 points of 40 features: points are rows, so if '
               r'each column is a point, pass the transpose')
_TRANSPOSED_WIDTH = r'40 features per point but the model was trained on 3'
CASES = {
    'nan': Case(lambda: _with(np.nan), _npy(_with(np.nan)), _NAN_ERRORS),
    'inf': Case(lambda: _with(np.inf), _npy(_with(np.inf)), _NAN_ERRORS),
    'neg_inf': Case(lambda: _with(-np.inf), _npy(_with(-np.inf)),
                    _NAN_ERRORS),
    'empty': Case(
        lambda: np.zeros((0, 3), np.float32),
        _npy(np.zeros((0, 3), np.float32)),
        {'py': (ValueError, r'The input_fn returned no points \(shape '
                            r'\(0, 3\)\); give at least one row'),
         'cli': (None, r"points\.npy' is empty \(shape \(0, 3\)\)")}),
    'zero_width': Case(
        lambda: np.zeros((5, 0), np.float32),
        _npy(np.zeros((5, 0), np.float32)),
        {'py': (ValueError, r'0 features per point'),
         'cli': (None, r'0 features per point'),
         'serve': (TypeError, r'Can not cast TensorSpec\(shape=\(5, 0\).* '
                              r'to TensorSpec\(shape=\(None, 3\)')}),
    'wrong_width': Case(
        lambda: _POINTS[:, :2], _npy(_POINTS[:, :2]),
        {'train_resume': (ValueError, _WRONG_WIDTH),
         **{e: (ValueError, _WRONG_WIDTH) for e in PY_READ},
         'cli_predict': (None, _WRONG_WIDTH),
         'cli_score': (None, _WRONG_WIDTH),
         'serve': (TypeError, r'Can not cast TensorSpec\(shape=\(40, 2\).* '
                              r'to TensorSpec\(shape=\(None, 3\)')}),
    'strings': Case(
        lambda: tf.constant([['a', 'b', 'c']] * 5),
        _npy(np.array([['a', 'b', 'c']] * 5)),
        {'py': (TypeError, r'must be numeric \(integer or float\). '
                           r'Received: dtype string'),
         'cli': (None, r'holds dtype <U1; the points must be integers or '
                       r'floats'),
         'serve': (tf.errors.InvalidArgumentError,
                   r'expected to be a float tensor but is a string tensor')}),
    'ragged': Case(
        lambda: tf.ragged.constant([[1., 2., 3.], [4.]]),
        _text('points.csv', '1,2,3\n4\n'),
        {'py': (TypeError, r'must be a dense numeric tensor.*Received a '
                           r'RaggedTensor; densify it'),
         'cli': (None, r'line 2 has 1 fields but the first row has 3'),
         'serve': (TypeError, r'RaggedTensor')}),
    # Sparse points are read by the Python entry points (NaN refused as in
    # dense ones); the served signatures take dense points only.
    'sparse': Case(
        lambda: tf.sparse.from_dense(_with(np.nan)), None,
        {'py': (ValueError, _NON_FINITE),
         'serve': (TypeError, r'SparseTensor')}),
    'huge_1e30': Case(
        lambda: _POINTS * np.float32(1e30), _npy(_POINTS * np.float32(1e30)),
        {'train': (FloatingPointError, _OVERFLOW_TRAIN),
         'train_resume': (FloatingPointError, _OVERFLOW_TRAIN),
         'py': (FloatingPointError, _OVERFLOW_READ),
         'cli_train': (None, r'overflow float32.*dtype=tf\.float64'),
         'cli': (None, _OVERFLOW_READ),
         'serve': (tf.errors.InvalidArgumentError, _OVERFLOW_READ)}),
    'tiny_1e-30': Case(lambda: _POINTS * np.float32(1e-30),
                       _npy(_POINTS * np.float32(1e-30)), {}),
    'all_identical': Case(lambda: np.tile(_IDENTICAL, (40, 1)),
                          _npy(np.tile(_IDENTICAL, (40, 1))), {}),
    'fewer_distinct_than_k': Case(
        lambda: np.repeat(_POINTS[:2], 20, axis=0),
        _npy(np.repeat(_POINTS[:2], 20, axis=0)), {}),
    'zero_vectors_cosine': Case(
        lambda: np.concatenate([np.zeros((10, 3), np.float32), _POINTS[:30]]),
        _npy(np.concatenate([np.zeros((10, 3), np.float32), _POINTS[:30]])),
        {}, model='cosine', metric=oracles.COSINE),
    'k_equals_n': Case(lambda: _POINTS[:3], _npy(_POINTS[:3]), {},
                       model='k_eq_n'),
    # 40 points of 2 features, the wrong way round: 2 "points" of 40.
    'transposed': Case(
        lambda: np.ascontiguousarray(_POINTS[:, :2].T),
        _npy(np.ascontiguousarray(_POINTS[:, :2].T)),
        {'train': (ValueError, _TRANSPOSED),
         'cli_train': (None, _TRANSPOSED),
         'py': (ValueError, _TRANSPOSED_WIDTH),
         'cli': (None, _TRANSPOSED_WIDTH),
         'serve': (TypeError, r'Can not cast TensorSpec\(shape=\(2, 40\).* '
                              r'to TensorSpec\(shape=\(None, 3\)')}),
}
_NOT_APPLICABLE = {
    (entry, 'sparse'): 'the command line reads dense .npy, .csv and '
                       'TFRecord files; no file format holds a sparse tensor'
    for entry in CLI
}
CELLS = [(entry, case) for case in CASES for entry in ENTRY_POINTS
         if (entry, case) not in _NOT_APPLICABLE]


def _fast_and_slow(cells):
  """`cells` as parametrize cases: the first to try a case or an entry point
  is fast, every other one is slow (`-m 'not slow'` leaves it out)."""
  tried = set()
  marked = []
  for entry, case in cells:
    if entry in tried and case in tried:
      marked.append(pytest.param(entry, case, marks=pytest.mark.slow))
    else:
      marked.append((entry, case))
    tried.update((entry, case))
  return marked


def _kind(entry):
  if entry in CLI:
    return 'cli'
  if entry in SERVE:
    return 'serve'
  return 'py'


def _expected_error(entry, case):
  errors = CASES[case].errors
  return errors.get(entry, errors.get(_kind(entry)))


# ------------------------------------------------------------- fixtures
def _estimator(model_dir, k=_K, metric=oracles.SQUARED_EUCLIDEAN):
  return KMeansClustering(num_clusters=k, model_dir=str(model_dir),
                          distance_metric=metric, use_mini_batch=False,
                          seed=0)


@pytest.fixture(scope='module', autouse=True)
def _keep_the_absl_log_level():
  """tf.saved_model.save leaves the 'absl' logger at WARNING; undo that, so
  that modules run after this one still see INFO logs."""
  logger = std_logging.getLogger('absl')
  level = logger.level
  yield
  logger.setLevel(level)


@pytest.fixture(scope='module')
def models(tmp_path_factory):
  """{name: (model_dir, exported signatures)} of the models read from."""
  root = tmp_path_factory.mktemp('models')
  made = {}
  for name, metric, points in [
      ('normal', oracles.SQUARED_EUCLIDEAN, _POINTS),
      ('cosine', oracles.COSINE, _POINTS),
      ('k_eq_n', oracles.SQUARED_EUCLIDEAN, _POINTS[:3])]:
    estimator = _estimator(root / name, metric=metric)
    estimator.train(lambda p=points: p, steps=2)
    export = estimator.export_saved_model(str(root / f'{name}_export'))
    made[name] = (root / name, tf.saved_model.load(export.decode()))
  return made


@dataclasses.dataclass
class Outcome:
  """What an entry point produced, in numbers, for the result checks."""
  centers: Optional[np.ndarray] = None  # After training.
  index: Optional[np.ndarray] = None  # Cluster index per point.
  distances: Optional[np.ndarray] = None  # (n, k) as predict/serving give.
  figures: tuple = ()  # Scalars: score, inertia, ...


def _run(entry, case, models, tmp_path, capsys):
  """Runs one cell; returns (Outcome, model_dir it used, snapshot before)."""
  spec = CASES[case]
  model_dir = models[spec.model][0]
  k = 3
  if entry in ('train', 'cli_train'):
    model_dir = tmp_path / 'fresh'
  elif entry == 'train_resume':
    model_dir = shutil.copytree(model_dir, tmp_path / 'resume')
  before = oracles.snapshot(model_dir)
  outcome = Outcome()
  if entry in PY_TRAIN:
    estimator = _estimator(model_dir, k, spec.metric)
    estimator.train(spec.data, steps=2)
    outcome.centers = estimator.cluster_centers()
  elif entry in PY_READ:
    estimator = _estimator(model_dir, k, spec.metric)
    if entry in ('evaluate', 'score'):
      result = getattr(estimator, entry)(spec.data)
      outcome.figures = tuple(result.values()) if isinstance(
          result, dict) else (result,)
    elif entry == 'predict':
      rows = list(estimator.predict(spec.data))
      outcome.index = np.array([r['cluster_index'] for r in rows])
      outcome.distances = np.array([r['all_distances'] for r in rows])
    elif entry == 'predict_cluster_index':
      outcome.index = np.array(list(estimator.predict_cluster_index(
          spec.data)))
    else:
      outcome.distances = np.array(list(estimator.transform(spec.data)))
  elif entry in CLI:
    path = spec.file(tmp_path)
    if entry == 'cli_train':
      args = ['train', f'--model_dir={model_dir}', f'--num_clusters={k}',
              f'--distance_metric={spec.metric}', '--nouse_mini_batch',
              '--seed=0', '--steps=2']
    elif entry == 'cli_predict':
      args = ['predict', f'--model_dir={model_dir}',
              f'--output={tmp_path / "out.npy"}']
    else:
      args = ['score', f'--model_dir={model_dir}']
    capsys.readouterr()
    status = run_cli(*args, path)
    out, err = capsys.readouterr()
    if status != 0:
      raise _CliError(err)
    if entry == 'cli_train':
      outcome.centers = tf.train.load_variable(str(model_dir), 'clusters')
    elif entry == 'cli_predict':
      outcome.index = np.load(tmp_path / 'out.npy')
    else:
      outcome.figures = tuple(
          float(v) for v in re.findall(r'^\w+: (\S+)$', out, re.M))
  else:
    signature = models[spec.model][1].signatures[
        'transform' if entry == 'transform_sig' else entry]
    output = signature(input=spec.data())['output'].numpy()
    if entry in ('serving_default', 'cluster_index'):
      outcome.index = output
    else:
      outcome.distances = output
  return outcome, model_dir, before


class _CliError(Exception):
  """The command line exited with status 1; the message is its stderr."""


# ------------------------------------------------------- the catalogue
@pytest.mark.parametrize('entry,case', _fast_and_slow(CELLS))
def test_catalogue(entry, case, models, tmp_path, capsys):
  expected = _expected_error(entry, case)
  spec = CASES[case]
  read_from = models[spec.model][0]
  before = oracles.snapshot(read_from)
  if expected is not None:
    error, message = expected
    with pytest.raises(error or _CliError, match=message) as info:
      _run(entry, case, models, tmp_path, capsys)
    if entry in CLI:  # One line on stderr, no traceback.
      assert re.match(r'kmeans-estimator \w+: error: ', str(info.value))
      assert 'Traceback' not in str(info.value)
    elif entry not in SERVE:  # A SavedModel raises TensorFlow's errors.
      # The library's own error, of a class of `errors`.
      assert isinstance(info.value, errors.KMeansError), type(info.value)
    if entry in ('train', 'cli_train'):  # A fresh model_dir stays absent.
      assert not (tmp_path / 'fresh').exists()
    elif entry == 'train_resume':  # The trained one is as it was.
      assert oracles.snapshot(tmp_path / 'resume') == before
  else:
    outcome = _run(entry, case, models, tmp_path, capsys)[0]
    for values in (outcome.centers, outcome.distances, outcome.figures):
      if values is not None:
        assert np.isfinite(np.asarray(values, np.float64)).all(), values
    _check_result(entry, case, outcome, models)
  assert oracles.snapshot(read_from) == before


def _check_result(entry, case, outcome, models):
  """The documented result of a cell that is not an error."""
  spec = CASES[case]
  data = np.asarray(spec.data(), np.float64)
  trained = entry in ('train', 'train_resume', 'cli_train')
  centers_before = tf.train.load_variable(str(models[spec.model][0]),
                                          'clusters')
  centers = outcome.centers if trained else centers_before
  if outcome.index is not None and len(data):
    distances = oracles.distances(data, centers, spec.metric)
    chosen = distances[np.arange(len(data)), outcome.index]
    # The nearest center (to float32 rounding; ties to the lowest index).
    assert np.all(chosen <= distances.min(axis=1) + 1e-5 * (
        1 + distances.min(axis=1)))
  if case == 'empty':  # Served: no rows in, no rows out.
    assert entry in SERVE
    assert len(outcome.index if outcome.index is not None else
               outcome.distances) == 0
  elif case == 'wrong_width':  # A fresh model learns the width.
    assert entry in ('train', 'cli_train') and outcome.centers.shape == (3, 2)
  elif case == 'all_identical' and entry == 'train_resume':
    # The nearest center moves onto the point; the others, empty, stay.
    moved = np.all(np.isclose(outcome.centers, _IDENTICAL), axis=1)
    assert moved.sum() == 1
    np.testing.assert_array_equal(outcome.centers[~moved], centers_before[
        ~moved])
  elif case == 'all_identical' and trained:
    np.testing.assert_allclose(outcome.centers, np.tile(_IDENTICAL, (_K, 1)),
                               rtol=1e-6)
  elif case == 'all_identical':
    for values in (outcome.index, outcome.distances):
      if values is not None:  # The same answer for every point.
        assert (values == values[0]).all()
  elif case == 'fewer_distinct_than_k' and trained and entry != (
      'train_resume'):
    # Every center is one of the two points (to float32 rounding of the
    # mean of 20 copies), and both are centers.
    nearest = oracles.distances(outcome.centers, _POINTS[:2]).argmin(axis=1)
    np.testing.assert_allclose(outcome.centers, _POINTS[:2][nearest],
                               rtol=1e-6, atol=1e-7)
    assert set(nearest) == {0, 1}
  elif case == 'zero_vectors_cosine':
    if trained:
      norms = np.linalg.norm(outcome.centers, axis=1)
      np.testing.assert_allclose(norms, 1, rtol=1e-5)
    if outcome.index is not None:
      assert (outcome.index[:10] == 0).all()  # Zero vectors: cluster 0.
    if outcome.distances is not None:
      np.testing.assert_allclose(outcome.distances[:10], 1, rtol=1e-6)
  elif case == 'k_equals_n':
    if trained and entry != 'train_resume':
      assert sorted(map(tuple, outcome.centers)) == sorted(
          map(tuple, _POINTS[:3]))
    if outcome.index is not None:
      assert sorted(outcome.index) == [0, 1, 2]  # Each point its own.
    if outcome.figures and entry != 'cli_score':
      assert outcome.figures[0] == 0  # score / inertia.
  elif case == 'tiny_1e-30' and trained and entry != 'train_resume':
    # Squared distances underflow to 0, so every point ties with every
    # center: cluster 0 takes them all; still, nothing is NaN.
    assert np.abs(outcome.centers).max() <= np.abs(_POINTS).max() * 1e-30


def test_the_catalogue_covers_every_entry_point_and_case():
  tried = collections.Counter(_kind(entry) for entry, _ in CELLS)
  errors = sum(_expected_error(e, c) is not None for e, c in CELLS)
  print(f'\n{len(CELLS)} cells tried ({len(ENTRY_POINTS)} entry points x '
        f'{len(CASES)} cases, {len(_NOT_APPLICABLE)} not applicable): '
        f'{dict(tried)}; {errors} end in an error, {len(CELLS) - errors} in '
        'a documented result')
  assert len(CELLS) + len(_NOT_APPLICABLE) == len(ENTRY_POINTS) * len(CASES)
  assert all(reason for reason in _NOT_APPLICABLE.values())
  assert len(ENTRY_POINTS) == 14 and len(CASES) == 16


# ------------------------------------------------- incompatible model_dir
def _normal_width_2():
  return _POINTS[:, :2]


# mismatch -> (estimator arguments, input_fn, message naming both values)
_MISMATCHES = {
    'num_clusters': (
        {'num_clusters': 4}, lambda: _POINTS,
        r"model_dir='.*' holds a model with num_clusters=3 but this "
        r'estimator has num_clusters=4; use the same num_clusters or another '
        r'model_dir'),
    'distance_metric': (
        {'distance_metric': oracles.COSINE}, lambda: _POINTS,
        r"holds a model trained with distance_metric='squared_euclidean' but "
        r"this estimator has distance_metric='cosine'"),
    'dimension_of_data': (
        {}, _normal_width_2,
        r'The input has 2 features per point but the model was trained on 3; '
        r'give points of width 3, or use a new model_dir'),
    'dimension_of_initial_clusters': (
        {'initial_clusters': np.zeros((_K, 4), np.float32)},
        lambda: _POINTS[:, :1].repeat(4, axis=1),
        r'holds centers of dimension 3 but initial_clusters have dimension 4'),
}
_EXPORT_WIDTH_2 = (
    r'The serving input receiver gives points of width 2 but the model was '
    r'trained on width 3')


def _call(entry, estimator, input_fn, tmp_path):
  if entry == 'train':
    return estimator.train(input_fn, steps=1)
  if entry == 'evaluate':
    return estimator.evaluate(input_fn)
  if entry == 'predict':
    return list(estimator.predict(input_fn))
  receiver = None
  if input_fn is _normal_width_2:  # Export takes its width from a receiver.
    receiver = build_raw_serving_input_receiver_fn(
        tf.TensorSpec([None, 2], tf.float32))
  return estimator.export_saved_model(str(tmp_path / 'exports'), receiver)


@pytest.mark.parametrize('entry', ['train', 'evaluate', 'predict',
                                   'export_saved_model'])
@pytest.mark.parametrize('mismatch', sorted(_MISMATCHES))
def test_an_incompatible_model_dir_is_refused_before_anything_is_written(
    mismatch, entry, models, tmp_path):
  model_dir = shutil.copytree(models['normal'][0], tmp_path / 'model')
  before = oracles.snapshot(model_dir)
  kwargs, input_fn, message = _MISMATCHES[mismatch]
  if entry == 'export_saved_model' and mismatch == 'dimension_of_data':
    message = _EXPORT_WIDTH_2
  estimator = KMeansClustering(**{
      'num_clusters': _K, 'model_dir': str(model_dir), 'seed': 0, **kwargs})
  with pytest.raises(ValueError, match=message):
    _call(entry, estimator, input_fn, tmp_path)
  assert oracles.snapshot(model_dir) == before
  # No export (export_dir_base itself may be left, empty, when the receiver
  # fails while the signatures are traced).
  assert not oracles.snapshot(tmp_path / 'exports')


@pytest.mark.parametrize('args,message', [
    (['--num_clusters=4'], r'`num_clusters` must match the model in '
                           r'--model_dir=.*which has 3 clusters'),
    (['--distance_metric=cosine'],
     r'`distance_metric` must match the model in --model_dir=.*trained with '
     r'squared_euclidean'),
], ids=['num_clusters', 'distance_metric'])
def test_the_command_line_refuses_an_incompatible_model_dir(
    args, message, models, tmp_path):
  model_dir = shutil.copytree(models['normal'][0], tmp_path / 'model')
  before = oracles.snapshot(model_dir)
  np.save(tmp_path / 'points.npy', _POINTS)
  with pytest.raises(Exception, match=message):  # absl's app.UsageError.
    run_cli('train', f'--model_dir={model_dir}', *args,
             tmp_path / 'points.npy')
  assert oracles.snapshot(model_dir) == before


# --------------------------------------------- files never execute code
class _Payload:
  """Unpickling this creates the file `path`: proof that code ran."""

  def __init__(self, path):
    self.path = str(path)

  def __reduce__(self):
    return (open, (self.path, 'w'))


@pytest.mark.parametrize('command', ['train', 'predict', 'score',
                                     'initial_clusters'])
def test_a_pickled_npy_is_refused_and_never_unpickled(command, models,
                                                      tmp_path, capsys):
  marker = tmp_path / 'code_ran'
  evil = tmp_path / 'evil.npy'
  np.save(evil, np.array([[_Payload(marker)] * 3] * 4, dtype=object),
          allow_pickle=True)
  model_dir = models['normal'][0]
  if command == 'initial_clusters':
    np.save(tmp_path / 'points.npy', _POINTS)
    args = ['train', f'--model_dir={tmp_path / "fresh"}',
            f'--initial_clusters={evil}', tmp_path / 'points.npy']
  elif command == 'train':
    args = ['train', f'--model_dir={tmp_path / "fresh"}',
            f'--num_clusters={_K}', evil]
  else:
    args = [command, f'--model_dir={model_dir}', evil]
  before = oracles.snapshot(model_dir)
  assert run_cli(*args) == 1
  assert re.search(r"evil\.npy' holds a pickled object array .*not loaded "
                   r'for safety', capsys.readouterr().err)
  assert not marker.exists()
  assert not (tmp_path / 'fresh').exists()
  assert oracles.snapshot(model_dir) == before


def test_csv_cells_are_numbers_or_errors_never_code(models, tmp_path,
                                                    capsys):
  marker = tmp_path / 'code_ran'
  csv = tmp_path / 'points.csv'
  csv.write_text(f"1,2,3\n__import__('os').system('touch {marker}'),2,3\n")
  assert run_cli('score', f'--model_dir={models["normal"][0]}', csv) == 1
  assert 'is not a number' in capsys.readouterr().err
  assert not marker.exists()


def test_a_checkpoint_holding_a_pickle_is_refused(models, tmp_path):
  model_dir = shutil.copytree(models['normal'][0], tmp_path / 'model')
  marker = tmp_path / 'code_ran'
  values = checkpoints.read_checkpoint(str(model_dir))
  values['clusters'] = np.array(pickle.dumps(_Payload(marker)))
  checkpoints.save_checkpoint(str(model_dir), 3, values)
  before = oracles.snapshot(model_dir)
  with pytest.raises(ValueError, match=r'holds invalid cluster centers '
                                       r'\(dtype \|S\d+, shape \(\)'):
    list(_estimator(model_dir).predict(lambda: _POINTS))
  assert not marker.exists()
  assert oracles.snapshot(model_dir) == before


def _calls(tree):
  """(dotted name, ast.Call) of every call in a module."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      parts, func = [], node.func
      while hasattr(func, 'attr'):
        parts.append(func.attr)
        func = func.value
      if hasattr(func, 'id'):
        parts.append(func.id)
      yield '.'.join(reversed(parts)), node


def test_the_package_never_deserializes_code():
  """No pickle, eval or exec anywhere; every np.load refuses pickles."""
  root = pathlib.Path(kmeans_estimator.__file__).parent
  unsafe_modules = {'pickle', 'cPickle', 'dill', 'cloudpickle', 'marshal',
                    'shelve', 'yaml', 'subprocess', 'joblib'}
  unsafe_calls = {'eval', 'exec', 'compile', '__import__', 'os.system',
                  'os.popen', 'input'}
  files = sorted(root.rglob('*.py'))
  assert len(files) >= 10
  np_loads = 0
  for path in files:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names = {alias.name.split('.')[0] for alias in node.names}
      elif isinstance(node, ast.ImportFrom):
        names = {(node.module or '').split('.')[0]}
      else:
        continue
      assert not names & unsafe_modules, (path, names)
    for name, call in _calls(tree):
      assert name not in unsafe_calls, (path, call.lineno, name)
      assert not name.startswith(('pickle.', 'np.load_pickle')), (path, name)
      if name in ('np.load', 'numpy.load'):
        np_loads += 1
        keywords = {k.arg: k.value for k in call.keywords}
        assert isinstance(keywords.get('allow_pickle'), ast.Constant) and (
            keywords['allow_pickle'].value is False), (path, call.lineno)
  assert np_loads >= 1  # file_inputs reads .npy files.
