"""Tests for kmeans_estimator.ops.sparse and the sparse paths of
ops.distances and ops.carried: every function on a row-major SparseTensor
gives what it gives on the dense points of the same values (and the numpy
oracles), without densifying them."""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.ops import carried
from kmeans_estimator.ops import distances
from kmeans_estimator.ops import sparse as sparse_lib

import oracles

from oracles import METRICS
from oracles import SQUARED_EUCLIDEAN as SQ


def _sparse_points(seed=0, n=40, d=7, density=0.3, empty_rows=(3,)):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  x[rng.random((n, d)) > density] = 0
  for row in empty_rows:
    x[row] = 0
  return x, tf.sparse.from_dense(x)


def _prepared(x, metric):
  return oracles.normalize(x).astype(np.float32) if metric != SQ else x


def test_rows_of_sparse_points_are_the_dense_slice_renumbered():
  x, sp = _sparse_points()
  for start, stop in ((0, 5), (3, 4), (10, 40), (38, 99), (40, 45)):
    chunk = sparse_lib.rows(sp, start, stop)
    np.testing.assert_array_equal(tf.sparse.to_dense(chunk), x[start:stop])


def test_squared_norms_of_sparse_points_match_numpy_and_an_empty_row_is_0():
  x, sp = _sparse_points()
  norms = sparse_lib.squared_norms(sp).numpy()
  np.testing.assert_allclose(norms, (x.astype(np.float64)**2).sum(1),
                             rtol=1e-6)
  assert norms[3] == 0


def test_sparse_segment_sums_match_numpy_drop_negative_ids_and_weigh():
  x, sp = _sparse_points()
  rng = np.random.default_rng(1)
  index = rng.integers(-1, 4, size=len(x)).astype(np.int32)
  weights = rng.random(len(x)).astype(np.float32)
  sums = sparse_lib.segment_sums(sp, index, 4, weights).numpy()
  expected = np.stack([(x[index == j] * weights[index == j, None]).sum(0)
                       for j in range(4)])
  np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-6)


def test_gather_rows_of_sparse_points_is_dense_with_repeats_and_empty_rows():
  x, sp = _sparse_points()
  rows = np.array([3, 0, 39, 0, 17])
  np.testing.assert_array_equal(sparse_lib.gather_rows(sp, rows), x[rows])
  np.testing.assert_array_equal(sparse_lib.gather_rows(sp, 5), x[5])


def test_l2_normalize_rows_keeps_an_empty_row_zero():
  x, sp = _sparse_points()
  normalized = tf.sparse.to_dense(sparse_lib.l2_normalize_rows(sp)).numpy()
  np.testing.assert_allclose(normalized, oracles.normalize(x), atol=1e-6)
  assert not np.isnan(normalized).any()


