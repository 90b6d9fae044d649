"""Tests of `num_restarts` (scikit-learn's `n_init`): restarts trained side by
side, sharing each pass over the data, the best one kept.

Evidence: a float64 numpy Lloyd oracle run from each restart's initial
centers (every restart's centers and losses, and the kept one is a lowest);
`distances.restart_statistics` against `cluster_statistics` per set;
scikit-learn's `KMeans(n_init=R)` on separated blobs; invariants
(num_restarts=1 is the code path of old, restart 0 is what one restart
draws, determinism from the seed, a dataset of batches equals one tensor,
integer weights equal repeated rows, resume equals straight through); and
the refusals, each naming `num_restarts`.
"""

import numpy as np
import pytest
import tensorflow as tf
from absl import app
from sklearn import cluster as sk_cluster
from sklearn import datasets as sk_datasets

from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator.io import checkpoints
from kmeans_estimator.ops import distances
from kmeans_estimator import model as kmeans

import oracles
from helpers import run_cli
from helpers import fast_first

KMeans = kmeans.KMeans
SQ, COS = oracles.SQUARED_EUCLIDEAN, oracles.COSINE
INITS = ('random', 'kmeans_plus_plus', 'kmc2', 'kmeans_parallel')


def blobs(seed, n=120, d=3, num_blobs=4, spread=0.7):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(num_blobs, d)) * 3.
  return means[rng.integers(0, num_blobs, size=n)] + spread * rng.normal(
      size=(n, d))


def np_lloyd(points, centers, steps, metric=SQ, weights=None):
  """Exact (weighted) Lloyd steps in float64, under either metric.

  An empty cluster (or one of total weight 0) keeps its center; under
  cosine the points are normalised and moved centers renormalised.

  Returns:
    (centers after the steps, the losses before each step).
  """
  x = (oracles.normalize(points) if metric == COS else
       np.asarray(points, np.float64))
  w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
  c = np.asarray(centers, np.float64).copy()
  losses = []
  for _ in range(steps):
    d = oracles.distances(x, c, metric)
    index = d.argmin(1)
    losses.append((w * d[np.arange(len(x)), index]).sum())
    for j in range(len(c)):
      members = index == j
      total = w[members].sum()
      if total > 0:
        c[j] = (w[members, None] * x[members]).sum(0) / total
        if metric == COS:
          c[j] = oracles.normalize(c[j:j + 1])[0]
  return c, losses


def make(k=5, init='kmeans_plus_plus', num_restarts=3, seed=7,
         dtype=tf.float64, **kwargs):
  return KMeans(k, initial_clusters=init, use_mini_batch=False,
                random_seed=seed, num_restarts=num_restarts, dtype=dtype,
                **kwargs)


def assert_distinct_restarts(restarts):
  for r in range(1, len(restarts)):
    assert not np.allclose(restarts[0], restarts[r])


# ------------------------------------------------- the batched statistics
@pytest.mark.parametrize('metric', [SQ, COS])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('chunk_elements', [30, 1 << 18])
def test_restart_statistics_equal_cluster_statistics_per_set(
    metric, weighted, chunk_elements):
  rng = np.random.default_rng(0)
  points = rng.normal(size=(50, 3))
  if metric == COS:
    points = oracles.normalize(points)
  centers = rng.normal(size=(3, 4, 3))
  weights = rng.uniform(0, 2, size=50) if weighted else None
  sums, counts, loss = distances.restart_statistics(
      tf.constant(points), tf.constant(centers), metric, chunk_elements,
      None if weights is None else tf.constant(weights))
  assert sums.shape == (3, 4, 3) and counts.shape == (3, 4)
  assert loss.shape == (3,)
  for r in range(3):
    want = distances.cluster_statistics(
        tf.constant(points), tf.constant(centers[r]), metric, 1 << 18,
        None if weights is None else tf.constant(weights))
    for got, expected in zip((sums[r], counts[r], loss[r]), want):
      np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # And numpy's.
    d = oracles.distances(points, centers[r], metric)
    w = np.ones(50) if weights is None else weights
    np.testing.assert_allclose(
        loss[r], (w * d.min(1)).sum(), rtol=1e-10)
    np.testing.assert_allclose(
        counts[r], np.bincount(d.argmin(1), w, minlength=4), rtol=1e-10)


