"""Tests for kmeans_estimator.data.sparse: SparseTensors and scipy.sparse
matrices read into row-major SparseTensors, checked as dense data are,
never densified."""

import importlib
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import errors
from kmeans_estimator.data import adapters
from kmeans_estimator.data import base
from kmeans_estimator.data import sparse

scipy_sparse = importlib.import_module('scipy.sparse')


def _points(seed=0, n=12, d=5):
  rng = np.random.default_rng(seed)
  x = rng.random((n, d)).astype(np.float32)
  x[x < 0.5] = 0
  return x


@pytest.mark.parametrize('form', ['csr', 'csc', 'coo', 'lil', 'csr_array'])
def test_scipy_matrices_of_every_format_read_as_the_same_sparse_tensor(form):
  x = _points()
  matrix = (scipy_sparse.csr_array(x) if form == 'csr_array' else
            getattr(scipy_sparse, f'{form}_matrix')(x))
  points = adapters.read_points(matrix, dtype=tf.float64)
  assert isinstance(points, sparse.SparsePoints)
  assert points.kind == base.IN_MEMORY and points.sparse
  assert (points.num_points, points.num_features) == x.shape
  st = points.batch.points
  assert st.dtype == tf.float64
  np.testing.assert_array_equal(tf.sparse.to_dense(st), x)
  # Row-major: the row ids never decrease.
  assert np.all(np.diff(st.indices.numpy()[:, 0]) >= 0)


def test_a_coo_matrix_with_repeated_entries_sums_them_as_scipy_does():
  coo = scipy_sparse.coo_matrix(
      (np.array([1., 2., 5.], np.float32), (np.array([0, 0, 1]),
                                            np.array([2, 2, 0]))),
      shape=(2, 3))
  st = adapters.read_points(coo).batch.points
  np.testing.assert_array_equal(tf.sparse.to_dense(st), coo.toarray())
  assert int(tf.size(st.values)) == 2


def test_reading_a_canonical_csr_matrix_leaves_the_callers_matrix_alone():
  matrix = scipy_sparse.csr_matrix(_points())
  before = (matrix.data.copy(), matrix.indices.copy(), matrix.indptr.copy())
  adapters.read_points(matrix)
  for got, expected in zip((matrix.data, matrix.indices, matrix.indptr),
                           before):
    np.testing.assert_array_equal(got, expected)


def test_a_canonical_csr_matrix_is_read_without_a_copy(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError('the canonical CSR matrix was copied')

  matrix = scipy_sparse.csr_matrix(_points(n=40))
  monkeypatch.setattr(type(matrix), 'copy', refuse)
  monkeypatch.setattr(type(matrix), 'astype', refuse)
  st = adapters.read_points(matrix).batch.points
  np.testing.assert_array_equal(tf.sparse.to_dense(st), matrix.toarray())


@pytest.mark.parametrize('block', [1, 3, 1 << 16])
def test_the_row_ids_of_a_csr_matrix_are_the_same_in_any_row_block(
    block, monkeypatch):
  monkeypatch.setattr(sparse, '_ROW_BLOCK', block)
  x = _points(n=10)
  x[[0, 4, 9]] = 0  # Rows without entries, first and last among them.
  st = adapters.read_points(scipy_sparse.csr_matrix(x)).batch.points
  np.testing.assert_array_equal(st.indices.numpy(), np.argwhere(x))
  np.testing.assert_array_equal(tf.sparse.to_dense(st), x)


def test_an_unordered_sparse_tensor_is_put_in_row_major_order():
  st = tf.SparseTensor([[2, 1], [0, 3], [1, 0]], [3., 1., 2.], [3, 4])
  read = adapters.read_points(st).batch.points
  np.testing.assert_array_equal(read.indices, [[0, 3], [1, 0], [2, 1]])


def test_a_sparse_tensor_with_a_repeated_index_is_refused():
  st = tf.SparseTensor([[0, 1], [0, 1]], [1., 2.], [2, 3])
  with pytest.raises(errors.InvalidInputError, match='stored twice'):
    adapters.read_points(st)


def test_nan_among_the_stored_values_is_refused_as_in_dense_points():
  x = _points()
  x[2, 3] = np.nan
  with pytest.raises(errors.InvalidInputError,
                     match='NaN or Inf') as raised:
    adapters.read_points(scipy_sparse.csr_matrix(x))
  assert raised.value.kind == 'non_finite'


def test_the_width_of_sparse_points_is_checked_against_the_model():
  with pytest.raises(errors.InvalidInputError, match='5 features'):
    adapters.read_points(scipy_sparse.csr_matrix(_points()), num_features=4)


def test_sparse_points_without_rows_are_refused():
  with pytest.raises(errors.InvalidInputError, match='no points'):
    adapters.read_points(scipy_sparse.csr_matrix((0, 5), dtype=np.float32))


def test_sparse_points_of_another_rank_are_refused():
  st = tf.SparseTensor([[0, 1, 2]], [1.], [2, 3, 4])
  with pytest.raises(errors.InvalidInputError, match='2-D SparseTensor'):
    adapters.read_points(st)


def test_a_dict_holding_sparse_points_and_weights_reads_both():
  x = _points()
  weights = np.arange(1, len(x) + 1, dtype=np.float32)
  points = adapters.read_points({'x': scipy_sparse.csr_matrix(x),
                                 'w': weights}, weight_column='w')
  assert points.sparse and points.weighted
  np.testing.assert_array_equal(points.batch.weights, weights)


def test_inference_chunks_of_sparse_points_are_sparse_rows_in_order():
  x = _points(n=30)
  points = adapters.read_points(scipy_sparse.csr_matrix(x), in_chunks=True,
                                batch_rows=11)
  batches = list(points.chunked_batches(4))
  assert [rows for rows, _ in batches] == [11, 11, 8]
  chunks = [chunk.points for _, parts in points.chunked_batches(4)
            for chunk, _ in parts]
  assert all(isinstance(chunk, tf.SparseTensor) for chunk in chunks)
  np.testing.assert_array_equal(
      np.concatenate([tf.sparse.to_dense(chunk) for chunk in chunks]), x)


def test_a_dataset_of_sparse_batches_reads_as_a_checked_stream():
  x = _points(n=20)
  x[13, 2] = np.inf
  dataset = tf.data.Dataset.from_tensor_slices(
      tf.sparse.from_dense(x)).batch(8)
  points = adapters.read_points(dataset)
  assert points.kind == base.STREAM and points.sparse
  assert points.num_features == 5
  with pytest.raises(tf.errors.InvalidArgumentError, match='NaN or Inf'):
    list(points.batches())


def test_the_package_never_imports_scipy():
  # scipy is optional: a scipy matrix is recognised by its module, and
  # only users who pass one need scipy.
  root = pathlib.Path(kmeans_estimator.__file__).parent
  for path in root.rglob('*.py'):
    text = path.read_text()
    assert 'import scipy' not in text and 'from scipy' not in text, path
