"""Bad arguments and bad data: a clear error, and `model_dir` left as it was.

Every error names what was wrong and what would be valid (the messages are
matched), and a failed `train` writes nothing: a fresh `model_dir` is not
created, and one holding an earlier checkpoint keeps its files byte for byte.
Prediction generators are lazy, so they are consumed with `list(...)` inside
`pytest.raises`.
"""

import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import build_raw_serving_input_receiver_fn
from kmeans_estimator.data import files as file_inputs
from kmeans_estimator import config as options
from kmeans_estimator import errors

import oracles
from helpers import run_cli
from helpers import fast_first

_K = 3
_POINTS = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
_UNTRAINED = r'No trained model in model_dir=.*call train\(\) first'
_NON_FINITE = r'The input contains NaN or Inf values; remove or impute them'


def _estimator(model_dir, **kwargs):
  kwargs = {'num_clusters': _K, 'use_mini_batch': False, 'seed': 0, **kwargs}
  return KMeansClustering(model_dir=str(model_dir), **kwargs)


_snapshot = oracles.snapshot


def _with(value, row=5, column=1):
  points = _POINTS.copy()
  points[row, column] = value
  return points


def _batches(points, batch_size=4):
  return tf.data.Dataset.from_tensor_slices(points).batch(batch_size)


def _consume(result):
  """Runs a lazy prediction generator; other results pass through."""
  return list(result) if hasattr(result, '__next__') else result


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
  """A model_dir with a full-batch model trained for 2 steps on _POINTS."""
  model_dir = tmp_path_factory.mktemp('trained') / 'model'
  _estimator(model_dir).train(lambda: _POINTS, steps=2)
  return model_dir


@pytest.fixture(scope='module')
def predictor(trained_dir):
  """An estimator on the shared trained model_dir, for read-only calls."""
  return _estimator(trained_dir)


@pytest.fixture
def trained_copy(trained_dir, tmp_path):
  """A private copy of the trained model_dir."""
  model_dir = tmp_path / 'model'
  shutil.copytree(trained_dir, model_dir)
  return model_dir


# -------------------------------------------------------- constructor args
@pytest.mark.parametrize('num_clusters,error', [
    (0, ValueError), (-1, ValueError), (2.5, TypeError), ('3', TypeError),
    (True, TypeError), (None, TypeError)])
def test_num_clusters_must_be_a_positive_integer(num_clusters, error,
                                                 tmp_path):
  with pytest.raises(error, match=re.escape(
      '`num_clusters` must be a positive integer. Received: '
      f'num_clusters={num_clusters!r}')) as raised:
    _estimator(tmp_path / 'model', num_clusters=num_clusters)
  assert isinstance(raised.value, (errors.InvalidArgumentError,
                                   errors.InvalidArgumentTypeError))
  assert raised.value.argument == 'num_clusters'
  assert raised.value.received == num_clusters
  assert not (tmp_path / 'model').exists()


@pytest.mark.parametrize('kwargs,error,match', [
    ({'initial_clusters': 'kmeans++'}, ValueError,
     r"`initial_clusters` must be one of \['random', 'kmeans_plus_plus', "
     r"'kmc2', 'kmeans_parallel'\].*Received: initial_clusters='kmeans\+\+'"),
    ({'distance_metric': 'manhattan'}, ValueError,
     r"`distance_metric` must be one of \['squared_euclidean', 'cosine'\]. "
     r"Received: distance_metric='manhattan'"),
    ({'initial_clusters': np.zeros((2, 3))}, ValueError,
     r'`initial_clusters` must have shape \(3, d\).*Received: '
     r'initial_clusters with shape \(2, 3\)'),
    ({'initial_clusters': np.zeros(3)}, ValueError,
     r'`initial_clusters` must have shape \(3, d\).*shape \(3,\)'),
    ({'initial_clusters': np.array([[0., 0., np.nan]] * 3)}, ValueError,
     r'`initial_clusters` contains NaN or Inf values; give finite centers'),
    ({'initial_clusters': np.array([['a', 'b']] * 3)}, TypeError,
     r'`initial_clusters` must be numeric'),
    ({'relative_tolerance': -1}, ValueError,
     r'`relative_tolerance` must be None or a number >= 0. Received: '
     r'relative_tolerance=-1'),
    ({'relative_tolerance': float('nan')}, ValueError,
     r'`relative_tolerance` must be None or a number >= 0'),
    ({'mini_batch_steps_per_iteration': 0}, ValueError,
     r'`mini_batch_steps_per_iteration` must be a positive integer'),
    ({'config': {'model_dir': 'x'}}, TypeError,
     r'`config` must be a kmeans_estimator.RunConfig'),
    ({'seed': '1'}, TypeError,
     r"`seed` must be an integer. Received: seed='1'"),
], ids=['unknown_init', 'unknown_metric', 'init_rows', 'init_rank',
        'init_nan', 'init_strings', 'negative_tolerance', 'nan_tolerance',
        'zero_steps_per_iteration', 'config_not_runconfig', 'seed_string'])
def test_bad_constructor_argument(kwargs, error, match, tmp_path):
  with pytest.raises(error, match=match) as raised:
    _estimator(tmp_path / 'model', **kwargs)
  # Typed, naming the argument given.
  assert isinstance(raised.value, errors.KMeansError)
  assert raised.value.argument == next(iter(kwargs))
  assert not (tmp_path / 'model').exists()


def test_model_dir_and_config_model_dir_conflict(tmp_path):
  config = RunConfig(model_dir=str(tmp_path / 'a'))
  with pytest.raises(ValueError, match=(
      r'`model_dir` and `config.model_dir` differ; give one of them.*'
      r"config.model_dir='.*a'")):
    _estimator(tmp_path / 'b', config=config)
  assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()


def test_runconfig_replace_rejects_an_unknown_field():
  with pytest.raises(ValueError, match=(
      r"RunConfig has no field\(s\) \['save_checkpoint_steps'\]; valid "
      r"fields are \[.*'save_checkpoints_steps'")):
    RunConfig().replace(save_checkpoint_steps=5)


