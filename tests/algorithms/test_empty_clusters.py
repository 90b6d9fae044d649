"""empty_cluster='farthest_point' against scikit-learn and a numpy oracle.

scikit-learn's Lloyd moves each empty cluster's center to one of the points
farthest from their centers (`_relocate_empty_clusters_dense`); the core
does the same in bounded memory, in every step form (one tensor, a dataset
of batches, Hamerly, mini-batch), and 'keep' stays the legacy behaviour.
"""

import warnings

import numpy as np
import pytest
import tensorflow as tf
from sklearn.cluster import KMeans as SklearnKMeans

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator.ops import updates

import oracles
from helpers import fast_first


def blobs(seed, n=120, d=3, num_blobs=3):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(-20, 20, (num_blobs, d))
  labels = rng.integers(0, num_blobs, n)
  return centers[labels] + rng.normal(0, 1.5, (n, d))


def with_far_centers(points, num_far, seed):
  """Initial centers: one data point per blob region, then `num_far` centers
  far from all the data (so the first assignment leaves them empty)."""
  rng = np.random.default_rng(seed)
  near = points[rng.choice(len(points), 3, replace=False)]
  far = 1000.0 + rng.uniform(0, 100, (num_far, points.shape[1]))
  return np.concatenate([near, far])


def sklearn_lloyd(points, init, steps):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # ConvergenceWarning for max_iter.
    model = SklearnKMeans(len(init), init=init, n_init=1, max_iter=steps,
                          tol=0.0, algorithm='lloyd').fit(points)
  return model.cluster_centers_


@pytest.mark.parametrize('num_far', [1, 2])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_one_step_equals_scikit_learn_lloyd(seed, num_far):
  points = blobs(seed)
  init = with_far_centers(points, num_far, seed)
  km = KMeans(len(init), initial_clusters=init, dtype=tf.float64,
              empty_cluster='farthest_point')
  stats = km.full_batch_step(points)
  assert int(stats['empty_clusters']) == num_far
  assert int(stats['relocated_clusters']) == num_far
  np.testing.assert_allclose(km.clusters.numpy(),
                             sklearn_lloyd(points, init, 1), rtol=1e-10,
                             atol=1e-10)
  want, sizes, relocated = oracles.relocating_lloyd_step(points, init)
  np.testing.assert_allclose(km.clusters.numpy(), want, rtol=1e-10)
  np.testing.assert_array_equal(stats['cluster_sizes'].numpy(), sizes)
  assert relocated == num_far


@pytest.mark.parametrize('seed', [3, 4])
def test_several_steps_equal_scikit_learn_lloyd(seed):
  points = blobs(seed, n=200, num_blobs=4)
  init = with_far_centers(points, 2, seed)
  km = KMeans(len(init), initial_clusters=init, dtype=tf.float64,
              empty_cluster='farthest_point')
  step = tf.function(km.full_batch_step)
  for _ in range(4):
    step(points)
  np.testing.assert_allclose(km.clusters.numpy(),
                             sklearn_lloyd(points, init, 4), rtol=1e-9,
                             atol=1e-9)


def _numpy_steps(points, init, steps, metric):
  centers, relocated = np.asarray(init, np.float64), []
  for _ in range(steps):
    centers, _, count = oracles.relocating_lloyd_step(points, centers, metric)
    relocated.append(count)
  return centers, relocated


@pytest.mark.parametrize('form', ['tensor', 'batches'])
@pytest.mark.parametrize('dtype', fast_first(1, oracles.DTYPES))
@pytest.mark.parametrize('metric', oracles.METRICS)
def test_steps_equal_the_numpy_oracle(metric, dtype, form):
  # Five empty clusters at first: more than scikit-learn's argpartition
  # orders, so only the oracle checks which far point goes where.
  points = blobs(5, n=150, d=4).astype(dtype)
  if metric == oracles.COSINE:
    points -= points.mean(0)  # Directions spread around the origin.
  init = with_far_centers(points, 5, 5).astype(dtype)
  if metric == oracles.COSINE:  # Far in angle: all in one direction.
    init[3:] = np.abs(init[3:]) * [1, 1, 1, -1]
    init[3:] += np.arange(5)[:, None]
  km = KMeans(len(init), initial_clusters=init, distance_metric=metric,
              dtype=dtype, empty_cluster='farthest_point')
  data = (points if form == 'tensor' else
          tf.data.Dataset.from_tensor_slices(points).batch(40))
  step = tf.function(km.full_batch_step)
  relocated = [int(step(data)['relocated_clusters']) for _ in range(3)]
  want, want_relocated = _numpy_steps(points, init, 3, metric)
  assert relocated == want_relocated and relocated[0] >= 1
  tolerance = 1e-4 if dtype == np.float32 else 1e-10
  np.testing.assert_allclose(km.clusters.numpy(), want, rtol=tolerance,
                             atol=tolerance)