# ------------------------------------------ each restart is a separate run
@pytest.mark.parametrize('metric', [SQ, COS])
@pytest.mark.parametrize('init', fast_first(1, INITS))
def test_each_restart_is_a_separate_lloyd_run_and_the_best_is_kept(init,
                                                                   metric):
  points = blobs(0)
  steps, num_restarts = 4, 4
  km = make(init=init, num_restarts=num_restarts, distance_metric=metric,
            chunk_elements=400)  # 20 rows per chunk: several chunks.
  assert bool(km.initialize(points))
  start = km.restart_clusters.numpy()
  assert start.shape == (num_restarts, 5, 3)
  assert_distinct_restarts(start)
  np.testing.assert_array_equal(km.clusters.numpy(), start[0])
  want = [np_lloyd(points, start[r], steps, metric)
          for r in range(num_restarts)]
  for step in range(steps):
    stats = km.full_batch_step(points)
    losses = np.array([want[r][1][step] for r in range(num_restarts)])
    np.testing.assert_allclose(stats['restart_losses'], losses, rtol=1e-10)
    best = int(stats['best_restart'])
    # The kept restart has a lowest loss (restarts that found the same
    # clustering tie up to rounding), and its figures are the step's.
    assert losses[best] <= losses.min() * (1 + 1e-10)
    assert float(stats['loss']) == float(stats['restart_losses'][best])
    np.testing.assert_array_equal(km.clusters.numpy(),
                                  km.restart_clusters.numpy()[best])
    assert int(stats['num_points']) == len(points)
  for r in range(num_restarts):
    np.testing.assert_allclose(km.restart_clusters.numpy()[r], want[r][0],
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('init', fast_first(2, INITS))
def test_restart_zero_draws_what_one_restart_draws(init):
  points = blobs(1).astype(np.float32)
  one = KMeans(5, initial_clusters=init, use_mini_batch=False,
               random_seed=3)
  one.initialize(points)
  many = make(init=init, num_restarts=3, seed=3, dtype=tf.float32)
  many.initialize(points)
  np.testing.assert_array_equal(many.restart_clusters.numpy()[0],
                                one.clusters.numpy())
  assert_distinct_restarts(many.restart_clusters.numpy())


def test_random_restarts_fill_up_over_small_batches():
  points = blobs(2).astype(np.float32)
  one = KMeans(5, initial_clusters='random', use_mini_batch=False,
               random_seed=4)
  many = make(init='random', num_restarts=3, seed=4, dtype=tf.float32)
  batches = [points[:3], points[3:6]]  # k=5: all 3 points, then 2 of 3.
  for i, batch in enumerate(batches):
    assert bool(one.initialize(batch)) == (i == 1)
    assert bool(many.initialize(batch)) == (i == 1)
  restarts = many.restart_clusters.numpy()
  np.testing.assert_array_equal(restarts[0], one.clusters.numpy())
  for r in range(3):
    # A batch smaller than the centers wanted is taken whole, by every
    # restart; the rest are distinct points of the next batch.
    assert sorted(map(tuple, restarts[r, :3])) == sorted(map(tuple,
                                                             batches[0]))
    assert len({tuple(c) for c in restarts[r, 3:]}) == 2
    assert all(any(np.array_equal(c, p) for p in batches[1])
               for c in restarts[r, 3:])
  assert any(not np.array_equal(restarts[0, 3:], restarts[r, 3:])
             for r in (1, 2))


def test_num_restarts_one_is_the_model_without_restarts():
  points = blobs(3).astype(np.float32)
  models = [KMeans(4, initial_clusters='kmeans_plus_plus',
                   use_mini_batch=False, random_seed=5, **kwargs)
            for kwargs in ({}, {'num_restarts': 1})]
  results = []
  for km in models:
    km.initialize(points)
    stats = [km.full_batch_step(points) for _ in range(3)]
    results.append((km.clusters.numpy(), [float(s['loss']) for s in stats],
                    sorted(stats[-1])))
    assert 'restart_clusters' not in km.checkpoint_variables()
  np.testing.assert_array_equal(results[0][0], results[1][0])
  assert results[0][1:] == results[1][1:]


def test_restarts_are_determined_by_the_seed_eager_or_compiled():
  points = blobs(4)
  runs = []
  for seed, compiled in ((11, False), (11, True), (12, True)):
    km = make(seed=seed)
    step = tf.function(km.full_batch_step) if compiled else km.full_batch_step
    km.initialize(points)
    for _ in range(3):
      step(tf.constant(points))
    runs.append(km.restart_clusters.numpy())
  np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12, atol=1e-12)
  assert not np.allclose(runs[1], runs[2])