def test_runconfig_rejects_both_checkpoint_schedules():
  match = (r'`save_checkpoints_steps` and `save_checkpoints_secs` cannot '
           r'both be set; choose one. Received: save_checkpoints_steps=5, '
           r'save_checkpoints_secs=10')
  with pytest.raises(ValueError, match=match):
    RunConfig(save_checkpoints_steps=5, save_checkpoints_secs=10)
  with pytest.raises(ValueError, match=match):
    RunConfig().replace(save_checkpoints_steps=5, save_checkpoints_secs=10)
  # Asking for steps alone drops the default time-based schedule.
  assert RunConfig(save_checkpoints_steps=5).save_checkpoints_secs is None


def test_initial_clusters_of_another_width_than_the_data(tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, initial_clusters=np.zeros((_K, 4)))
  with pytest.raises(ValueError, match=(
      r'`initial_clusters` has shape \(3, 4\) but the input has 3 features '
      r'per point; give initial_clusters of shape \(3, 3\)')):
    km.train(lambda: _POINTS, steps=1)
  assert not model_dir.exists()


def test_initial_clusters_of_another_width_than_the_checkpoint(trained_copy):
  before = _snapshot(trained_copy)
  km = _estimator(trained_copy, initial_clusters=np.zeros((_K, 4)))
  with pytest.raises(ValueError, match=(
      r'holds centers of dimension 3 but initial_clusters have dimension 4')):
    km.train(lambda: _POINTS[:, :1].repeat(4, axis=1), steps=1)
  assert _snapshot(trained_copy) == before


# ---------------------------------------------------------- steps arguments
@pytest.mark.parametrize('kwargs,error,match', [
    ({'steps': 0}, ValueError,
     r'`steps` must be a positive integer. Received: steps=0'),
    ({'steps': -2}, ValueError, r'`steps` must be a positive integer'),
    ({'steps': 1.5}, TypeError, r'`steps` must be a positive integer'),
    ({'max_steps': 0}, ValueError,
     r'`max_steps` must be a positive integer. Received: max_steps=0'),
    ({'steps': 1, 'max_steps': 5}, ValueError,
     r'Give `steps` or `max_steps`, not both. Received: steps=1, '
     r'max_steps=5'),
], ids=['steps_0', 'steps_negative', 'steps_float', 'max_steps_0', 'both'])
def test_bad_steps(kwargs, error, match, trained_copy, tmp_path):
  before = _snapshot(trained_copy)
  with pytest.raises(error, match=match):
    _estimator(trained_copy).train(lambda: _POINTS, **kwargs)
  assert _snapshot(trained_copy) == before
  fresh = tmp_path / 'fresh'
  with pytest.raises(error, match=match):
    _estimator(fresh).train(lambda: _POINTS, **kwargs)
  assert not fresh.exists()


def test_evaluate_steps_must_be_positive(predictor):
  with pytest.raises(ValueError, match=r'`steps` must be a positive integer'):
    predictor.evaluate(lambda: _POINTS, steps=0)


# ------------------------------------------------------------- bad data
def _nan_in_third_batch():
  return _batches(_with(np.nan, row=9))  # rows 8..11 are the third batch


# id -> (input_fn, error, match)
_BAD_DATA = {
    'nan_array': (lambda: _with(np.nan), ValueError, _NON_FINITE),
    'inf_tensor': (lambda: tf.constant(_with(np.inf)), ValueError,
                   _NON_FINITE),
    'nan_dict_feature': (lambda: {'a': _with(-np.inf)[:, :2],
                                  'b': _POINTS[:, 2:]}, ValueError,
                         _NON_FINITE),
    'nan_third_batch': (_nan_in_third_batch, ValueError, _NON_FINITE),
    'empty_array': (lambda: np.zeros((0, 3), np.float32), ValueError,
                    r'The input_fn returned no points \(shape \(0, 3\)\); '
                    r'give at least one row'),
    'zero_width': (lambda: np.zeros((5, 0), np.float32), ValueError,
                   r'The input has 0 features per point \(shape \(n, 0\)\); '
                   r'each point needs at least one feature'),
    'zero_width_dataset': (lambda: _batches(np.zeros((8, 0), np.float32)),
                           ValueError, r'0 features per point'),
    'rank_1': (lambda: _POINTS[:, 0], ValueError,
               r'The features must be batches: 2-D tensors of shape '
               r'\(n, d\). Received: shape \(40,\)'),
    'unbatched_dataset': (
        lambda: tf.data.Dataset.from_tensor_slices(_POINTS), ValueError,
        r'2-D tensors of shape \(n, d\).*\.batch\(n\)'),
    'strings': (lambda: np.array([['a', 'b', 'c']] * 5), TypeError,
                r'the features must be numeric \(integer or float\)'),
    'string_tensor': (lambda: tf.constant([['a', 'b', 'c']] * 5), TypeError,
                      r'must be numeric \(integer or float\). Received: '
                      r'dtype string'),
    'string_dataset': (
        lambda: _batches(tf.constant([['a', 'b', 'c']] * 8)), TypeError,
        r'must be numeric \(integer or float\)'),
    'dict_with_string': (
        lambda: {'a': _POINTS[:, :2], 'b': np.array([['x']] * 40)}, TypeError,
        r"feature 'b' must be numeric \(integer or float\)"),
    # Sparse points are read (tests/estimator/test_sparse_inputs.py); their
    # bad values are refused as dense ones are.
    'sparse_nan': (lambda: tf.sparse.from_dense(
        np.where(np.arange(_POINTS.size).reshape(_POINTS.shape) == 4,
                 np.float32(np.nan), _POINTS)), ValueError,
                   r'The input contains NaN or Inf values'),
    'ragged': (lambda: tf.ragged.constant([[1., 2., 3.], [4.]]), TypeError,
               r'must be a dense numeric tensor.*Received a RaggedTensor'),
    'wrong_width': (lambda: _POINTS[:, :2], ValueError,
                    r'The input has 2 features per point but the model was '
                    r'trained on 3; give points of width 3'),
    'wrong_width_dataset': (lambda: _batches(_POINTS[:, :2]), ValueError,
                            r'2 features per point.*trained on 3'),
    # Data are taken directly too (tests/data/test_direct.py); a file name
    # is not.
    'non_callable': ('points.npy', TypeError,
                     r'`input_fn` must be a callable returning the data, or '
                     r'the data itself: a numpy array \(or list of rows\) of '
                     r'shape \(n, d\), a Tensor, a dict of features or a '
                     r"tf.data.Dataset. Received: input_fn='points.npy' \(type "
                     r'str\)'),
}
# A fresh model learns its width from the data, so width is no error there.
_FRESH_OK = {'wrong_width', 'wrong_width_dataset'}
_READ_METHODS = ['evaluate', 'score', 'predict', 'transform',
                 'predict_cluster_index']


