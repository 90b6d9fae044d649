"""Tests for kmeans_estimator.ops.distances and ._core.updates.

Three kinds of evidence: toy cases computed by hand; a numpy oracle swept
over dtype x metric x mode (full-batch Lloyd update, mini-batch update); and
invariants (chunked equals unchunked, ties go to the lowest index, empty
clusters keep their centers, cosine centers stay unit length).

The functions here take points already prepared for the metric: under the
cosine metric the caller L2-normalises the points, and the distance is
1 - x_hat . c_hat, the centers being normalised by `pairwise_distances`
(a zero center is at distance 1 from everything).
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.ops import distances
from kmeans_estimator.ops import updates

import oracles

from oracles import COSINE as COS
from oracles import DTYPES
from oracles import METRICS
from oracles import MODES
from oracles import SQUARED_EUCLIDEAN as SQ

np_normalize = oracles.normalize
np_pairwise = oracles.distances


def np_statistics(points, centers, metric):
  d = np_pairwise(points, centers, metric)
  labels = np.argmin(d, axis=1)
  k = len(centers)
  x = np.asarray(points, np.float64)
  sums = np.zeros((k, x.shape[1]))
  np.add.at(sums, labels, x)
  counts = np.bincount(labels, minlength=k).astype(np.float64)
  return labels, d, sums, counts, d[np.arange(len(x)), labels].sum()


def np_lloyd(centers, sums, counts, metric):
  c = np.asarray(centers, np.float64)
  moved = counts > 0
  new = np.where(moved[:, None], sums / np.where(moved, counts, 1.)[:, None],
                 c)
  if metric == COS:
    new = np.where(moved[:, None], np_normalize(new), c)
  return new


def np_mini_batch(centers, counts, batch_sums, batch_counts, metric):
  # x <- x + (s - m x) / (n + m), n the count before the batch.
  c = np.asarray(centers, np.float64)
  totals = counts + batch_counts
  step = (batch_sums - batch_counts[:, None] * c) / np.where(
      totals > 0, totals, 1.)[:, None]
  new = c + np.where(totals[:, None] > 0, step, 0.)
  moved = batch_counts > 0
  if metric == COS:
    new = np.where(moved[:, None], np_normalize(new), c)
  return new, counts + batch_counts.astype(np.int64)


def tol(dtype):
  return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(
      rtol=1e-11, atol=1e-11)


def make_data(seed, dtype, metric, n=60, k=5, d=4, empty_last=False):
  """Random points and centers with a clear nearest center for every point.

  Under cosine the points lie in the positive orthant, so that with
  `empty_last` a center pointing the other way receives no points.
  """
  rng = np.random.default_rng(seed)
  for _ in range(100):
    points = rng.normal(size=(n, d))
    centers = rng.normal(size=(k, d))
    if metric == COS:
      points = np_normalize(np.abs(points))
      # Centers as stored: not necessarily unit length for the raw function.
      centers = np.abs(centers) * rng.uniform(0.5, 2., size=(k, 1))
      if empty_last:
        centers[-1] = -1.
    elif empty_last:
      centers[-1] = -1e3
    points, centers = points.astype(dtype), centers.astype(dtype)
    dist = np.sort(np_pairwise(points, centers, metric), axis=1)
    # The oracle's labels are only comparable where no near-tie exists:
    # redraw until every margin is well above float32 rounding.
    if np.min(dist[:, 1] - dist[:, 0]) > 1e-3:
      return points, centers
  raise AssertionError('no well-separated draw')


# ----------------------------------------------------------- toy cases
def test_four_points_on_a_line_hand_checked():
  points = tf.constant([[0.], [1.], [4.], [5.]])
  centers = tf.constant([[0.], [5.]])
  index, dist = distances.nearest_centers(points, centers, SQ)
  np.testing.assert_array_equal(index.numpy(), [0, 0, 1, 1])
  np.testing.assert_array_equal(dist.numpy(), [0., 1., 1., 0.])
  np.testing.assert_array_equal(
      distances.pairwise_distances(points, centers, SQ).numpy(),
      [[0., 25.], [1., 16.], [16., 1.], [25., 0.]])
  sums, counts, loss = distances.cluster_statistics(points, centers, SQ)
  np.testing.assert_array_equal(sums.numpy(), [[1.], [9.]])
  np.testing.assert_array_equal(counts.numpy(), [2., 2.])
  assert loss.numpy() == 2.
  # One Lloyd step by hand: (0 + 1) / 2 and (4 + 5) / 2.
  new = updates.lloyd_update(centers, sums, counts, SQ)
  np.testing.assert_array_equal(new.numpy(), [[.5], [4.5]])
  # The loss after the step: every point is 0.5 from its center.
  _, _, loss_after = distances.cluster_statistics(points, new, SQ)
  assert loss_after.numpy() == 1.


def test_lloyd_step_hand_checked_2d():
  points = tf.constant([[0., 0.], [2., 0.], [0., 2.], [10., 10.], [12., 10.]])
  centers = tf.constant([[1., 1.], [9., 9.], [-50., -50.]])
  sums, counts, loss = distances.cluster_statistics(points, centers, SQ)
  np.testing.assert_array_equal(counts.numpy(), [3., 2., 0.])
  np.testing.assert_array_equal(sums.numpy(), [[2., 2.], [22., 20.], [0., 0.]])
  # 2 + 2 + 2 (cluster 0), 2 + 10 (cluster 1).
  assert loss.numpy() == 18.
  new = updates.lloyd_update(centers, sums, counts, SQ).numpy()
  np.testing.assert_allclose(new, [[2 / 3, 2 / 3], [11., 10.], [-50., -50.]],
                             rtol=1e-6)


def test_cosine_toy_hand_checked():
  # Points as the core passes them: normalised. Centers of any length: the
  # distance is the true cosine distance 1 - cos(x, c).
  points = tf.constant([[1., 0.], [0., 1.], [-1., 0.], [.6, .8]])
  centers = tf.constant([[1., 0.], [0., 2.], [-3., 4.]])
  got = distances.pairwise_distances(points, centers, COS).numpy()
  np.testing.assert_allclose(
      got, [[0., 1., 1.6], [1., 0., .2], [2., 1., .4], [.4, .2, .72]],
      rtol=1e-6, atol=1e-7)
  index, dist = distances.nearest_centers(points, centers, COS)
  np.testing.assert_array_equal(index.numpy(), [0, 1, 2, 1])
  np.testing.assert_allclose(dist.numpy(), [0., 0., .4, .2], rtol=1e-6,
                             atol=1e-7)


def test_zero_center_under_cosine_is_at_distance_one():
  points = tf.constant([[1., 0.], [0., -1.], [0., 0.]])
  centers = tf.constant([[0., 0.], [1., 0.]])
  got = distances.pairwise_distances(points, centers, COS).numpy()
  assert np.all(np.isfinite(got))
  np.testing.assert_array_equal(got[:, 0], [1., 1., 1.])
  np.testing.assert_array_equal(got[:, 1], [0., 1., 1.])


def test_mini_batch_step_hand_checked():
  # x <- x + (s - m x) / (n + m), n = count before the batch.
  centers = tf.constant([[2., 2.], [10., 10.], [7., -7.]])
  counts = tf.constant([2, 0, 5], tf.int64)
  # Cluster 0: n=2, batch points (1, 1) and (3, 1): s=(4, 2), m=2.
  # Cluster 1: n=0, one batch point (12, 8): becomes the batch mean.
  # Cluster 2: m=0: unchanged, count unchanged.
  batch_sums = tf.constant([[4., 2.], [12., 8.], [0., 0.]])
  batch_counts = tf.constant([2., 1., 0.])
  new, new_counts = updates.mini_batch_update(centers, counts, batch_sums,
                                              batch_counts, SQ)
  # (2, 2) + ((4, 2) - 2 (2, 2)) / 4 = (2, 1.5).
  np.testing.assert_array_equal(new.numpy(), [[2., 1.5], [12., 8.], [7., -7.]])
  np.testing.assert_array_equal(new_counts.numpy(), [4, 1, 5])
  assert new_counts.dtype == tf.int64


def test_mini_batch_step_with_zero_count_is_mean_of_batch():
  centers = tf.constant([[100., -100.]])
  new, new_counts = updates.mini_batch_update(
      centers, tf.constant([0], tf.int64), tf.constant([[3., 6.]]),
      tf.constant([3.]), SQ)
  np.testing.assert_array_equal(new.numpy(), [[1., 2.]])
  np.testing.assert_array_equal(new_counts.numpy(), [3])


def test_mini_batch_step_with_empty_batch_is_unchanged():
  centers = tf.constant([[1., 2.], [3., 4.]])
  counts = tf.constant([0, 7], tf.int64)
  new, new_counts = updates.mini_batch_update(centers, counts,
                                              tf.zeros([2, 2]), tf.zeros([2]),
                                              SQ)
  np.testing.assert_array_equal(new.numpy(), centers.numpy())
  np.testing.assert_array_equal(new_counts.numpy(), [0, 7])


def test_mini_batch_sequence_of_single_points_is_running_mean():
  # With one cluster, the rule gives the exact running mean of all points.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(10, 3))
  centers = tf.constant(rng.normal(size=(1, 3)))
  counts = tf.zeros([1], tf.int64)
  for i in range(10):
    centers, counts = updates.mini_batch_update(
        centers, counts, tf.constant(x[i:i + 1]), tf.constant([1.], tf.float64),
        SQ)
    np.testing.assert_allclose(centers.numpy()[0], x[:i + 1].mean(0),
                               rtol=1e-12)
  assert counts.numpy()[0] == 10


# ------------------------------------------------------------- ties
@pytest.mark.parametrize('chunk_elements', [1, 2, 1 << 22])
def test_ties_go_to_lowest_index(chunk_elements):
  # Exact ties: 0 is at distance 1 from -1 and 1; duplicated centers.
  points = tf.constant([[0.], [1.], [3.], [-1.]])
  centers = tf.constant([[-1.], [1.], [1.], [5.], [-1.]])
  index, dist = distances.nearest_centers(points, centers, SQ,
                                          chunk_elements=chunk_elements)
  np.testing.assert_array_equal(index.numpy(), [0, 1, 1, 0])
  np.testing.assert_array_equal(dist.numpy(), [1., 0., 4., 0.])


def test_ties_go_to_lowest_index_cosine():
  points = tf.constant([[1., 0.], [0., 0.]])
  centers = tf.constant([[0., 1.], [0., -1.], [1., 0.], [1., 0.]])
  index, dist = distances.nearest_centers(points, centers, COS)
  np.testing.assert_array_equal(index.numpy(), [2, 0])
  np.testing.assert_array_equal(dist.numpy(), [0., 1.])


# ------------------------------------------------------ numpy oracle sweep
@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_pairwise_distances_match_numpy(dtype, metric, seed):
  points, centers = make_data(seed, dtype, metric)
  got = distances.pairwise_distances(tf.constant(points), tf.constant(centers),
                                     metric)
  assert got.dtype == dtype
  assert got.shape == (len(points), len(centers))
  np.testing.assert_allclose(got.numpy(), np_pairwise(points, centers, metric),
                             **tol(dtype))


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_nearest_centers_match_numpy(dtype, metric, seed):
  points, centers = make_data(seed, dtype, metric)
  index, dist = distances.nearest_centers(tf.constant(points),
                                          tf.constant(centers), metric)
  assert index.dtype == tf.int64 and dist.dtype == dtype
  want = np_pairwise(points, centers, metric)
  rows = np.arange(len(points))
  # The chosen distance is the minimum, to float tolerance...
  np.testing.assert_allclose(dist.numpy(), want.min(1), **tol(dtype))
  np.testing.assert_allclose(want[rows, index.numpy()], want.min(1),
                             **tol(dtype))
  # ...and with clear margins the index is numpy's.
  np.testing.assert_array_equal(index.numpy(), want.argmin(1))


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_cluster_statistics_match_numpy(dtype, metric, seed):
  points, centers = make_data(seed, dtype, metric)
  sums, counts, loss = distances.cluster_statistics(
      tf.constant(points), tf.constant(centers), metric)
  _, _, want_sums, want_counts, want_loss = np_statistics(points, centers,
                                                          metric)
  assert sums.dtype == counts.dtype == loss.dtype == dtype
  np.testing.assert_allclose(sums.numpy(), want_sums, **tol(dtype))
  np.testing.assert_array_equal(counts.numpy(), want_counts)
  np.testing.assert_allclose(loss.numpy(), want_loss, **tol(dtype))


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_update_matches_numpy(dtype, metric, mode, seed):
  """Statistics then update, against the numpy oracle, in either mode."""
  rng = np.random.default_rng(100 + seed)
  # The last center is far away (or opposite) and receives no points.
  points, centers = make_data(seed, dtype, metric, empty_last=True)
  if metric == COS:
    centers = np_normalize(centers).astype(dtype)
  sums, counts, _ = distances.cluster_statistics(tf.constant(points),
                                                 tf.constant(centers), metric)
  _, _, want_sums, want_counts, _ = np_statistics(points, centers, metric)
  if mode == 'full_batch':
    got = updates.lloyd_update(tf.constant(centers), sums, counts, metric)
    want = np_lloyd(centers, want_sums, want_counts, metric)
  else:
    old_counts = rng.integers(0, 4, size=len(centers)).astype(np.int64)
    got, got_counts = updates.mini_batch_update(
        tf.constant(centers), tf.constant(old_counts), sums, counts, metric)
    want, want_new_counts = np_mini_batch(centers, old_counts, want_sums,
                                          want_counts, metric)
    np.testing.assert_array_equal(got_counts.numpy(), want_new_counts)
  assert got.dtype == dtype
  np.testing.assert_allclose(got.numpy(), want, **tol(dtype))
  # The empty cluster kept its center exactly.
  assert want_counts[-1] == 0
  np.testing.assert_array_equal(got.numpy()[-1], centers[-1])


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_mini_batch_update_matches_numpy_on_random_statistics(dtype, metric,
                                                              seed):
  rng = np.random.default_rng(seed)
  k, d = 6, 3
  centers = rng.normal(size=(k, d)).astype(dtype)
  counts = rng.integers(0, 5, size=k).astype(np.int64)
  batch_counts = rng.integers(0, 4, size=k).astype(dtype)
  batch_counts[0], counts[0] = 0, 0  # n = m = 0
  batch_counts[1], counts[1] = 2, 0  # n = 0: the mean of its batch points
  batch_counts[2], counts[2] = 0, 3  # m = 0: unchanged
  batch_sums = (rng.normal(size=(k, d)) * batch_counts[:, None]).astype(dtype)
  got, got_counts = updates.mini_batch_update(
      tf.constant(centers), tf.constant(counts), tf.constant(batch_sums),
      tf.constant(batch_counts), metric)
  want, want_counts = np_mini_batch(centers, counts, batch_sums, batch_counts,
                                    metric)
  np.testing.assert_allclose(got.numpy(), want, **tol(dtype))
  np.testing.assert_array_equal(got_counts.numpy(), want_counts)
  np.testing.assert_array_equal(got.numpy()[[0, 2]], centers[[0, 2]])
  if metric == SQ:
    np.testing.assert_allclose(got.numpy()[1], batch_sums[1] / 2,
                               **tol(dtype))


# ------------------------------------------------------------- chunking
@pytest.mark.parametrize('n', [0, 1, 7, 13])
@pytest.mark.parametrize('chunk_elements', [1, 8, 12, 1 << 22])
@pytest.mark.parametrize('metric', METRICS)
def test_chunked_nearest_centers_equal_unchunked(metric, chunk_elements, n):
  # k = 4: chunk rows are 1, 2, 3 and all; 2 and 3 divide neither 7 nor 13.
  rng = np.random.default_rng(n)
  points = rng.normal(size=(n, 3)).astype(np.float32)
  if metric == COS:
    points = np_normalize(points).astype(np.float32)
  centers = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
  index, dist = distances.nearest_centers(tf.constant(points), centers, metric,
                                          chunk_elements=chunk_elements)
  want_index, want_dist = distances.nearest_centers(tf.constant(points),
                                                    centers, metric)
  assert index.shape == (n,) and dist.shape == (n,)
  np.testing.assert_array_equal(index.numpy(), want_index.numpy())
  np.testing.assert_allclose(dist.numpy(), want_dist.numpy(), rtol=1e-6,
                             atol=1e-6)
  sums, counts, loss = distances.cluster_statistics(
      tf.constant(points), centers, metric, chunk_elements=chunk_elements)
  want_sums, want_counts, want_loss = distances.cluster_statistics(
      tf.constant(points), centers, metric)
  np.testing.assert_allclose(sums.numpy(), want_sums.numpy(), rtol=1e-6,
                             atol=1e-6)
  np.testing.assert_array_equal(counts.numpy(), want_counts.numpy())
  np.testing.assert_allclose(loss.numpy(), want_loss.numpy(), rtol=1e-6,
                             atol=1e-6)


@pytest.mark.parametrize('chunk_elements', [1, 5, 1 << 22])
def test_empty_batch_returns_empty_results(chunk_elements):
  points = tf.zeros([0, 3], tf.float64)
  centers = tf.ones([2, 3], tf.float64)
  index, dist = distances.nearest_centers(points, centers, SQ,
                                          chunk_elements=chunk_elements)
  assert index.shape == (0,) and index.dtype == tf.int64
  assert dist.shape == (0,) and dist.dtype == tf.float64
  sums, counts, loss = distances.cluster_statistics(
      points, centers, SQ, chunk_elements=chunk_elements)
  np.testing.assert_array_equal(sums.numpy(), np.zeros((2, 3)))
  np.testing.assert_array_equal(counts.numpy(), [0., 0.])
  assert loss.numpy() == 0.
  # An empty batch moves nothing, in either mode.
  np.testing.assert_array_equal(
      updates.lloyd_update(centers, sums, counts, SQ).numpy(), centers.numpy())
  new, _ = updates.mini_batch_update(centers, tf.zeros([2], tf.int64), sums,
                                     counts, SQ)
  np.testing.assert_array_equal(new.numpy(), centers.numpy())


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n', [0, 1, 7, 13])
@pytest.mark.parametrize('chunk_elements', [1, 8, 12, 1 << 22])
def test_nearest_indices_are_those_of_nearest_centers(chunk_elements, n,
                                                      dtype):
  rng = np.random.default_rng(n)
  points = tf.constant(rng.normal(size=(n, 3)).astype(dtype))
  centers = tf.constant(rng.normal(size=(4, 3)).astype(dtype))
  index, finite = distances.nearest_indices(points, centers,
                                            chunk_elements=chunk_elements)
  want, _ = distances.nearest_centers(points, centers, SQ,
                                      chunk_elements=chunk_elements)
  assert index.dtype == tf.int32 and index.shape == (n,)
  np.testing.assert_array_equal(index.numpy(), want.numpy())
  assert finite.numpy()


def _points_near_the_limit(dtype, case):
  """(points, centers) whose nearest distances are finite or not."""
  root = np.sqrt(np.finfo(dtype).max)
  rng = np.random.default_rng(0)
  points = rng.normal(size=(16, 2))
  centers = np.array([[0., 0.], [1., 1.], [-1., 2.]])
  if case == 'just_below':
    # Each |x|^2 is a 32nd of the largest value, their sum half of it: the
    # bound fails, the exact distances (to the center at 0) are finite.
    points = np.full((16, 2), root / 8)
  elif case == 'overflowing':
    points[3] = root
  elif case == 'nan':
    points[5, 1] = np.nan
  elif case == 'inf':
    points[0, 0] = -np.inf
  elif case == 'huge_center_never_nearest':
    centers[2] = root
  return tf.constant(points.astype(dtype)), tf.constant(centers.astype(dtype))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('chunk_elements', [3, 1 << 22])
@pytest.mark.parametrize('case, finite', [
    ('ordinary', True), ('just_below', True), ('overflowing', False),
    ('nan', False), ('inf', False), ('huge_center_never_nearest', True)])
def test_nearest_indices_tell_when_a_distance_is_not_finite(
    case, finite, chunk_elements, dtype):
  # The same verdict as a check of the distances that nearest_centers gives.
  points, centers = _points_near_the_limit(dtype, case)
  index, got = distances.nearest_indices(points, centers,
                                         chunk_elements=chunk_elements)
  want_index, dist = distances.nearest_centers(points, centers, SQ)
  assert bool(np.all(np.isfinite(dist.numpy()))) == finite
  assert bool(got.numpy()) == finite
  if finite:
    np.testing.assert_array_equal(index.numpy(), want_index.numpy())


@pytest.mark.parametrize('unknown_k', [False, True])
def test_chunked_nearest_centers_under_tf_function_with_unknown_n(unknown_k):
  # Chunk rows are 3: n = 2 and 3 fit one chunk, 5 and 31 end with a chunk
  # that overlaps the one before it.
  rng = np.random.default_rng(0)
  centers = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
  centers_spec = tf.TensorSpec([None if unknown_k else 4, 3], tf.float32)

  @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32),
                                centers_spec])
  def nearest(points, centers):
    return distances.nearest_centers(points, centers, SQ, chunk_elements=12)

  for n in (0, 2, 3, 5, 31):
    points = rng.normal(size=(n, 3)).astype(np.float32)
    got_index, got_dist = nearest(tf.constant(points), centers)
    want = np_pairwise(points.astype(np.float64), centers.numpy())
    np.testing.assert_array_equal(got_index.numpy(), np.argmin(want, axis=1))
    np.testing.assert_allclose(got_dist.numpy(), np.min(want, axis=1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('k, chunk_elements, rows', [
    (500, 1 << 20, 2097),   # Bounded by the distances: 2097 * 500 <= 2**20.
    (50, 1 << 20, 4096),    # Bounded by the rows (20,971 would fit).
    (5, 7, 1),              # chunk_elements below k: one row at a time.
    (3, 30, 10),
])
def test_chunk_rows_bound_distances_and_rows(k, chunk_elements, rows):
  assert distances.chunk_rows(k, chunk_elements) == rows
  # A k known only at run time gives the same rows.
  assert int(distances.chunk_rows(tf.constant(k), chunk_elements)) == rows
  assert rows * k <= max(chunk_elements, k)


@pytest.mark.parametrize('n', [0, 1, 7, 13])
@pytest.mark.parametrize('chunk_elements', [1, 3, 1 << 22])
@pytest.mark.parametrize('dtype', DTYPES)
def test_squared_norms_in_chunks_equal_the_whole_computation(n, chunk_elements,
                                                             dtype):
  # Chunks of 1, 3 and all rows; 3 divides neither 7 nor 13.
  points = np.random.default_rng(n).normal(size=(n, 5)).astype(dtype)
  got = distances.squared_norms_in_chunks(tf.constant(points), chunk_elements)
  assert got.dtype == dtype and got.shape == (n,)
  np.testing.assert_array_equal(
      got.numpy(), distances.squared_norms(tf.constant(points)).numpy())
  np.testing.assert_allclose(
      got.numpy(), (points.astype(np.float64)**2).sum(axis=1),
      rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize('k', [1, 5, 16, 17, 40])
def test_segment_statistics_are_the_same_for_a_python_int_and_a_tensor_k(k):
  # The XLA sums are compiled for k rounded up (distances.padded_segments)
  # and cut to k: the same bits whether k is static or a Tensor.
  rng = np.random.default_rng(k)
  points = tf.constant(rng.normal(size=(300, 3)), tf.float32)
  index = tf.constant(rng.integers(0, k, 300), tf.int32)
  dist = tf.constant(rng.uniform(size=300), tf.float32)
  weights = tf.constant(rng.uniform(size=300), tf.float32)
  for w in (None, weights):
    static = distances.segment_statistics(points, index, dist, k, w)
    dynamic = tf.function(
        lambda n, w=w: distances.segment_statistics(points, index, dist, n,
                                                    w))(tf.constant(k))
    for a, b in zip(static, dynamic):
      assert a.shape == b.shape
      np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(
        static[1].numpy(),
        np.bincount(index.numpy(), None if w is None else w.numpy(), k),
        rtol=1e-6)
  assert distances.padded_segments(k) == max(16, 1 << (k - 1).bit_length())
  assert int(distances.padded_segments(tf.constant(k))) == (
      distances.padded_segments(k))
