"""The data itself where an input_fn goes: arrays, Tensors, dicts, Datasets.

Evidence: each form gives what the equivalent input_fn gives, and both agree
with numpy (exact Lloyd, distances, inertia) or with scikit-learn.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from sklearn.cluster import KMeans as SklearnKMeans

from kmeans_estimator import KMeansClustering

import oracles
from helpers import fast_first


def _blobs(seed, n=90, d=3, k=4):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 100, size=(k, d))
  points = centers[rng.integers(k, size=n)] + rng.normal(0, 5, size=(n, d))
  return points.astype(np.float32)


POINTS = _blobs(0)
START = POINTS[[0, 30, 60, 89]]


def _estimator(model_dir, **kwargs):
  kwargs.setdefault('use_mini_batch', False)
  return KMeansClustering(4, model_dir=str(model_dir), seed=0,
                          initial_clusters=START, **kwargs)


# Every form of the same data, and the input_fn that gives the same batches.
_WHOLE_FORMS = {
    'array': lambda: POINTS,
    'float64_array': lambda: POINTS.astype(np.float64),
    'list_of_rows': lambda: POINTS.tolist(),
    'tensor': lambda: tf.constant(POINTS),
    'variable': lambda: tf.Variable(POINTS),
    'dict': lambda: {'a': POINTS[:, :1], 'b': POINTS[:, 1:]},
}


# ------------------------------------------------------------- training
@pytest.mark.parametrize('form', sorted(_WHOLE_FORMS))
def test_full_batch_train_on_data_equals_input_fn_and_numpy_lloyd(form,
                                                                  tmp_path):
  direct = _estimator(tmp_path / 'direct').train(_WHOLE_FORMS[form](),
                                                 steps=4)
  by_fn = _estimator(tmp_path / 'fn').train(_WHOLE_FORMS[form], steps=4)
  np.testing.assert_array_equal(direct.cluster_centers(),
                                by_fn.cluster_centers())
  np.testing.assert_allclose(direct.cluster_centers(),
                             oracles.lloyd(POINTS, START, 4)[0],
                             rtol=1e-4, atol=1e-3)
  assert direct.get_variable_value('global_step') == 4


def test_full_batch_train_without_steps_is_one_lloyd_step_over_all(tmp_path):
  kmeans = _estimator(tmp_path).train(POINTS)
  assert kmeans.get_variable_value('global_step') == 1
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             oracles.lloyd(POINTS, START, 1)[0],
                             rtol=1e-4, atol=1e-3)


def test_full_batch_with_batch_size_streams_batches_and_equals_lloyd(
    tmp_path):
  kmeans = _estimator(tmp_path).train(POINTS, steps=3, batch_size=25)
  assert kmeans.get_variable_value('global_step') == 3
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             oracles.lloyd(POINTS, START, 3)[0],
                             rtol=1e-4, atol=1e-3)


def test_fits_as_well_as_scikit_learn(tmp_path):
  kmeans = KMeansClustering(4, model_dir=str(tmp_path), seed=0,
                            use_mini_batch=False,
                            initial_clusters='kmeans_plus_plus')
  kmeans.train(POINTS, steps=20)
  sklearn = SklearnKMeans(4, n_init=10, random_state=0).fit(POINTS)
  ours = oracles.inertia(POINTS, kmeans.cluster_centers())
  assert ours <= sklearn.inertia_ * 1.01


def _mini_batch_oracle(batches, start):
  """The legacy mini-batch rule x <- x + (s - m x) / (n + m) in numpy, with
  the legacy start n = 1 (mini_batch_steps_per_iteration=1)."""
  centers, counts = start.astype(np.float64), np.ones(len(start))
  for batch in batches:
    index = oracles.distances(batch, centers).argmin(axis=1)
    for j in range(len(centers)):
      m = np.sum(index == j)
      if m:
        centers[j] += (batch[index == j].sum(0) - m * centers[j]) / (
            counts[j] + m)
        counts[j] += m
  return centers


def test_mini_batch_one_pass_without_steps(tmp_path):
  # 90 rows in batches of 25: 25, 25, 25, 15, in order.
  kmeans = _estimator(tmp_path, use_mini_batch=True)
  kmeans.train(POINTS, batch_size=25)
  assert kmeans.get_variable_value('global_step') == 4
  batches = [POINTS[i:i + 25] for i in range(0, 90, 25)]
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             _mini_batch_oracle(batches, START), rtol=1e-4)


def test_mini_batch_with_steps_cycles_through_the_data(tmp_path):
  direct = _estimator(tmp_path / 'direct', use_mini_batch=True)
  direct.train(tf.constant(POINTS), steps=10, batch_size=25)
  by_fn = _estimator(tmp_path / 'fn', use_mini_batch=True)
  by_fn.train(lambda: tf.data.Dataset.from_tensor_slices(POINTS).batch(
      25).repeat(), steps=10)
  assert direct.get_variable_value('global_step') == 10
  np.testing.assert_allclose(direct.cluster_centers(),
                             by_fn.cluster_centers(), rtol=1e-6)
  batches = [POINTS[i:i + 25] for i in range(0, 90, 25)] * 3
  np.testing.assert_allclose(direct.cluster_centers(),
                             _mini_batch_oracle(batches[:10], START),
                             rtol=1e-4)


@pytest.mark.parametrize('form', fast_first(2, sorted(_WHOLE_FORMS)))
def test_mini_batch_resume_continues_at_the_batch_where_it_stopped(
    form, tmp_path):
  # 90 rows in batches of 25: 4 per pass; 7 steps stop inside the 2nd pass.
  straight = _estimator(tmp_path / 'straight', use_mini_batch=True)
  straight.train(_WHOLE_FORMS[form](), steps=14, batch_size=25)
  split = _estimator(tmp_path / 'split', use_mini_batch=True)
  split.train(_WHOLE_FORMS[form](), steps=7, batch_size=25)
  split = _estimator(tmp_path / 'split', use_mini_batch=True)
  split.train(_WHOLE_FORMS[form](), max_steps=14, batch_size=25)
  assert split.get_variable_value('global_step') == 14
  np.testing.assert_array_equal(split.cluster_centers(),
                                straight.cluster_centers())
  batches = [POINTS[i:i + 25] for i in range(0, 90, 25)] * 4
  np.testing.assert_allclose(straight.cluster_centers(),
                             _mini_batch_oracle(batches[:14], START),
                             rtol=1e-4)


@pytest.mark.parametrize('weighted', [False, True])
def test_mini_batch_resume_with_several_steps_per_iteration_equals_one_run(
    weighted, tmp_path):
  # The two-copy scheme (3 steps per iteration) carries update_in_steps
  # and the copy across the split; the slices resume at global_step mod 4.
  data = {'x': POINTS, 'w': np.arange(len(POINTS), dtype=np.float32) % 3}
  kwargs = dict(use_mini_batch=True, mini_batch_steps_per_iteration=3,
                weight_column='w' if weighted else None)
  data = data if weighted else {'x': POINTS}
  straight = _estimator(tmp_path / 'straight', **kwargs)
  straight.train(data, max_steps=14, batch_size=25)
  split = _estimator(tmp_path / 'split', **kwargs)
  for max_steps in (5, 9, 14):  # Stops inside an iteration and a pass.
    _estimator(tmp_path / 'split', **kwargs).train(
        data, max_steps=max_steps, batch_size=25)
  assert split.get_variable_value('global_step') == 14
  np.testing.assert_array_equal(split.cluster_centers(),
                                straight.cluster_centers())


@pytest.mark.parametrize('weighted', fast_first(1, [False, True]))
def test_mini_batch_kmeans_parallel_with_steps_over_sliced_data_initialises_from_one_pass(
    weighted, tmp_path):
  # With steps the slices cycle without end; kmeans_parallel still takes
  # one pass over them (it said the input_fn was endless), the pass one
  # train() without steps takes, so 4 steps equal one pass of 4 slices.
  data = {'x': POINTS, 'w': np.ones(len(POINTS), np.float32)} if (
      weighted) else POINTS
  kwargs = dict(num_clusters=4, seed=0, initial_clusters='kmeans_parallel',
                use_mini_batch=True, weight_column='w' if weighted else None)
  with_steps = KMeansClustering(model_dir=str(tmp_path / 'steps'), **kwargs)
  with_steps.train(data, steps=4, batch_size=25)
  one_pass = KMeansClustering(model_dir=str(tmp_path / 'pass'), **kwargs)
  one_pass.train(data, batch_size=25)
  assert one_pass.get_variable_value('global_step') == 4
  np.testing.assert_array_equal(with_steps.cluster_centers(),
                                one_pass.cluster_centers())


def test_kmeans_parallel_over_an_endless_input_fn_is_still_refused(tmp_path):
  # The user's own endless dataset has no pass to take.
  model_dir = tmp_path / 'model'
  kmeans = KMeansClustering(4, model_dir=str(model_dir), use_mini_batch=True,
                            initial_clusters='kmeans_parallel')
  with pytest.raises(ValueError, match=(
      r"initial_clusters='kmeans_parallel' passes over all the data, but the "
      r'input_fn returns an endless dataset')):
    kmeans.train(lambda: tf.data.Dataset.from_tensor_slices(POINTS).batch(
        25).repeat(), steps=3)
  assert not model_dir.exists() or not any(
      name.startswith('model.ckpt') for name in os.listdir(model_dir))


def test_mini_batch_one_pass_after_a_stop_reads_the_rest_of_the_pass(
    tmp_path):
  # Stopped after 2 of the 4 batches of a pass: one pass without steps
  # reads batches 3 and 4, as one uninterrupted pass would.
  kmeans = _estimator(tmp_path, use_mini_batch=True)
  kmeans.train(POINTS, steps=2, batch_size=25)
  kmeans.train(POINTS, batch_size=25)
  assert kmeans.get_variable_value('global_step') == 4
  batches = [POINTS[i:i + 25] for i in range(0, 90, 25)]
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             _mini_batch_oracle(batches, START), rtol=1e-4)
  # A new pass starts at row 0.
  kmeans.train(POINTS, batch_size=25)
  assert kmeans.get_variable_value('global_step') == 8
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             _mini_batch_oracle(batches * 2, START),
                             rtol=1e-4)


def test_mini_batch_dict_features_with_batch_size(tmp_path):
  kmeans = _estimator(tmp_path, use_mini_batch=True)
  kmeans.train({'a': POINTS[:, :1], 'b': POINTS[:, 1:]}, batch_size=40)
  batches = [POINTS[i:i + 40] for i in range(0, 90, 40)]
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             _mini_batch_oracle(batches, START), rtol=1e-4)


def test_datasets_of_rows_and_of_batches(tmp_path):
  rows = tf.data.Dataset.from_tensor_slices(POINTS)
  by_rows = _estimator(tmp_path / 'rows', use_mini_batch=True)
  by_rows.train(rows, batch_size=25)
  by_batches = _estimator(tmp_path / 'batches', use_mini_batch=True)
  by_batches.train(rows.batch(25))
  batches = [POINTS[i:i + 25] for i in range(0, 90, 25)]
  want = _mini_batch_oracle(batches, START)
  for kmeans in (by_rows, by_batches):
    assert kmeans.get_variable_value('global_step') == 4
    np.testing.assert_allclose(kmeans.cluster_centers(), want, rtol=1e-4)


# ---------------------------------------------------- reading a model
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  kmeans = _estimator(tmp_path_factory.mktemp('model'))
  kmeans.train(POINTS, steps=3)
  return kmeans


NEW = _blobs(1, n=47)
_READ_FORMS = {
    'array': (lambda: NEW, None),
    'list_of_rows': (lambda: NEW.tolist(), None),
    'tensor': (lambda: tf.constant(NEW), None),
    'dict': (lambda: {'a': NEW[:, :1], 'b': NEW[:, 1:]}, None),
    'array_batches': (lambda: NEW, 10),
    'dict_batches': (lambda: {'a': NEW[:, :1], 'b': NEW[:, 1:]}, 10),
    'dataset_of_batches': (
        lambda: tf.data.Dataset.from_tensor_slices(NEW).batch(10), None),
    'dataset_of_rows': (lambda: tf.data.Dataset.from_tensor_slices(NEW), 10),
}


@pytest.mark.parametrize('form', sorted(_READ_FORMS))
def test_every_method_on_data_equals_input_fn_and_numpy(trained, form):
  make, batch_size = _READ_FORMS[form]
  kwargs = {} if batch_size is None else {'batch_size': batch_size}
  centers = trained.cluster_centers()
  distances = oracles.distances(NEW, centers)
  index = np.array(list(trained.predict_cluster_index(make(), **kwargs)))
  np.testing.assert_array_equal(index, distances.argmin(axis=1))
  np.testing.assert_array_equal(
      index, list(trained.predict_cluster_index(lambda: NEW)))
  np.testing.assert_allclose(np.stack(list(trained.transform(make(),
                                                             **kwargs))),
                             np.sqrt(distances), rtol=1e-4, atol=1e-3)
  predictions = list(trained.predict(make(), top_k=2, **kwargs))
  assert len(predictions) == len(NEW)
  np.testing.assert_array_equal(
      np.stack([p['top_k_cluster_indices'] for p in predictions]),
      np.argsort(distances, axis=1, kind='stable')[:, :2])
  evaluation = trained.evaluate(make(), **kwargs)
  assert evaluation['num_points'] == len(NEW)
  np.testing.assert_allclose(evaluation['inertia'],
                             oracles.inertia(NEW, centers), rtol=1e-4)
  np.testing.assert_allclose(
      evaluation['inertia'], trained.evaluate(lambda: NEW)['inertia'],
      rtol=1e-6)
  # The legacy score: the first batch only.
  first = NEW[:batch_size or 10] if batch_size or 'dataset' in form else NEW
  np.testing.assert_allclose(trained.score(make(), **kwargs),
                             oracles.inertia(first, centers), rtol=1e-4)


def test_predict_with_batch_size_yields_batches_of_that_size(trained):
  batches = list(trained.predict(NEW, batch_size=20,
                                 yield_single_examples=False))
  assert [len(b['cluster_index']) for b in batches] == [20, 20, 7]


def test_keywords_are_the_legacy_names(trained):
  # input_fn= still names the first argument, whatever it holds.
  np.testing.assert_array_equal(
      list(trained.predict_cluster_index(input_fn=NEW)),
      list(trained.predict_cluster_index(input_fn=lambda: NEW)))


# --------------------------------------------------------------- errors
_BAD = {
    'str': ('points.npy', TypeError,
            r"`input_fn` must be a callable returning the data, or the data "
            r"itself: .*Received: input_fn='points.npy' \(type str\)"),
    'int': (5, TypeError, r'Received: input_fn=5 \(type int\)'),
    'none': (None, TypeError, r'Received: input_fn=None \(type NoneType\)'),
    'tuple': ((POINTS, POINTS[:, 0]), TypeError,
              r'Received: input_fn=\(array\(\[\[ 5\.13[^)]{63}\.\.\. \(type tuple\)$'),
    'ragged_list': ([[1., 2.], [3.]], ValueError,
                    r'The data must be rectangular: rows of shape \(n, d\)'),
    'batch_size_with_input_fn': (
        lambda: POINTS, ValueError,
        r'`batch_size` applies to data given directly \(an array, Tensor, '
        r'dict of features or Dataset\); an input_fn batches its own data. '
        r'Received: batch_size=10 with input_fn=<function'),
    'dataset_of_batches_with_batch_size': (
        tf.data.Dataset.from_tensor_slices(POINTS).batch(5), ValueError,
        r'`batch_size` batches a Dataset of single rows, but this Dataset '
        r'yields elements of shape \(None, 3\); drop batch_size'),
    'dataset_of_rows_without_batch_size': (
        tf.data.Dataset.from_tensor_slices(POINTS), ValueError,
        r'The Dataset yields single rows \(element shape \(3,\)\); pass '
        r'batch_size= to batch them'),
    'dict_of_unequal_lengths': (
        {'a': POINTS[:, :1], 'b': POINTS[:50, 1:]}, ValueError,
        r"The features have different numbers of rows: \{'a': 90, 'b': 50\}"),
}
# Which cases get batch_size=10.
_WITH_BATCH_SIZE = {'batch_size_with_input_fn',
                    'dataset_of_batches_with_batch_size',
                    'dict_of_unequal_lengths'}


@pytest.mark.parametrize('case', sorted(_BAD))
def test_bad_data_fails_clearly_and_leaves_model_dir(case, trained,
                                                     tmp_path):
  data, error, match = _BAD[case]
  kwargs = {'batch_size': 10} if case in _WITH_BATCH_SIZE else {}
  fresh = tmp_path / 'fresh'
  with pytest.raises(error, match=match):
    _estimator(fresh).train(data, steps=1, **kwargs)
  assert not fresh.exists()
  before = oracles.snapshot(trained.model_dir)
  for method in ('train', 'evaluate', 'score', 'predict',
                 'predict_cluster_index', 'transform'):
    with pytest.raises(error, match=match):
      result = getattr(trained, method)(data, **kwargs)
      if method in ('predict', 'predict_cluster_index', 'transform'):
        list(result)
  assert oracles.snapshot(trained.model_dir) == before


@pytest.mark.parametrize('batch_size, error', [(0, ValueError),
                                               (2.5, TypeError),
                                               (True, TypeError)])
def test_bad_batch_size(trained, batch_size, error):
  with pytest.raises(error, match=(
      r'`batch_size` must be a positive integer. Received: batch_size=')):
    trained.predict(NEW, batch_size=batch_size)