@pytest.mark.parametrize('case', sorted(set(_BAD_DATA) - _FRESH_OK))
def test_bad_data_train_fresh_model_dir_stays_absent(case, tmp_path):
  _, error, match = _BAD_DATA[case]
  model_dir = tmp_path / 'model'
  with pytest.raises(error, match=match) as raised:
    _estimator(model_dir).train(_BAD_DATA[case][0], steps=1)
  assert isinstance(raised.value, errors.KMeansError)  # Typed.
  if error is ValueError:
    assert isinstance(raised.value, errors.InvalidInputError)
    assert raised.value.kind in errors.INPUT_KINDS
  assert not model_dir.exists()


@pytest.mark.parametrize('case', sorted(_BAD_DATA))
def test_bad_data_train_keeps_the_earlier_checkpoint(case, trained_copy):
  _, error, match = _BAD_DATA[case]
  before = _snapshot(trained_copy)
  km = _estimator(trained_copy)
  with pytest.raises(error, match=match):
    km.train(_BAD_DATA[case][0], steps=1)
  assert _snapshot(trained_copy) == before
  assert km.get_variable_value('global_step') == 2


# `score` reads the first batch only (the legacy, documented figure), so a
# NaN in the third batch is never seen by it.
@pytest.mark.parametrize('case,method', [
    (case, method) for case in sorted(_BAD_DATA) for method in _READ_METHODS
    if (case, method) != ('nan_third_batch', 'score')])
def test_bad_data_after_training(case, method, predictor, trained_dir):
  _, error, match = _BAD_DATA[case]
  before = _snapshot(trained_dir)
  with pytest.raises(error, match=match):
    _consume(getattr(predictor, method)(_BAD_DATA[case][0]))
  assert _snapshot(trained_dir) == before


def test_nan_in_a_later_batch_fails_score_when_it_is_the_first(predictor):
  with pytest.raises(ValueError, match=_NON_FINITE):
    predictor.score(lambda: _batches(_with(np.nan, row=1)))


def test_nan_in_third_batch_full_batch_keeps_the_checkpointed_centers(
    trained_copy):
  centers = tf.train.load_variable(str(trained_copy), 'clusters')
  before = _snapshot(trained_copy)
  km = _estimator(trained_copy)
  with pytest.raises(ValueError, match=_NON_FINITE):
    km.train(_nan_in_third_batch, steps=3)
  assert _snapshot(trained_copy) == before
  np.testing.assert_array_equal(km.cluster_centers(), centers)
  # The estimator is still usable, from the checkpointed state.
  km.train(lambda: _batches(_POINTS), steps=1)
  assert km.get_variable_value('global_step') == 3


def test_nan_in_third_batch_mini_batch_writes_nothing(tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, use_mini_batch=True)
  km.train(lambda: _batches(_POINTS), steps=2)
  before = _snapshot(model_dir)
  # Two good mini-batch steps run before the third batch fails: none is kept.
  with pytest.raises(ValueError, match=_NON_FINITE):
    km.train(_nan_in_third_batch)
  assert _snapshot(model_dir) == before
  assert km.get_variable_value('global_step') == 2


# ------------------------------------------------------------ empty data
def _empty_dataset():
  return _batches(_POINTS).take(0)


@pytest.mark.parametrize('mini_batch', [False, True],
                         ids=['full_batch', 'mini_batch'])
def test_empty_dataset_train(mini_batch, trained_copy, tmp_path):
  fresh = tmp_path / 'fresh'
  with pytest.raises(ValueError, match=(
      r'The input_fn returned no points to train on \(an empty dataset\)')):
    _estimator(fresh, use_mini_batch=mini_batch).train(_empty_dataset)
  assert not fresh.exists()

  before = _snapshot(trained_copy)
  km = _estimator(trained_copy, use_mini_batch=mini_batch)
  for kwargs in ({}, {'steps': 2}):
    with pytest.raises(ValueError, match=(
        r'The input_fn returned no points to train on \(an empty dataset\)')):
      km.train(_empty_dataset, **kwargs)
  assert _snapshot(trained_copy) == before
  assert km.get_variable_value('global_step') == 2


@pytest.mark.parametrize('method', ['evaluate', 'score'])
def test_empty_dataset_evaluate(method, predictor):
  with pytest.raises(ValueError,
                     match=r'The input_fn returned no data to evaluate'):
    getattr(predictor, method)(_empty_dataset)


# ---------------------------------------------------------- initialisation
@pytest.mark.parametrize('make_input', [
    lambda: _batches(_POINTS, batch_size=2), lambda: _POINTS[:2]],
                         ids=['dataset', 'array'])
def test_kmeans_plus_plus_first_batch_smaller_than_k(make_input, tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, initial_clusters='kmeans_plus_plus')
  with pytest.raises(ValueError, match=(
      r'The first batch has 2 points but num_clusters=3; kmeans_plus_plus '
      r'needs at least num_clusters points in its first batch')):
    km.train(make_input, steps=1)
  assert not model_dir.exists()


@pytest.mark.parametrize('make_input', [
    lambda: _POINTS, lambda: _batches(_POINTS, batch_size=16)],
                         ids=['array', 'dataset'])