def test_eager_and_compiled_steps_agree():
  points = blobs(6)
  init = with_far_centers(points, 2, 6)
  results = []
  for run in (lambda f: f, tf.function):
    km = KMeans(len(init), initial_clusters=init, dtype=tf.float64,
                empty_cluster='farthest_point')
    stats = run(km.full_batch_step)(points)
    results.append((km.clusters.numpy(), stats['cluster_sizes'].numpy()))
  np.testing.assert_array_equal(results[0][0], results[1][0])
  np.testing.assert_array_equal(results[0][1], results[1][1])


def test_hamerly_steps_equal_lloyd_steps_with_relocation():
  points = blobs(7, n=200)
  init = with_far_centers(points, 3, 7)
  km = KMeans(len(init), initial_clusters=init, dtype=tf.float64,
              empty_cluster='farthest_point')
  state = km.hamerly_state(points)
  relocated = []
  for _ in range(4):
    stats, state = km.hamerly_step(points, state)
    relocated.append(int(stats['relocated_clusters']))
  want, want_relocated = _numpy_steps(points, init, 4,
                                      oracles.SQUARED_EUCLIDEAN)
  assert relocated == want_relocated
  np.testing.assert_allclose(km.clusters.numpy(), want, rtol=1e-10)


def test_keep_is_the_default_and_the_far_center_stays():
  points = blobs(8)
  init = with_far_centers(points, 1, 8)
  km = KMeans(len(init), initial_clusters=init, dtype=tf.float64)
  assert km.empty_cluster == 'keep'
  stats = km.full_batch_step(points)
  assert int(stats['empty_clusters']) == 1
  assert int(stats['relocated_clusters']) == 0
  np.testing.assert_array_equal(km.clusters.numpy()[3], init[3])
  np.testing.assert_allclose(km.clusters.numpy(),
                             oracles.lloyd(points, init, 1)[0], rtol=1e-10)


def test_nothing_moves_when_every_point_is_on_its_center():
  # Two distinct points, three clusters: scikit-learn relocates nothing.
  points = np.repeat([[0., 0.], [5., 5.]], 4, axis=0)
  init = np.array([[0., 0.], [5., 5.], [50., 50.]])
  km = KMeans(3, initial_clusters=init, dtype=tf.float64,
              empty_cluster='farthest_point')
  stats = km.full_batch_step(points)
  assert int(stats['empty_clusters']) == 1
  assert int(stats['relocated_clusters']) == 0
  np.testing.assert_array_equal(km.clusters.numpy(), init)


def test_a_cluster_that_gives_away_its_only_point_keeps_its_center():
  # Cluster 1's only point is the farthest from its center: it moves to the
  # empty cluster 2, and cluster 1 (now empty) keeps its center, where
  # scikit-learn would send it to the origin.
  points = np.array([[0., 0.], [1., 0.], [0., 1.], [30., 0.]])
  init = np.array([[0., 0.], [20., 0.], [-500., -500.]])
  km = KMeans(3, initial_clusters=init, dtype=tf.float64,
              empty_cluster='farthest_point')
  stats = km.full_batch_step(points)
  want, sizes, _ = oracles.relocating_lloyd_step(points, init)
  np.testing.assert_array_equal(stats['cluster_sizes'].numpy(), [3, 0, 1])
  np.testing.assert_array_equal(sizes, [3, 0, 1])
  np.testing.assert_allclose(km.clusters.numpy(), want)
  np.testing.assert_array_equal(km.clusters.numpy()[1:], [[20., 0.],
                                                          [30., 0.]])


