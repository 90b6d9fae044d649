"""Sample weights (`weight_column`, and `weights` in the core).

Evidence: weights of 1 give bit-identical results to no weights; integer
weights give the results of repeated rows; weighted Lloyd matches
scikit-learn's `KMeans.fit(X, sample_weight=w)` (centers and inertia);
`evaluate` matches a numpy weighted inertia; a weighted mini-batch step
matches a numpy oracle of the update; bad weights give a ValueError naming
`weight_column` and leave model_dir as it was.
"""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.cluster import KMeans as SkKMeans

from kmeans_estimator import KMeansClustering
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.model import KMeans

import oracles
from helpers import fast_first

_K = 4


def _data(seed, n=150, d=3):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(n, d))
  return points, rng


def _core(init, **kwargs):
  return KMeans(_K, initial_clusters=init, dtype=tf.float64, **kwargs)


def _estimator(model_dir, **kwargs):
  kwargs = {'num_clusters': _K, 'use_mini_batch': False, 'seed': 0,
            'dtype': tf.float64, **kwargs}
  return KMeansClustering(model_dir=str(model_dir), **kwargs)


# ------------------------------------------------------------------ core
@pytest.mark.parametrize('chunk_elements', [7, 2**18])
def test_cluster_statistics_weighted_match_numpy(chunk_elements):
  points, rng = _data(0)
  weights = rng.uniform(0, 3, len(points))
  centers = points[:_K]
  sums, counts, loss = distances_lib.cluster_statistics(
      tf.constant(points), tf.constant(centers), 'squared_euclidean',
      chunk_elements, tf.constant(weights))
  d = oracles.distances(points, centers)
  index = d.argmin(1)
  expected_sums = np.stack([(weights[index == j, None] *
                             points[index == j]).sum(0) for j in range(_K)])
  expected_counts = np.array([weights[index == j].sum() for j in range(_K)])
  np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(counts, expected_counts, rtol=1e-12)
  np.testing.assert_allclose(loss, (weights * d.min(1)).sum(), rtol=1e-12)


@pytest.mark.parametrize('use_mini_batch', [False, True])
@pytest.mark.parametrize('metric', ['squared_euclidean', 'cosine'])
def test_weights_of_one_equal_no_weights(use_mini_batch, metric):
  points, _ = _data(1)
  init = points[:_K]
  plain = _core(init, distance_metric=metric, use_mini_batch=use_mini_batch)
  weighted = _core(init, distance_metric=metric,
                   use_mini_batch=use_mini_batch, weighted=True)
  for _ in range(3):
    plain.step(points)
    weighted.step(points, np.ones(len(points)))
  np.testing.assert_array_equal(plain.clusters.numpy(),
                                weighted.clusters.numpy())
  assert float(plain.loss(points)) == float(
      weighted.loss(points, np.ones(len(points))))


def _callable_init(points, k):
  return points[-k:]


@pytest.mark.parametrize('mode', ['full_batch', 'hamerly', 'mini_batch'])
@pytest.mark.parametrize('init', fast_first(2, [
    'random', 'kmeans_plus_plus', 'kmeans_parallel', 'streamed_parallel',
    'array', 'callable']))
def test_weights_of_one_equal_no_weights_from_initialisation_on(init, mode):
  # float32, where any difference in the draws or sums would show.
  points = _data(11, n=90)[0].astype(np.float32)
  ones = np.ones(len(points), np.float32)
  initial = {'array': points[:_K], 'callable': _callable_init,
             'streamed_parallel': 'kmeans_parallel'}.get(init, init)
  models = [KMeans(_K, initial_clusters=initial, random_seed=5,
                   use_mini_batch=(mode == 'mini_batch'), weighted=weighted,
                   num_features=3)
            for weighted in (False, True)]
  plain, weighted = models
  if init == 'streamed_parallel':
    plain.initialize_from_dataset(
        tf.data.Dataset.from_tensor_slices(points).batch(25))
    weighted.initialize_from_dataset(
        tf.data.Dataset.from_tensor_slices((points, ones)).batch(25))
  else:
    plain.initialize(points)
    weighted.initialize(points, ones)
  np.testing.assert_array_equal(plain.clusters.numpy(),
                                weighted.clusters.numpy())
  if mode == 'hamerly':
    states = [plain.hamerly_state(points), weighted.hamerly_state(points, ones)]
  for _ in range(3):
    if mode == 'hamerly':
      states[0] = plain.hamerly_step(points, states[0])[1]
      states[1] = weighted.hamerly_step(points, states[1], ones)[1]
    else:
      plain.step(points)
      weighted.step(points, ones)
  np.testing.assert_array_equal(plain.clusters.numpy(),
                                weighted.clusters.numpy())


