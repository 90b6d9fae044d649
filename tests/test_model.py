"""Tests for kmeans_estimator.model.KMeans, the k-means tf.Module.

Three kinds of evidence: hand-checked toy runs; a numpy oracle swept over
dtype x metric x mode and scikit-learn's Lloyd k-means as a second oracle;
invariants (Lloyd never raises the objective, eager equals tf.function, a
dataset of batches equals the concatenated tensor, restore, the two-copy
mini-batch scheme). Edge-case policies each have a test named after them.
"""

import importlib
import re

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.ops import carried as carried_lib
from kmeans_estimator import model as kmeans

import oracles
from helpers import fast_first

KMeans = kmeans.KMeans
from oracles import COSINE as COS
from oracles import DTYPES
from oracles import METRICS
from oracles import MODES
from oracles import SQUARED_EUCLIDEAN as SQ

np_normalize = oracles.normalize
np_distances = oracles.distances


def np_step(centers, counts, points, metric, mode):
  """One full-batch (Lloyd) or mini-batch step; returns (centers, counts,
  loss, batch_counts)."""
  c = np.asarray(centers, np.float64)
  x = np.asarray(points, np.float64)
  if metric == COS:
    x = np_normalize(x)
  d = np_distances(x, c, metric)
  labels = d.argmin(1)
  loss = d[np.arange(len(x)), labels].sum()
  m = np.bincount(labels, minlength=len(c)).astype(np.float64)
  s = np.zeros_like(c)
  np.add.at(s, labels, x)
  moved = m > 0
  if mode == 'full_batch':
    new = np.where(moved[:, None], s / np.where(moved, m, 1.)[:, None], c)
  else:
    # x <- x + (s - m x) / (n + m), n the count before the batch.
    total = counts + m
    new = c + np.where(total[:, None] > 0,
                       (s - m[:, None] * c) /
                       np.where(total > 0, total, 1.)[:, None], 0.)
    counts = counts + m.astype(np.int64)
  if metric == COS:
    new = np.where(moved[:, None], np_normalize(new), c)
  return new, counts, loss, m


def tol(dtype):
  return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(
      rtol=1e-10, atol=1e-10)


