"""Tests of the pure functions `KMeans` delegates to: `initialization`,
`statistics`, `algorithms.restarts` and `sizes.check_sizes`.

Evidence: numpy oracles (where centers go, summed statistics, the restarts'
Lloyd updates), eager equal to `tf.function` (state in, state out), and the
model's own results (the functions give what its methods give).
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import config
from kmeans_estimator import errors
from kmeans_estimator import initialization
from kmeans_estimator import model as kmeans
from kmeans_estimator import sizes
from kmeans_estimator import statistics
from kmeans_estimator.algorithms import base
from kmeans_estimator.algorithms import restarts

import oracles


def _points(seed, n=40, d=3):
  return np.random.default_rng(seed).normal(size=(n, d))


def test_append_writes_new_centers_after_those_chosen_and_drops_the_rest():
  clusters = np.zeros((4, 2))
  new = np.arange(6.).reshape(3, 2)
  out, _, total = initialization.append(
      tf.constant(clusters), tf.constant(2), tf.constant(new), 4)
  expected = clusters.copy()
  expected[2:] = new[:2]
  np.testing.assert_array_equal(out.numpy(), expected)
  assert int(total) == 4


def test_append_puts_every_restarts_centers_in_place_and_restart_0_first():
  restarts_now = np.zeros((2, 3, 2))
  new = np.arange(8.).reshape(2, 2, 2)
  clusters, restart_clusters, total = initialization.append(
      tf.zeros([3, 2], tf.float64), tf.constant(1), None, 3,
      tf.constant(restarts_now), tf.constant(new))
  expected = restarts_now.copy()
  expected[:, 1:] = new
  np.testing.assert_array_equal(restart_clusters.numpy(), expected)
  np.testing.assert_array_equal(clusters.numpy()[1:], new[0])
  assert int(total) == 3


def test_restart_0_draws_with_the_seed_of_num_restarts_1():
  base_seed = tf.constant([7, 3], tf.int64)
  seeds, alone = [], []

  def record(into):
    return lambda seed: (into.append(seed.numpy()), tf.zeros([1, 1]))[1]

  new, stacked = initialization.choose_per_restart(record(seeds), base_seed,
                                                   (1, 0), 3, tf.float32)
  assert new is None and stacked.shape == (3, 1, 1)
  new, stacked = initialization.choose_per_restart(record(alone), base_seed,
                                                   (1, 0), 1, tf.float32)
  assert stacked is None and new.shape == (1, 1)
  np.testing.assert_array_equal(seeds[0], alone[0])
  assert not np.array_equal(seeds[0], seeds[1])


@pytest.mark.parametrize('method', ['random', 'kmeans_plus_plus', 'kmc2',
                                    'kmeans_parallel'])
def test_batch_chooser_gives_what_initialize_chooses(method):
  points = _points(0)
  km = kmeans.KMeans(3, initial_clusters=method, random_seed=5,
                     dtype=tf.float64)
  km.initialize(points)
  options = initialization.Options.of(km.config, 3, 3)
  choose = initialization.batch_chooser(
      tf.constant(points), None, tf.constant(3), options, km.prepare)
  seed = initialization.seed(km.seed_argument(), (1, 0))
  np.testing.assert_array_equal(choose(seed).numpy(), km.clusters.numpy())


def test_callable_centers_of_another_width_raise_initial_clusters_error():
  options = initialization.Options.of(config.KMeansConfig(2), 2, 3)
  with pytest.raises(errors.InitialClustersError,
                     match=re.escape(initialization.CALLABLE_WIDTH_MESSAGE)):
    initialization.callable_centers(np.zeros((2, 4)), options)


def _dataset(points, batch, weights=None):
  data = points if weights is None else (points, weights)
  return tf.data.Dataset.from_tensor_slices(data).batch(batch)


@pytest.mark.parametrize('weighted', [False, True])
def test_cluster_statistics_over_batches_equal_the_numpy_oracle(weighted):
  points = _points(1)
  rng = np.random.default_rng(2)
  centers = rng.normal(size=(4, 3))
  weights = rng.uniform(0.5, 2., size=len(points)) if weighted else None
  options = base.Options(num_clusters=4, dtype=tf.float64)
  sums, counts, loss = statistics.cluster_statistics(
      _dataset(points, 7, weights), None, tf.constant(centers), options, 3,
      lambda x: tf.cast(x, tf.float64))
  labels = oracles.distances(points, centers).argmin(1)
  w = np.ones(len(points)) if weights is None else weights
  for j in range(4):
    np.testing.assert_allclose(sums.numpy()[j],
                               (w[labels == j, None] * points[labels == j])
                               .sum(0), atol=1e-9)
    np.testing.assert_allclose(counts.numpy()[j], w[labels == j].sum(),
                               atol=1e-9)
  distances = ((points - centers[labels]) ** 2).sum(1)
  np.testing.assert_allclose(loss.numpy(), (w * distances).sum(), rtol=1e-9)


def test_restarts_step_moves_every_restart_and_keeps_the_lowest_loss():
  points = _points(3)
  centers = np.random.default_rng(4).normal(size=(3, 4, 3))
  options = base.Options(num_clusters=4, dtype=tf.float64)
  stats = statistics.restart_statistics(
      tf.constant(points), None, tf.constant(centers), options, 3,
      lambda x: x)
  eager = restarts.step(tf.constant(centers), *stats, options)
  compiled = tf.function(lambda c, s, n, l: restarts.step(c, s, n, l,
                                                          options))(
                                                              centers, *stats)
  for r in range(3):
    labels = oracles.distances(points, centers[r]).argmin(1)
    for j in range(4):
      if np.any(labels == j):
        np.testing.assert_allclose(eager[0].numpy()[r, j],
                                   points[labels == j].mean(0), rtol=1e-9)
  best = int(np.argmin(stats[2].numpy()))
  assert int(eager[2]['best_restart']) == best
  np.testing.assert_array_equal(eager[1].numpy(), eager[0].numpy()[best])
  np.testing.assert_array_equal(compiled[0].numpy(), eager[0].numpy())


def test_restarts_best_keeps_the_lower_restart_on_ties():
  best = restarts.best(tf.constant([2., 1., 1.]))
  assert int(best['best_restart']) == 1 and float(best['loss']) == 1.


def test_check_sizes_refuses_centers_larger_than_memory(monkeypatch):
  monkeypatch.setattr(config, 'memory_bytes', lambda: 1000)
  with pytest.raises(errors.SizeError, match='num_clusters'):
    sizes.check_sizes(config.KMeansConfig(100), 10)
  sizes.check_sizes(config.KMeansConfig(2), 10)
