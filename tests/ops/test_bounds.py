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
from kmeans_estimator.ops import carried
from kmeans_estimator.ops import distances

import oracles
from helpers import fast_first


def blobs(seed, n=600, d=5, k=6, width=2.0):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 100, size=(k, d))
  return (centers[rng.integers(k, size=n)] +
          rng.normal(0, width, size=(n, d))).astype(np.float32)


def run_hamerly(points, initial, steps, chunk_elements=1 << 18):
  core = KMeans(len(initial), initial_clusters=initial,
                chunk_elements=chunk_elements)
  step = tf.function(core.hamerly_step)
  state = core.hamerly_state(points)
  losses, recomputed = [], []
  for _ in range(steps):
    stats, state = step(tf.constant(points), state)
    losses.append(float(stats['loss']))
    recomputed.append(int(stats['recomputed']))
  return core.clusters.numpy(), losses, recomputed, state


@pytest.mark.parametrize('seed', fast_first(1, range(5)))
@pytest.mark.parametrize('chunk_elements', [7, 1 << 18])
def test_hamerly_steps_equal_numpy_lloyd(seed, chunk_elements):
  points = blobs(seed)
  # A poor start (two centers in one blob, none in another) keeps the
  # bounds busy for a while.
  initial = points[:6]
  centers, losses, recomputed, state = run_hamerly(
      points, initial, 8, chunk_elements)
  want_centers, want_losses = oracles.lloyd(points, initial, 8)
  np.testing.assert_allclose(centers, want_centers, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  # The assignments are the nearest centers of the last step's centers.
  before_last, _ = oracles.lloyd(points, initial, 7)
  np.testing.assert_array_equal(
      state.statistics.assignments.numpy(),
      oracles.distances(points, before_last).argmin(axis=1))
  assert recomputed[0] == len(points)


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


def test_carried_sums_and_counts_are_those_of_the_assignments():
  points = blobs(seed=11, n=1500, k=8, width=3.0)
  initial = points[:8]
  _, _, recomputed, state = run_hamerly(points, initial, 9)
  assert recomputed[-1] < len(points)  # Later steps re-summed few points.
  index = state.statistics.assignments.numpy()
  sums, counts = carried.as_wide(state.statistics)
  x = points.astype(np.float64)
  want_sums = np.stack([x[index == j].sum(axis=0) for j in range(8)])
  want_counts = np.bincount(index, minlength=8)
  np.testing.assert_allclose(sums.numpy(), want_sums, rtol=1e-12, atol=1e-9)
  np.testing.assert_array_equal(counts.numpy(), want_counts)
  np.testing.assert_allclose(float(state.squared_total), (x**2).sum(),
                             rtol=1e-12)


def test_loss_keeps_its_accuracy_far_from_the_origin():
  # |x|^2 is about 5e10 per point, a distance to the assigned center about
  # 5: the loss comes from float64 sums, so the cancellation of the large
  # terms costs no accuracy (float32 argmin scores cannot tell the centers
  # apart this far out, so the oracle takes the step's own assignments).
  points = blobs(seed=12, n=400, k=4, width=1.0) + np.float32(1e5)
  core = KMeans(4, initial_clusters=points[:4])
  state = core.hamerly_state(points)
  x = points.astype(np.float64)
  for _ in range(4):
    centers = core.clusters.numpy().astype(np.float64)
    stats, state = core.hamerly_step(points, state)
    assigned = centers[state.statistics.assignments.numpy()]
    np.testing.assert_allclose(float(stats['loss']),
                               ((x - assigned)**2).sum(), rtol=1e-6)


def test_weightless_cluster_keeps_its_center_as_in_weighted_lloyd():
  rng = np.random.default_rng(13)
  points = blobs(seed=13, n=300, k=3, width=1.0).astype(np.float64)
  # The points nearest to the first center weigh nothing, so its cluster
  # has points but no weight: it keeps its center, as in a Lloyd step.
  weights = rng.uniform(0.5, 2.0, len(points))
  initial = points[[0, 1, 2]]
  near_first = oracles.distances(points, initial).argmin(axis=1) == 0
  weights[near_first] = 0.0
  lloyd = KMeans(3, initial_clusters=initial, dtype=tf.float64)
  hamerly = KMeans(3, initial_clusters=initial, dtype=tf.float64)
  state = hamerly.hamerly_state(points, weights)
  for _ in range(4):
    want = lloyd.full_batch_step(points, weights)
    stats, state = hamerly.hamerly_step(points, state, weights)
    np.testing.assert_allclose(hamerly.clusters.numpy(),
                               lloyd.clusters.numpy(), rtol=1e-12)
    np.testing.assert_allclose(float(stats['loss']), float(want['loss']),
                               rtol=1e-10)
    assert int(stats['empty_clusters']) == int(want['empty_clusters'])
  np.testing.assert_array_equal(hamerly.clusters.numpy()[0], initial[0])
  assert int(state.statistics.counts[0]) == 0


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
     r"'hamerly', 'yinyang'\]. Received: algorithm='elkan'"),
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


@pytest.mark.parametrize('chunk_elements', [1, 7, 40, 121, 1 << 20])
def test_nearest_other_center_in_chunks_equals_the_whole_matrix(
    chunk_elements):
  # 40 centers: chunks of 1, 3 and 40 rows (the last one shorter, or the
  # whole matrix at once); centers 5 and 9 coincide.
  rng = np.random.default_rng(0)
  centers = rng.uniform(-50, 50, (40, 6)).astype(np.float32)
  centers[9] = centers[5]
  got = distances.nearest_other_center(tf.constant(centers),
                                       chunk_elements).numpy()
  between = distances.pairwise_distances(
      tf.constant(centers), tf.constant(centers),
      'squared_euclidean').numpy()
  np.fill_diagonal(between, np.inf)
  # The expansion |a|^2 - 2 a.b + |b|^2 rounds to about float32's epsilon
  # times the squared norms, whatever the chunks.
  atol = 1e-6 * float(np.max(np.sum(centers.astype(np.float64)**2, 1)))
  np.testing.assert_allclose(got, between.min(axis=1), rtol=1e-6, atol=atol)
  want = oracles.distances(centers, centers)
  np.fill_diagonal(want, np.inf)
  np.testing.assert_allclose(got, want.min(axis=1), rtol=1e-5, atol=atol)
  assert got[5] == got[9] and 0.0 <= got[5] <= atol
  assert distances.nearest_other_center(
      tf.constant(centers[:1]), chunk_elements).numpy().tolist() == [np.inf]


def test_hamerly_holds_a_chunk_of_center_distances_not_k_by_k(monkeypatch):
  # Eagerly, the chunk loops run in Python: every distance block Hamerly's
  # step computes is recorded, and none may exceed chunk_elements (the
  # k x k center-to-center matrix would be 64 x 64).
  k, chunk_elements = 64, 256
  points = blobs(3, n=500, k=8)
  rng = np.random.default_rng(3)
  initial = points[rng.choice(len(points), k, replace=False)]
  blocks = []
  pairwise = distances.pairwise_distances

  def recorded(a, b, *args, **kwargs):
    blocks.append((int(a.shape[0]), int(b.shape[0])))
    return pairwise(a, b, *args, **kwargs)

  monkeypatch.setattr(distances, 'pairwise_distances', recorded)
  core = KMeans(k, initial_clusters=initial, chunk_elements=chunk_elements)
  state = core.hamerly_state(points)
  for _ in range(2):
    _, state = core.hamerly_step(tf.constant(points), state)
  assert blocks and max(rows * cols for rows, cols in blocks) <= (
      chunk_elements)