@pytest.mark.parametrize('seed', range(10))
def test_integer_weights_draw_what_repeated_rows_draw_kmeans_plus_plus(seed):
  # Small integer data: every sum of distances is exact, so the weighted
  # draw and the draw among the repeated rows invert the same cumulative
  # sums (the policy in `initializers.kmeans_plus_plus`).
  rng = np.random.default_rng(seed)
  points = rng.integers(-8, 9, size=(50, 2)).astype(np.float32)
  weights = rng.integers(0, 4, len(points)).astype(np.float32)
  weighted = KMeans(_K, initial_clusters='kmeans_plus_plus', random_seed=seed)
  repeated = KMeans(_K, initial_clusters='kmeans_plus_plus', random_seed=seed)
  weighted.initialize(points, weights)
  repeated.initialize(np.repeat(points, weights.astype(int), axis=0))
  np.testing.assert_array_equal(weighted.clusters.numpy(),
                                repeated.clusters.numpy())


_ESTIMATOR_MODES = {
    'full_batch': (dict(use_mini_batch=False), None),
    'mini_batch': (dict(use_mini_batch=True), None),
    'hamerly': (dict(use_mini_batch=False, algorithm='hamerly'), None),
    # Slices of 25 rows: mini-batch cycles through them, full batch sums
    # them in each step.
    'mini_batch_sliced': (dict(use_mini_batch=True), 25),
    'full_batch_sliced': (dict(use_mini_batch=False), 25),
}


@pytest.mark.parametrize('init, mode', fast_first(len(_ESTIMATOR_MODES), [
    (init, mode) for init in ('random', 'kmeans_plus_plus')
    for mode in sorted(_ESTIMATOR_MODES)] + [
        ('kmeans_parallel', 'mini_batch_sliced')]))
def test_estimator_weight_column_of_ones_equals_no_weights(
    tmp_path, init, mode):
  points = _data(12, n=80)[0].astype(np.float32)
  options, batch_size = _ESTIMATOR_MODES[mode]
  kwargs = dict(initial_clusters=init, dtype=tf.float32, **options)
  weighted = _estimator(tmp_path / 'w', weight_column='w', **kwargs)
  weighted.train({'x': points, 'w': np.ones(len(points))}, steps=5,
                 batch_size=batch_size)
  plain = _estimator(tmp_path / 'p', **kwargs)
  plain.train({'x': points}, steps=5, batch_size=batch_size)
  np.testing.assert_array_equal(weighted.cluster_centers(),
                                plain.cluster_centers())


@pytest.mark.parametrize('seed', range(5))
def test_integer_weights_equal_repeated_rows_lloyd(seed):
  points, rng = _data(seed)
  weights = rng.integers(0, 4, len(points)).astype(np.float64)
  init = points[:_K]
  weighted, repeated = _core(init), _core(init)
  rows = np.repeat(points, weights.astype(int), axis=0)
  for _ in range(5):
    w_stats = weighted.full_batch_step(points, weights)
    r_stats = repeated.full_batch_step(rows)
  np.testing.assert_allclose(weighted.clusters.numpy(),
                             repeated.clusters.numpy(), atol=1e-12)
  np.testing.assert_allclose(float(w_stats['loss']), float(r_stats['loss']),
                             rtol=1e-12)
  np.testing.assert_array_equal(w_stats['cluster_sizes'],
                                r_stats['cluster_sizes'])
  assert int(w_stats['num_points']) == len(rows)
  assert float(w_stats['total_weight']) == weights.sum()