def blob_data(seed, n=80, d=3, k=4, spread=0.6, positive=False):
  """Overlapping blobs and k initial centers (the first k points)."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(k, d)) * 3.
  if positive:
    means = np.abs(means) + 1.
  points = means[rng.integers(0, k, size=n)] + spread * rng.normal(size=(n, d))
  return points, points[:k].copy()


def make(k, init, metric=SQ, mode='full_batch', dtype=np.float32, **kwargs):
  return KMeans(k, initial_clusters=init, distance_metric=metric,
                use_mini_batch=(mode == 'mini_batch'), dtype=dtype, **kwargs)


# ---------------------------------------------------- constructor errors
@pytest.mark.parametrize('kwargs, error, message', [
    (dict(num_clusters=0), ValueError,
     '`num_clusters` must be a positive integer. Received: num_clusters=0'),
    (dict(num_clusters=2.5), TypeError,
     '`num_clusters` must be a positive integer. Received: num_clusters=2.5'),
    (dict(num_clusters=True), TypeError,
     '`num_clusters` must be a positive integer.'),
    (dict(num_clusters=2, distance_metric='manhattan'), ValueError,
     "`distance_metric` must be one of ['squared_euclidean', 'cosine']. "
     "Received: distance_metric='manhattan'"),
    (dict(num_clusters=2, initial_clusters='kmeans++'), ValueError,
     "`initial_clusters` must be one of ['random', 'kmeans_plus_plus', "
     "'kmc2', 'kmeans_parallel']"),
    (dict(num_clusters=2, initial_clusters=np.zeros((3, 2))), ValueError,
     '`initial_clusters` must have shape (2, d)'),
    (dict(num_clusters=2, num_features=3, initial_clusters=np.zeros((2, 2))),
     ValueError, '`initial_clusters` must have shape (2, 3)'),
    (dict(num_clusters=2, initial_clusters=np.zeros(4)), ValueError,
     'Received: initial_clusters with shape (4,)'),
    (dict(num_clusters=2, initial_clusters=[[0., 1.], [np.nan, 0.]]),
     ValueError, '`initial_clusters` contains NaN or Inf values'),
    (dict(num_clusters=2, initial_clusters=[[0., 1.], [np.inf, 0.]]),
     ValueError, '`initial_clusters` contains NaN or Inf values'),
    (dict(num_clusters=2, initial_clusters=[['a', 'b'], ['c', 'd']]),
     TypeError, '`initial_clusters` must be numeric'),
    (dict(num_clusters=2, mini_batch_steps_per_iteration=0), ValueError,
     'Received: mini_batch_steps_per_iteration=0'),
    (dict(num_clusters=2, kmc2_chain_length=0), ValueError,
     'Received: kmc2_chain_length=0'),
    (dict(num_clusters=2, chunk_elements=0), ValueError,
     'Received: chunk_elements=0'),
    (dict(num_clusters=2, num_features=0), ValueError,
     'Received: num_features=0'),
    (dict(num_clusters=2, random_seed=1.5), TypeError,
     '`random_seed` must be an integer. Received: random_seed=1.5'),
    (dict(num_clusters=2, kmeans_plus_plus_num_retries='2'), TypeError,
     '`kmeans_plus_plus_num_retries` must be an integer.'),
    (dict(num_clusters=2, dtype=tf.int32), TypeError,
     '`dtype` must be a floating point dtype'),
    (dict(num_clusters=2, dtype=tf.float16), TypeError,
     '`dtype` must be a floating point dtype of 32 or 64 bits: tf.float32 '
     'or tf.float64. Half precision cannot hold the per-cluster sums'),
    (dict(num_clusters=2, dtype=tf.bfloat16), TypeError,
     'Received: dtype=tf.bfloat16'),
])
def test_constructor_validation_errors(kwargs, error, message):
  with pytest.raises(error, match=re.escape(message)):
    KMeans(**kwargs)


def test_first_points_need_a_static_width():
  km = KMeans(2)

  @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
  def init(points):
    return km.initialize(points)

  with pytest.raises(ValueError, match=re.escape('or pass num_features')):
    init(tf.zeros([3, 2]))


# ------------------------------------------------------------- toy runs
def test_full_batch_four_points_on_a_line_hand_checked():
  points = np.array([[0.], [1.], [4.], [5.]], np.float32)
  km = KMeans(2, initial_clusters=[[0.], [5.]])
  stats = km.full_batch_step(points)
  assert stats['loss'].numpy() == 2.  # 0 + 1 + 1 + 0, before the update
  assert stats['num_points'].numpy() == 4
  assert stats['empty_clusters'].numpy() == 0
  np.testing.assert_array_equal(km.clusters.numpy(), [[.5], [4.5]])
  stats = km.full_batch_step(points)
  assert stats['loss'].numpy() == 1.  # four times 0.5^2
  np.testing.assert_array_equal(km.clusters.numpy(), [[.5], [4.5]])
  for static_chunks in (True, False):  # Both loops, same int64 answer.
    index, dist = km.nearest(points, static_chunks=static_chunks)
    assert index.dtype == tf.int64
    np.testing.assert_array_equal(index.numpy(), [0, 0, 1, 1])
    np.testing.assert_array_equal(dist.numpy(), [.25] * 4)
  assert km.loss(points).numpy() == 1.
  all_d, idx, nearest_d = km.infer(points)
  np.testing.assert_array_equal(
      all_d.numpy(), [[.25, 20.25], [.25, 12.25], [12.25, .25], [20.25, .25]])
  np.testing.assert_array_equal(idx.numpy(), [0, 0, 1, 1])
  np.testing.assert_array_equal(nearest_d.numpy(), [.25] * 4)
  np.testing.assert_array_equal(km.all_distances(points).numpy(), all_d)


def test_mini_batch_hand_checked():
  # x <- x + (s - m x) / (n + m), n the count before the batch; a fresh
  # model's counts start at 1 with one step per iteration (the legacy rule).
  km = KMeans(3, initial_clusters=[[2., 2.], [10., 10.], [8., -8.]],
              use_mini_batch=True)
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [1, 1, 1])
  # n = 1, m = 2 for cluster 0: (2, 2) + ((4, 2) - 2 (2, 2)) / 3 = (2, 4/3).
  stats = km.train_step(np.array([[1., 1.], [3., 1.]]))
  assert stats['loss'].numpy() == 2. + 2.  # |(1, 1) - (2, 2)|^2 + |(3, 1) - (2, 2)|^2
  assert stats['empty_clusters'].numpy() == 2
  np.testing.assert_allclose(km.clusters.numpy(),
                             [[2., 4. / 3.], [10., 10.], [8., -8.]],
                             rtol=1e-7)
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [3, 1, 1])
  # n = 3, m = 1: (2, 4/3) + ((6, 4/3) - (2, 4/3)) / 4 = (3, 4/3); cluster 1
  # (n = 1, m = 1) moves half way to (12, 8): (11, 9); cluster 2 (m = 0)
  # stays.
  km.train_step(np.array([[6., 4. / 3.], [12., 8.]]))
  np.testing.assert_allclose(km.clusters.numpy(),
                             [[3., 4. / 3.], [11., 9.], [8., -8.]],
                             rtol=1e-7)
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [4, 2, 1])


@pytest.mark.parametrize('width', [2, 4])
def test_callable_of_wrong_width_seen_only_at_run_time_says_what_it_returned(
    width):
  # Traced for points of unknown width (as a step retraced with relaxed
  # shapes is), the width check runs in the graph; its message still names
  # initial_clusters and the shape the callable returned.
  km = KMeans(3, initial_clusters=lambda p, k: p[:k, :width] if width < 3
              else tf.concat([p[:k], p[:k, :1]], axis=1), num_features=3)
  initialize = tf.function(
      km.initialize, input_signature=[tf.TensorSpec([None, None], tf.float32)])
  points = np.arange(30, dtype=np.float32).reshape(10, 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(
      f'{kmeans.CALLABLE_WIDTH_MESSAGE} (m, 3), m <= num_clusters=3, as wide '
      'as the points; make it return up to num_clusters centers as rows like '
      'the points, a float array or Tensor of shape (m, 3). Received: centers '
      f'of shape (3, {width})')):
    initialize(points)
  assert not bool(km.initialized) and int(km.num_initialized) == 0


def test_integer_points_are_cast_to_dtype():
  km = KMeans(2, initial_clusters=[[0., 0.], [10., 10.]], dtype=tf.float64)
  stats = km.full_batch_step(np.array([[0, 1], [1, 0], [10, 11]], np.int32))
  assert stats['loss'].dtype == tf.float64
  np.testing.assert_array_equal(km.clusters.numpy(), [[.5, .5], [10., 11.]])


# --------------------------------------------------------- numpy oracle
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_steps_match_numpy_oracle(dtype, metric, mode):
  points, init = blob_data(0, positive=(metric == COS))
  # A fifth center far away (or pointing away) that never receives points.
  far = np.full((1, 3), -1e3 if metric == SQ else -1.)
  init = np.concatenate([init, far])
  km = make(5, init, metric, mode, dtype)
  want = np_normalize(init) if metric == COS else init
  np.testing.assert_allclose(km.clusters.numpy(), want, **tol(dtype))
  # The legacy start of the mini-batch counts (one step per iteration).
  counts = np.ones(5, np.int64)
  rng = np.random.default_rng(1)
  for _ in range(4):
    batch = points if mode == 'full_batch' else points[
        rng.choice(len(points), 20, replace=False)]
    batch = batch.astype(dtype)
    # Compare the oracle's next step from the module's current centers.
    centers = km.clusters.numpy()
    want, counts, want_loss, m = np_step(centers, counts, batch, metric, mode)
    stats = km.step(batch)
    np.testing.assert_allclose(km.clusters.numpy(), want, **tol(dtype))
    np.testing.assert_allclose(stats['loss'].numpy(), want_loss, **tol(dtype))
    assert stats['num_points'].numpy() == len(batch)
    assert stats['empty_clusters'].numpy() == np.sum(m == 0) >= 1
    if mode == 'mini_batch':
      np.testing.assert_array_equal(km.cluster_counts.numpy(), counts)
  np.testing.assert_array_equal(km.clusters.numpy()[4],
                                want[4])  # the empty cluster kept its center


@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_inference_matches_numpy_oracle(dtype, metric):
  points, init = blob_data(2)
  points[3] *= 1e3  # magnitudes do not matter under cosine
  km = make(4, init + 0.1, metric, dtype=dtype)
  centers = km.clusters.numpy()  # as stored (normalised under cosine)
  want = np_distances(points, centers, metric)
  all_d, index, nearest_d = km.infer(points.astype(dtype))
  assert all_d.dtype == dtype and index.dtype == tf.int64
  if metric == SQ:
    np.testing.assert_allclose(all_d.numpy(), want,
                               rtol=tol(dtype)['rtol'], atol=1e-2 if
                               dtype == np.float32 else 1e-7)
  else:
    np.testing.assert_allclose(all_d.numpy(), want, **tol(dtype))
  rows = np.arange(len(points))
  for idx, dist in ((index, nearest_d), km.nearest(points.astype(dtype)),
                    km.nearest(points.astype(dtype), static_chunks=False)):
    np.testing.assert_allclose(want[rows, idx.numpy()], want.min(1),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dist.numpy(), want.min(1), rtol=1e-4,
                               atol=1e-2 if metric == SQ else 1e-5)
  np.testing.assert_allclose(km.loss(points.astype(dtype)).numpy(),
                             want.min(1).sum(), rtol=1e-5)


@pytest.mark.parametrize('max_iter', [1, 3, 30])
@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('dtype', DTYPES)
def test_full_batch_matches_sklearn_lloyd(dtype, seed, max_iter):
  sk_cluster = importlib.import_module('sklearn.cluster')
  points, _ = blob_data(seed, n=150, d=2, k=4, spread=1.5)
  points = points.astype(dtype)
  rng = np.random.default_rng(seed)
  init = points[rng.choice(len(points), 4, replace=False)]
  km = KMeans(4, initial_clusters=init, dtype=dtype)
  for _ in range(max_iter):
    # sklearn relocates empty clusters; the comparison needs none.
    assert km.full_batch_step(points)['empty_clusters'].numpy() == 0
  sk = sk_cluster.KMeans(n_clusters=4, init=init, n_init=1, max_iter=max_iter,
                         algorithm='lloyd', tol=0).fit(points)
  rtol = 1e-4 if dtype == np.float32 else 1e-9
  np.testing.assert_allclose(km.clusters.numpy(), sk.cluster_centers_,
                             rtol=rtol, atol=rtol)
  np.testing.assert_allclose(km.loss(points).numpy(), sk.inertia_, rtol=rtol)
  np.testing.assert_array_equal(km.nearest(points)[0].numpy(), sk.labels_)


# ------------------------------------------------------------ invariants
@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_lloyd_step_never_raises_the_objective(dtype, metric, seed):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(100, 3)) * rng.uniform(0.1, 5., size=(100, 1))
  km = make(6, 'kmeans_plus_plus', metric, dtype=dtype, random_seed=seed)
  km.initialize(points)
  losses = [km.full_batch_step(points)['loss'].numpy() for _ in range(8)]
  losses.append(km.loss(points).numpy())
  slack = 1e-5 if dtype == np.float32 else 1e-12
  for before, after in zip(losses, losses[1:]):
    assert after <= before + slack * abs(before), losses


CONFIGS = [(SQ, 'full_batch', 1), (COS, 'full_batch', 1),
           (SQ, 'mini_batch', 1), (COS, 'mini_batch', 3)]


@pytest.mark.parametrize('metric, mode, per_iteration', CONFIGS)
def test_eager_equals_tf_function(metric, mode, per_iteration):
  points, _ = blob_data(3, positive=(metric == COS))
  points = points.astype(np.float32)
  kwargs = dict(num_features=3, random_seed=4,
                mini_batch_steps_per_iteration=per_iteration)
  eager = make(4, 'kmeans_plus_plus', metric, mode, **kwargs)
  graph = make(4, 'kmeans_plus_plus', metric, mode, **kwargs)
  initialize, step = tf.function(graph.initialize), tf.function(graph.step)
  infer, nearest = tf.function(graph.infer), tf.function(graph.nearest)
  eager.initialize(points)
  initialize(points)
  np.testing.assert_array_equal(graph.clusters.numpy(), eager.clusters.numpy())
  for i in range(5):
    batch = points[16 * i:16 * (i + 1)] if mode == 'mini_batch' else points
    want, got = eager.step(batch), step(batch)
    for key in want:
      np.testing.assert_allclose(got[key].numpy(), want[key].numpy(),
                                 rtol=1e-6, atol=1e-6)
    for name, variable in eager.checkpoint_variables().items():
      np.testing.assert_allclose(graph.checkpoint_variables()[name].numpy(),
                                 variable.numpy(), rtol=1e-6, atol=1e-6)
  for got, want in zip(infer(points), eager.infer(points)):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-5)
  for got, want in zip(nearest(points), eager.nearest(points)):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_full_batch_step_over_dataset_equals_concatenated_tensor(dtype,
                                                                 metric):
  points, init = blob_data(4, n=50)
  points = points.astype(dtype)
  whole = make(4, init, metric, dtype=dtype, chunk_elements=12)
  batched = make(4, init, metric, dtype=dtype)
  # 50 points in batches of 7: the last batch is short.
  dataset = tf.data.Dataset.from_tensor_slices(points).batch(7)
  for _ in range(3):
    want, got = whole.full_batch_step(points), batched.full_batch_step(dataset)
    np.testing.assert_allclose(got['loss'].numpy(), want['loss'].numpy(),
                               **tol(dtype))
    assert got['num_points'].numpy() == want['num_points'].numpy() == 50
    assert got['empty_clusters'].numpy() == want['empty_clusters'].numpy()
    np.testing.assert_allclose(batched.clusters.numpy(),
                               whole.clusters.numpy(), **tol(dtype))


def test_full_batch_step_over_dataset_under_tf_function():
  points, init = blob_data(5, n=40)
  points = points.astype(np.float32)
  whole, batched = KMeans(4, initial_clusters=init), KMeans(
      4, initial_clusters=init)
  step = tf.function(batched.full_batch_step)
  dataset = tf.data.Dataset.from_tensor_slices(points).batch(6)
  for _ in range(2):
    want, got = whole.full_batch_step(points), step(dataset)
    np.testing.assert_allclose(got['loss'].numpy(), want['loss'].numpy(),
                               rtol=1e-5)
    np.testing.assert_allclose(batched.clusters.numpy(),
                               whole.clusters.numpy(), rtol=1e-5, atol=1e-6)


def legacy_mini_batch(init, batches, steps_per_iteration):
  """The legacy estimator's mini-batch training in numpy (TF 1.x
  clustering_ops: `_create_variables`, `_mini_batch_sync_updates_op`,
  `_mini_batch_training_op`); returns (clusters, counts) after each batch.

  Counts start at 1 with one step per iteration, at 0 otherwise; with N > 1
  the assignments use `clusters`, the updates go to `clusters_updated`, and
  every N steps the copy is synced and the counts reset to 0.
  """
  n_steps = steps_per_iteration
  clusters = np.asarray(init, np.float64).copy()
  updated = clusters.copy()
  counts = np.full(len(clusters), 1 if n_steps == 1 else 0, np.int64)
  update_in_steps = n_steps
  history = []
  for batch in batches:
    if n_steps > 1:
      if update_in_steps <= 0:
        clusters, counts = updated.copy(), np.zeros_like(counts)
        update_in_steps = n_steps - 1
      else:
        update_in_steps -= 1
    target = updated if n_steps > 1 else clusters
    labels = np_distances(batch, clusters).argmin(1)
    for j in np.unique(labels):
      mine = batch[labels == j]
      m = len(mine)
      target[j] += (mine.sum(0) - m * target[j]) / (counts[j] + m)
      counts[j] += m
    history.append((clusters.copy(), counts.copy()))
  return history


@pytest.mark.parametrize('steps_per_iteration', [1, 3])
def test_mini_batch_counts_start_as_the_legacy_estimator_did(
    steps_per_iteration):
  rng = np.random.default_rng(3)
  points = rng.normal(size=(90, 2)) * 3.
  init = points[:4].copy()
  batches = [points[10 * i:10 * (i + 1)] for i in range(9)]
  km = KMeans(4, initial_clusters=init, use_mini_batch=True,
              mini_batch_steps_per_iteration=steps_per_iteration,
              dtype=tf.float64)
  fresh = 1 if steps_per_iteration == 1 else 0
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [fresh] * 4)
  step = tf.function(km.train_step)
  for batch, (clusters, counts) in zip(
      batches, legacy_mini_batch(init, batches, steps_per_iteration)):
    step(batch)
    np.testing.assert_allclose(km.clusters.numpy(), clusters, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(km.cluster_counts.numpy(), counts)
  # reset() and a checkpoint without counts start them fresh again.
  km.reset()
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [fresh] * 4)
  other = KMeans(4, num_features=2, use_mini_batch=True,
                 mini_batch_steps_per_iteration=steps_per_iteration)
  other.restore({'clusters': init, 'initialized': True})
  np.testing.assert_array_equal(other.cluster_counts.numpy(), [fresh] * 4)


def test_saved_mini_batch_counts_are_restored_as_saved():
  km = KMeans(2, num_features=2, use_mini_batch=True)
  km.restore({'clusters': np.zeros((2, 2)), 'initialized': True,
              'Variable': np.array([0, 7], np.int64)})
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [0, 7])


def test_mini_batch_steps_per_iteration_3_updates_clusters_every_3_steps():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(70, 2)).astype(np.float32)
  km = KMeans(3, initial_clusters=points[:3], use_mini_batch=True,
              mini_batch_steps_per_iteration=3)
  clusters_changed, updated_changed = [], []
  for i in range(7):
    clusters, updated = km.clusters.numpy(), km.clusters_updated.numpy()
    stats = km.train_step(points[10 * i:10 * (i + 1)])
    clusters_changed.append(not np.array_equal(km.clusters.numpy(), clusters))
    updated_changed.append(not np.array_equal(km.clusters_updated.numpy(),
                                              updated))
    if clusters_changed[-1]:
      # The sync copies the updated centers and restarts the counts, so the
      # counts are those of this one batch.
      np.testing.assert_array_equal(km.clusters.numpy(), updated)
      np.testing.assert_array_equal(km.cluster_counts.numpy().sum(), 10)
    assert stats['num_points'].numpy() == 10
  assert clusters_changed == [False, False, False, True, False, False, True]
  assert all(updated_changed)


# ------------------------------------------------------------- restore
def test_restore_from_dict():
  km = KMeans(2, num_features=2, initial_clusters='random')
  centers = np.array([[0., 0.], [10., 10.]])
  km.restore({'clusters': centers, 'initialized': True, 'unused_name': 3.})
  assert bool(km.initialized.numpy())
  assert km.num_initialized.numpy() == 2
  np.testing.assert_array_equal(km.clusters.numpy(), centers)
  index, _ = km.nearest(np.array([[1., 1.], [9., 9.]]))
  np.testing.assert_array_equal(index.numpy(), [0, 1])
  # initialize is a no-op after restoring an initialized model.
  assert bool(km.initialize(np.full((5, 2), 50.)).numpy())
  np.testing.assert_array_equal(km.clusters.numpy(), centers)


def test_restore_without_initialized_key_counts_as_initialized():
  km = KMeans(2, num_features=1)
  km.restore({'clusters': [[1.], [2.]]})
  assert bool(km.initialized.numpy())
  assert km.num_initialized.numpy() == 2


def test_restore_checkpoint_with_initialized_false_restarts_init():
  points = np.arange(12, dtype=np.float32).reshape(6, 2)
  km = KMeans(3, num_features=2, initial_clusters='random')
  km.initialize(points[:2])  # part-way: 2 of 3 centers
  assert km.num_initialized.numpy() == 2
  saved = {name: v.numpy() for name, v in km.checkpoint_variables().items()}
  assert not saved['initialized']
  fresh = KMeans(3, num_features=2, initial_clusters='random')
  fresh.restore(saved)
  assert not bool(fresh.initialized.numpy())
  assert fresh.num_initialized.numpy() == 0
  # Initialisation starts again: all three centers come from the new batch.
  assert bool(fresh.initialize(points[3:]).numpy())
  idx = [int(np.flatnonzero(np.all(points == c, axis=1))[0])
         for c in fresh.clusters.numpy()]
  assert sorted(idx) == [3, 4, 5]


def test_restore_round_trip_continues_identically():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(60, 2)).astype(np.float32)
  kwargs = dict(num_features=2, initial_clusters='kmeans_plus_plus',
                use_mini_batch=True, mini_batch_steps_per_iteration=2)
  a = KMeans(3, **kwargs)
  a.initialize(points)
  for i in range(3):
    a.train_step(points[10 * i:10 * (i + 1)])
  saved = {name: v.numpy() for name, v in a.checkpoint_variables().items()}
  assert set(saved) == {'clusters', 'initialized', 'Variable',
                        'clusters_updated', 'update_in_steps'}
  b = KMeans(3, **kwargs)
  b.restore(saved)
  for i in range(3, 6):
    batch = points[10 * i:10 * (i + 1)]
    np.testing.assert_array_equal(b.train_step(batch)['loss'].numpy(),
                                  a.train_step(batch)['loss'].numpy())
    for name, variable in a.checkpoint_variables().items():
      np.testing.assert_array_equal(b.checkpoint_variables()[name].numpy(),
                                    variable.numpy())


def test_restore_full_batch_checkpoint_into_mini_batch_model():
  centers = np.array([[1., 2.], [3., 4.]], np.float32)
  km = KMeans(2, num_features=2, use_mini_batch=True,
              mini_batch_steps_per_iteration=3)
  km.restore({'clusters': centers, 'initialized': True})
  # The updated copy starts from the restored centers.
  np.testing.assert_array_equal(km.clusters_updated.numpy(), centers)
  np.testing.assert_array_equal(km.cluster_counts.numpy(), [0, 0])


@pytest.mark.parametrize('init', ['random', [[0., 0.], [5., 5.]]])
def test_reset_returns_to_the_untrained_state(init):
  points = np.array([[0., 1.], [1., 0.], [5., 6.], [6., 5.]], np.float32)
  km = KMeans(2, num_features=2, initial_clusters=init, use_mini_batch=True,
              mini_batch_steps_per_iteration=2)
  fresh = {name: v.numpy() for name, v in km.checkpoint_variables().items()}
  km.initialize(points)
  for _ in range(3):
    km.train_step(points)
  km.reset()
  for name, variable in km.checkpoint_variables().items():
    np.testing.assert_array_equal(variable.numpy(), fresh[name], err_msg=name)
  assert km.num_initialized.numpy() == (0 if init == 'random' else 2)


# --------------------------------------------------- edge-case policies
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('metric', METRICS)
def test_empty_cluster_keeps_its_center(metric, mode):
  points = np.array([[1., .1], [1., -.1], [.1, 1.], [-.1, 1.]], np.float32)
  far = [-1e3, -1e3] if metric == SQ else [-.6, -.8]
  km = make(3, [[1., 0.], [0., 1.], far], metric, mode)
  for _ in range(3):
    stats = km.step(points)
    assert stats['empty_clusters'].numpy() == 1
  centers = km.clusters.numpy()
  assert np.all(np.isfinite(centers))
  # Not moved to the origin (the legacy bug), not NaN.
  np.testing.assert_array_equal(centers[2], np.float32(far))
  np.testing.assert_allclose(centers[:2], [[1., 0.], [0., 1.]] if
                             metric == SQ else np.eye(2), atol=1e-6)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('metric', METRICS)
def test_k_equals_n(metric, mode):
  points = np.array([[1., 0.], [0., 2.], [-3., 0.], [0., -4.], [5., 5.]],
                    np.float32)
  km = make(5, 'random', metric, mode, random_seed=1)
  km.initialize(points)
  km.step(points)
  index, dist = km.nearest(points)
  assert sorted(index.numpy()) == [0, 1, 2, 3, 4]
  np.testing.assert_allclose(dist.numpy(), 0., atol=1e-6)
  assert km.step(points)['empty_clusters'].numpy() == 0
  want = points if metric == SQ else np_normalize(points)
  np.testing.assert_allclose(km.clusters.numpy()[index.numpy()], want,
                             atol=1e-6)


@pytest.mark.parametrize('init', ['random', 'kmeans_plus_plus', 'kmc2',
                                  'kmeans_parallel'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('metric', METRICS)
def test_duplicate_points_fewer_distinct_points_than_k(metric, mode, init):
  points = np.array([[1., 1.]] * 6 + [[-2., 3.]] * 4, np.float32)
  km = make(4, init, metric, mode, kmc2_chain_length=10)
  km.initialize(points)
  for _ in range(3):
    stats = km.step(points)
    assert np.isfinite(stats['loss'].numpy())
    assert stats['empty_clusters'].numpy() >= 2
  centers = km.clusters.numpy()
  assert np.all(np.isfinite(centers))
  if init != 'kmc2':  # k-MC2 may pick the same point for every center
    assert km.loss(points).numpy() == pytest.approx(0., abs=1e-5)


@pytest.mark.parametrize('mode', MODES)
def test_zero_vectors_under_cosine(mode):
  points = np.array([[0., 0.], [2., 0.], [0., 3.], [0., 0.]], np.float32)
  km = make(2, [[1., 0.], [0., 1.]], COS, mode)
  all_d = km.all_distances(points).numpy()
  # A zero vector is at distance 1 from every center, so it goes to center 0.
  np.testing.assert_array_equal(all_d[[0, 3]], np.ones((2, 2)))
  np.testing.assert_array_equal(km.nearest(points)[0].numpy(), [0, 0, 1, 0])
  for _ in range(3):
    stats = km.step(points)
    assert stats['loss'].numpy() == pytest.approx(2.)
  centers = km.clusters.numpy()
  assert not np.any(np.isnan(centers))
  np.testing.assert_allclose(centers, np.eye(2), atol=1e-6)


def test_zero_vectors_under_cosine_as_initial_centers():
  # Only zero vectors: random init chooses zero centers; nothing is NaN.
  points = np.zeros((5, 3), np.float32)
  for mode in MODES:
    km = make(2, 'random', COS, mode)
    km.initialize(points)
    stats = km.step(points)
    assert stats['loss'].numpy() == 5.
    assert not np.any(np.isnan(km.clusters.numpy()))
    np.testing.assert_array_equal(km.all_distances(points).numpy(), 1.)


@pytest.mark.parametrize('mode, per_iteration', [
    ('full_batch', 1), ('mini_batch', 1), ('mini_batch', 3)])
def test_cosine_centers_stay_unit_length_after_updates(mode, per_iteration):
  rng = np.random.default_rng(0)
  points = rng.normal(size=(90, 4)) * rng.uniform(1e-3, 1e3, size=(90, 1))
  km = make(3, 'kmeans_plus_plus', COS, mode, num_features=4,
            mini_batch_steps_per_iteration=per_iteration)
  km.initialize(points)
  for i in range(6):
    km.step(points[15 * i:15 * (i + 1)])
    for variable in (km.clusters, km.clusters_updated):
      if variable is not None:
        np.testing.assert_allclose(np.linalg.norm(variable.numpy(), axis=1),
                                   1., rtol=1e-5)


def test_restore_builds_an_unbuilt_model_from_the_saved_centers():
  centers = np.array([[0., 1.], [2., 3.], [4., 5.]], np.float32)
  km = kmeans.KMeans(3)
  km.restore({'clusters': centers, 'initialized': True})
  assert km.num_features == 2
  np.testing.assert_array_equal(km.clusters.numpy(), centers)
  np.testing.assert_array_equal(km.nearest(centers)[0].numpy(), [0, 1, 2])


def test_kmeans_sits_inside_a_users_tf_function():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(64, 3)).astype(np.float32)
  km = kmeans.KMeans(4, num_features=3, use_mini_batch=False, random_seed=0,
              initial_clusters='kmeans_plus_plus')

  @tf.function
  def model(x):
    km.initialize(x)
    loss = km.full_batch_step(x)['loss']
    index, _ = km.nearest(x)
    return loss, tf.one_hot(index, 4)

  first, encoded = model(tf.constant(points))
  second, _ = model(tf.constant(points))
  assert encoded.shape == (64, 4)
  assert float(second) <= float(first)


# -------------------------------------------- lloyd_step: state carried over
@pytest.mark.parametrize('metric', fast_first(1, METRICS))
@pytest.mark.parametrize('weighted, empty_cluster', [
    (False, 'keep'), (True, 'keep'),
    (False, 'farthest_point')])  # farthest_point takes no weights.
def test_lloyd_steps_with_carried_state_equal_full_batch_steps(
    metric, weighted, empty_cluster):
  points, init = blob_data(32, n=400, k=5, spread=1.0, positive=True)
  # A far center stays empty (or is relocated) at first.
  init = np.concatenate([init[:4], np.full((1, 3), 50.)])
  weights = (np.random.default_rng(32).uniform(0.5, 2.0, len(points))
             if weighted else None)
  carried, plain = (make(5, init, metric=metric, dtype=np.float64,
                         chunk_elements=64, empty_cluster=empty_cluster)
                    for _ in range(2))
  step = tf.function(carried.lloyd_step)
  state = carried.lloyd_state(points, weights)
  if metric == COS:  # Unit points: the steps need no |x|^2.
    assert state.point_norms is None
  else:
    np.testing.assert_allclose(state.point_norms.numpy(),
                               (points**2).sum(axis=1), rtol=1e-12)
  moved = []
  for _ in range(8):
    previous = state.statistics.assignments.numpy()
    got, state = step(points, state, weights)
    want = plain.full_batch_step(points, weights)
    moved.append(int((state.statistics.assignments.numpy() !=
                      previous).sum()))
    for key in ('loss', 'cluster_sizes', 'empty_clusters',
                'relocated_clusters'):
      np.testing.assert_allclose(got[key].numpy(), want[key].numpy(),
                                 rtol=1e-10, err_msg=key)
    np.testing.assert_allclose(carried.clusters.numpy(),
                               plain.clusters.numpy(), rtol=1e-10,
                               atol=1e-12)
  # Both ways of keeping the sums ran: a recount (the first step moves
  # every point) and additions of the few points that moved.
  assert moved[0] == len(points)
  assert 0 < min(m for m in moved if m) < len(points) / 16, moved
  # The carried sums are those of the assignments.
  index = state.statistics.assignments.numpy()
  x = oracles.normalize(points) if metric == COS else points
  w = np.ones(len(x)) if weights is None else weights
  want_sums = np.stack([(w[index == j, None] * x[index == j]).sum(axis=0)
                        for j in range(5)])
  np.testing.assert_allclose(carried_lib.as_wide(state.statistics)[0].numpy(),
                             want_sums, rtol=1e-10, atol=1e-10)


def test_carried_steps_need_the_weights_their_state_started_with():
  points, init = blob_data(34)
  weights = np.ones(len(points))
  km = make(4, init, dtype=np.float64)
  for start, step in ((km.lloyd_state, km.lloyd_step),
                      (km.hamerly_state, km.hamerly_step)):
    with pytest.raises(ValueError, match='The step got with `weights` but '
                       'its state was started without them'):
      step(points, start(points), weights)
    with pytest.raises(ValueError, match='got without `weights` but its '
                       'state was started with them; give the'):
      step(points, start(points, weights))


def test_lloyd_step_refuses_restarts():
  points, _ = blob_data(33)
  km = make(4, 'kmeans_plus_plus', num_restarts=2)
  km.initialize(points)
  with pytest.raises(ValueError, match='lloyd_step does not support '
                     'num_restarts=2; use full_batch_step'):
    km.lloyd_step(points, km.lloyd_state(points))
