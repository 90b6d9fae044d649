"""Reading in-memory data: shared rows and the deferred checks.

A large C-contiguous array is read by prediction from its own memory where
its rows start aligned (`arrays.shared_row_parts`). `predict` and
`evaluate` under squared Euclidean distance check a Tensor or array for NaN
and Inf only through the distances they compute anyway; these tests put the
bad value at the first, a middle and the last row of data spanning several
chunks, and check that the errors are those of the up-front check (a
ValueError for NaN or Inf, a FloatingPointError for overflow), under cosine
too, with model_dir left as it was.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.data import adapters
from kmeans_estimator.data import arrays
from kmeans_estimator import KMeansClustering

import oracles
from helpers import fast_first

_K = 4
_D = 3
# 25 chunks of 4,096 rows (the most per chunk) for k = 4 (so the last chunk
# overlaps the one before it), and 1.2 MB in float32 (above the copy size).
_N = 100_000
_NON_FINITE = r'The input contains NaN or Inf values; remove or impute them'
_OVERFLOW = (r'The distances to the centers overflow.*rescale the data, or '
             r'use dtype=tf\.float64')


def _points(seed=0):
  return oracles.blobs(_N, _K, _D, seed)


_POINTS = _points()


@pytest.fixture(scope='module', params=[oracles.SQUARED_EUCLIDEAN,
                                        oracles.COSINE])
def trained(request, tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('model') / request.param
  km = KMeansClustering(num_clusters=_K, model_dir=str(model_dir),
                        use_mini_batch=False, seed=0,
                        distance_metric=request.param)
  km.train(lambda: _POINTS[:2000], steps=3)
  return km, model_dir, request.param


def _at_offset(array, offset):
  """A copy of `array` whose data start `offset` bytes past a 64-byte
  boundary (numpy puts large buffers 16 bytes past one)."""
  buffer = np.empty(array.nbytes + 128, np.uint8)
  start = (offset - buffer.ctypes.data) % 64
  copy = buffer[start:start + array.nbytes].view(array.dtype).reshape(
      array.shape)
  copy[...] = array
  assert copy.ctypes.data % 64 == offset
  return copy


@pytest.mark.parametrize('offset', [0, 4, 16, 48])
def test_shared_row_parts_share_all_but_a_short_head(offset):
  # 12-byte rows: row r starts aligned when offset + 12 r is a multiple of
  # 64; the rows before it are copied, the rest is the caller's memory.
  array = _at_offset(_POINTS, offset)
  parts = arrays.shared_row_parts(array, tf.float32)
  head = (12 * np.arange(64) + offset) % 64
  first = int(np.flatnonzero(head == 0)[0])
  assert [int(part.shape[0]) for part in parts] == (
      [first, _N - first] if first else [_N])
  np.testing.assert_array_equal(
      np.concatenate([part.numpy() for part in parts]), array)
  array[-1] = 7.0
  assert parts[-1].numpy()[-1].tolist() == [7.0] * _D
  if first:
    array[0] = 9.0
    np.testing.assert_array_equal(parts[0].numpy()[0], _POINTS[0])


@pytest.mark.parametrize('case', ['read_only', 'float64', 'fortran', 'small',
                                  'no_aligned_row', 'strided'])
def test_shared_row_parts_only_where_rows_can_be_shared(case):
  array = _at_offset(_POINTS, 16)
  dtype = tf.float32
  if case == 'read_only':
    array.flags.writeable = False
  elif case == 'float64':
    dtype = tf.float64
  elif case == 'fortran':
    array = np.asfortranarray(array)
  elif case == 'small':
    array = array[:1000]
  elif case == 'no_aligned_row':  # 64-byte rows, all 16 bytes off.
    array = _at_offset(np.ones((20_000, 16), np.float32), 16)
  elif case == 'strided':
    array = array[::2]
  assert arrays.shared_row_parts(array, dtype) is None


@pytest.mark.parametrize('offset', [0, 4, 16])
def test_predict_from_shared_rows_equals_predict_from_a_tensor(trained,
                                                               offset):
  # One batch of every point, equal to the prediction from a Tensor, which
  # is never shared; per point too. (The array is read a chunk at a time
  # as the generator advances: see `KMeansClustering._predict`.)
  km, _, _ = trained
  array = _at_offset(_POINTS, offset)
  want = next(km.predict(tf.constant(_POINTS), yield_single_examples=False,
                         predict_keys=['cluster_index']))['cluster_index']
  batches = list(km.predict(array, predict_keys=['cluster_index'],
                            yield_single_examples=False))
  assert len(batches) == 1
  np.testing.assert_array_equal(batches[0]['cluster_index'], want)
  np.testing.assert_array_equal(list(km.predict_cluster_index(array)), want)


@pytest.mark.parametrize('row', [0, 5, _N - 1])
def test_non_finite_value_in_shared_rows_is_a_value_error(trained, row):
  # Offset 16: rows 0-3 are copied, the rest shared.
  km, model_dir, _ = trained
  array = _at_offset(_POINTS, 16)
  array[row, 2] = np.nan
  before = oracles.snapshot(model_dir)
  with pytest.raises(ValueError, match=_NON_FINITE):
    _READERS['predict'](km, array)
  assert oracles.snapshot(model_dir) == before


# ------------------------------------------------------------ the checks
def test_read_points_check_finite_false_leaves_the_check_to_the_caller():
  points = _POINTS.copy()
  points[7, 1] = np.nan
  with pytest.raises(ValueError, match=_NON_FINITE):
    adapters.read_points(points)
  unchecked = adapters.read_points(points, check_finite=False)
  assert not unchecked.checked and unchecked.whole
  assert adapters.read_points(_POINTS, check_finite=False).num_features == _D


def test_predict_of_large_array_matches_the_oracle(trained):
  km, _, metric = trained
  got = np.concatenate([
      p['cluster_index'] for p in km.predict(
          lambda: _POINTS, predict_keys=['cluster_index'],
          yield_single_examples=False)])
  distances = oracles.distances(_POINTS, km.cluster_centers(), metric)
  want = distances.argmin(axis=1)
  # float32 against float64: only near-ties may differ.
  sorted_distances = np.sort(distances, axis=1)
  clear = sorted_distances[:, 1] - sorted_distances[:, 0] > 1e-3
  np.testing.assert_array_equal(got[clear], want[clear])
  evaluated = km.evaluate(lambda: _POINTS)
  np.testing.assert_allclose(evaluated['inertia'],
                             distances.min(axis=1).sum(), rtol=1e-4)


_READERS = {
    'predict': lambda km, fn: list(km.predict(
        fn, predict_keys=['cluster_index'], yield_single_examples=False)),
    'predict_all_distances': lambda km, fn: list(km.predict(
        fn, yield_single_examples=False)),
    'predict_cluster_index': lambda km, fn: list(km.predict_cluster_index(fn)),
    'evaluate': lambda km, fn: km.evaluate(fn),
    'transform': lambda km, fn: list(km.transform(fn)),
}


@pytest.mark.parametrize('reader', sorted(_READERS))
@pytest.mark.parametrize('row', [0, _N // 2, 90_000, _N - 1])
@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf, 'nan_row'])
def test_non_finite_value_anywhere_is_a_value_error(trained, reader, row,
                                                    value):
  km, model_dir, _ = trained
  points = _POINTS.copy()
  if value == 'nan_row':  # Under cosine it normalises to a zero row.
    points[row] = np.nan
  else:
    points[row, 1] = value
  before = oracles.snapshot(model_dir)
  with pytest.raises(ValueError, match=_NON_FINITE):
    _READERS[reader](km, lambda: points)
  assert oracles.snapshot(model_dir) == before


@pytest.mark.parametrize('reader', ['predict', 'evaluate'])
def test_non_finite_tensor_input_is_a_value_error(trained, reader):
  km, _, _ = trained
  points = _POINTS.copy()
  points[-1, 0] = np.nan
  with pytest.raises(ValueError, match=_NON_FINITE):
    _READERS[reader](km, lambda: tf.constant(points))


@pytest.mark.parametrize('metric', [oracles.SQUARED_EUCLIDEAN,
                                    oracles.COSINE])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('row', [0, 9_000, 19_999])
@pytest.mark.parametrize('value', fast_first(1, [np.nan, np.inf, -np.inf,
                                                'nan_row']))
def test_streamed_full_batch_training_on_non_finite_points_is_a_value_error(
    tmp_path, metric, weighted, row, value):
  # Under squared Euclidean distance full-batch steps over a dataset read
  # its batches without the NaN/Inf check (the step's loss reveals such
  # points, even one of weight 0); the error must still be the check's,
  # wherever the point is: the first batch, which the initialisation
  # reads too, or a later one. Under cosine the batches are checked.
  points = _POINTS[:20_000].copy()
  if value == 'nan_row':
    points[row] = np.nan
  else:
    points[row, 1] = value
  weights = np.ones(len(points), np.float32)
  weights[row] = 0.0
  data = {'x': points, 'w': weights} if weighted else points
  model_dir = tmp_path / 'model'
  km = KMeansClustering(num_clusters=_K, model_dir=str(model_dir),
                        use_mini_batch=False, distance_metric=metric, seed=0,
                        weight_column='w' if weighted else None)
  with pytest.raises(ValueError, match=_NON_FINITE):
    km.train(tf.data.Dataset.from_tensor_slices(data).batch(2_000), steps=2)
  assert oracles.snapshot(model_dir) is None


def test_streamed_full_batch_training_on_overflowing_points(tmp_path):
  # Finite points whose squared distances overflow: not a NaN/Inf error.
  km = KMeansClustering(num_clusters=_K, model_dir=str(tmp_path / 'model'),
                        use_mini_batch=False, seed=0)
  dataset = tf.data.Dataset.from_tensor_slices(
      _POINTS[:20_000] * np.float32(1e30)).batch(2_000)
  with pytest.raises(FloatingPointError, match='The loss became'):
    km.train(dataset, steps=2)
  assert oracles.snapshot(tmp_path / 'model') is None


@pytest.fixture(scope='module')
def euclidean(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('euclidean') / 'model'
  km = KMeansClustering(num_clusters=_K, model_dir=str(model_dir),
                        use_mini_batch=False, seed=0)
  km.train(lambda: _POINTS[:2000], steps=2)
  return km


@pytest.mark.parametrize('reader', ['predict', 'evaluate'])
def test_overflowing_finite_data_is_a_floating_point_error(euclidean, reader):
  # Finite points whose squared distances overflow float32: not a NaN error.
  with pytest.raises(FloatingPointError, match=_OVERFLOW):
    _READERS[reader](euclidean, lambda: _POINTS * np.float32(1e30))


def test_prediction_near_the_overflow_limit_is_exact_not_an_error(euclidean):
  # |x|^2 up to 3e35: each chunk's sum of them (4,096 rows for k = 4)
  # passes a quarter of the float32 maximum, so prediction computes and
  # checks the distances themselves, which are all finite; the indices are
  # still the nearest.
  points = (_POINTS[:20000] * np.float32(3e16)).astype(np.float32)
  norms = (points.astype(np.float64) ** 2).sum(1)
  assert min(chunk.sum() for chunk in np.split(norms, range(4096, 20000, 4096))
             ) > np.finfo(np.float32).max / 4
  index = np.concatenate([batch['cluster_index'] for batch in
                          _READERS['predict'](euclidean, lambda: points)])
  centers = euclidean.cluster_centers().astype(np.float64)
  wide = points.astype(np.float64)
  distances = ((wide[:, None, :] - centers[None]) ** 2).sum(-1)
  assert distances.max() < np.finfo(np.float32).max
  chosen = distances[np.arange(len(points)), index]
  np.testing.assert_allclose(chosen, distances.min(1), rtol=1e-5)
