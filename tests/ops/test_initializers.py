"""Tests for kmeans_estimator.ops.initializers and `KMeans.initialize`.

Initial centers are rows of the (prepared) data, the same seed gives the same
centers and a different seed different ones, k-means++ and k-MC2 spread over
well-separated blobs, and initialisation that spans several batches (random,
callables) or fails (k-means++ on too small a batch) leaves a coherent state.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from sklearn import datasets as sk_datasets

from kmeans_estimator.ops import initializers
from kmeans_estimator import model as kmeans
from kmeans_estimator.ops import numerics

from helpers import fast_first

SQ = 'squared_euclidean'
COS = 'cosine'
METHODS = ('random', 'kmeans_plus_plus', 'kmc2')


def seed_of(i):
  return tf.constant([i, 7], tf.int32)


def blobs(seed, num_blobs=5, per_blob=20, d=3, spread=0.1):
  """Well-separated blobs: (points (n, d) float32, blob label (n,))."""
  rng = np.random.default_rng(seed)
  means = 100. * np.eye(num_blobs, d) if num_blobs <= d else (
      rng.permutation(num_blobs * 10)[:num_blobs, None] * 100. *
      np.ones((1, d)))
  labels = np.repeat(np.arange(num_blobs), per_blob)
  points = means[labels] + spread * rng.normal(size=(len(labels), d))
  order = rng.permutation(len(labels))
  return points[order].astype(np.float32), labels[order]


def row_indices(centers, points):
  """Index of the data row equal to each center; fails if there is none."""
  centers, points = np.asarray(centers), np.asarray(points)
  found = []
  for c in centers:
    hits = np.flatnonzero(np.all(points == c, axis=1))
    assert hits.size, f'center {c} is not a row of the data'
    found.append(hits[0])
  return np.array(found)


def init(method, points, k, seed=0, metric=SQ, **kwargs):
  # Short k-MC2 chains: the chain walk is a Python loop when eager.
  kwargs.setdefault('kmc2_chain_length', 20)
  km = kmeans.KMeans(k, initial_clusters=method, distance_metric=metric,
                     random_seed=seed, **kwargs)
  assert bool(km.initialize(points).numpy())
  return km.clusters.numpy()


# ------------------------------------------------------- k-means++ retries
@pytest.mark.parametrize('k, retries, expected', [
    (5, 2, 3), (5, 0, 1), (1, -1, 3), (2, -1, 3), (10, -1, 5), (100, -1, 7),
    (1000, -5, 9)])
def test_kmeans_plus_plus_num_retries_negative_is_2_plus_log_k(
    k, retries, expected):
  assert initializers.num_kmeans_plus_plus_candidates(k, retries) == expected
  if retries < 0:
    assert expected == 1 + 2 + int(math.log(k))


def test_kmeans_plus_plus_negative_retries_initializes():
  points, labels = blobs(0)
  centers = init('kmeans_plus_plus', points, 5, kmeans_plus_plus_num_retries=-1)
  assert sorted(labels[row_indices(centers, points)]) == list(range(5))


# ------------------------------------------------------ pure initialisers
@pytest.mark.parametrize('seed', range(3))
def test_random_points_are_distinct_rows(seed):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(12, 2)).astype(np.float32)
  got = initializers.random_points(tf.constant(points), 5, seed_of(seed))
  assert got.shape == (5, 2)
  assert len(set(row_indices(got, points))) == 5
  # Fewer rows than wanted: all of them, each once.
  got = initializers.random_points(tf.constant(points[:3]), 5, seed_of(seed))
  assert sorted(row_indices(got, points)) == [0, 1, 2]


@pytest.mark.parametrize('fn, extra', [
    (initializers.kmeans_plus_plus, 2), (initializers.kmeans_plus_plus, -1),
    (initializers.kmc2, 20)])
@pytest.mark.parametrize('metric', [SQ, COS])
def test_pure_initializers_seeded_rows_of_data(fn, extra, metric):
  rng = np.random.default_rng(0)
  points = tf.constant(rng.normal(size=(40, 3)))
  if metric == COS:
    points = numerics.safe_l2_normalize(points)
  a = fn(points, 6, seed_of(1), extra, metric).numpy()
  b = fn(points, 6, seed_of(1), extra, metric).numpy()
  c = fn(points, 6, seed_of(2), extra, metric).numpy()
  assert a.shape == (6, 3)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  row_indices(a, points.numpy())
  row_indices(c, points.numpy())


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('retries', [0, 2, -1])
def test_kmeans_plus_plus_picks_one_center_per_blob(seed, retries):
  points, labels = blobs(seed)
  centers = initializers.kmeans_plus_plus(tf.constant(points), 5,
                                          seed_of(seed), retries, SQ)
  assert sorted(labels[row_indices(centers, points)]) == list(range(5))


@pytest.mark.parametrize('seed', range(3))
def test_kmeans_plus_plus_picks_one_center_per_direction_under_cosine(seed):
  # Blobs of directions: magnitudes vary, directions cluster.
  points, labels = blobs(seed, num_blobs=3, d=3, spread=3.)
  points *= np.random.default_rng(seed).uniform(0.1, 10., size=(len(points), 1))
  prepared = numerics.safe_l2_normalize(tf.constant(points))
  centers = initializers.kmeans_plus_plus(prepared, 3, seed_of(seed), 2, COS)
  assert sorted(labels[row_indices(centers, prepared.numpy())]) == [0, 1, 2]


@pytest.mark.parametrize('seed', range(3))
def test_kmc2_picks_one_center_per_blob(seed):
  points, labels = blobs(seed)
  centers = initializers.kmc2(tf.constant(points), 5, seed_of(seed), 50, SQ)
  assert sorted(labels[row_indices(centers, points)]) == list(range(5))


def test_kmc2_chain_length_one_is_uniform_rows():
  points, _ = blobs(0)
  centers = initializers.kmc2(tf.constant(points), 4, seed_of(0), 1, SQ)
  row_indices(centers, points)


# ------------------------------------------------- KMeans.initialize
@pytest.mark.parametrize('method', METHODS)
def test_same_seed_same_centers_different_seed_different(method):
  points, _ = blobs(1, per_blob=10)
  a = init(method, points, 4, seed=3)
  b = init(method, points, 4, seed=3)
  c = init(method, points, 4, seed=4)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize('metric', [SQ, COS])
@pytest.mark.parametrize('method', METHODS)
def test_initial_centers_are_rows_of_the_data(method, metric):
  rng = np.random.default_rng(5)
  points = rng.normal(size=(30, 4)).astype(np.float32)
  centers = init(method, points, 5, metric=metric)
  prepared = points if metric == SQ else numerics.safe_l2_normalize(
      tf.constant(points)).numpy()
  idx = row_indices(centers, prepared)
  if method == 'random':
    assert len(set(idx)) == 5  # without replacement


def test_random_init_takes_centers_over_several_initialize_calls():
  points = np.arange(20, dtype=np.float32).reshape(10, 2)
  km = kmeans.KMeans(5, initial_clusters='random', random_seed=0)
  done = [bool(km.initialize(points[i:i + 2]).numpy()) for i in (0, 2, 4)]
  assert done == [False, False, True]
  assert bool(km.initialized.numpy())
  assert km.num_initialized.numpy() == 5
  centers = km.clusters.numpy()
  # Two from each of the first two batches, in order, then one from the third.
  assert sorted(row_indices(centers[:2], points)) == [0, 1]
  assert sorted(row_indices(centers[2:4], points)) == [2, 3]
  assert row_indices(centers[4:], points)[0] in (4, 5)
  # Later calls change nothing.
  assert bool(km.initialize(points[6:]).numpy())
  np.testing.assert_array_equal(km.clusters.numpy(), centers)


def test_random_init_with_empty_batch_chooses_nothing():
  km = kmeans.KMeans(2, num_features=2, initial_clusters='random')
  assert not bool(km.initialize(np.zeros([0, 2], np.float32)).numpy())
  assert km.num_initialized.numpy() == 0
  assert bool(km.initialize(np.ones([3, 2], np.float32)).numpy())


def test_callable_init_returning_fewer_than_k_is_called_again():
  calls = []

  def first_two(points, k):
    calls.append((points.shape[0], k))
    return points[:2]

  points = np.arange(20, dtype=np.float32).reshape(10, 2)
  km = kmeans.KMeans(5, initial_clusters=first_two)
  done = [bool(km.initialize(points[i:i + 3]).numpy()) for i in (0, 3, 6)]
  assert done == [False, False, True]
  assert len(calls) == 3
  np.testing.assert_array_equal(km.clusters.numpy(),
                                points[[0, 1, 3, 4, 6]])
  # Once initialized, the callable is not called again.
  km.initialize(points)
  assert len(calls) == 3


def test_callable_init_returning_more_than_k_is_truncated():
  points = np.arange(20, dtype=np.float64).reshape(10, 2)
  km = kmeans.KMeans(3, initial_clusters=lambda p, k: p[::-1],
                     dtype=tf.float64)
  assert bool(km.initialize(points).numpy())
  np.testing.assert_array_equal(km.clusters.numpy(), points[[9, 8, 7]])


def test_callable_init_under_cosine_sees_and_returns_normalized_points():
  seen = []

  def first_k(points, k):
    seen.append(points.numpy())
    return points[:k] * 5.  # the core normalises what the callable returns

  points = np.array([[3., 4.], [0., 2.], [-1., 0.]], np.float32)
  km = kmeans.KMeans(2, initial_clusters=first_k, distance_metric=COS)
  km.initialize(points)
  np.testing.assert_allclose(seen[0], [[.6, .8], [0., 1.], [-1., 0.]],
                             rtol=1e-6)
  np.testing.assert_allclose(km.clusters.numpy(), [[.6, .8], [0., 1.]],
                             rtol=1e-6)


@pytest.mark.parametrize('method', METHODS)
def test_initialize_is_a_no_op_once_initialized(method):
  rng = np.random.default_rng(0)
  km = kmeans.KMeans(3, initial_clusters=method, random_seed=1,
                     kmc2_chain_length=20)
  km.initialize(rng.normal(size=(10, 2)))
  before = km.clusters.numpy()
  assert bool(km.initialize(rng.normal(size=(10, 2)) + 50.).numpy())
  np.testing.assert_array_equal(km.clusters.numpy(), before)
  assert km.num_initialized.numpy() == 3


def test_initialize_with_given_centers_is_done_at_construction():
  given = np.array([[1., 2.], [3., 4.]])
  km = kmeans.KMeans(2, initial_clusters=given)
  assert bool(km.initialized.numpy())
  np.testing.assert_array_equal(km.clusters.numpy(), given)
  assert bool(km.initialize(np.zeros([5, 2])).numpy())
  np.testing.assert_array_equal(km.clusters.numpy(), given)


@pytest.mark.parametrize('compiled', [False, True])
def test_kmeans_plus_plus_with_fewer_than_k_points_raises(compiled):
  km = kmeans.KMeans(4, num_features=2, initial_clusters='kmeans_plus_plus')
  initialize = tf.function(km.initialize) if compiled else km.initialize
  small = np.arange(6, dtype=np.float32).reshape(3, 2)
  with pytest.raises(tf.errors.InvalidArgumentError, match='kmeans_plus_plus'):
    initialize(small)
  # Nothing was written: a later, big enough batch initialises normally.
  assert not bool(km.initialized.numpy())
  assert km.num_initialized.numpy() == 0
  np.testing.assert_array_equal(km.clusters.numpy(), np.zeros((4, 2)))
  big = np.arange(10, dtype=np.float32).reshape(5, 2)
  assert bool(initialize(big).numpy())
  row_indices(km.clusters.numpy(), big)


@pytest.mark.parametrize('compiled', [False, True])
def test_kmc2_with_empty_batch_raises(compiled):
  km = kmeans.KMeans(2, num_features=2, initial_clusters='kmc2',
                     kmc2_chain_length=5)
  initialize = tf.function(km.initialize) if compiled else km.initialize
  with pytest.raises(tf.errors.InvalidArgumentError, match='kmc2'):
    initialize(np.zeros([0, 2], np.float32))
  assert not bool(km.initialized.numpy())
  assert km.num_initialized.numpy() == 0


@pytest.mark.parametrize('method', METHODS)
def test_initialize_eager_equals_tf_function(method):
  points, _ = blobs(2, per_blob=8)
  eager = kmeans.KMeans(5, num_features=3, initial_clusters=method,
                        random_seed=9, kmc2_chain_length=20)
  graph = kmeans.KMeans(5, num_features=3, initial_clusters=method,
                        random_seed=9, kmc2_chain_length=20)
  eager.initialize(points)
  tf.function(graph.initialize)(tf.constant(points))
  np.testing.assert_array_equal(graph.clusters.numpy(), eager.clusters.numpy())
  assert bool(graph.initialized.numpy())


@pytest.mark.parametrize('method', METHODS)
def test_k_equals_n_initial_centers_are_all_points(method):
  points = np.array([[0., 0.], [5., 0.], [0., 5.], [5., 5.]], np.float32)
  centers = init(method, points, 4, kmc2_chain_length=50)
  idx = row_indices(centers, points)
  if method != 'kmc2':  # k-MC2 chains may end on an already chosen point
    assert sorted(idx) == [0, 1, 2, 3]


@pytest.mark.parametrize('method', METHODS)
def test_duplicate_points_fewer_distinct_points_than_k_init(method):
  points = np.array([[1., 1.]] * 5 + [[4., -2.]] * 3, np.float32)
  centers = init(method, points, 4)
  assert np.all(np.isfinite(centers))
  row_indices(centers, points)
  if method == 'kmeans_plus_plus':
    # Both distinct points are chosen before any duplicate.
    assert len({tuple(c) for c in centers}) == 2


# ----------------------------------------------- the dtype changes no draw
def small_integers(seed, n=60, d=2):
  """Points exactly representable in float16 whose squared distances are
  exact in float16 too (integers below 2048)."""
  return np.random.default_rng(seed).integers(-8, 9, size=(n, d)).astype(
      np.float64)


def draw(method, points, seed):
  k = 5
  if method == 'random':
    return initializers.random_points(points, k, seed)
  if method == 'kmeans_plus_plus':
    return initializers.kmeans_plus_plus(points, k, seed, 2, SQ)
  if method == 'kmc2':
    return initializers.kmc2(points, k, seed, 20, SQ)
  candidates, weights = initializers.kmeans_parallel_candidates(
      points, seed, 3, 3, SQ, 1000)
  return initializers.reduce_candidates(candidates, weights, k, seed, SQ)


@pytest.mark.parametrize('method', METHODS + ('kmeans_parallel',))
@pytest.mark.parametrize('seed', range(5))
def test_float16_32_64_copies_of_the_same_data_draw_the_same_centers(
    method, seed):
  points = small_integers(seed)
  wide = draw(method, tf.constant(points), seed_of(seed)).numpy()
  for dtype in (np.float16, np.float32):
    got = draw(method, tf.constant(points.astype(dtype)), seed_of(seed))
    assert got.dtype == dtype
    # Rows of the data are the same rows; k-means||'s Lloyd means, computed
    # in float64 for every dtype, are rounded to the dtype once at the end.
    np.testing.assert_array_equal(got.numpy(), wide.astype(dtype))
  if method != 'kmeans_parallel':
    row_indices(wide, points)


@pytest.mark.parametrize('method', METHODS + ('kmeans_parallel',))
def test_kmeans_initialize_draws_the_same_centers_in_float32_and_float64(
    method):
  points = small_integers(7, n=80)
  got = {dtype: init(method, points, 5, seed=3, dtype=dtype)
         for dtype in (tf.float32, tf.float64)}
  np.testing.assert_array_equal(got[tf.float32],
                                got[tf.float64].astype(np.float32))


def sklearn_float_precision_data():
  """scikit-learn's k-means test data (tests/test_k_means.py: 100 points of
  5 features around 3 centers, make_blobs(random_state=42)), which its
  test_kmeans_float_precision fits in float32 and float64. Not exact in
  float32, unlike `small_integers`."""
  centers = np.array([[0., 5., 0., 0., 0.], [1., 1., 4., 0., 0.],
                      [1., 0., 0., 5., 1.]])
  return sk_datasets.make_blobs(n_samples=100, centers=centers,
                                cluster_std=1.0, random_state=42)[0]


@pytest.mark.parametrize('method, weighted', fast_first(2, [
    (method, weighted)
    for method in METHODS + ('kmeans_parallel', 'streamed_parallel')
    for weighted in (False, True)
    if not (weighted and method == 'kmc2')]))  # kmc2 takes no weights.
def test_float32_and_float64_draw_the_same_points_on_sklearn_precision_data(
    method, weighted):
  # The rounding of float32 distances moves no draw here (a draw could move
  # only where a random number falls within rounding of a boundary).
  points = sklearn_float_precision_data()
  weights = np.random.default_rng(1).uniform(0.5, 2., len(points))
  for seed in range(10):
    got = {}
    for dtype in (tf.float32, tf.float64):
      km = kmeans.KMeans(
          3, initial_clusters=method.replace('streamed_parallel',
                                             'kmeans_parallel'),
          random_seed=seed, dtype=dtype, weighted=weighted, num_features=5,
          kmc2_chain_length=20)
      x = points.astype(dtype.as_numpy_dtype)
      w = weights.astype(dtype.as_numpy_dtype) if weighted else None
      if method == 'streamed_parallel':  # Batches of a dataset.
        km.initialize_from_dataset(tf.data.Dataset.from_tensor_slices(
            x if w is None else (x, w)).batch(30))
      else:
        km.initialize(x, w)
      got[dtype] = km.clusters.numpy().astype(np.float64)
    np.testing.assert_allclose(got[tf.float32], got[tf.float64], rtol=1e-6,
                               atol=1e-6, err_msg=f'seed {seed}')


def test_callable_init_returning_nan_fails_and_writes_nothing():
  points = np.arange(20, dtype=np.float32).reshape(10, 2)
  km = kmeans.KMeans(3, initial_clusters=lambda p, k: p[:3] * np.nan)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'`initial_clusters` \(a callable\) returned NaN'):
    km.initialize(points)
  assert km.num_initialized.numpy() == 0
  np.testing.assert_array_equal(km.clusters.numpy(), np.zeros((3, 2)))


def test_callable_init_of_the_wrong_width_is_named():
  points = np.arange(20, dtype=np.float32).reshape(10, 2)
  km = kmeans.KMeans(3, num_features=2,
                     initial_clusters=lambda p, k: tf.zeros([3, 4]))
  with pytest.raises(ValueError, match=(
      r'`initial_clusters` \(a callable\) must return centers of shape '
      r'\(m, 2\).*Received: centers of shape \(3, 4\)')):
    tf.function(km.initialize)(points)
  assert km.num_initialized.numpy() == 0
