"""Hamerly's bounds give exactly Lloyd's steps while skipping work.

Oracle: numpy float64 Lloyd from the same initial centers (and the estimator
with algorithm='lloyd'); invariants: the bounds prune most points once the
clustering settles, an empty cluster keeps its center, k = 1 works.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator._core import bounds

import oracles


def blobs(seed, n=600, d=5, k=6, width=2.0):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 100, size=(k, d))
  return (centers[rng.integers(k, size=n)] +
          rng.normal(0, width, size=(n, d))).astype(np.float32)


def run_hamerly(points, initial, steps, chunk_elements=1 << 18):
  core = KMeans(len(initial), initial_clusters=initial,
                chunk_elements=chunk_elements)
  step = tf.function(core.hamerly_step)
  state = bounds.initial_state(len(points), tf.float32)
  losses, recomputed = [], []
  for _ in range(steps):
    stats, *state = step(tf.constant(points), *state)
    losses.append(float(stats['loss']))
    recomputed.append(int(stats['recomputed']))
  return core.clusters.numpy(), losses, recomputed, state


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('chunk_elements', [7, 1 << 18])
def test_hamerly_steps_equal_numpy_lloyd(seed, chunk_elements):
  points = blobs(seed)
  # A poor start (two centers in one blob, none in another) keeps the
  # bounds busy for a while.
  initial = points[:6]
  centers, losses, recomputed, (assignments, _) = run_hamerly(
      points, initial, 8, chunk_elements)
  want_centers, want_losses = oracles.lloyd(points, initial, 8)
  np.testing.assert_allclose(centers, want_centers, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  # The assignments are the nearest centers of the last step's centers.
  before_last, _ = oracles.lloyd(points, initial, 7)
  np.testing.assert_array_equal(
      assignments.numpy(),
      oracles.distances(points, before_last).argmin(axis=1))
  assert recomputed[0] <= len(points)


def test_bounds_skip_most_points_once_settled():
  points = blobs(seed=7, n=2000, k=8, width=1.0)
  rng = np.random.default_rng(0)
  initial = points[rng.choice(len(points), 8, replace=False)]
  _, losses, recomputed, _ = run_hamerly(points, initial, 10)
  assert losses[-1] <= losses[0]
  assert recomputed[-1] < 0.2 * len(points), recomputed


def test_one_cluster_and_an_empty_cluster():
  points = blobs(seed=8, n=50, k=2)
  centers, losses, _, _ = run_hamerly(points, points[:1], 2)
  np.testing.assert_allclose(centers[0], points.mean(axis=0), rtol=1e-5)
  far = np.full((1, points.shape[1]), 1e4, np.float32)
  initial = np.concatenate([points[:2], far])
  centers, _, _, _ = run_hamerly(points, initial, 3)
  np.testing.assert_array_equal(centers[2], far[0])  # Empty: kept.
  want, _ = oracles.lloyd(points, initial, 3)
  np.testing.assert_allclose(centers, want, rtol=1e-5, atol=1e-4)


def test_estimator_hamerly_equals_lloyd(tmp_path):
  points = blobs(seed=9, n=800)
  results = {}
  for algorithm in ('lloyd', 'hamerly'):
    kmeans = KMeansClustering(6, model_dir=str(tmp_path / algorithm),
                              initial_clusters=points[:6],
                              use_mini_batch=False, algorithm=algorithm)
    kmeans.train(lambda: points, steps=6)
    kmeans.train(lambda: points, steps=2)  # Fresh bounds: still exact.
    results[algorithm] = kmeans.cluster_centers()
  np.testing.assert_allclose(results['hamerly'], results['lloyd'], rtol=1e-5,
                             atol=1e-4)


def test_estimator_hamerly_on_a_dataset_falls_back_to_lloyd(tmp_path):
  points = blobs(seed=10)
  kmeans = KMeansClustering(6, model_dir=str(tmp_path),
                            initial_clusters=points[:6],
                            use_mini_batch=False, algorithm='hamerly')
  kmeans.train(lambda: tf.data.Dataset.from_tensor_slices(points).batch(100),
               steps=3)
  want, _ = oracles.lloyd(points, points[:6], 3)
  np.testing.assert_allclose(kmeans.cluster_centers(), want, rtol=1e-5,
                             atol=1e-4)


@pytest.mark.parametrize('kwargs, match', [
    (dict(algorithm='elkan'), r"`algorithm` must be one of \['lloyd', "
     r"'hamerly'\]. Received: algorithm='elkan'"),
    (dict(algorithm='hamerly', use_mini_batch=True),
     "algorithm='hamerly' needs use_mini_batch=False"),
    (dict(algorithm='hamerly', use_mini_batch=False,
          distance_metric='cosine'),
     "Received: use_mini_batch=False, distance_metric='cosine'"),
])
def test_bad_algorithm_options(tmp_path, kwargs, match):
  with pytest.raises(ValueError, match=match):
    KMeansClustering(3, model_dir=str(tmp_path), **kwargs)
  assert list(tmp_path.iterdir()) == []
