"""Tests for k-means|| initialisation (`initial_clusters='kmeans_parallel'`).

The pieces against numpy oracles (sampling keys draw in proportion to
weight, the reservoir keeps the largest keys, candidate weights count the
points nearest to each candidate), the streamed and in-memory forms against
each other, a bounded number of passes over a dataset, quality against
k-means++ on the first batch over 20 seeds on 200k points streamed in batches
of 1k, and the estimator's options and errors.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator.ops import distances
from kmeans_estimator.ops import initializers
from kmeans_estimator.ops import updates

import oracles

SQ = 'squared_euclidean'
COS = 'cosine'


def seed_of(i):
  return tf.constant([i, 7], tf.int64)


def blobs(seed, n, k, d, width=1.0, rare=0, rare_fraction=0.001):
  """Shuffled Gaussian blobs; the last `rare` blobs get `rare_fraction` of
  the points each. Returns (points float32 (n, d), true centers (k, d))."""
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0., 100., (k, d))
  sizes = np.full(k, 0)
  sizes[k - rare:] = int(rare_fraction * n)
  sizes[:k - rare] = (n - sizes.sum()) // (k - rare)
  sizes[0] += n - sizes.sum()
  labels = np.repeat(np.arange(k), sizes)
  points = centers[labels] + rng.normal(0., width, (n, d))
  return points[rng.permutation(n)].astype(np.float32), centers


def test_sample_keys_draw_in_proportion_to_weight():
  weights = np.array([0., 1., 2., 3., 4.], np.float32)
  draws = 4000
  keys = initializers.sample_keys(
      tf.ones([draws, 5]), tf.constant(np.tile(weights, (draws, 1))),
      seed_of(0))
  winners = np.argmax(keys.numpy(), axis=1)
  frequency = np.bincount(winners, minlength=5) / draws
  assert frequency[0] == 0  # Weight 0 is never drawn.
  np.testing.assert_allclose(frequency, weights / weights.sum(), atol=0.03)
  assert np.all(np.isneginf(keys.numpy()[:, 0]))


def test_merge_reservoir_keeps_the_largest_keys():
  rng = np.random.default_rng(1)
  keys = np.array([-np.inf, -0.5, -3.0])
  rows = rng.normal(size=(3, 2)).astype(np.float32)
  batch_keys = np.array([-0.1, -np.inf, -2.0, -0.7])
  batch = rng.normal(size=(4, 2)).astype(np.float32)
  new_keys, new_rows = initializers.merge_reservoir(
      tf.constant(keys), tf.constant(rows), tf.constant(batch_keys),
      tf.constant(batch))
  all_keys = np.concatenate([keys, batch_keys])
  all_rows = np.concatenate([rows, batch])
  best = np.argsort(-all_keys, kind='stable')[:3]
  np.testing.assert_array_equal(new_keys.numpy(), all_keys[best])
  np.testing.assert_array_equal(new_rows.numpy(), all_rows[best])


@pytest.mark.parametrize('metric', [SQ, COS])
def test_candidate_weights_count_the_nearest_points(metric):
  points, _ = blobs(0, 600, 6, 3)
  if metric == COS:
    points = points / np.linalg.norm(points, axis=1, keepdims=True)
  candidates, weights = initializers.kmeans_parallel_candidates(
      tf.constant(points), seed_of(3), rounds=3, oversampling=4,
      distance_metric=metric, chunk_elements=64)
  candidates, weights = candidates.numpy(), weights.numpy()
  assert candidates.shape == (13, 3) and weights.shape == (13,)
  # Every candidate is a data point.
  for row in candidates:
    assert np.any(np.all(points == row, axis=1))
  # Each point counts for its nearest candidate (ties: the lowest index).
  nearest = np.argmin(oracles.distances(points, candidates, metric), axis=1)
  np.testing.assert_array_equal(weights,
                                np.bincount(nearest, minlength=13))
  assert weights.sum() == len(points)


def test_fewer_distinct_points_than_candidates_leave_unused_slots_empty():
  points = np.repeat(np.array([[0., 0.], [5., 0.], [0., 5.]], np.float32),
                     10, axis=0)
  candidates, weights = initializers.kmeans_parallel_candidates(
      tf.constant(points), seed_of(0), rounds=2, oversampling=5,
      distance_metric=SQ, chunk_elements=1 << 10)
  weights = weights.numpy()
  # The three distinct points carry all the weight; the rest are unused.
  assert sorted(weights[weights > 0]) == [10., 10., 10.]
  km = KMeans(3, initial_clusters='kmeans_parallel', random_seed=0,
              kmeans_parallel_rounds=2)
  km.initialize(points)
  np.testing.assert_array_equal(np.sort(km.clusters.numpy(), axis=0),
                                np.sort(np.unique(points, axis=0), axis=0))


def _core(seed=3, metric=SQ, k=10, **kwargs):
  return KMeans(k, 5, initial_clusters='kmeans_parallel',
                distance_metric=metric, random_seed=seed, **kwargs)


@pytest.mark.parametrize('metric', [SQ, COS])
def test_one_batch_dataset_equals_the_tensor(metric, monkeypatch):
  """The same draws either way; the weights may differ by a point whose
  two nearest candidates tie to rounding (the tensor form carries minima
  from round to round, the streamed one recomputes them)."""
  points, true_centers = blobs(1, 3000, 10, 5)
  reduced = []
  reduce_candidates = initializers.reduce_candidates

  def spy(candidates, weights, *args, **kwargs):
    reduced.append((candidates.numpy(), weights.numpy()))
    return reduce_candidates(candidates, weights, *args, **kwargs)

  monkeypatch.setattr(initializers, 'reduce_candidates', spy)
  in_memory, streamed = _core(metric=metric), _core(metric=metric)
  in_memory.initialize(points)
  streamed.initialize_from_dataset(tf.data.Dataset.from_tensors(points))
  (candidates, weights), (streamed_candidates, streamed_weights) = reduced
  np.testing.assert_array_equal(streamed_candidates, candidates)
  assert streamed_weights.sum() == weights.sum() == len(points)
  assert np.abs(streamed_weights - weights).sum() <= 2
  if metric == SQ:
    for km in (in_memory, streamed):
      nearest = np.argmin(oracles.distances(km.clusters.numpy(),
                                            true_centers), axis=1)
      assert len(set(nearest)) == 10


def test_streamed_is_deterministic_and_graph_equals_eager():
  points, true_centers = blobs(2, 3000, 10, 5)
  dataset = tf.data.Dataset.from_tensor_slices(points).batch(128)
  eager, graph, other_seed = _core(), _core(), _core(seed=4)
  eager.initialize_from_dataset(dataset)
  tf.function(graph.initialize_from_dataset, autograph=False)(dataset)
  other_seed.initialize_from_dataset(dataset)
  np.testing.assert_array_equal(graph.clusters.numpy(),
                                eager.clusters.numpy())
  assert not np.array_equal(other_seed.clusters.numpy(),
                            eager.clusters.numpy())
  # Ten separated blobs: every blob gets a center.
  for km in (eager, other_seed):
    nearest = np.argmin(oracles.distances(km.clusters.numpy(),
                                          true_centers), axis=1)
    assert len(set(nearest)) == 10


@pytest.mark.slow
def test_a_bounded_number_of_passes():
  points, _ = blobs(3, 2000, 10, 5)
  batches_read = tf.Variable(0)

  def count(batch):
    with tf.control_dependencies([batches_read.assign_add(1)]):
      return tf.identity(batch)

  dataset = tf.data.Dataset.from_tensor_slices(points).batch(100).map(count)
  km = _core(kmeans_parallel_rounds=4)
  tf.function(km.initialize_from_dataset, autograph=False)(dataset)
  # The first center, 4 rounds, the weights: 6 passes of 20 batches.
  assert int(batches_read.numpy()) == 6 * 20
  # An initialized model reads nothing more.
  tf.function(km.initialize_from_dataset, autograph=False)(dataset)
  assert int(batches_read.numpy()) == 6 * 20


def test_too_few_points_in_the_stream_is_an_error():
  km = _core(k=10)
  dataset = tf.data.Dataset.from_tensor_slices(
      np.ones((9, 5), np.float32)).batch(4)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='kmeans_parallel needs at least num_clusters'):
    km.initialize_from_dataset(dataset)
  assert not bool(km.initialized)


@pytest.mark.slow
def test_beats_kmeans_plus_plus_on_the_first_batch_over_20_seeds():
  """200k points streamed in batches of 1k; 5 of 20 blobs are rare (200
  points each), so the first batch often lacks some of them. Both start
  5 Lloyd iterations over all the data; the defaults for k = 20 (5 rounds
  of 10 candidates)."""
  n, k, d = 200_000, 20, 4
  points, true_centers = blobs(5, n, k, d, rare=5)
  dataset = tf.data.Dataset.from_tensor_slices(points).batch(1000)
  data = tf.constant(points)
  ideal = oracles.inertia(points, true_centers)

  @tf.function(autograph=False)
  def parallel(seed):
    candidates, weights, count = initializers.kmeans_parallel_streamed(
        dataset, tf.identity, d, tf.float32, seed, 5, 10, SQ, 1 << 18)
    return initializers.reduce_candidates(candidates, weights, k, seed,
                                          SQ), count

  @tf.function(autograph=False)
  def first_batch(seed):
    return initializers.kmeans_plus_plus(data[:1000], k, seed, -1, SQ)

  @tf.function(autograph=False)
  def final_loss(centers):
    for _ in range(5):
      sums, counts, _ = distances.cluster_statistics(data, centers, SQ)
      centers = updates.lloyd_update(centers, sums, counts, SQ)
    return tf.reduce_sum(distances.nearest_centers(data, centers, SQ)[1])

  parallel_losses, first_batch_losses = [], []
  for seed in range(20):
    centers, count = parallel(seed_of(seed))
    assert int(count) == n
    parallel_losses.append(float(final_loss(centers)) / ideal)
    first_batch_losses.append(float(final_loss(first_batch(seed_of(seed))))
                              / ideal)
  parallel_losses = np.array(parallel_losses)
  first_batch_losses = np.array(first_batch_losses)
  report = (f'k-means|| {np.round(parallel_losses, 3)}, k-means++ on the '
            f'first batch {np.round(first_batch_losses, 3)} (x ideal)')
  assert parallel_losses.mean() < first_batch_losses.mean(), report
  assert np.sum(parallel_losses < first_batch_losses) >= 18, report


# ------------------------------------------------------------- estimator


@pytest.mark.slow
def test_estimator_trains_from_an_array_and_from_batches(tmp_path):
  points, true_centers = blobs(6, 4000, 8, 5)
  results = []
  for name, input_fn in (
      ('whole', lambda: points),
      ('batches', lambda: tf.data.Dataset.from_tensor_slices(points).batch(
          500))):
    est = KMeansClustering(8, model_dir=str(tmp_path / name),
                           initial_clusters='kmeans_parallel',
                           use_mini_batch=False, seed=1)
    est.train(input_fn, steps=5)
    centers = est.cluster_centers()
    nearest = np.argmin(oracles.distances(centers, true_centers), axis=1)
    assert len(set(nearest)) == 8, name
    results.append(oracles.inertia(points, centers))
  ideal = oracles.inertia(points, true_centers)
  assert max(results) <= 1.01 * ideal


def test_estimator_refuses_an_endless_dataset(tmp_path):
  model_dir = tmp_path / 'model'
  est = KMeansClustering(3, model_dir=str(model_dir),
                         initial_clusters='kmeans_parallel', seed=0)
  dataset = tf.data.Dataset.from_tensor_slices(
      np.ones((10, 2), np.float32)).batch(5).repeat()
  with pytest.raises(ValueError, match='endless dataset'):
    est.train(lambda: dataset, steps=2)
  assert oracles.snapshot(model_dir) is None


@pytest.mark.parametrize('input_kind', ['whole', 'batches'])
def test_estimator_too_few_points_names_the_fix(input_kind, tmp_path):
  model_dir = tmp_path / 'model'
  est = KMeansClustering(10, model_dir=str(model_dir),
                         initial_clusters='kmeans_parallel', seed=0)
  points = np.arange(18, dtype=np.float32).reshape(9, 2)
  input_fn = ((lambda: points) if input_kind == 'whole' else
              (lambda: tf.data.Dataset.from_tensor_slices(points).batch(4)))
  with pytest.raises(ValueError, match='num_clusters'):
    est.train(input_fn, steps=1)
  assert oracles.snapshot(model_dir) is None


@pytest.mark.parametrize('kwargs, match', [
    (dict(kmeans_parallel_rounds=0), 'kmeans_parallel_rounds'),
    (dict(kmeans_parallel_rounds=1.5), 'kmeans_parallel_rounds'),
    (dict(kmeans_parallel_oversampling=0), 'kmeans_parallel_oversampling'),
    (dict(kmeans_parallel_oversampling=float('nan')),
     'kmeans_parallel_oversampling'),
])
def test_bad_options_name_the_argument(kwargs, match):
  with pytest.raises((TypeError, ValueError), match=match):
    KMeansClustering(3, initial_clusters='kmeans_parallel', **kwargs)