def test_more_clusters_than_points_with_random_init(make_input, tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, num_clusters=50, initial_clusters='random')
  with pytest.raises(ValueError, match=(
      r'The input has only 40 points but num_clusters=50; give at least '
      r'num_clusters points')):
    km.train(make_input, steps=1)
  assert not model_dir.exists()


# ------------------------------------------------------- before training
@pytest.mark.parametrize('call', [
    lambda km: km.predict(lambda: _POINTS),
    lambda km: km.predict_cluster_index(lambda: _POINTS),
    lambda km: km.transform(lambda: _POINTS),
    lambda km: km.score(lambda: _POINTS),
    lambda km: km.evaluate(lambda: _POINTS),
    lambda km: km.cluster_centers(),
    lambda km: km.get_variable_value('clusters'),
    lambda km: km.get_variable_names(),
], ids=['predict', 'predict_cluster_index', 'transform', 'score', 'evaluate',
        'cluster_centers', 'get_variable_value', 'get_variable_names'])
def test_untrained_model_says_to_call_train_first(call, tmp_path):
  model_dir = tmp_path / 'model'
  with pytest.raises(ValueError, match=_UNTRAINED):
    _consume(call(_estimator(model_dir)))
  assert not model_dir.exists()


def test_get_variable_value_unknown_name(predictor):
  with pytest.raises(ValueError, match=(
      r"`name` must be one of \['clusters', 'distance_metric', 'global_step', "
      r"'initialized'\]. Received: name='centers'")):
    predictor.get_variable_value('centers')


@pytest.mark.parametrize('predict_keys', [['scores'], 'scores', [],
                                          ['cluster_index', 'probabilities']])
def test_unknown_predict_keys(predict_keys, predictor):
  with pytest.raises(ValueError, match=(
      r"`predict_keys` must be a subset of \['all_distances', "
      r"'cluster_index', 'top_k_cluster_indices', 'top_k_distances'\]. "
      r'Received: predict_keys=')):
    list(predictor.predict(lambda: _POINTS, predict_keys=predict_keys))


# ------------------------------------------------------- stopping, hooks
def _endless():
  return tf.data.Dataset.from_tensors(_POINTS).repeat()


def test_endless_dataset_without_a_stop(trained_copy, tmp_path):
  match = (r'endless dataset, so training would never stop; pass steps= or '
           r'max_steps=, set relative_tolerance, or give a hook')
  fresh = tmp_path / 'fresh'
  with pytest.raises(ValueError, match=match):
    _estimator(fresh).train(_endless)
  assert not fresh.exists()
  before = _snapshot(trained_copy)
  with pytest.raises(ValueError, match=match):
    _estimator(trained_copy).train(_endless)
  assert _snapshot(trained_copy) == before


def test_endless_dataset_evaluate_needs_steps(predictor):
  with pytest.raises(ValueError, match=r'endless dataset; pass steps='):
    predictor.evaluate(_endless)


def test_hooks_must_be_hook_like(trained_copy):
  before = _snapshot(trained_copy)
  with pytest.raises(TypeError, match=r'`hooks` must be SessionRunHook-like'):
    _estimator(trained_copy).train(lambda: _POINTS, steps=1, hooks=[object()])
  assert _snapshot(trained_copy) == before


@pytest.mark.parametrize('kwargs, message', [
    ({'num_clusters': _K + 1},
     rf"holds a model with num_clusters={_K} but this estimator has "
     rf'num_clusters={_K + 1}; use the same num_clusters or another '
     'model_dir'),
    ({'distance_metric': 'cosine'},
     r"holds a model trained with distance_metric='squared_euclidean' but "
     r"this estimator has distance_metric='cosine'"),
])
def test_cluster_centers_refuses_a_model_that_predict_refuses(
    kwargs, message, trained_dir):
  km = _estimator(trained_dir, **kwargs)
  with pytest.raises(ValueError, match=message):
    list(km.predict_cluster_index(_POINTS))
  with pytest.raises(ValueError, match=message):
    km.cluster_centers()


# ------------------------------------------- callable initial_clusters
_CALLABLE_FIX = (r'make it return up to num_clusters centers as rows like '
                 r'the points, a float array or Tensor of shape \(m, 3\)')
_BAD_CALLABLES = {
    'too_few': (lambda p, k: p[:2], ValueError,
                r'`initial_clusters` \(a callable\) returned 2 centers over '
                r'all 40 points of the input, but num_clusters=3; make it '
                r'return num_clusters centers'),
    'too_wide': (lambda p, k: np.zeros((3, 5), np.float32), ValueError,
                 r'`initial_clusters` \(a callable\) must return centers of '
                 r'shape \(m, 3\), m <= num_clusters=3, as wide as the '
                 rf'points; {_CALLABLE_FIX}. Received: centers of shape '
                 r'\(3, 5\)'),
    # Computed from the points: the width is known only when the step runs,
    # and the message still says what came back.
    'too_wide_from_points': (
        lambda p, k: tf.concat([p[:k], p[:k, :1]], axis=1), ValueError,
        r'`initial_clusters` \(a callable\) must return centers of '
        r'shape \(m, 3\), m <= num_clusters=3, as wide as the '
        rf'points; {_CALLABLE_FIX}. Received: centers of shape '
        r'\(3, 4\)\.?$'),
    'too_narrow_from_points': (
        lambda p, k: p[:k, :2], ValueError,
        r'must return centers of shape \(m, 3\).*Received: centers of '
        r'shape \(3, 2\)\.?$'),
    'rank_1': (lambda p, k: np.zeros(3), ValueError,
               r'must return centers of shape \(m, 3\).*Received: centers '
               r'of shape \(3,\)'),
    'nan': (lambda p, k: np.full((3, 3), np.nan, np.float32), ValueError,
            r'`initial_clusters` \(a callable\) returned NaN or Inf values; '
            r'make it return finite centers'),
    'inf': (lambda p, k: tf.fill([3, 3], np.inf), ValueError,
            r'`initial_clusters` \(a callable\) returned NaN or Inf values'),
    # Finite but overflowing: it was blamed on the points.
    'huge': (lambda p, k: p[:k] * 1e30, ValueError,
             r'`initial_clusters` \(a callable\) returned values of '
             r'magnitude 2e19 or more, whose squared distances overflow '
             r'float32; give centers on the scale of the points \(or use '
             r'dtype=tf.float64\)'),
    'strings': (lambda p, k: np.array([['a'] * 3] * 3), TypeError,
                r'`initial_clusters` \(a callable\) must return numeric '
                rf'centers; {_CALLABLE_FIX}. Received: centers of dtype '
                r'string'),
    'none': (lambda p, k: None, TypeError,
             r'`initial_clusters` \(a callable\) must return a numeric array '
             r'or Tensor.*Received: NoneType None'),
}
_MODES = {
    'full_batch': {'use_mini_batch': False},
    'mini_batch': {'use_mini_batch': True},
    'hamerly': {'use_mini_batch': False, 'algorithm': 'hamerly'},
}