@pytest.mark.parametrize('weighted', [False, True])
def test_a_dataset_of_batches_equals_one_tensor(weighted):
  points = blobs(5)
  weights = np.random.default_rng(5).uniform(0.5, 2, len(points))
  by_tensor, by_dataset = make(), make()
  for km in (by_tensor, by_dataset):
    km.initialize(points)
  if weighted:
    dataset = tf.data.Dataset.from_tensor_slices((points, weights)).batch(32)
  else:
    dataset = tf.data.Dataset.from_tensor_slices(points).batch(32)
  for _ in range(3):
    want = by_tensor.full_batch_step(points, weights if weighted else None)
    got = by_dataset.full_batch_step(dataset)
    np.testing.assert_allclose(got['restart_losses'], want['restart_losses'],
                               rtol=1e-10)
    np.testing.assert_allclose(got['loss'], want['loss'], rtol=1e-10)
  np.testing.assert_allclose(by_dataset.restart_clusters.numpy(),
                             by_tensor.restart_clusters.numpy(), rtol=1e-10)


def test_integer_weights_equal_repeated_rows_and_the_weighted_oracle():
  points = blobs(6, n=60)
  weights = np.random.default_rng(6).integers(0, 4, len(points)).astype(
      np.float64)
  repeated = np.repeat(points, weights.astype(int), axis=0)
  km = make(init='kmeans_plus_plus')
  km.initialize(points, weights)
  start = km.restart_clusters.numpy()
  with_weights = km.restart_statistics(points, weights)
  with_rows = km.restart_statistics(repeated)
  for got, want in zip(with_weights, with_rows):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
  stats = km.full_batch_step(points, weights)
  assert float(stats['total_weight']) == weights.sum()
  for r in range(3):
    centers, losses = np_lloyd(points, start[r], 1, weights=weights)
    np.testing.assert_allclose(stats['restart_losses'][r], losses[0],
                               rtol=1e-10)
    np.testing.assert_allclose(km.restart_clusters.numpy()[r], centers,
                               rtol=1e-10, atol=1e-10)


def test_streamed_kmeans_parallel_restarts_equal_the_tensor_ones():
  points = blobs(7)
  from_tensor = make(init='kmeans_parallel')
  from_dataset = make(init='kmeans_parallel', num_features=3)
  from_tensor.initialize(points)
  from_dataset.initialize_from_dataset(
      tf.data.Dataset.from_tensor_slices(points).batch(len(points)))
  np.testing.assert_allclose(from_dataset.restart_clusters.numpy(),
                             from_tensor.restart_clusters.numpy(), rtol=1e-12)
  assert_distinct_restarts(from_dataset.restart_clusters.numpy())