def test_candidates_merged_over_batches_equal_one_top_k():
  rng = np.random.default_rng(9)
  points = rng.normal(size=(50, 3))
  distance = rng.uniform(size=50)
  distance[[3, 17, 40]] = distance.max() + 1  # A tie across batches.
  index = rng.integers(0, 4, 50)
  whole = updates.farthest_candidates(points, index, distance, 6)
  merged = updates.farthest_candidates(points[:20], index[:20],
                                       distance[:20], 6)
  for start in (20, 35):
    merged = updates.merge_candidates(merged, updates.farthest_candidates(
        points[start:start + 15], index[start:start + 15],
        distance[start:start + 15], 6))
  order = np.argsort(-distance, kind='stable')[:6]
  for got, want in zip(whole, (distance[order], points[order],
                               index[order])):
    np.testing.assert_array_equal(got.numpy(), want)
  for got, want in zip(merged, whole):
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_fewer_points_than_slots_pad_with_minus_infinity():
  values, points, labels = updates.farthest_candidates(
      np.ones((2, 3)), np.array([1, 0]), np.array([2., 5.]), 4)
  np.testing.assert_array_equal(values.numpy(), [5., 2., -np.inf, -np.inf])
  np.testing.assert_array_equal(labels.numpy(), [0, 1, 0, 0])
  assert points.shape == (4, 3)


def _mini_batch_oracle(batches, init):
  """Mini-batch steps relocating only never-used clusters (numpy).

  The counts start at 1 (the legacy rule for one step per iteration); a
  cluster never used has count 1 still, and a relocated center lands on
  its point (its update takes n = 0).
  """
  centers = np.asarray(init, np.float64).copy()
  totals = np.ones(len(init))
  relocated = []
  for batch in batches:
    d = oracles.distances(batch, centers)
    labels = d.argmin(1)
    far = d[np.arange(len(batch)), labels]
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, batch)
    counts = np.bincount(labels, minlength=len(centers)).astype(float)
    dead = np.flatnonzero((counts == 0) & (totals <= 1))
    rate = totals.copy()
    moved = 0
    if len(dead) and far.max() > 0:
      for e, i in zip(dead, np.argsort(-far, kind='stable')):
        sums[labels[i]] -= batch[i]
        counts[labels[i]] -= 1
        sums[e], counts[e] = batch[i], 1
        rate[e] = 0
        moved += 1
    relocated.append(moved)
    step = np.where((rate + counts)[:, None] > 0,
                    (sums - counts[:, None] * centers) /
                    np.maximum(rate + counts, 1)[:, None], 0)
    centers = centers + step
    totals += counts
  return centers, totals, relocated


def test_mini_batch_relocates_only_clusters_that_never_had_a_point():
  points = blobs(10, n=240)
  init = with_far_centers(points, 2, 10)
  # Batch 2 leaves some cluster without points: it keeps its center, since
  # it had points before.
  batches = [points[:60], points[60:64], points[64:180], points[180:]]
  km = KMeans(len(init), initial_clusters=init, dtype=tf.float64,
              use_mini_batch=True, empty_cluster='farthest_point')
  step = tf.function(km.train_step)
  got = [(int(s['empty_clusters']), int(s['relocated_clusters']))
         for s in (step(batch) for batch in batches)]
  want, totals, relocated = _mini_batch_oracle(batches, init)
  assert [moved for _, moved in got] == relocated == [2, 0, 0, 0]
  assert got[1][0] >= 1  # An empty cluster that was not relocated.
  np.testing.assert_allclose(km.clusters.numpy(), want, rtol=1e-10)
  np.testing.assert_array_equal(km.cluster_counts.numpy(), totals)


