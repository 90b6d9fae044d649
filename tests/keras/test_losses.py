"""kmeans_loss: the Bottou-Bengio objective, its gradient, and k-means by
gradient descent against numpy Lloyd."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import errors
from kmeans_estimator.keras import kmeans_loss
import oracles


def _separated_blobs(seed=0, n_per=60):
  rng = np.random.default_rng(seed)
  means = np.array([[0., 0.], [10., 0.], [0., 10.]])
  points = np.concatenate([rng.normal(m, 0.7, (n_per, 2)) for m in means])
  rng.shuffle(points)
  return points.astype(np.float32)


@pytest.mark.parametrize('metric', oracles.METRICS)
@pytest.mark.parametrize('dtype', oracles.DTYPES)
def test_loss_equals_the_numpy_inertia(metric, dtype):
  rng = np.random.default_rng(1)
  points = rng.normal(size=(50, 4)).astype(dtype)
  centers = rng.normal(size=(5, 4)).astype(dtype)
  loss = kmeans_loss(points, centers, distance_metric=metric)
  assert loss.dtype == dtype
  np.testing.assert_allclose(float(loss),
                             oracles.inertia(points, centers, metric),
                             rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_weighted_loss_counts_a_point_of_weight_w_as_w_copies():
  rng = np.random.default_rng(2)
  points = rng.normal(size=(20, 3)).astype(np.float32)
  centers = rng.normal(size=(4, 3)).astype(np.float32)
  weights = rng.integers(0, 4, 20)
  repeated = np.repeat(points, weights, axis=0)
  np.testing.assert_allclose(
      float(kmeans_loss(points, centers, weights=weights.astype(np.float32))),
      oracles.inertia(repeated, centers), rtol=1e-5)


def test_gradient_is_the_bottou_bengio_gradient():
  rng = np.random.default_rng(3)
  points = rng.normal(size=(40, 2)).astype(np.float64)
  centers = tf.Variable(rng.normal(size=(3, 2)))
  with tf.GradientTape() as tape:
    loss = kmeans_loss(points, centers)
  gradient = tf.convert_to_tensor(tape.gradient(loss, centers)).numpy()
  labels = oracles.distances(points, centers.numpy()).argmin(1)
  expected = np.stack([
      2 * (centers.numpy()[j] - points[labels == j]).sum(0) for j in range(3)])
  np.testing.assert_allclose(gradient, expected, rtol=1e-10, atol=1e-12)


def test_gradient_flows_to_the_points_too():
  points = tf.Variable([[1., 0.], [3., 0.]])
  centers = tf.constant([[0., 0.]])
  with tf.GradientTape() as tape:
    loss = kmeans_loss(points, centers)
  np.testing.assert_allclose(tape.gradient(loss, points).numpy(),
                             [[2., 0.], [6., 0.]])


def test_a_gradient_step_of_size_one_over_twice_the_cluster_size_is_lloyd():
  points = _separated_blobs()
  initial = points[:3].astype(np.float64)
  centers = tf.Variable(initial)
  with tf.GradientTape() as tape:
    loss = kmeans_loss(points, centers)
  gradient = tf.convert_to_tensor(tape.gradient(loss, centers)).numpy()
  sizes = np.bincount(oracles.distances(points, initial).argmin(1),
                      minlength=3)
  stepped = initial - gradient / (2 * sizes[:, None])
  np.testing.assert_allclose(stepped, oracles.lloyd(points, initial, 1)[0],
                             rtol=1e-6)


@pytest.mark.parametrize('optimizer', [
    lambda: keras.optimizers.SGD(learning_rate=0.5),
    lambda: keras.optimizers.Adam(learning_rate=0.2),
], ids=['sgd', 'adam'])
def test_keras_optimizers_reach_lloyds_fixed_point_on_separated_blobs(
    optimizer):
  points = _separated_blobs()
  initial = points[[0, 1, 2]]
  expected, _ = oracles.lloyd(points, initial, 50)
  centers = keras.Variable(initial)
  optimizer = optimizer()
  n = len(points)
  for _ in range(300):
    with tf.GradientTape() as tape:
      loss = kmeans_loss(points, centers) / n  # The mean: a step of lr.
    optimizer.apply_gradients([(tape.gradient(loss, centers.value),
                                centers)])
  found = centers.numpy()
  order = [int(np.argmin(((expected - c)**2).sum(1))) for c in found]
  assert sorted(order) == [0, 1, 2]
  np.testing.assert_allclose(found, expected[order], atol=1e-3)


def test_loss_equals_the_estimators_inertia_for_the_same_centers(tmp_path):
  points = _separated_blobs(seed=4)
  estimator = kmeans_estimator.KMeansClustering(
      num_clusters=3, model_dir=str(tmp_path), use_mini_batch=False,
      initial_clusters='kmeans_plus_plus', seed=1)
  estimator.train(points, steps=3)
  centers = estimator.cluster_centers()
  loss = float(kmeans_loss(points, centers))
  np.testing.assert_allclose(loss, estimator.evaluate(points)['inertia'],
                             rtol=1e-5)
  np.testing.assert_allclose(loss, estimator.score(points), rtol=1e-5)


def test_points_of_another_width_raise_naming_points():
  with pytest.raises(errors.InvalidArgumentError, match='width') as caught:
    kmeans_loss(np.zeros((4, 3)), np.zeros((2, 2)))
  assert caught.value.argument == 'points'


def test_centers_of_rank_one_raise_naming_centers():
  with pytest.raises(errors.InvalidArgumentError) as caught:
    kmeans_loss(np.zeros((4, 2)), np.zeros(2))
  assert caught.value.argument == 'centers'


def test_weights_not_one_per_point_raise_naming_weights():
  with pytest.raises(errors.InvalidArgumentError) as caught:
    kmeans_loss(np.zeros((4, 2)), np.zeros((2, 2)), weights=np.ones(3))
  assert caught.value.argument == 'weights'


def test_unknown_metric_raises_naming_distance_metric():
  with pytest.raises(errors.InvalidArgumentError) as caught:
    kmeans_loss(np.zeros((4, 2)), np.zeros((2, 2)), distance_metric='l1')
  assert caught.value.argument == 'distance_metric'


def test_another_keras_backend_raises_the_backend_error(monkeypatch):
  monkeypatch.setattr(keras.backend, 'backend', lambda: 'jax')
  with pytest.raises(errors.KerasBackendError,
                     match='KERAS_BACKEND=tensorflow') as caught:
    kmeans_loss(np.zeros((4, 2)), np.zeros((2, 2)))
  assert caught.value.backend == 'jax'