def test_restore_without_restart_values_starts_every_restart_from_clusters():
  km = make(num_restarts=3)
  centers = blobs(8, n=5)
  km.restore({'clusters': centers, 'initialized': np.bool_(True)})
  np.testing.assert_array_equal(km.restart_clusters.numpy(),
                                np.stack([centers] * 3))
  with pytest.raises(ValueError, match=r'restart_clusters have shape '
                     r'\(2, 5, 3\) but this KMeans has num_restarts=3'):
    km.restore({'clusters': centers, 'restart_clusters': np.stack(
        [centers] * 2)})


# ----------------------------------------------------------- scikit-learn
def _converged_inertia(points, num_restarts, seed, init='kmeans_plus_plus'):
  km = make(k=6, init=init, num_restarts=num_restarts, seed=seed)
  step = tf.function(km.full_batch_step)
  km.initialize(points)
  previous = None
  for _ in range(100):
    stats = step(tf.constant(points))
    losses = stats.get('restart_losses', stats['loss']).numpy()
    if previous is not None and np.array_equal(losses, previous):
      break  # Every restart has converged.
    previous = losses
  return oracles.inertia(points, km.clusters.numpy())


@pytest.mark.parametrize('seed', range(3))
def test_best_inertia_matches_scikit_learn_n_init(seed):
  points, _ = sk_datasets.make_blobs(n_samples=300, centers=6, n_features=3,
                                     cluster_std=0.5, random_state=seed)
  ours = _converged_inertia(points, 5, seed)
  theirs = sk_cluster.KMeans(6, n_init=5, init='k-means++',
                             algorithm='lloyd', random_state=seed,
                             tol=0).fit(points).inertia_
  assert ours <= theirs * (1 + 1e-6)


def test_restarts_never_lose_to_one_run_and_help_from_random_starts():
  one, many = [], []
  for seed in range(4):
    points, _ = sk_datasets.make_blobs(n_samples=240, centers=6,
                                       n_features=2, cluster_std=0.6,
                                       random_state=10 + seed)
    one.append(_converged_inertia(points, 1, seed, init='random'))
    many.append(_converged_inertia(points, 6, seed, init='random'))
  # Restart 0 is the single run, and the best is kept.
  assert all(m <= o * (1 + 1e-9) for m, o in zip(many, one))
  assert sum(many) < sum(one)


# --------------------------------------------------------------- refusals
@pytest.mark.parametrize('kwargs, message', [
    ({'use_mini_batch': True},
     'num_restarts=2 needs use_mini_batch=False'),
    ({'empty_cluster': 'farthest_point'},
     "num_restarts=2 does not support empty_cluster='farthest_point'"),
    ({'initial_clusters': np.zeros((3, 2))},
     'num_restarts=2 needs initial centers drawn at random'),
    ({'initial_clusters': lambda points, k: points[:k]},
     'num_restarts=2 needs initial centers drawn at random'),
])
def test_core_refuses_what_restarts_cannot_do(kwargs, message):
  args = {'initial_clusters': 'random', 'use_mini_batch': False,
          'num_restarts': 2}
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    KMeans(3, **args)


@pytest.mark.parametrize('value, error', [(0, ValueError), (-1, ValueError),
                                          (2.0, TypeError), (True, TypeError)])
def test_num_restarts_must_be_a_positive_integer(value, error):
  with pytest.raises(error, match=f'`num_restarts` must be a positive '
                     f'integer. Received: num_restarts={value!r}'):
    KMeans(3, use_mini_batch=False, num_restarts=value)


def test_core_steps_that_move_clusters_alone_are_refused():
  points = blobs(9)
  km = make()
  km.initialize(points)
  with pytest.raises(ValueError, match='hamerly_step does not support '
                     'num_restarts=3'):
    km.hamerly_step(points, km.hamerly_state(points))
  with pytest.raises(ValueError, match='apply_full_batch moves `clusters` '
                     'alone, but this KMeans has num_restarts=3'):
    km.apply_full_batch(*km.statistics(points))