def test_dataset_of_weighted_batches_equals_one_tensor():
  points, rng = _data(2)
  weights = rng.uniform(0, 2, len(points))
  init = points[:_K]
  whole, batched = _core(init), _core(init)
  dataset = tf.data.Dataset.from_tensor_slices((points, weights)).batch(40)
  for _ in range(4):
    whole.full_batch_step(points, weights)
    batched.full_batch_step(dataset)
  np.testing.assert_allclose(whole.clusters.numpy(),
                             batched.clusters.numpy(), atol=1e-12)


@pytest.mark.parametrize('seed', range(5))
def test_weighted_lloyd_matches_sklearn(seed):
  points, rng = _data(seed)
  weights = rng.uniform(0, 3, len(points))
  init = points[:_K]
  km = _core(init)
  iterations = 6
  for _ in range(iterations):
    km.full_batch_step(points, weights)
  sk = SkKMeans(_K, init=init, n_init=1, max_iter=iterations,
                algorithm='lloyd', tol=0).fit(points, sample_weight=weights)
  np.testing.assert_allclose(km.clusters.numpy(), sk.cluster_centers_,
                             atol=1e-10)
  # scikit-learn's inertia_ is the weighted inertia at its final centers.
  np.testing.assert_allclose(float(km.loss(points, weights)), sk.inertia_,
                             rtol=1e-10)


def test_hamerly_weighted_equals_lloyd_weighted():
  points, rng = _data(3)
  weights = rng.uniform(0, 3, len(points))
  init = points[:_K]
  lloyd, hamerly = _core(init), _core(init)
  state = hamerly.hamerly_state(points, weights)
  for _ in range(5):
    lloyd.full_batch_step(points, weights)
    _, state = hamerly.hamerly_step(points, state, weights)
  np.testing.assert_allclose(lloyd.clusters.numpy(),
                             hamerly.clusters.numpy(), atol=1e-12)


def test_weighted_mini_batch_step_matches_numpy():
  points, rng = _data(4)
  weights = rng.uniform(0, 2, len(points))
  init = points[:_K]
  km = _core(init, use_mini_batch=True, weighted=True)
  # Counts start at 1, as without weights (the legacy rule).
  centers, seen = init.copy(), np.ones(_K)
  for batch in range(3):
    rows = slice(50 * batch, 50 * batch + 50)
    x, w = points[rows], weights[rows]
    km.train_step(x, w)
    # x_j <- x_j + (s - m x_j) / (n + m), with weighted s and m.
    index = oracles.distances(x, centers).argmin(1)
    for j in range(_K):
      m = w[index == j].sum()
      s = (w[index == j, None] * x[index == j]).sum(0)
      if m > 0:
        centers[j] += (s - m * centers[j]) / (seen[j] + m)
      seen[j] += m
  np.testing.assert_allclose(km.clusters.numpy(), centers, atol=1e-12)
  np.testing.assert_allclose(km.cluster_counts.numpy(), seen, rtol=1e-12)


def test_mini_batch_weights_need_weighted_model():
  points, _ = _data(5)
  km = _core(points[:_K], use_mini_batch=True)
  with pytest.raises(ValueError, match='weighted=True'):
    km.train_step(points, np.ones(len(points)))


@pytest.mark.parametrize('init', ['kmeans_plus_plus', 'random'])
@pytest.mark.parametrize('seed', range(10))
def test_zero_weight_points_are_never_centers(init, seed):
  points, rng = _data(seed, n=60)
  weights = np.zeros(len(points))
  chosen = rng.choice(len(points), 8, replace=False)
  weights[chosen] = rng.uniform(0.5, 2, 8)
  km = KMeans(_K, initial_clusters=init, random_seed=seed, dtype=tf.float64)
  assert bool(km.initialize(points, weights))
  for center in km.clusters.numpy():
    row = np.flatnonzero((points == center).all(1))
    assert row.size and weights[row[0]] > 0


