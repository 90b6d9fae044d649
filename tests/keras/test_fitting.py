"""KMeansLayer.adapt: the core's full-batch k-means on arrays, Tensors and
datasets, against numpy Lloyd."""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.keras import KMeansLayer
import oracles


def _points(n=120, d=2, seed=0):
  return oracles.blobs(n, 3, d, seed=seed)


def _lloyd(points, start):
  return oracles.lloyd(points, start, 100)[0]


@pytest.mark.parametrize('kind', ['array', 'tensor', 'dataset',
                                  'labelled_dataset', 'rows_dataset',
                                  'array_in_batches'])
def test_adapt_reaches_lloyds_fixed_point_from_every_kind_of_data(kind):
  points = _points()
  start = points[:3]
  data, adapt = {
      'array': (points, {}),
      'tensor': (tf.constant(points), {}),
      'dataset': (tf.data.Dataset.from_tensor_slices(points).batch(32), {}),
      'labelled_dataset': (tf.data.Dataset.from_tensor_slices(
          (points, np.arange(len(points)))).batch(50), {}),
      'rows_dataset': (tf.data.Dataset.from_tensor_slices(points),
                       {'batch_size': 40}),
      'array_in_batches': (points, {'batch_size': 25}),
  }[kind]
  layer = KMeansLayer(3, initial_clusters=start)
  layer.adapt(data, **adapt)
  np.testing.assert_allclose(layer.cluster_centers, _lloyd(points, start),
                             rtol=1e-5, atol=1e-5)
  assert layer.adapt_summary.converged


@pytest.mark.parametrize('algorithm', ['lloyd', 'hamerly', 'yinyang'])
def test_every_algorithm_gives_lloyds_centers(algorithm):
  points = _points(d=3, seed=1)
  start = points[:3]
  layer = KMeansLayer(3, initial_clusters=start, algorithm=algorithm)
  layer.adapt(points)
  assert layer.adapt_summary.algorithm == algorithm
  np.testing.assert_allclose(layer.cluster_centers, _lloyd(points, start),
                             rtol=1e-5, atol=1e-5)


def test_in_memory_only_algorithm_falls_back_to_lloyd_over_a_dataset():
  points = _points()
  layer = KMeansLayer(3, initial_clusters=points[:3], algorithm='hamerly')
  layer.adapt(tf.data.Dataset.from_tensor_slices(points).batch(40))
  assert layer.adapt_summary.algorithm == 'lloyd'


def test_steps_reads_only_the_first_batches():
  points = _points()
  layer = KMeansLayer(3, initial_clusters=points[:3])
  layer.adapt(tf.data.Dataset.from_tensor_slices(points).batch(40), steps=2)
  np.testing.assert_allclose(layer.cluster_centers,
                             _lloyd(points[:80], points[:3]), rtol=1e-5,
                             atol=1e-5)


def test_without_tolerance_adapt_runs_max_steps():
  points = _points()
  layer = KMeansLayer(3, max_steps=7, relative_tolerance=None)
  layer.adapt(points)
  assert layer.adapt_summary.steps == 7


def test_max_steps_bounds_the_steps_and_matches_numpy_lloyd():
  points = _points(seed=2)
  start = points[:3]
  layer = KMeansLayer(3, initial_clusters=start, max_steps=2)
  layer.adapt(points)
  assert layer.adapt_summary.steps == 2
  np.testing.assert_allclose(layer.cluster_centers,
                             oracles.lloyd(points, start, 2)[0], rtol=1e-5)


def test_loss_of_the_summary_is_the_loss_before_the_last_step():
  points = _points(seed=3)
  start = points[:3]
  layer = KMeansLayer(3, initial_clusters=start, max_steps=3,
                      relative_tolerance=None)
  layer.adapt(points)
  np.testing.assert_allclose(layer.adapt_summary.loss,
                             oracles.lloyd(points, start, 3)[1][-1],
                             rtol=1e-5)


@pytest.mark.parametrize('init', ['random', 'kmeans_plus_plus', 'kmc2',
                                  'kmeans_parallel'])