@pytest.mark.parametrize('kwargs, message', [
    ({}, 'num_restarts=3 needs use_mini_batch=False'),
    ({'use_mini_batch': False, 'algorithm': 'hamerly'},
     "num_restarts=3 needs algorithm='lloyd'"),
    ({'use_mini_batch': False, 'config': RunConfig(
        train_distribute=tf.distribute.OneDeviceStrategy('/cpu:0'))},
     r'num_restarts=3 is not supported with RunConfig\(train_distribute'),
    ({'use_mini_batch': False, 'initial_clusters': np.zeros((2, 3))},
     'num_restarts=3 needs initial centers drawn at random'),
])
def test_estimator_refuses_what_restarts_cannot_do(kwargs, message,
                                                   tmp_path):
  with pytest.raises(ValueError, match=message):
    KMeansClustering(2, model_dir=str(tmp_path / 'model'), num_restarts=3,
                     **kwargs)
  assert not (tmp_path / 'model').exists()


# -------------------------------------------------------------- estimator
def estimator(model_dir, num_restarts=3, **kwargs):
  args = {'use_mini_batch': False, 'initial_clusters': 'kmeans_plus_plus',
          'seed': 5}
  args.update(kwargs)
  return KMeansClustering(4, model_dir=str(model_dir),
                          num_restarts=num_restarts, **args)


_POINTS = blobs(10, n=150).astype(np.float32)


def test_estimator_trains_what_the_core_trains_and_saves_every_restart(
    tmp_path):
  est = estimator(tmp_path)
  est.train(_POINTS, steps=4)
  km = KMeans(4, initial_clusters='kmeans_plus_plus', use_mini_batch=False,
              random_seed=5, num_restarts=3)
  km.initialize(_POINTS)
  for _ in range(4):
    stats = km.full_batch_step(_POINTS)
  restarts = tf.train.load_variable(str(tmp_path), 'restart_clusters')
  np.testing.assert_allclose(restarts, km.restart_clusters.numpy(),
                             rtol=1e-5, atol=1e-5)
  # The kept restart is one of lowest loss (restarts that found the same
  # clustering tie up to rounding, so the index itself may differ).
  centers = tf.train.load_variable(str(tmp_path), 'clusters')
  kept = [r for r in range(3) if np.array_equal(centers, restarts[r])]
  losses = stats['restart_losses'].numpy()
  assert kept and losses[kept[0]] <= losses.min() * (1 + 1e-5)
  best = kept[0]
  np.testing.assert_array_equal(est.cluster_centers(), restarts[best])
  assert est.training_summary.loss == pytest.approx(losses.min(), rel=1e-5)
  names = dict(tf.train.list_variables(str(tmp_path)))
  assert names['restart_clusters'] == [3, 4, 3]
  assert names['clusters'] == [4, 3]
  # Predictions use the kept centers.
  want = oracles.distances(_POINTS, restarts[best]).argmin(1)
  assert list(est.predict_cluster_index(_POINTS)) == list(want)


def test_estimator_with_sample_weights_trains_every_restart(tmp_path):
  weights = np.random.default_rng(10).integers(1, 3, len(_POINTS))
  est = estimator(tmp_path, weight_column='w', dtype=tf.float64)
  est.train({'x': _POINTS, 'w': weights.astype(np.float64)}, steps=1)
  km = KMeans(4, initial_clusters='kmeans_plus_plus', use_mini_batch=False,
              random_seed=5, num_restarts=3, dtype=tf.float64)
  km.initialize(_POINTS, weights)
  start = km.restart_clusters.numpy()
  restarts = tf.train.load_variable(str(tmp_path), 'restart_clusters')
  for r in range(3):
    np.testing.assert_allclose(
        restarts[r], np_lloyd(_POINTS, start[r], 1, weights=weights)[0],
        rtol=1e-10, atol=1e-10)