@pytest.mark.parametrize('streamed', [False, True])
def test_kmeans_parallel_ignores_zero_weight_points(streamed):
  # Points of weight 0 lie far away: a center among them would show.
  points, rng = _data(6, n=80)
  weights = np.zeros(len(points))
  weights[:40] = rng.uniform(0.5, 2, 40)
  points[40:] += 1000.0
  km = KMeans(_K, initial_clusters='kmeans_parallel', random_seed=0,
              dtype=tf.float64, num_features=3)
  if streamed:
    km.initialize_from_dataset(
        tf.data.Dataset.from_tensor_slices((points, weights)).batch(17))
  else:
    km.initialize(points, weights)
  assert np.all(np.abs(km.clusters.numpy()) < 100)


@pytest.mark.parametrize('init', ['kmeans_plus_plus', 'random'])
def test_one_point_with_all_the_weight_is_the_first_center(init):
  points, _ = _data(7, n=30)
  weights = np.zeros(len(points))
  weights[17] = 5.0
  km = KMeans(1, initial_clusters=init, random_seed=3, dtype=tf.float64)
  km.initialize(points, weights)
  np.testing.assert_array_equal(km.clusters.numpy()[0], points[17])


def test_kmc2_with_weights_is_refused():
  points, _ = _data(8)
  km = KMeans(_K, initial_clusters='kmc2', dtype=tf.float64)
  with pytest.raises(ValueError, match="initial_clusters='kmc2' does not "
                     'support sample weights'):
    km.initialize(points, np.ones(len(points)))


# ------------------------------------------------------------- estimator
def test_estimator_integer_weights_equal_repeated_rows(tmp_path):
  points, rng = _data(9)
  weights = rng.integers(0, 4, len(points)).astype(np.float64)
  init = points[:_K]
  weighted = _estimator(tmp_path / 'w', initial_clusters=init,
                        weight_column='w')
  weighted.train({'x': points, 'w': weights}, steps=5)
  repeated = _estimator(tmp_path / 'r', initial_clusters=init)
  repeated.train(np.repeat(points, weights.astype(int), axis=0), steps=5)
  np.testing.assert_allclose(weighted.cluster_centers(),
                             repeated.cluster_centers(), atol=1e-12)
  assert (weighted.training_summary.cluster_sizes ==
          repeated.training_summary.cluster_sizes)


@pytest.mark.parametrize('batch_size', [None, 40])
def test_estimator_matches_sklearn_and_weighted_inertia(tmp_path, batch_size):
  points, rng = _data(10)
  weights = rng.uniform(0, 3, len(points))
  init = points[:_K]
  est = _estimator(tmp_path, initial_clusters=init, weight_column='w')
  data = {'x': points, 'w': weights}
  est.train(data, steps=6, batch_size=batch_size)
  sk = SkKMeans(_K, init=init, n_init=1, max_iter=6, algorithm='lloyd',
                tol=0).fit(points, sample_weight=weights)
  np.testing.assert_allclose(est.cluster_centers(), sk.cluster_centers_,
                             atol=1e-10)
  metrics = est.evaluate(data, batch_size=batch_size)
  expected = (weights * oracles.distances(
      points, est.cluster_centers()).min(1)).sum()
  np.testing.assert_allclose(metrics['inertia'], expected, rtol=1e-10)
  np.testing.assert_allclose(metrics['total_weight'], weights.sum())
  np.testing.assert_allclose(metrics['mean_squared_distance'],
                             expected / weights.sum(), rtol=1e-10)
  assert metrics['num_points'] == len(points)
  if batch_size is None:
    np.testing.assert_allclose(est.score(data), expected, rtol=1e-10)