@pytest.mark.parametrize('mode', sorted(_MODES))
@pytest.mark.parametrize('case', sorted(_BAD_CALLABLES))
def test_callable_initial_clusters_that_returns_bad_centers_is_named(
    case, mode, tmp_path):
  function, error, message = _BAD_CALLABLES[case]
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, initial_clusters=function, **_MODES[mode])
  with pytest.raises(error, match=message):
    km.train(_POINTS, steps=2)
  assert not model_dir.exists() or not any(
      name.startswith(('model.ckpt', 'checkpoint'))
      for name in os.listdir(model_dir))


@pytest.mark.parametrize('dtype, limit', [(tf.float32, '2e19'),
                                          (tf.float64, '1e154')])
def test_initial_clusters_array_whose_squares_overflow_is_refused_up_front(
    dtype, limit, tmp_path):
  model_dir = tmp_path / 'model'
  huge = np.full((_K, 3), 1e30 if dtype == tf.float32 else 1e200)
  with pytest.raises(ValueError, match=(
      rf'`initial_clusters` has values of magnitude {limit} or more, whose '
      rf'squared distances overflow {dtype.name}; give centers on the scale '
      r'of the points.*Received: initial_clusters with a value of magnitude '
      r'1e\+(30|200)')):
    _estimator(model_dir, initial_clusters=huge, dtype=dtype)
  assert not model_dir.exists()


@pytest.mark.parametrize('mode', sorted(_MODES))
def test_callable_initial_clusters_returning_integers_is_cast(mode,
                                                              tmp_path):
  centers = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], np.int32)
  km = _estimator(tmp_path, initial_clusters=lambda p, k: centers,
                  **_MODES[mode])
  km.train(_POINTS, steps=1)
  assert np.all(np.isfinite(km.cluster_centers()))


@pytest.mark.parametrize('mode', sorted(_MODES))
def test_array_initial_clusters_of_another_width_is_named_in_every_mode(
    mode, tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, initial_clusters=np.zeros((_K, 4)),
                  **_MODES[mode])
  with pytest.raises(ValueError, match=(
      r'`initial_clusters` has shape \(3, 4\) but the input has 3 features '
      r'per point; give initial_clusters of shape \(3, 3\)')):
    km.train(_POINTS, steps=1)
  assert not model_dir.exists()


# ------------------------------------------------- sizes checked up front
@pytest.mark.parametrize('kwargs,argument,match', [
    ({'num_clusters': 10**12}, 'num_clusters',
     r'`num_clusters` must be a positive integer at most 2147483647 '
     r'\(2\*\*31 - 1.*Received: num_clusters=1000000000000'),
    ({'num_clusters': 2**63}, 'num_clusters',
     r'at most 2147483647.*Received: num_clusters=9223372036854775808'),
    ({'initial_clusters': 'kmc2', 'kmc2_chain_length': 10**9},
     'kmc2_chain_length',
     r'`kmc2_chain_length` x num_clusters .* must be at most 2\*\*31 - 1. '
     r'Received: kmc2_chain_length=1000000000, num_clusters=3'),
    ({'initial_clusters': 'kmeans_parallel',
      'kmeans_parallel_oversampling': 1e9}, 'kmeans_parallel_oversampling',
     r'Received: kmeans_parallel_oversampling=1000000000.0, num_clusters=3, '
     r'kmeans_parallel_rounds=5; lower kmeans_parallel_oversampling'),
    ({'initial_clusters': 'kmeans_parallel',
      'kmeans_parallel_rounds': 2 * 10**9}, 'kmeans_parallel_rounds',
     r'Received: kmeans_parallel_oversampling=0.5, num_clusters=3, '
     r'kmeans_parallel_rounds=2000000000; lower kmeans_parallel_rounds '
     r'\(the default is 5\)'),
    ({'kmeans_plus_plus_num_retries': 2**31}, 'kmeans_plus_plus_num_retries',
     r'`kmeans_plus_plus_num_retries` must be an integer below 2\*\*31 - 1'),
    ({'num_restarts': 2**30}, 'num_restarts',
     r'num_restarts=1073741824 x num_clusters=3 centers must number at '
     r'most 2\*\*31 - 1'),
    ({'use_mini_batch': True, 'mini_batch_steps_per_iteration': 2**63},
     'mini_batch_steps_per_iteration', r'at most 9223372036854775807'),
    ({'kmeans_parallel_oversampling': 10**400},
     'kmeans_parallel_oversampling',
     r'`kmeans_parallel_oversampling` must be a finite number > 0 that a '
     r'float holds'),
], ids=['k_1e12', 'k_2_63', 'kmc2_chain', 'parallel_oversampling',
        'parallel_rounds',
        'plus_plus_retries', 'restarts', 'steps_per_iteration',
        'oversampling_beyond_float'])
def test_sizes_beyond_tensorflow_int_limits_fail_in_the_constructor(
    kwargs, argument, match, tmp_path):
  with pytest.raises(options.SizeError, match=match) as raised:
    _estimator(tmp_path / 'model', **kwargs)
  assert raised.value.argument == argument
  assert isinstance(raised.value, ValueError)
  assert not (tmp_path / 'model').exists()