def test_every_initialiser_finds_the_separated_blobs(init):
  rng = np.random.default_rng(4)
  means = np.array([[0., 0.], [20., 0.], [0., 20.]])
  labels = rng.integers(0, 3, 150)
  points = (means[labels] + rng.normal(0, 1, (150, 2))).astype(np.float32)
  layer = KMeansLayer(3, initial_clusters=init, num_restarts=4, seed=1)
  layer.adapt(tf.data.Dataset.from_tensor_slices(points).batch(50))
  found = layer(points).numpy()
  # The same partition as the true labels, up to renaming.
  assert len(set(zip(found, labels))) == 3


def test_restarts_keep_the_lowest_loss():
  points = _points(n=200, d=2, seed=5)
  # Restart 0 draws what num_restarts=1 draws: the best of five is no worse.
  single = KMeansLayer(3, initial_clusters='random', seed=0)
  single.adapt(points)
  several = KMeansLayer(3, initial_clusters='random', num_restarts=5, seed=0)
  several.adapt(points)
  assert oracles.inertia(points, several.cluster_centers) <= (
      oracles.inertia(points, single.cluster_centers) * (1 + 1e-6))


def test_each_adapt_starts_afresh_with_the_same_seed():
  points = _points(seed=6)
  layer = KMeansLayer(3, seed=4)
  layer.adapt(points)
  first = layer.cluster_centers
  layer.adapt(points)
  np.testing.assert_array_equal(layer.cluster_centers, first)


def test_cosine_adapt_matches_spherical_lloyd():
  points = _points(d=3, seed=7)
  layer = KMeansLayer(3, distance_metric='cosine', max_steps=1,
                      initial_clusters=points[:3])
  layer.adapt(points)
  x = oracles.normalize(points)
  labels = oracles.distances(x, points[:3], 'cosine').argmin(1)
  means = np.stack([x[labels == j].mean(0) for j in range(3)])
  np.testing.assert_allclose(oracles.normalize(layer.cluster_centers),
                             oracles.normalize(means), rtol=1e-5, atol=1e-6)


def test_nan_points_raise_the_input_error_and_keep_the_centers():
  points = _points()
  layer = KMeansLayer.from_centers(points[:3])
  bad = points.copy()
  bad[5, 1] = np.nan
  with pytest.raises(errors.InvalidInputError) as caught:
    layer.adapt(bad)
  assert caught.value.kind == 'non_finite'
  assert caught.value.argument == 'data'
  np.testing.assert_array_equal(layer.cluster_centers, points[:3])


def test_fewer_points_than_clusters_raise_too_few_points():
  with pytest.raises(errors.InvalidInputError) as caught:
    KMeansLayer(5).adapt(_points(n=3))
  assert caught.value.kind == 'too_few_points'


def test_data_of_another_width_than_the_built_layer_raise():
  layer = KMeansLayer.from_centers(np.zeros((3, 2)))
  with pytest.raises(errors.InvalidInputError,
                     match='4 features .* centers have 2') as caught:
    layer.adapt(np.ones((10, 4), np.float32))
  assert caught.value.kind == 'width'
  assert caught.value.argument == 'data'


def test_empty_dataset_raises_empty():
  with pytest.raises(errors.InvalidInputError) as caught:
    KMeansLayer(2).adapt(tf.data.Dataset.from_tensor_slices(
        np.zeros((0, 2), np.float32)).batch(4))
  assert caught.value.kind == 'empty'


@pytest.mark.parametrize('kwargs,argument', [
    ({'steps': 0}, 'steps'), ({'batch_size': -1}, 'batch_size')])
def test_bad_adapt_arguments_raise_naming_them(kwargs, argument):
  with pytest.raises(errors.InvalidArgumentError) as caught:
    KMeansLayer(2).adapt(_points(), **kwargs)
  assert caught.value.argument == argument


@pytest.mark.parametrize('data', ['points.csv', lambda: np.zeros((4, 2)),
                                  None])
def test_data_of_an_unsupported_type_raise_a_type_error_naming_data(data):
  with pytest.raises(errors.InvalidArgumentTypeError,
                     match='tf.data.Dataset') as caught:
    KMeansLayer(2).adapt(data)
  assert caught.value.argument == 'data'


def test_update_state_is_refused():
  with pytest.raises(NotImplementedError, match='adapt'):
    KMeansLayer(2).update_state(_points())
