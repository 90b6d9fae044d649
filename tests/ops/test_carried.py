"""Carried per-cluster sums are exact: however they were kept, they agree.

Oracle: numpy float64 sums of the points of each cluster; the property that
matters for resumed training: adding and subtracting the points that moved
gives the very integers that a recount from scratch gives.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator.ops import carried

from helpers import fast_first

_K = 4


def _data(seed, n=300, d=3, dtype=np.float32, scale=1.0):
  rng = np.random.default_rng(seed)
  points = (rng.normal(size=(n, d)) * scale).astype(dtype)
  return points, rng


def _numpy_sums(points, index, weights=None):
  x = points.astype(np.float64)
  w = np.ones(len(x)) if weights is None else weights.astype(np.float64)
  sums = np.stack([(w[index == j, None] * x[index == j]).sum(axis=0)
                   for j in range(_K)])
  return sums, np.bincount(index, weights=w, minlength=_K)


@pytest.mark.parametrize('dtype', fast_first(1, [np.float32, np.float64]))
@pytest.mark.parametrize('weighted', [False, True])
def test_carrying_the_movers_gives_the_recount_exactly(
    dtype, weighted, monkeypatch):
  monkeypatch.setattr(carried, '_RECOUNT_ROWS', 7)  # Many pieces.
  points, rng = _data(0, dtype=dtype)
  weights = rng.uniform(0.0, 3.0, len(points)).astype(dtype) if weighted \
      else None
  state = carried.start(points, _K, weights)
  before = rng.integers(0, _K, len(points)).astype(np.int32)
  after = before.copy()
  movers = rng.choice(len(points), 40, replace=False)
  after[movers] = rng.integers(0, _K, 40)
  kept = carried.recount(state, points, before, weights)
  moved = carried.carry(kept, points, after, weights)
  fresh = carried.recount(state, points, after, weights)
  np.testing.assert_array_equal(moved.sums.numpy(), fresh.sums.numpy())
  np.testing.assert_array_equal(moved.counts.numpy(), fresh.counts.numpy())
  np.testing.assert_array_equal(moved.assignments, after)
  sums, counts = carried.as_wide(fresh)
  want_sums, want_counts = _numpy_sums(points, after, weights)
  # Exact but for the truncation far below float32 precision, and the
  # rounding of w x in the points' dtype.
  rtol = 1e-6 if weighted and dtype == np.float32 else 1e-12
  np.testing.assert_allclose(sums.numpy(), want_sums, rtol=rtol,
                             atol=rtol * np.abs(points).max() * len(points))
  np.testing.assert_allclose(counts.numpy(), want_counts, rtol=rtol)
  # `update` takes whichever way is cheaper, with the same result.
  for target in (after, before):
    updated = carried.update(kept, points, target, weights)
    want = carried.recount(state, points, target, weights)
    np.testing.assert_array_equal(updated.sums.numpy(), want.sums.numpy())


@pytest.mark.parametrize('scale', [1e-30, 1e30])
def test_tiny_and_huge_magnitudes_keep_float32_accuracy(scale):
  points, rng = _data(1, scale=scale)
  index = rng.integers(0, _K, len(points)).astype(np.int32)
  state = carried.start(points, _K)
  sums, counts = carried.as_wide(carried.recount(state, points, index))
  want_sums, want_counts = _numpy_sums(points, index)
  assert np.isfinite(sums.numpy()).all()
  np.testing.assert_allclose(sums.numpy(), want_sums, rtol=1e-6,
                             atol=1e-9 * scale)
  np.testing.assert_array_equal(counts.numpy(), want_counts)


@pytest.mark.parametrize('dtype', [tf.float16, tf.bfloat16])
@pytest.mark.parametrize('weighted', [False, True])
def test_half_precision_points_give_their_exact_sums(dtype, weighted):
  # Scaling by 2^s in half precision overflowed to inf (all-zero centers).
  points, rng = _data(3, n=200)
  points = tf.cast(points, dtype)
  exact = tf.cast(points, tf.float64).numpy()
  weights = None
  if weighted:
    weights = tf.cast(rng.uniform(0.0, 3.0, len(exact)), dtype)
  index = rng.integers(0, _K, len(exact)).astype(np.int32)
  state = carried.start(points, _K, weights)
  sums, counts = carried.as_wide(carried.recount(state, points, index,
                                                 weights))
  want_sums, want_counts = _numpy_sums(
      exact, index, None if weights is None else
      tf.cast(weights, tf.float64).numpy())
  np.testing.assert_allclose(sums.numpy(), want_sums, rtol=1e-12,
                             atol=1e-12)
  np.testing.assert_allclose(counts.numpy(), want_counts, rtol=1e-12)


def test_a_cluster_that_loses_every_point_has_zero_count_and_sums():
  points, rng = _data(2)
  weights = rng.uniform(0.1, 3.0, len(points)).astype(np.float32)
  state = carried.start(points, _K, weights)
  index = rng.integers(0, _K, len(points)).astype(np.int32)
  kept = carried.recount(state, points, index, weights)
  emptied = carried.carry(kept, points, np.where(index == 2, 0, index)
                          .astype(np.int32), weights)
  assert int(emptied.counts[2]) == 0
  assert not emptied.sums.numpy()[2].any()


@pytest.mark.parametrize('algorithm', ['lloyd', 'hamerly'])
def test_training_in_parts_gives_the_centers_of_one_run_bit_for_bit(
    tmp_path, algorithm):
  points, _ = _data(3, n=2000, d=4)
  points += np.repeat(np.arange(4.0) * 10, 500)[:, None].astype(np.float32)

  def train(name, parts):
    kmeans = KMeansClustering(_K, model_dir=str(tmp_path / name),
                              initial_clusters=points[::500].copy(),
                              use_mini_batch=False, algorithm=algorithm)
    for steps in parts:
      kmeans.train(lambda: points, steps=steps)
    return kmeans.cluster_centers()

  whole = train('whole', [7])
  np.testing.assert_array_equal(train('parts', [2, 1, 4]), whole)
  # And a dataset of batches (no carried state) agrees to rounding.
  kmeans = KMeansClustering(_K, model_dir=str(tmp_path / 'batches'),
                            initial_clusters=points[::500].copy(),
                            use_mini_batch=False)
  kmeans.train(lambda: tf.data.Dataset.from_tensor_slices(points).batch(300),
               steps=7)
  np.testing.assert_allclose(kmeans.cluster_centers(), whole, rtol=1e-5,
                             atol=1e-5)


def test_precomputed_norms_need_the_dynamic_chunk_loop():
  from kmeans_estimator.ops import distances  # pylint: disable=g-import-not-at-top
  points, _ = _data(4)
  norms = (points**2).sum(axis=1)
  index, distance = distances.nearest_centers(
      points, points[:_K], 'squared_euclidean', point_norms=norms,
      static_chunks=False)
  want_index, want_distance = distances.nearest_centers(
      points, points[:_K], 'squared_euclidean')
  np.testing.assert_array_equal(index.numpy(), want_index.numpy())
  np.testing.assert_allclose(distance.numpy(), want_distance.numpy(),
                             rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match='goes with static_chunks=False'):
    distances.nearest_centers(points, points[:_K], 'squared_euclidean',
                              point_norms=norms)


@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('shape_known', [True, False])
def test_small_data_are_recounted_without_xla_to_the_same_integers(
    weighted, shape_known, monkeypatch):
  points, rng = _data(5)
  weights = (tf.constant(rng.uniform(0.0, 3.0, len(points)), tf.float32)
             if weighted else None)
  index = rng.integers(0, _K, len(points)).astype(np.int32)
  state = carried.start(points, _K, weights)
  spec = [None, None] if not shape_known else list(points.shape)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec(spec, tf.float32), tf.TensorSpec([None], tf.int32)])
  def recount_in_graph(x, assignments):
    return carried.recount(state, x, assignments, weights)

  monkeypatch.setattr(carried, '_PLAIN_RECOUNT_ELEMENTS', 0)
  fused = carried.recount(state, points, index, weights)
  monkeypatch.setattr(carried, '_PLAIN_RECOUNT_ELEMENTS', points.size)
  compiled = []
  xla = carried._recount_xla
  monkeypatch.setattr(carried, '_recount_xla',
                      lambda *args: compiled.append(1) or xla(*args))
  plain = recount_in_graph(points, index)
  np.testing.assert_array_equal(plain.sums.numpy(), fused.sums.numpy())
  np.testing.assert_array_equal(plain.counts.numpy(), fused.counts.numpy())
  if shape_known:  # Else the graph holds both, and runs the plain one.
    assert not compiled


@pytest.mark.parametrize('dtype,scale', [
    (np.float16, 1.0), (np.float32, 1e-30), (np.float32, 1.0),
    (np.float32, 1e30), (np.float64, 1e-30), (np.float64, 1e30)])
@pytest.mark.parametrize('weighted', [False, True])
def test_a_sparse_recount_gives_the_integers_of_the_dense_points(
    dtype, scale, weighted, monkeypatch):
  # Pieces of 64 stored values: many pieces, each scaled by its columns'
  # factors; tiny and huge magnitudes give exponents whose 2^s alone
  # would overflow float32.
  monkeypatch.setattr(carried, '_RECOUNT_ENTRIES', 64)
  points, rng = _data(3, n=200, d=7, dtype=dtype, scale=scale)
  points[rng.uniform(size=points.shape) < 0.6] = 0  # Sparse; some empty rows.
  points[:, 2] = 0  # A column without entries.
  weights = (rng.uniform(0.0, 3.0, len(points)).astype(dtype) if weighted
             else None)
  index = rng.integers(-1, _K, len(points)).astype(np.int32)  # -1: none.
  sparse_points = tf.sparse.from_dense(points)
  dense = carried.recount(carried.start(points, _K, weights), points, index,
                          weights)
  state = carried.start(sparse_points, _K, weights)
  np.testing.assert_array_equal(state.scales.sums, dense.scales.sums)
  got = carried.update(state, sparse_points, index, weights)
  np.testing.assert_array_equal(got.sums.numpy(), dense.sums.numpy())
  np.testing.assert_array_equal(got.counts.numpy(), dense.counts.numpy())


def test_a_sparse_recount_of_points_without_clusters_is_zero():
  points = np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 0]], np.float32)
  state = carried.start(tf.sparse.from_dense(points), _K)
  got = carried.update(state, tf.sparse.from_dense(points),
                       np.full(3, -1, np.int32))
  np.testing.assert_array_equal(got.sums, np.zeros((_K, 3), np.int64))
  np.testing.assert_array_equal(got.counts, np.zeros(_K, np.int64))


def test_a_sparse_recount_with_one_long_row_among_short_ones_is_exact(
    monkeypatch):
  # Pieces of 50 values: the long row (400 values) is a piece alone, its
  # neighbours in cluster order share theirs; the sums are the dense ones.
  monkeypatch.setattr(carried, '_RECOUNT_ENTRIES', 50)
  rng = np.random.default_rng(9)
  points = np.zeros((300, 400), np.float32)
  short = rng.integers(0, 400, (300, 3))
  points[np.arange(300)[:, None], short] = rng.normal(size=(300, 3))
  points[17] = rng.normal(size=400)
  weights = rng.uniform(0.5, 2.0, 300).astype(np.float32)
  index = rng.integers(0, _K, 300).astype(np.int32)
  dense = carried.recount(carried.start(points, _K, weights), points, index,
                          weights)
  sparse_points = tf.sparse.from_dense(points)
  got = carried.update(carried.start(sparse_points, _K, weights),
                       sparse_points, index, weights)
  np.testing.assert_array_equal(got.sums.numpy(), dense.sums.numpy())
  np.testing.assert_array_equal(got.counts.numpy(), dense.counts.numpy())