@pytest.fixture
def one_gib_machine(monkeypatch):
  """The size checks see a machine with 1 GiB of memory."""
  monkeypatch.setattr(options, 'memory_bytes', lambda: 1 << 30)


@pytest.mark.parametrize('kwargs,argument,match', [
    ({'initial_clusters': 'kmeans_plus_plus',
      'kmeans_plus_plus_num_retries': 10**9}, 'kmeans_plus_plus_num_retries',
     r'`kmeans_plus_plus_num_retries` is too large: the products of '
     r'1000000001 candidates per center with a first batch of (40|8) points '
     r'of 3 features need .* GiB, more than the 1.0 GiB of memory this '
     r"process may use \(the machine's, or a lower ulimit or cgroup "
     r'limit\). Received: kmeans_plus_plus_num_retries=1000000000; lower it'),
    ({'initial_clusters': 'kmc2', 'kmc2_chain_length': 10**8},
     'kmc2_chain_length',
     r'`kmc2_chain_length` is too large: the chain of 100000000 points and '
     r'their distances to the 3 centers need'),
    ({'initial_clusters': 'kmeans_parallel',
      'kmeans_parallel_oversampling': 1e7}, 'kmeans_parallel_oversampling',
     r'`kmeans_parallel_oversampling` is too large: 150000001 candidates of '
     r'3 features'),
    ({'initial_clusters': 'kmeans_parallel',
      'kmeans_parallel_rounds': 10**8}, 'kmeans_parallel_rounds',
     r'`kmeans_parallel_rounds` is too large: 200000001 candidates of 3 '
     r'features .* Received: kmeans_parallel_rounds=100000000; lower it '
     r'\(the default is 5\) or kmeans_parallel_oversampling'),
    ({'num_clusters': 10**8, 'initial_clusters': 'kmeans_plus_plus'},
     'num_clusters',
     r'`num_clusters` is too large: \(100000000, 3\) float32 centers need '
     r'1.1 GiB'),
], ids=['plus_plus_retries', 'kmc2_chain', 'parallel_oversampling',
        'parallel_rounds', 'num_clusters'])
@pytest.mark.parametrize('make_input', [lambda: _POINTS,
                                        lambda: _batches(_POINTS, 8)],
                         ids=['array', 'dataset'])
def test_sizes_beyond_memory_fail_before_anything_is_written(
    kwargs, argument, match, make_input, one_gib_machine, tmp_path):
  del one_gib_machine
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, **kwargs)
  with pytest.raises(options.SizeError, match=match) as raised:
    km.train(make_input, steps=1)
  assert raised.value.argument == argument
  assert not model_dir.exists()


def test_the_memory_bound_is_the_lowest_of_machine_ulimit_and_cgroup(
    monkeypatch, tmp_path):
  import resource  # pylint: disable=g-import-not-at-top
  physical = options.memory_bytes()
  cgroup_v2, cgroup_v1 = tmp_path / 'memory.max', tmp_path / 'limit'
  monkeypatch.setattr(options, '_CGROUP_LIMIT_FILES',
                      (str(cgroup_v2), str(cgroup_v1)))
  limits = {resource.RLIMIT_AS: resource.RLIM_INFINITY,
            resource.RLIMIT_DATA: resource.RLIM_INFINITY}
  monkeypatch.setattr(resource, 'getrlimit', lambda which: (
      limits.get(which, resource.RLIM_INFINITY), resource.RLIM_INFINITY))
  cgroup_v2.write_text('max\n')  # No limit, as v1's huge value.
  cgroup_v1.write_text('9223372036854771712\n')
  assert options.memory_bytes() == physical
  limits[resource.RLIMIT_DATA] = 3 << 30  # ulimit -d
  assert options.memory_bytes() == min(physical, 3 << 30)
  limits[resource.RLIMIT_AS] = 2 << 30  # ulimit -v
  assert options.memory_bytes() == min(physical, 2 << 30)
  cgroup_v1.write_text(f'{1 << 30}\n')  # A container's limit.
  assert options.memory_bytes() == min(physical, 1 << 30)
  # A request beyond the lowest limit names it.
  km = _estimator(tmp_path / 'model', initial_clusters='kmeans_plus_plus',
                  kmeans_plus_plus_num_retries=10**7)
  with pytest.raises(options.SizeError, match=(
      r'more than the 1.0 GiB of memory this process may use \(the '
      r"machine's, or a lower ulimit or cgroup limit\)")):
    km.train(_POINTS, steps=1)
  assert not (tmp_path / 'model').exists()


@pytest.mark.parametrize('kwargs,match', [
    ({'steps': 2**63}, r'`steps` must be a positive integer at most '
                       r'9223372036854775807'),
    ({'max_steps': 2**64}, r'`max_steps` must be a positive integer at most'),
    ({'batch_size': 2**63}, r'`batch_size` must be a positive integer at '
                            r'most 9223372036854775807'),
], ids=['steps', 'max_steps', 'batch_size'])
def test_train_counts_beyond_int64_are_refused(kwargs, match, tmp_path):
  model_dir = tmp_path / 'model'
  with pytest.raises(options.SizeError, match=match):
    _estimator(model_dir).train(_POINTS, **kwargs)
  assert not model_dir.exists()


# ------------------------------------------ paths and booleans, strictly
@pytest.mark.parametrize('model_dir', [b'/some/dir', 123, ''],
                         ids=['bytes', 'int', 'empty'])