@pytest.mark.parametrize('metric', METRICS)
def test_sparse_distances_equal_dense_ones_and_the_oracle(metric):
  x, _ = _sparse_points()
  points = _prepared(x, metric)
  sp = tf.sparse.from_dense(points)
  centers = np.random.default_rng(2).normal(size=(5, 7)).astype(np.float32)
  np.testing.assert_allclose(
      distances.pairwise_distances(sp, centers, metric),
      np.maximum(oracles.distances(points, centers, metric), 0),
      rtol=1e-4, atol=1e-5)
  # Chunks of 3 rows (chunk_elements 15 / k 5) exercise the row loop.
  for chunk_elements in (15, 1 << 20):
    for static in (True, False):
      index, distance = distances.nearest_centers(
          sp, centers, metric, chunk_elements, static_chunks=static)
      dense_index, dense_distance = distances.nearest_centers(
          points, centers, metric, chunk_elements, static_chunks=static)
      np.testing.assert_array_equal(index, dense_index)
      np.testing.assert_allclose(distance, dense_distance, rtol=1e-5,
                                 atol=1e-5)
    sums, counts, loss = distances.cluster_statistics(
        sp, centers, metric, chunk_elements)
    dense = distances.cluster_statistics(points, centers, metric,
                                         chunk_elements)
    np.testing.assert_allclose(sums, dense[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(counts, dense[1])
    np.testing.assert_allclose(loss, dense[2], rtol=1e-5)
    top_index, top_distance = distances.top_k_nearest(
        sp, centers, metric, 3, chunk_elements)
    dense_top = distances.top_k_nearest(points, centers, metric, 3,
                                        chunk_elements)
    np.testing.assert_array_equal(top_index, dense_top[0])
    np.testing.assert_allclose(top_distance, dense_top[1], rtol=1e-5,
                               atol=1e-5)


def test_sparse_restart_statistics_equal_dense_ones():
  x, sp = _sparse_points()
  centers = np.random.default_rng(3).normal(size=(2, 4, 7)).astype(np.float32)
  weights = np.random.default_rng(4).random(len(x)).astype(np.float32)
  got = distances.restart_statistics(sp, centers, SQ, 8, weights)
  expected = distances.restart_statistics(x, centers, SQ, 8, weights)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('weighted', [False, True])
def test_sparse_carried_sums_are_the_dense_integers(weighted):
  x, sp = _sparse_points()
  rng = np.random.default_rng(5)
  weights = rng.random(len(x)).astype(np.float32) if weighted else None
  assignments = rng.integers(0, 4, size=len(x)).astype(np.int32)
  dense = carried.recount(carried.start(x, 4, weights), x, assignments,
                          weights)
  state = carried.start(sp, 4, weights)
  np.testing.assert_array_equal(state.scales.sums,
                                carried.start(x, 4, weights).scales.sums)
  got = carried.update(state, sp, assignments, weights)
  np.testing.assert_array_equal(got.sums, dense.sums)
  np.testing.assert_array_equal(got.counts, dense.counts)
  np.testing.assert_allclose(carried.squared_total(sp, weights),
                             carried.squared_total(x, weights), rtol=1e-12)


@pytest.mark.parametrize('weighted', [False, True])
def test_sparse_carried_sums_taken_in_pieces_are_the_dense_integers(
    weighted, monkeypatch):
  # Pieces of 5 stored values: a piece splits rows, the last one is short.
  monkeypatch.setattr(carried, '_RECOUNT_ENTRIES', 5)
  x, sp = _sparse_points()
  rng = np.random.default_rng(6)
  weights = rng.random(len(x)).astype(np.float32) if weighted else None
  assignments = rng.integers(0, 4, size=len(x)).astype(np.int32)
  assignments[0] = -1  # No cluster: counted nowhere.
  dense = carried.recount(carried.start(x, 4, weights), x, assignments,
                          weights)
  got = carried.update(carried.start(sp, 4, weights), sp, assignments,
                       weights)
  np.testing.assert_array_equal(got.sums, dense.sums)
  np.testing.assert_array_equal(got.counts, dense.counts)


def test_sparse_ops_never_densify_the_points(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError('the sparse points were densified')

  monkeypatch.setattr(tf.sparse, 'to_dense', refuse)
  x, _ = _sparse_points()
  sp = tf.SparseTensor(*(lambda s: (s.indices, s.values, s.dense_shape))(
      tf.sparse.from_dense(x)))
  centers = x[:4] + 0.5
  distances.cluster_statistics(sp, centers, SQ, 12)
  distances.nearest_centers(sp, centers, SQ, 12)
  carried.update(carried.start(sp, 4), sp, np.zeros(len(x), np.int32))


def test_take_rows_keeps_sparse_rows_sparse_in_the_order_asked():
  x, sp = _sparse_points()
  rows = np.array([3, 0, 39, 0, 17])
  taken = sparse_lib.take_rows(sp, rows)
  assert isinstance(taken, tf.SparseTensor)
  np.testing.assert_array_equal(tf.sparse.to_dense(taken), x[rows])


def test_squared_distances_to_own_centers_match_numpy_for_sparse_points():
  x, sp = _sparse_points()
  centers = np.random.default_rng(6).normal(size=(4, 7)).astype(np.float32)
  assignments = np.random.default_rng(7).integers(0, 4, len(x))
  expected = ((x.astype(np.float64) - centers[assignments])**2).sum(1)
  np.testing.assert_allclose(
      sparse_lib.squared_distances_to(sp, centers, assignments), expected,
      rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      sparse_lib.squared_distances_to(x, centers, assignments), expected,
      rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('num_rows', [0, 5])
def test_a_sparse_product_of_no_rows_or_no_entries_is_zeros(num_rows):
  # TensorFlow's CSR kernels crash the process on a matrix of no rows.
  empty = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0]),
                          [num_rows, 4])
  centers = tf.ones([3, 4])
  product = sparse_lib.matmul(empty, centers, transpose_b=True)
  np.testing.assert_array_equal(product, np.zeros((num_rows, 3)))
  traced = tf.function(lambda points: sparse_lib.matmul(
      sparse_lib.rows(points, 0, 0), centers, transpose_b=True))
  assert traced(empty).shape == (0, 3)


@pytest.mark.parametrize('piece', [1, 5, 1 << 18])
@pytest.mark.parametrize('weighted', [False, True])
def test_passes_over_stored_values_in_pieces_equal_numpy(
    piece, weighted, monkeypatch):
  # Pieces of 1 and 5 values split rows and columns between pieces.
  monkeypatch.setattr(sparse_lib, 'ENTRY_PIECE', piece)
  x, sp = _sparse_points(seed=8)
  x[5, 2] = -9.0  # The largest magnitude of a column is negative.
  sp = tf.sparse.from_dense(x)
  weights = (np.random.default_rng(8).random(len(x)) if weighted
             else None)
  wide = x.astype(np.float64)
  np.testing.assert_allclose(sparse_lib.squared_norms(sp),
                             (wide ** 2).sum(axis=1), rtol=1e-6)
  np.testing.assert_array_equal(sparse_lib.largest_magnitudes(sp),
                                np.abs(x).max(axis=0))
  w = np.ones(len(x)) if weights is None else weights
  np.testing.assert_allclose(sparse_lib.squared_total(sp, weights),
                             (w * (wide ** 2).sum(axis=1)).sum(),
                             rtol=1e-12)


def _csr_points(x):
  """`CsrPoints` of the dense array `x`, built from its CSR parts."""
  nonzero = x != 0
  return sparse_lib.CsrPoints(
      np.r_[0, np.cumsum(nonzero.sum(1))].astype(np.int64),
      np.nonzero(nonzero)[1].astype(np.int32), x[nonzero], x.shape[1])


def _dense(points):
  return tf.sparse.to_dense(sparse_lib.as_sparse_tensor(points)).numpy()


def test_a_sparse_tensor_converts_to_csr_points_and_back_with_empty_rows():
  x, sp = _sparse_points(empty_rows=(0, 3, 39))
  csr = sparse_lib.as_csr(sp)
  expected = _csr_points(x)
  for name in ('row_splits', 'columns', 'values'):
    np.testing.assert_array_equal(getattr(csr, name), getattr(expected, name))
  assert csr.columns.dtype == tf.int32 and csr.shape == x.shape
  back = sparse_lib.as_sparse_tensor(csr)
  np.testing.assert_array_equal(back.indices, sp.indices)
  np.testing.assert_array_equal(back.dense_shape, x.shape)


def test_every_sparse_op_gives_on_csr_points_what_it_gives_on_dense_ones():
  x, _ = _sparse_points()
  csr = _csr_points(x)
  rng = np.random.default_rng(8)
  centers = rng.normal(size=(4, 7)).astype(np.float32)
  assignments = rng.integers(0, 4, len(x)).astype(np.int32)
  scales = rng.random(len(x)).astype(np.float32)
  rows = np.array([3, 0, 39, 0, 17])
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  close(sparse_lib.squared_norms(csr), sparse_lib.squared_norms(x))
  close(sparse_lib.matmul(csr, centers, transpose_b=True), x @ centers.T)
  close(sparse_lib.segment_sums(csr, assignments, 4, scales),
        sparse_lib.segment_sums(x, assignments, 4, scales))
  close(sparse_lib.squared_distances_to(csr, centers, assignments),
        sparse_lib.squared_distances_to(x, centers, assignments))
  close(sparse_lib.products_with(csr, centers, assignments),
        sparse_lib.products_with(x, centers, assignments))
  close(sparse_lib.largest_magnitudes(csr), np.abs(x).max(0))
  close(_dense(sparse_lib.scale_rows(csr, scales)), x * scales[:, None])
  close(_dense(sparse_lib.l2_normalize_rows(csr)), oracles.normalize(x))
  np.testing.assert_array_equal(sparse_lib.gather_rows(csr, rows), x[rows])
  taken = sparse_lib.take_rows(csr, rows)
  assert isinstance(taken, sparse_lib.CsrPoints)
  np.testing.assert_array_equal(_dense(taken), x[rows])
  for start, stop in ((0, 5), (3, 4), (10, 40), (38, 99), (40, 45)):
    chunk = sparse_lib.rows(csr, start, stop)
    assert isinstance(chunk, sparse_lib.CsrPoints)
    np.testing.assert_array_equal(_dense(chunk), x[start:stop])
  assert sparse_lib.cast(csr, tf.float64).values.dtype == tf.float64


def test_rows_of_csr_points_are_found_without_a_search(monkeypatch):
  x, _ = _sparse_points()
  csr = _csr_points(x)

  def refuse(*args, **kwargs):
    raise AssertionError('the rows were searched for')

  # O(1) (rows) or O(m) (take_rows) from the row splits: no binary search.
  monkeypatch.setattr(tf, 'searchsorted', refuse)
  np.testing.assert_array_equal(_dense(sparse_lib.rows(csr, 10, 20)),
                                x[10:20])
  np.testing.assert_array_equal(sparse_lib.gather_rows(csr, [7, 2]),
                                x[[7, 2]])


def test_csr_points_of_any_size_share_one_relaxed_trace():
  traces = []

  @tf.function(reduce_retracing=True, autograph=False)
  def norms(points):
    traces.append(points)
    return sparse_lib.squared_norms(points)

  for n in (10, 20, 30, 40):
    x, _ = _sparse_points(seed=n, n=n)
    np.testing.assert_allclose(norms(_csr_points(x)), (x**2).sum(1),
                               rtol=1e-6)
  # The first call's exact shapes, then one trace for every n and nnz.
  assert len(traces) == 2


def test_the_rows_of_any_piece_of_entries_are_found_across_empty_rows():
  x, _ = _sparse_points(empty_rows=(0, 3, 4, 5, 39))
  csr = _csr_points(x)
  every = np.nonzero(x)[0]
  np.testing.assert_array_equal(sparse_lib.entry_rows(csr), every)
  np.testing.assert_array_equal(sparse_lib.row_ids(csr), every)
  rng = np.random.default_rng(9)
  for start, stop in [(0, len(every)), (0, 1), (len(every) - 1, len(every))] + [
      tuple(sorted(rng.integers(0, len(every) + 1, 2))) for _ in range(20)]:
    np.testing.assert_array_equal(
        sparse_lib.entry_rows(csr, start, stop), every[start:stop])


def test_a_product_of_many_stored_values_is_taken_a_block_of_rows_at_a_time(
    monkeypatch):
  # Blocks of about 5 values' rows: many blocks, the last one short.
  monkeypatch.setattr(sparse_lib, 'ENTRY_PIECE', 5)
  x, _ = _sparse_points(empty_rows=(0, 3, 39))
  csr = _csr_points(x)
  centers = np.random.default_rng(11).normal(size=(3, 7)).astype(np.float32)
  np.testing.assert_allclose(
      sparse_lib.matmul(csr, centers, transpose_b=True), x @ centers.T,
      rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      tf.function(sparse_lib.matmul)(csr, centers.T), x @ centers.T,
      rtol=1e-5, atol=1e-6)


def test_sparse_chunks_take_the_rows_the_distances_and_entries_allow(
    monkeypatch):
  # Dense points stop at MAX_CHUNK_ROWS (a GEMM's cache); sparse ones take
  # every row chunk_elements allows, up to CHUNK_ENTRIES stored values at
  # their average density (a chunk copies its entries).
  centers = tf.zeros([4, 7])
  x, _ = _sparse_points(n=40)  # 4-ish stored values a row.
  csr = _csr_points(x)
  nnz = int(np.count_nonzero(x))
  assert distances._rows_for(centers, 1 << 20, x) == 4096
  monkeypatch.setattr(sparse_lib, 'CHUNK_ENTRIES', 1 << 30)
  assert int(distances._rows_for(centers, 1 << 20, csr)) == (1 << 20) // 4
  monkeypatch.setattr(sparse_lib, 'CHUNK_ENTRIES', 20)
  assert int(distances._rows_for(centers, 1 << 20, csr)) == 20 * 40 // nnz
  index, _ = distances.nearest_centers(
      csr, np.eye(4, 7, dtype=np.float32), oracles.SQUARED_EUCLIDEAN,
      static_chunks=False)
  np.testing.assert_array_equal(
      index, np.argmin(((x[:, None] - np.eye(4, 7)) ** 2).sum(-1), axis=1))