def test_resume_equals_training_straight_through(tmp_path):
  estimator(tmp_path / 'straight').train(_POINTS, steps=5)
  estimator(tmp_path / 'resumed').train(_POINTS, steps=2)
  estimator(tmp_path / 'resumed').train(_POINTS, steps=3)
  for name in ('clusters', 'restart_clusters'):
    np.testing.assert_array_equal(
        tf.train.load_variable(str(tmp_path / 'resumed'), name),
        tf.train.load_variable(str(tmp_path / 'straight'), name))
  assert tf.train.load_variable(str(tmp_path / 'resumed'),
                                'global_step') == 5


@pytest.mark.parametrize('trained_with, training_with', [(2, 3), (2, 1),
                                                         (1, 3)])
def test_training_refuses_a_model_dir_of_another_num_restarts(
    trained_with, training_with, tmp_path):
  estimator(tmp_path, num_restarts=trained_with).train(_POINTS, steps=2)
  before = oracles.snapshot(tmp_path)
  other = estimator(tmp_path, num_restarts=training_with)
  with pytest.raises(ValueError, match=(
      f'holds a model trained with num_restarts={trained_with} but this '
      f'estimator has num_restarts={training_with}; train with the same '
      'num_restarts')):
    other.train(_POINTS, steps=1)
  assert oracles.snapshot(tmp_path) == before
  # Reading needs no matching num_restarts: it uses the kept centers.
  centers = tf.train.load_variable(str(tmp_path), 'clusters')
  want = oracles.distances(_POINTS, centers).argmin(1)
  assert list(other.predict_cluster_index(_POINTS)) == list(want)
  assert other.evaluate(_POINTS)['inertia'] == pytest.approx(
      oracles.inertia(_POINTS, centers), rel=1e-5)
  with pytest.raises(ValueError, match='num_restarts'):
    other.train(_POINTS, steps=1)  # Still refused after a read.
  assert oracles.snapshot(tmp_path) == before


def test_legacy_model_dir_reads_but_does_not_train_with_restarts(tmp_path):
  model_dir = oracles.copy_legacy('euclidean_fullbatch', tmp_path)
  points = np.load(oracles.LEGACY_DIR / 'points.npy')
  k = tf.train.load_variable(str(model_dir), 'clusters').shape[0]
  est = KMeansClustering(k, model_dir=str(model_dir), use_mini_batch=False,
                         initial_clusters='kmeans_plus_plus', seed=3,
                         num_restarts=2)
  np.testing.assert_array_equal(
      est.cluster_centers(), tf.train.load_variable(str(model_dir),
                                                    'clusters'))
  before = oracles.snapshot(model_dir)
  with pytest.raises(ValueError, match='holds a model trained with '
                     'num_restarts=1 but this estimator has num_restarts=2'):
    est.train(points, steps=1)
  assert oracles.snapshot(model_dir) == before


def test_damaged_restart_clusters_are_refused(tmp_path):
  estimator(tmp_path).train(_POINTS, steps=1)
  values = {name: tf.train.load_variable(str(tmp_path), name)
            for name, _ in tf.train.list_variables(str(tmp_path))}
  values['restart_clusters'][1, 0, 0] = np.nan
  checkpoints.save_checkpoint(str(tmp_path), 2, values, 5)
  with pytest.raises(ValueError, match='holds invalid restart_clusters'):
    list(estimator(tmp_path).predict_cluster_index(_POINTS))