def test_estimator_weight_column_object_with_key_and_predict(tmp_path):
  class Column:
    key = 'w'

  points, rng = _data(11)
  weights = rng.uniform(0, 3, len(points))
  est = _estimator(tmp_path, initial_clusters='kmeans_plus_plus',
                   weight_column=Column())
  est.train({'x': points, 'w': weights}, steps=3)
  expected = oracles.distances(points, est.cluster_centers()).argmin(1)
  # Prediction ignores the weight feature, present or not.
  for features in ({'x': points, 'w': weights}, {'x': points}):
    np.testing.assert_array_equal(
        list(est.predict_cluster_index(features)), expected)


def test_estimator_weighted_mini_batch_checkpoint_counts(tmp_path):
  points, rng = _data(12)
  weights = rng.uniform(0, 2, len(points))
  est = _estimator(tmp_path, initial_clusters=points[:_K],
                   use_mini_batch=True, weight_column='w')
  est.train({'x': points, 'w': weights}, steps=3, batch_size=50)
  counts = est.get_variable_value('Variable')
  # The fresh counts (1 per cluster) plus the weight seen.
  np.testing.assert_allclose(counts.sum(), _K + weights.sum(), rtol=1e-12)


def test_weight_column_in_feature_columns_is_an_error():
  with pytest.raises(ValueError, match="`weight_column`='w' is also in "
                     '`feature_columns`'):
    KMeansClustering(_K, feature_columns=['x', 'w'], weight_column='w')


def _bad_weights():
  weights = np.ones(150)
  nan, negative = weights.copy(), weights.copy()
  nan[5] = np.nan
  negative[7] = -1.0
  return {'nan': nan, 'negative': negative, 'zero': np.zeros(150)}


@pytest.mark.parametrize('kind', ['nan', 'negative', 'zero'])
@pytest.mark.parametrize('as_dataset', [False, True])
def test_bad_weights_name_weight_column(tmp_path, kind, as_dataset):
  points, _ = _data(13)
  data = {'x': points, 'w': _bad_weights()[kind]}
  if as_dataset:
    data = tf.data.Dataset.from_tensor_slices(data).batch(50)
  est = _estimator(tmp_path / 'model', initial_clusters=points[:_K],
                   weight_column='w')
  message = ('sum to 0' if kind == 'zero' else
             'must be finite and >= 0')
  with pytest.raises(ValueError,
                     match=f"`weight_column`='w' {message}"):
    est.train(data, steps=2)
  assert not (tmp_path / 'model').exists() or not any(
      (tmp_path / 'model').iterdir())


def test_bad_weights_leave_a_trained_model_dir_as_it_was(tmp_path):
  points, _ = _data(14)
  est = _estimator(tmp_path, initial_clusters=points[:_K], weight_column='w')
  est.train({'x': points, 'w': np.ones(len(points))}, steps=2)
  before = oracles.snapshot(tmp_path)
  with pytest.raises(ValueError, match="`weight_column`='w'"):
    est.train({'x': points, 'w': _bad_weights()['nan']}, steps=2)
  assert oracles.snapshot(tmp_path) == before


@pytest.mark.parametrize('data, message', [
    (lambda p: {'x': p}, "`weight_column`='w' is not a feature"),
    (lambda p: p, "`weight_column`='w' names a feature, so the input must"),
])
def test_missing_weight_feature_and_non_dict_input(tmp_path, data, message):
  points, _ = _data(15)
  est = _estimator(tmp_path / 'model', weight_column='w')
  with pytest.raises(ValueError, match=message):
    est.train(data(points), steps=2)
  assert not (tmp_path / 'model').exists() or not any(
      (tmp_path / 'model').iterdir())


def test_weight_column_with_farthest_point_is_refused():
  with pytest.raises(ValueError, match="empty_cluster='farthest_point' does "
                     'not support `weight_column`'):
    KMeansClustering(_K, weight_column='w', empty_cluster='farthest_point',
                     use_mini_batch=False)
