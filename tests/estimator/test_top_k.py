"""The top_k nearest centers: core function, `KMeans.nearest_k`, `predict`.

Oracle: a full numpy sort of the float64 distances (`np.argsort(kind='stable')`
puts equal distances in index order, our tie rule). The served 'top_k'
signature is tested in test_export.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator.ops import distances as distances_lib

import oracles


def _data(seed, n=53, d=4, k=7, dtype=np.float32):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)).astype(dtype),
          rng.normal(size=(k, d)).astype(dtype))


def _prepared(points, metric):
  """Points as the core expects them: unit rows under cosine."""
  return oracles.normalize(points).astype(points.dtype) if (
      metric == oracles.COSINE) else points


def _oracle(points, centers, metric, k):
  distances = oracles.distances(points, centers, metric)
  order = np.argsort(distances, axis=1, kind='stable')[:, :k]
  return order, np.take_along_axis(distances, order, axis=1), distances


def _assert_matches_oracle(index, distances, points, centers, metric, k,
                           exact_index):
  want_index, want_distances, every = _oracle(points, centers, metric, k)
  index, distances = np.asarray(index), np.asarray(distances)
  assert index.dtype == np.int64 and index.shape == (len(points), k)
  assert distances.shape == (len(points), k)
  np.testing.assert_allclose(distances, want_distances, rtol=1e-5, atol=1e-5)
  # What is returned is the distance of the center named.
  np.testing.assert_allclose(np.take_along_axis(every, index, axis=1),
                             distances, rtol=1e-5, atol=1e-5)
  assert np.all(np.diff(distances, axis=1) >= 0)  # Nearest first.
  if exact_index:
    np.testing.assert_array_equal(index, want_index)
  else:
    # float32 rounding may swap centers closer than it resolves; elsewhere
    # the order is the oracle's.
    # A position is resolved when its distance is apart from both neighbours.
    gaps = np.diff(np.sort(every, axis=1), axis=1)
    padded = np.pad(gaps, ((0, 0), (1, 1)), constant_values=np.inf)
    resolved = np.minimum(padded[:, :-1], padded[:, 1:])[:, :k] > 1e-4
    assert resolved.mean() > 0.9
    np.testing.assert_array_equal(index[resolved], want_index[resolved])


# ------------------------------------------------------------------ core
@pytest.mark.parametrize('metric', oracles.METRICS)
@pytest.mark.parametrize('dtype', oracles.DTYPES)
@pytest.mark.parametrize('k', [1, 3, 7])
def test_top_k_nearest_equals_a_full_numpy_sort(metric, dtype, k):
  points, centers = _data(seed=k, dtype=dtype)
  points = _prepared(points, metric)
  index, distances = distances_lib.top_k_nearest(
      tf.constant(points), tf.constant(centers), metric, k)
  _assert_matches_oracle(index, distances, points, centers, metric, k,
                         exact_index=dtype == np.float64)


@pytest.mark.parametrize('metric', oracles.METRICS)
def test_ties_go_to_the_lower_index(metric):
  # Centers 0 and 2 coincide; (0, 0) is at the same distance from all
  # three under squared Euclidean, and (2, 0) ties 0 with 2.
  centers = np.array([[1., 0.], [-1., 0.], [1., 0.]], np.float32)
  points = np.array([[0., 0.], [2., 0.], [-2., 0.]], np.float32)
  index, _ = distances_lib.top_k_nearest(
      tf.constant(_prepared(points, metric)), tf.constant(centers), metric, 3)
  # Under cosine too: the zero vector is at distance 1 from every center.
  np.testing.assert_array_equal(index, [[0, 1, 2], [0, 2, 1], [1, 0, 2]])


@pytest.mark.parametrize('metric', oracles.METRICS)
@pytest.mark.parametrize('chunk_elements', [1, 7, 20, 50, 10**6])
def test_chunks_equal_one_pass(metric, chunk_elements):
  # 7 centers: chunks of 1, 1, 2, 7 rows (53 points: the last chunk
  # overlaps) and one chunk of all rows.
  points, centers = _data(seed=3)
  points = tf.constant(_prepared(points, metric))
  whole_index, whole = distances_lib.top_k_nearest(
      points, tf.constant(centers), metric, 4, chunk_elements=10**6)
  index, distances = distances_lib.top_k_nearest(
      points, tf.constant(centers), metric, 4, chunk_elements=chunk_elements)
  np.testing.assert_array_equal(index, whole_index)
  np.testing.assert_allclose(distances, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('n', [1, 6, 7, 8, 53])
def test_chunks_in_a_function_with_unknown_shapes(n):
  # Unknown n and k inside tf.function: the dynamic branch of the chunking.
  points, centers = _data(seed=4, n=n)
  function = tf.function(
      lambda p, c: distances_lib.top_k_nearest(p, c, 'squared_euclidean', 2,
                                               chunk_elements=14),
      input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None, 4])])
  index, distances = function(tf.constant(points), tf.constant(centers))
  _assert_matches_oracle(index, distances, points, centers,
                         oracles.SQUARED_EUCLIDEAN, 2, exact_index=False)


@pytest.mark.parametrize('metric', oracles.METRICS)
def test_first_column_is_the_nearest_center(metric):
  points, centers = _data(seed=5, n=200)
  points = tf.constant(_prepared(points, metric))
  index, distances = distances_lib.top_k_nearest(points, tf.constant(centers),
                                                 metric, 3, chunk_elements=30)
  nearest, nearest_distance = distances_lib.nearest_centers(
      points, tf.constant(centers), metric, chunk_elements=30)
  np.testing.assert_array_equal(index[:, 0], nearest)
  np.testing.assert_allclose(distances[:, 0], nearest_distance, rtol=1e-6,
                             atol=1e-6)


@pytest.mark.parametrize('metric', oracles.METRICS)
def test_kmeans_nearest_k_normalises_under_cosine(metric):
  points, centers = _data(seed=6)
  km = KMeans(7, initial_clusters=centers, distance_metric=metric,
              chunk_elements=10)
  index, distances = km.nearest_k(points, 5)
  _assert_matches_oracle(index, distances, points, centers, metric, 5,
                         exact_index=False)


@pytest.mark.parametrize('k, error, match', [
    (0, ValueError, r'`k` must be a positive integer. Received: k=0'),
    (8, ValueError, r'`k` must be at most num_clusters=7. Received: k=8'),
    (2.0, TypeError, r'`k` must be a positive integer. Received: k=2.0'),
])
def test_kmeans_nearest_k_bad_k(k, error, match):
  points, centers = _data(seed=7)
  with pytest.raises(error, match=match):
    KMeans(7, initial_clusters=centers).nearest_k(points, k)


# ------------------------------------------------------------- estimator
@pytest.fixture(scope='module', params=oracles.METRICS)
def trained(request, tmp_path_factory):
  rng = np.random.default_rng(8)
  points = (rng.normal(size=(120, 3)) * 10).astype(np.float32)
  kmeans = KMeansClustering(
      6, model_dir=str(tmp_path_factory.mktemp('model')), seed=0,
      use_mini_batch=False, distance_metric=request.param)
  kmeans.train(lambda: points, steps=3)
  new_points = (rng.normal(size=(37, 3)) * 10).astype(np.float32)
  return kmeans, new_points


def _stacked(predictions, key):
  return np.stack([p[key] for p in predictions])


@pytest.mark.parametrize('top_k', [1, 4, 6])
def test_predict_top_k_equals_a_full_numpy_sort(trained, top_k):
  kmeans, points = trained
  predictions = list(kmeans.predict(lambda: points, top_k=top_k))
  assert sorted(predictions[0]) == ['all_distances', 'cluster_index',
                                    'top_k_cluster_indices', 'top_k_distances']
  index = _stacked(predictions, KMeansClustering.TOP_K_CLUSTER_INDICES)
  distances = _stacked(predictions, KMeansClustering.TOP_K_DISTANCES)
  _assert_matches_oracle(index, distances, points, kmeans.cluster_centers(),
                         kmeans.distance_metric, top_k, exact_index=False)
  # Taken from all_distances: the same numbers, first column cluster_index.
  all_distances = _stacked(predictions, 'all_distances')
  np.testing.assert_array_equal(
      np.take_along_axis(all_distances, index, axis=1), distances)
  np.testing.assert_array_equal(index[:, 0],
                                _stacked(predictions, 'cluster_index'))


def test_predict_top_k_in_bounded_memory_equals_the_full_form(trained):
  kmeans, points = trained
  full = list(kmeans.predict(lambda: points, top_k=3))
  chunked = list(kmeans.predict(
      lambda: points, top_k=3, predict_keys=[
          'cluster_index', 'top_k_cluster_indices', 'top_k_distances']))
  assert sorted(chunked[0]) == ['cluster_index', 'top_k_cluster_indices',
                                'top_k_distances']
  for key in ('cluster_index', 'top_k_cluster_indices'):
    np.testing.assert_array_equal(_stacked(chunked, key), _stacked(full, key))
  np.testing.assert_allclose(_stacked(chunked, 'top_k_distances'),
                             _stacked(full, 'top_k_distances'),
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(
      _stacked(chunked, 'cluster_index'),
      list(kmeans.predict_cluster_index(lambda: points)))


def test_predict_top_k_per_batch(trained):
  kmeans, points = trained
  batches = list(kmeans.predict(
      lambda: tf.data.Dataset.from_tensor_slices(points).batch(10), top_k=2,
      predict_keys='top_k_distances', yield_single_examples=False))
  assert [b['top_k_distances'].shape for b in batches] == (
      [(10, 2)] * 3 + [(7, 2)])
  want = _oracle(points, kmeans.cluster_centers(), kmeans.distance_metric,
                 2)[1]
  np.testing.assert_allclose(
      np.concatenate([b['top_k_distances'] for b in batches]), want,
      rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(top_k=0), ValueError,
     r'`top_k` must be a positive integer. Received: top_k=0'),
    (dict(top_k=7), ValueError,
     r'`top_k` must be at most num_clusters=6 \(the number of centers to '
     r'rank\). Received: top_k=7'),
    (dict(top_k=2.5), TypeError,
     r'`top_k` must be a positive integer. Received: top_k=2.5'),
    (dict(predict_keys=['top_k_distances']), ValueError,
     r"`predict_keys` asks for \['top_k_distances'\], which needs top_k: "
     r"pass top_k=<number of nearest centers>. Received: "
     r"predict_keys=\['top_k_distances'\], top_k=None"),
    (dict(top_k=2, predict_keys='cluster_index'), ValueError,
     r"`top_k` is given but predict_keys selects none of "
     r"\['top_k_cluster_indices', 'top_k_distances'\]; add them to "
     r"predict_keys, or drop top_k. Received: predict_keys='cluster_index', "
     r'top_k=2'),
])
def test_bad_top_k_fails_at_the_call_and_leaves_model_dir(trained, kwargs,
                                                          error, match):
  kmeans, points = trained
  before = oracles.snapshot(kmeans.model_dir)
  with pytest.raises(error, match=match):
    kmeans.predict(lambda: points, **kwargs)  # Before any prediction.
  assert oracles.snapshot(kmeans.model_dir) == before


@pytest.mark.parametrize('predict_keys, named', [
    ('top_k_distances', "['top_k_distances'], which needs"),
    (['cluster_index', 'top_k_cluster_indices'],
     "['top_k_cluster_indices'], which needs"),
    (['top_k_distances', 'top_k_cluster_indices', 'top_k_distances'],
     "['top_k_distances', 'top_k_cluster_indices'], which need"),
])
def test_missing_top_k_error_names_only_the_top_k_keys_asked_for(
    trained, predict_keys, named):
  kmeans, points = trained
  with pytest.raises(ValueError) as raised:
    kmeans.predict(lambda: points, predict_keys=predict_keys)
  message = str(raised.value)
  assert message.startswith(f'`predict_keys` asks for {named} top_k: '), (
      message)
  assert raised.value.argument == 'top_k'


@pytest.mark.parametrize('top_k', [0, 7])
def test_bad_top_k_exports_nothing(trained, top_k, tmp_path):
  kmeans, _ = trained
  before = oracles.snapshot(kmeans.model_dir)
  with pytest.raises(ValueError, match=r'`top_k` must be'):
    kmeans.export_saved_model(tmp_path / 'exports', top_k=top_k)
  assert not (tmp_path / 'exports').exists()
  assert oracles.snapshot(kmeans.model_dir) == before


def test_constants():
  assert KMeansClustering.TOP_K_CLUSTER_INDICES == 'top_k_cluster_indices'
  assert KMeansClustering.TOP_K_DISTANCES == 'top_k_distances'