def test_model_dir_must_be_a_str_or_path(model_dir, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  match = (r'`model_dir` must be a non-empty path: a str or a pathlib.Path. '
           f'Received: model_dir={re.escape(repr(model_dir))}')
  with pytest.raises(TypeError, match=match):
    KMeansClustering(_K, model_dir=model_dir)
  with pytest.raises(TypeError, match=match):
    RunConfig(model_dir=model_dir)
  with pytest.raises(TypeError, match=match):
    RunConfig().replace(model_dir=model_dir)
  assert not list(tmp_path.iterdir())  # No ./b'/some/dir' nor ./123.


def test_model_dir_accepts_a_path_and_expands_the_home_directory(
    tmp_path, monkeypatch):
  monkeypatch.setenv('HOME', str(tmp_path))
  expanded = str(tmp_path / 'model')
  assert KMeansClustering(_K, model_dir='~/model').model_dir == expanded
  assert KMeansClustering(_K, model_dir=tmp_path / 'model').model_dir == (
      expanded)
  km = KMeansClustering(_K, config=RunConfig(model_dir='~/model'))
  assert km.model_dir == km.config.model_dir == expanded
  # The same directory, spelled two ways, is no conflict.
  assert KMeansClustering(_K, model_dir=tmp_path / 'model', config=RunConfig(
      model_dir='~/model')).model_dir == expanded


@pytest.mark.parametrize('argument', ['use_mini_batch', 'run_eagerly'])
@pytest.mark.parametrize('value', ['no', 'yes', 1, None],
                         ids=['no', 'yes', 'one', 'none'])
def test_boolean_arguments_must_be_bools(argument, value, tmp_path):
  with pytest.raises(TypeError, match=(
      f'`{argument}` must be a bool \\(True or False\\). Received: '
      f'{argument}={re.escape(repr(value))}')):
    KMeansClustering(_K, model_dir=str(tmp_path / 'model'),
                     **{argument: value})
  assert not (tmp_path / 'model').exists()


def test_numpy_bools_are_bools(tmp_path):
  km = _estimator(tmp_path / 'model', use_mini_batch=np.bool_(False),
                  run_eagerly=np.bool_(False))
  km.train(_POINTS, steps=1)
  assert len(list(km.predict_cluster_index(_POINTS))) == len(_POINTS)


@pytest.mark.parametrize('call,match', [
    (lambda km, _: list(km.predict(_POINTS, yield_single_examples='no')),
     r'`yield_single_examples` must be a bool'),
    (lambda km, _: list(km.predict(_POINTS, checkpoint_path=123)),
     r'`checkpoint_path` must be a non-empty path'),
    (lambda km, _: km.evaluate(_POINTS, checkpoint_path=b'ckpt'),
     r"`checkpoint_path` must be .*Received: checkpoint_path=b'ckpt'.*"
     r'os.fsdecode'),
    (lambda km, base: km.export_saved_model(str(base), as_text='yes'),
     r'`as_text` must be a bool'),
    (lambda km, base: km.export_saved_model(str(base).encode()),
     r'`export_dir_base` must be a non-empty path'),
], ids=['yield_single_examples', 'predict_checkpoint_path',
        'evaluate_checkpoint_path', 'as_text', 'export_dir_base'])
def test_path_and_boolean_arguments_of_the_methods(call, match, predictor,
                                                   tmp_path):
  base = tmp_path / 'exports'
  with pytest.raises(TypeError, match=match):
    call(predictor, base)
  assert not base.exists()


# ------------------------------------------------ messages that guide
@pytest.mark.parametrize('dtype,magnitude,advice', [
    (tf.float32, 1e30, r'rescale them or use dtype=tf\.float64'),
    (tf.float64, 1e200,
     r'overflow float64 \(magnitudes near 1e154 or more\); rescale them '
     r'\(float64 is the widest dtype\)'),
], ids=['float32', 'float64'])
def test_overflow_advice_fits_the_dtype_in_training(dtype, magnitude, advice,
                                                    tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, dtype=dtype)
  with pytest.raises(FloatingPointError, match=advice) as raised:
    km.train(_POINTS.astype(np.float64) * magnitude, steps=1)
  if dtype == tf.float64:
    assert 'use dtype=tf.float64' not in str(raised.value)
  assert not model_dir.exists()


@pytest.mark.parametrize('method', _READ_METHODS)
def test_overflow_advice_fits_the_dtype_in_prediction(method, tmp_path):
  km = _estimator(tmp_path / 'model', dtype=tf.float64)
  km.train(_POINTS.astype(np.float64), steps=1)
  with pytest.raises(FloatingPointError, match=(
      r'The distances to the centers overflow.*above about 1e154 in '
      r'float64\); rescale the data \(float64 is the widest dtype\)')) as (
          raised):
    _consume(getattr(km, method)(_POINTS.astype(np.float64) * 1e200))
  assert 'use dtype=tf.float64' not in str(raised.value)


def _ragged_dict():
  return {'a': _POINTS[:, :2], 'b': _POINTS[:30, 2:]}


def _ragged_dict_dataset():
  return tf.data.Dataset.from_generator(
      lambda: iter([_ragged_dict()]),
      output_signature={'a': tf.TensorSpec([None, 2]),
                        'b': tf.TensorSpec([None, 1])})


_ROWS = r'The features have different numbers of rows'


@pytest.mark.parametrize('data,batch_size,match', [
    (_ragged_dict, None, _ROWS + r": \{'a': 40, 'b': 30\}; give every "
     r'feature one row per point'),
    (_ragged_dict, 8, _ROWS + r": \{'a': 40, 'b': 30\}"),
    (_ragged_dict_dataset, None,
     _ROWS + r' \(features a, b\); give every feature one row per point'),
], ids=['dict', 'dict_batch_size', 'dataset'])
@pytest.mark.parametrize('method', ['train'] + _READ_METHODS)
def test_dict_features_of_different_lengths(data, batch_size, match, method,
                                            trained_copy):
  before = _snapshot(trained_copy)
  km = _estimator(trained_copy)
  kwargs = {'steps': 1} if method == 'train' else {}
  with pytest.raises(ValueError, match=match):
    _consume(getattr(km, method)(data() if batch_size else data,
                                 batch_size=batch_size, **kwargs))
  assert _snapshot(trained_copy) == before


@pytest.mark.parametrize('init', ['random', 'kmeans_plus_plus'])
def test_too_few_points_hints_at_transposed_data(init, tmp_path):
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, num_clusters=5, initial_clusters=init)
  with pytest.raises(ValueError, match=(
      r'has (only )?2 points but num_clusters=5.* The input has 2 points of '
      r'100 features: points are rows, so if each column is a point, pass '
      r'the transpose \(array\.T\)')):
    km.train(np.zeros((2, 100), np.float32), steps=1)
  # Too few points, and too few columns to be the points either: no hint.
  with pytest.raises(ValueError, match=(
      r'has (only )?2 points but num_clusters=5')) as raised:
    km.train(np.zeros((2, 4), np.float32), steps=1)
  assert 'transpose' not in str(raised.value)
  assert not model_dir.exists()