# -------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_num_restarts_flag_trains_as_the_api(tmp_path):
  path = tmp_path / 'points.npy'
  np.save(path, _POINTS)
  assert run_cli('train', f'--model_dir={tmp_path / "cli"}',
                  '--num_clusters=4', '--nouse_mini_batch',
                  '--initial_clusters=kmeans_plus_plus', '--seed=5',
                  '--num_restarts=3', '--steps=3', '--batch_size=1000',
                  path) == 0
  api = estimator(tmp_path / 'api')
  api.train(_POINTS, steps=3)
  np.testing.assert_allclose(
      tf.train.load_variable(str(tmp_path / 'cli'), 'restart_clusters'),
      tf.train.load_variable(str(tmp_path / 'api'), 'restart_clusters'),
      rtol=1e-5, atol=1e-5)
  # The command line trains full batch by default; restarts still refuse
  # mini-batch training when it is asked for.
  with pytest.raises(app.UsageError, match='num_restarts=3 needs '
                     'use_mini_batch=False'):
    run_cli('train', f'--model_dir={tmp_path / "other"}',
             '--num_clusters=4', '--num_restarts=3', '--use_mini_batch',
             path)


# ------------------------------------------ the kept restart is the best one
def _inertia(points, centers, weights=None):
  d = oracles.distances(points, centers).min(1)
  return float(d.sum() if weights is None else (weights * d).sum())


@pytest.mark.parametrize('form', ['array', 'batches', 'weighted'])
@pytest.mark.slow
def test_kept_centers_score_lowest_among_the_restarts_final_centers(
    form, tmp_path):
  # Each step knows the restarts' losses before its update only; an update
  # can change their order, so the kept centers are scored after it.
  points, _ = sk_datasets.make_blobs(60, centers=3, n_features=5,
                                     random_state=42)
  points = points.astype(np.float32)
  weights = np.random.default_rng(0).integers(1, 4, len(points)).astype(
      np.float32)
  for seed in range(12):
    model_dir = tmp_path / f'{form}{seed}'
    kwargs = {'weight_column': 'w'} if form == 'weighted' else {}
    est = KMeansClustering(3, model_dir=str(model_dir), seed=seed,
                           initial_clusters='random', use_mini_batch=False,
                           num_restarts=4, **kwargs)
    data = {'x': points, 'w': weights} if form == 'weighted' else points
    est.train(data, steps=1 + seed % 3,
              batch_size=25 if form == 'batches' else None)
    w = weights if form == 'weighted' else None
    restarts = tf.train.load_variable(str(model_dir), 'restart_clusters')
    centers = est.cluster_centers()
    assert any(np.array_equal(centers, r) for r in restarts), seed
    best = min(_inertia(points, r, w) for r in restarts)
    assert _inertia(points, centers, w) <= best * (1 + 1e-5), seed


def test_core_keep_best_restart_keeps_the_lowest_of_the_updated_centers():
  points = blobs(3)
  for seed in range(20):
    km = make(k=4, init='random', num_restarts=4, seed=seed)
    km.initialize(points)
    km.full_batch_step(points)
    stats = km.keep_best_restart(points)
    losses = [_inertia(points, r) for r in km.restart_clusters.numpy()]
    np.testing.assert_allclose(stats['restart_losses'], losses, rtol=1e-10)
    assert int(stats['best_restart']) == int(np.argmin(losses)), seed
    np.testing.assert_array_equal(
        km.clusters.numpy(), km.restart_clusters.numpy()[np.argmin(losses)])


@pytest.mark.parametrize('seed, steps', [(19, 1), (7, 3), (0, 2)])
def test_more_restarts_never_end_worse_than_one(seed, steps, tmp_path):
  # Restart 0 is the single run, so keeping the best final centers can only
  # help. (Seeds 19 and 7 are cases where the restart lowest before the
  # last update ended worse than restart 0.)
  points, _ = sk_datasets.make_blobs(60, centers=3, n_features=5,
                                     random_state=42)
  points = points.astype(np.float32)
  inertias = {}
  for num_restarts in (1, 4):
    est = KMeansClustering(
        3, model_dir=str(tmp_path / str(num_restarts)), seed=seed,
        initial_clusters='random', use_mini_batch=False,
        num_restarts=num_restarts)
    est.train(points, steps=steps)
    inertias[num_restarts] = _inertia(points, est.cluster_centers())
  assert inertias[4] <= inertias[1] * (1 + 1e-6), inertias
