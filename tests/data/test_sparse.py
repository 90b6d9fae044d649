"""Tests for kmeans_estimator.data.sparse: SparseTensors and scipy.sparse
matrices read into CSR points (`ops.sparse.CsrPoints`), checked as dense
data are, never densified."""

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
from kmeans_estimator.ops import sparse as sparse_lib

scipy_sparse = importlib.import_module('scipy.sparse')


def _dense(points):
  """The dense array of sparse points (a test oracle only)."""
  return tf.sparse.to_dense(sparse_lib.as_sparse_tensor(points)).numpy()


def _points(seed=0, n=12, d=5):
  rng = np.random.default_rng(seed)
  x = rng.random((n, d)).astype(np.float32)
  x[x < 0.5] = 0
  return x


@pytest.mark.parametrize('form', ['csr', 'csc', 'coo', 'lil', 'csr_array'])
def test_scipy_matrices_of_every_format_read_as_the_same_csr_points(form):
  x = _points()
  matrix = (scipy_sparse.csr_array(x) if form == 'csr_array' else
            getattr(scipy_sparse, f'{form}_matrix')(x))
  points = adapters.read_points(matrix, dtype=tf.float64)
  assert isinstance(points, sparse.SparsePoints)
  assert points.kind == base.IN_MEMORY and points.sparse
  assert (points.num_points, points.num_features) == x.shape
  csr = points.batch.points
  assert isinstance(csr, sparse_lib.CsrPoints)
  assert csr.dtype == tf.float64 and csr.shape == x.shape
  np.testing.assert_array_equal(_dense(csr), x)
  np.testing.assert_array_equal(csr.row_splits,
                                np.r_[0, np.cumsum((x != 0).sum(1))])


def test_a_coo_matrix_with_repeated_entries_sums_them_as_scipy_does():
  coo = scipy_sparse.coo_matrix(
      (np.array([1., 2., 5.], np.float32), (np.array([0, 0, 1]),
                                            np.array([2, 2, 0]))),
      shape=(2, 3))
  csr = adapters.read_points(coo).batch.points
  np.testing.assert_array_equal(_dense(csr), coo.toarray())
  assert int(tf.size(csr.values)) == 2


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
  csr = adapters.read_points(matrix).batch.points
  np.testing.assert_array_equal(_dense(csr), matrix.toarray())


def test_a_csr_matrix_is_held_as_its_row_pointers_columns_and_values():
  x = _points(n=10)
  x[[0, 4, 9]] = 0  # Rows without entries, first and last among them.
  matrix = scipy_sparse.csr_matrix(x)
  csr = adapters.read_points(matrix).batch.points
  assert csr.row_splits.dtype == tf.int64 and csr.columns.dtype == tf.int32
  np.testing.assert_array_equal(csr.row_splits, matrix.indptr)
  np.testing.assert_array_equal(csr.columns, matrix.indices)
  np.testing.assert_array_equal(csr.values, matrix.data)
  np.testing.assert_array_equal(_dense(csr), x)


def test_an_unordered_sparse_tensor_is_put_in_row_major_order():
  st = tf.SparseTensor([[2, 1], [0, 3], [1, 0]], [3., 1., 2.], [3, 4])
  read = adapters.read_points(st).batch.points
  np.testing.assert_array_equal(read.row_splits, [0, 1, 2, 3])
  np.testing.assert_array_equal(read.columns, [3, 0, 1])
  np.testing.assert_array_equal(read.values, [1., 2., 3.])


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
  assert all(isinstance(chunk, sparse_lib.CsrPoints) for chunk in chunks)
  np.testing.assert_array_equal(
      np.concatenate([_dense(chunk) for chunk in chunks]), x)


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


def _csr_of_tensors_bytes(csr):
  return sum(t.shape.num_elements() * t.dtype.size
             for t in (csr.row_splits, csr.columns, csr.values))


@pytest.mark.parametrize('given', ['csr', 'coo', 'sparse_tensor'])
def test_sparse_points_are_held_in_8_bytes_per_value_and_8_per_row(given):
  rng = np.random.default_rng(1)
  x = rng.random((300, 50)).astype(np.float32)
  x[x < 0.9] = 0
  value = {'csr': scipy_sparse.csr_matrix(x),
           'coo': scipy_sparse.coo_matrix(x),
           'sparse_tensor': tf.sparse.from_dense(x)}[given]
  csr = adapters.read_points(value).batch.points
  nnz = int(np.count_nonzero(x))
  # int32 columns and float32 values, int64 row splits: not the 20 bytes a
  # value of a SparseTensor's int64 (row, column) pairs.
  assert _csr_of_tensors_bytes(csr) == 8 * nnz + 8 * (len(x) + 1)
  np.testing.assert_array_equal(_dense(csr), x)


def _aligned_csr(x, offset=0):
  """A canonical CSR matrix of `x` whose index and value arrays start
  `offset` bytes after a 64-byte boundary."""
  template = scipy_sparse.csr_matrix(x)

  def placed(array):
    raw = sparse._aligned_empty((array.nbytes + 64,), np.uint8)
    out = raw[offset:offset + array.nbytes].view(array.dtype)
    out[...] = array
    return out

  # Set after construction: scipy's constructor may copy the arrays.
  template.data = placed(template.data)
  template.indices = placed(template.indices)
  return template


def test_an_aligned_float32_csr_matrix_is_taken_without_copying_its_values():
  x = _points(n=200, d=30)
  matrix = _aligned_csr(x)
  assert matrix.data.ctypes.data % 64 == 0 and matrix.has_canonical_format
  csr = adapters.read_points(matrix).batch.points
  # np.asarray of a CPU Tensor views its buffer: the caller's arrays.
  assert np.shares_memory(np.asarray(csr.values), matrix.data)
  assert np.shares_memory(np.asarray(csr.columns), matrix.indices)
  np.testing.assert_array_equal(_dense(csr), x)


@pytest.mark.parametrize('offset, dtype', [(16, tf.float32), (0, tf.float64)])
def test_a_misaligned_or_other_dtype_csr_matrix_is_copied_into_the_points(
    offset, dtype):
  x = _points(n=200, d=30)
  matrix = _aligned_csr(x, offset)
  assert matrix.data.ctypes.data % 64 == offset
  csr = adapters.read_points(matrix, dtype=dtype).batch.points
  assert csr.dtype == dtype
  assert not np.shares_memory(np.asarray(csr.values), matrix.data)
  np.testing.assert_array_equal(_dense(csr), x)
  # The copy is the points': the caller may write into its matrix.
  matrix.data[:] = 7
  np.testing.assert_array_equal(_dense(csr), x)


def test_a_dataset_of_sparse_batches_is_read_as_csr_points_of_its_width():
  x = _points(n=20)
  dataset = tf.data.Dataset.from_tensor_slices(
      tf.sparse.from_dense(x)).batch(8)
  points = adapters.read_points(dataset)
  batches = [batch.points for batch in points.batches()]
  assert all(isinstance(batch, sparse_lib.CsrPoints) and
             batch.num_columns == 5 for batch in batches)
  np.testing.assert_array_equal(
      np.concatenate([_dense(batch) for batch in batches]), x)