def test_kmeans_parallel_over_a_dataset_of_too_few_points_hints_at_transposed_data(
    tmp_path):
  # Streamed k-means|| checks the count in the graph; the few points are
  # then counted for the message the other initialisations give.
  model_dir = tmp_path / 'model'
  km = _estimator(model_dir, num_clusters=5, use_mini_batch=False,
                  initial_clusters='kmeans_parallel')
  transposed = tf.data.Dataset.from_tensor_slices(
      np.ones((2, 100), np.float32)).batch(1)
  with pytest.raises(errors.InvalidInputError, match=(
      r'The input has only 2 points but num_clusters=5; .* The input has 2 '
      r'points of 100 features: points are rows, so if each column is a '
      r'point, pass the transpose \(array\.T\)')):
    km.train(lambda: transposed, steps=1)
  assert not model_dir.exists()


@pytest.mark.parametrize('destination', ['', '.', 'a/..'])
def test_assets_extra_destination_must_name_a_file(destination, predictor,
                                                   tmp_path):
  source = tmp_path / 'vocab.txt'
  source.write_text('a\n')
  base = tmp_path / 'exports'
  with pytest.raises(ValueError, match=(
      r'`assets_extra` destinations must name a file inside assets.extra/, '
      r"such as 'vocab.txt'; an empty path names the directory itself. "
      f'Received: assets_extra={{{re.escape(repr(destination))}')):
    predictor.export_saved_model(str(base),
                                 assets_extra={destination: str(source)})
  assert not base.exists()


@pytest.mark.parametrize('assets_extra,error,match', [
    (lambda d: {'x': str(d)}, ValueError,
     r'`assets_extra` sources must be files; .* is a directory'),
    (lambda d: {b'x': str(d / 'vocab.txt')}, TypeError,
     r'`assets_extra` must map destination paths to source files, both str '
     r'or pathlib.Path'),
    (lambda d: {'x': str(d / 'vocab.txt'), './x': str(d / 'vocab.txt')},
     ValueError, r"`assets_extra` names the destination 'x' twice"),
], ids=['directory_source', 'bytes_destination', 'same_destination'])
def test_assets_extra_sources_and_destinations(assets_extra, error, match,
                                               predictor, tmp_path):
  (tmp_path / 'vocab.txt').write_text('a\n')
  base = tmp_path / 'exports'
  with pytest.raises(error, match=match):
    predictor.export_saved_model(str(base),
                                 assets_extra=assets_extra(tmp_path))
  assert not base.exists()


def test_a_csv_that_is_not_utf8_is_named_in_the_error(tmp_path, capsys):
  path = tmp_path / 'latin1.csv'
  path.write_bytes('caf\xe9,x\n1,2\n3,4\n'.encode('latin-1'))
  match = (r"'.*latin1\.csv' is not UTF-8 text \(byte 3 is b'\\xe9'\); save "
           r'the CSV as UTF-8')
  with pytest.raises(ValueError, match=match):
    file_inputs.open_files(str(path))
  model_dir = tmp_path / 'model'
  assert run_cli('train', f'--model_dir={model_dir}', '--num_clusters=2',
                 path) == 1
  assert re.search(match, capsys.readouterr().err)
  assert not model_dir.exists()


@pytest.mark.parametrize('batch_size', fast_first(1, [1, 3, 1000]))
def test_a_csv_not_utf8_after_its_first_rows_is_named_by_file_and_line(
    batch_size, tmp_path, capsys):
  # Past the rows read for header detection, the bytes reach TensorFlow's
  # parser, whose error message quoting them Python could not decode.
  path = tmp_path / 'latin1.csv'
  path.write_bytes(('1,2\n' * 4 + '3,caf\xe9\n').encode('latin-1'))
  match = (r".*latin1\.csv line 5 is not UTF-8 text; save the CSV as UTF-8 "
           r'\(or ASCII\), or convert it')
  source = file_inputs.open_files(str(path))
  with pytest.raises(ValueError, match=match), file_inputs.readable_errors():
    np.concatenate(list(source.dataset(batch_size)))
  model_dir = tmp_path / 'model'
  assert run_cli('train', f'--model_dir={model_dir}', '--num_clusters=2',
                 f'--batch_size={batch_size}', path) == 1
  assert re.search(match, capsys.readouterr().err)
  assert not model_dir.exists()


def test_bytes_not_utf8_in_a_csv_column_not_in_use_are_read_past(tmp_path):
  path = tmp_path / 'labels.csv'
  path.write_bytes('x,label\n1,a\n2,caf\xe9\n'.encode('latin-1'))
  source = file_inputs.open_files(str(path), columns=['x'])
  np.testing.assert_array_equal(source.read_all(), [[1], [2]])


def test_served_dict_features_of_different_lengths(predictor, tmp_path):
  receiver = build_raw_serving_input_receiver_fn({
      'a': tf.TensorSpec([None, 2], tf.float32),
      'b': tf.TensorSpec([None, 1], tf.float32)})
  path = predictor.export_saved_model(str(tmp_path / 'exports'), receiver)
  served = tf.saved_model.load(path.decode())
  for name in ('serving_default', 'all_distances'):
    with pytest.raises(tf.errors.InvalidArgumentError, match=(
        _ROWS + r' \(features a, b\); give every feature one row per point')):
      served.signatures[name](a=_POINTS[:, :2], b=_POINTS[:30, 2:])