def test_a_batch_with_fewer_points_than_empty_clusters():
  init = np.array([[0., 0.], [100., 0.], [200., 0.], [300., 0.], [400., 0.]])
  batch = np.array([[1., 0.], [2., 0.], [-3., 0.]])
  km = KMeans(5, initial_clusters=init, dtype=tf.float64, use_mini_batch=True,
              empty_cluster='farthest_point')
  stats = km.train_step(batch)
  want, totals, relocated = _mini_batch_oracle([batch], init)
  # Four empty clusters, three points: each point takes one of them.
  assert int(stats['empty_clusters']) == 4
  assert int(stats['relocated_clusters']) == relocated[0] == 3
  np.testing.assert_allclose(km.clusters.numpy(), want)
  np.testing.assert_array_equal(km.cluster_counts.numpy(), totals)


def test_unknown_policy_names_the_argument_and_the_choices():
  with pytest.raises(ValueError, match=r"`empty_cluster` must be one of "
                     r"\['keep', 'farthest_point'\]. Received: "
                     r"empty_cluster='sklearn'"):
    KMeans(3, empty_cluster='sklearn')
  with pytest.raises(ValueError, match='`empty_cluster` must be one of'):
    KMeansClustering(3, empty_cluster='farthest')


def test_mini_batch_two_copy_scheme_is_refused():
  with pytest.raises(ValueError, match='mini_batch_steps_per_iteration=1'):
    KMeans(3, use_mini_batch=True, mini_batch_steps_per_iteration=2,
           empty_cluster='farthest_point')


def test_a_training_strategy_is_refused_before_anything_is_written(tmp_path):
  config = RunConfig(train_distribute=tf.distribute.OneDeviceStrategy('/cpu:0'))
  with pytest.raises(ValueError, match='train_distribute'):
    KMeansClustering(3, model_dir=str(tmp_path / 'm'), config=config,
                     empty_cluster='farthest_point')
  assert not (tmp_path / 'm').exists()


def test_constants_are_mirrored_on_both_classes():
  for cls in (KMeans, KMeansClustering):
    assert cls.KEEP_EMPTY == 'keep'
    assert cls.FARTHEST_POINT == 'farthest_point'


@pytest.mark.parametrize('mode', fast_first(2, ['tensor', 'batches',
                                              'hamerly', 'mini_batch']))
def test_estimator_trains_like_the_oracle_and_logs_the_counts(
    tmp_path, caplog, mode):
  points = blobs(11, n=200).astype(np.float32)
  init = with_far_centers(points, 2, 11).astype(np.float32)
  mini_batch = mode == 'mini_batch'
  kmeans = KMeansClustering(len(init), model_dir=str(tmp_path),
                            initial_clusters=init, use_mini_batch=mini_batch,
                            empty_cluster='farthest_point',
                            algorithm='hamerly' if mode == 'hamerly' else
                            'lloyd',
                            config=RunConfig(log_step_count_steps=1))
  if mode in ('batches', 'mini_batch'):
    input_fn = lambda: tf.data.Dataset.from_tensor_slices(points).batch(50)
  else:
    input_fn = lambda: points
  with caplog.at_level('INFO'), caplog.at_level('INFO', logger='absl'):
    kmeans.train(input_fn, steps=None if mini_batch else 3)
  text = caplog.text
  assert 'step = 1, empty clusters = 2, relocated = 2' in text
  assert 'step = 3, empty clusters = 0, relocated = 0' in text
  if mini_batch:
    want = _mini_batch_oracle([points[i:i + 50] for i in range(0, 200, 50)],
                              init)[0]
  else:
    want = _numpy_steps(points, init, 3, oracles.SQUARED_EUCLIDEAN)[0]
  np.testing.assert_allclose(kmeans.cluster_centers(), want, rtol=1e-4,
                             atol=1e-3)
  assert kmeans.training_summary.relocated_total == 2


def test_keep_logs_the_empty_clusters_without_a_relocation_count(
    tmp_path, caplog):
  points = blobs(12).astype(np.float32)
  init = with_far_centers(points, 1, 12).astype(np.float32)
  kmeans = KMeansClustering(len(init), model_dir=str(tmp_path),
                            initial_clusters=init, use_mini_batch=False)
  with caplog.at_level('INFO'), caplog.at_level('INFO', logger='absl'):
    kmeans.train(lambda: points, steps=2)
  assert 'step = 1, empty clusters = 1\n' in caplog.text + '\n'
  assert 'relocated =' not in caplog.text
