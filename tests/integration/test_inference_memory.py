"""Prediction and evaluation read data a chunk of rows at a time.

Memory beyond the input and the output handed over is bounded by a chunk
(`constants.INFERENCE_CHUNK_BYTES`), whatever n and k: these tests shrink the
budget so that 500 points make many chunks (the last one shorter), and check
that every entry point gives what one chunk of all the data gives (the same
indices; distances up to the rounding of a matrix product), for every
input kind (array, unaligned array, Tensor, dict, `batch_size` slices,
Dataset), both metrics, and that the chunks really are bounded. Oracle: the
same call with a budget that holds all the data at once. No timing, no RSS.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator import SessionRunHook
from kmeans_estimator import constants
from kmeans_estimator.ops import distances as distances_lib

import oracles

_N, _D, _K = 500, 3, 5
# Chunks of 48 rows with all_distances (4 k + d values + 8 bytes per row).
_SMALL_BUDGET = 48 * (4 * _K * 4 + _D * 4 + 8)
_WHOLE_BUDGET = 1 << 30


def _points(seed=0):
  return oracles.blobs(_N, _K, _D, seed)


_POINTS = _points()


def _unaligned(array):
  """A copy of `array` 4 bytes past a 64-byte boundary."""
  buffer = np.empty(array.nbytes + 128, np.uint8)
  start = (4 - buffer.ctypes.data) % 64
  copy = buffer[start:start + array.nbytes].view(array.dtype).reshape(
      array.shape)
  copy[...] = array
  return copy


@pytest.fixture(scope='module', params=[oracles.SQUARED_EUCLIDEAN,
                                        oracles.COSINE])
def trained(request, tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('model') / request.param
  km = KMeansClustering(num_clusters=_K, model_dir=str(model_dir),
                        use_mini_batch=False, seed=0,
                        distance_metric=request.param)
  km.train(_POINTS, steps=3)
  return km


class _ChunkSpy:
  """Records the rows of every chunk predicted or evaluated."""

  def __init__(self, monkeypatch, km):
    self.rows = []
    for name in ('_predict_batch', '_eval_batch'):
      method = getattr(km, name)

      def spied(batch, *args, method=method):
        points = batch[0] if isinstance(batch, tuple) else batch
        self.rows.append(int(points.shape[0]))
        return method(batch, *args)

      monkeypatch.setattr(km, name, spied)


_INPUTS = {
    'array': lambda: _POINTS,
    'unaligned_array': lambda: _unaligned(_POINTS),
    'tensor': lambda: tf.constant(_POINTS),
    'dict': lambda: {'a': _POINTS[:, :1], 'b': tf.constant(_POINTS[:, 1:])},
    'input_fn': lambda: (lambda: _POINTS),
}


def _with_budget(monkeypatch, budget, call):
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', budget)
  return call()


def _all_predictions(km, data, **kwargs):
  points = list(km.predict(data, **kwargs))
  top_k = list(km.predict(data, top_k=2, predict_keys=[
      'top_k_cluster_indices', 'top_k_distances'], **kwargs))
  return {
      'points_index': np.array([p['cluster_index'] for p in points]),
      'points_distances': np.stack([p['all_distances'] for p in points]),
      'batches': list(km.predict(data, yield_single_examples=False,
                                 **kwargs)),
      'cluster_index': np.array(list(km.predict_cluster_index(data,
                                                              **kwargs))),
      'transform': np.stack(list(km.transform(data, **kwargs))),
      'top_k_index': np.stack([p['top_k_cluster_indices'] for p in top_k]),
      'top_k_distances': np.stack([p['top_k_distances'] for p in top_k]),
  }


# The expansion |x|^2 - 2 x.c + |c|^2 rounds to about float32's epsilon times
# the squared norms; a matrix product of other rows (a chunk's) may round
# the last bit otherwise, and nothing more.
_ATOL = 1e-6 * float(np.max(np.sum(_POINTS.astype(np.float64)**2, 1)) * 4)


def _assert_equal(got, want, name):
  assert got.dtype == want.dtype and got.shape == want.shape, name
  if np.issubdtype(want.dtype, np.integer):
    np.testing.assert_array_equal(got, want, err_msg=name)
  else:
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=_ATOL,
                               err_msg=name)


def _assert_same(chunked, whole):
  assert chunked.keys() == whole.keys()
  for key, want in whole.items():
    got = chunked[key]
    if key != 'batches':
      _assert_equal(got, want, key)
      continue
    assert len(got) == len(want)
    for got_batch, want_batch in zip(got, want):
      assert got_batch.keys() == want_batch.keys()
      for name, value in want_batch.items():
        _assert_equal(got_batch[name], value, name)


@pytest.mark.parametrize('kind', sorted(_INPUTS))
def test_chunked_predictions_equal_one_chunk_of_all_the_data(
    trained, monkeypatch, kind):
  km = trained
  spy = _ChunkSpy(monkeypatch, km)
  whole = _with_budget(monkeypatch, _WHOLE_BUDGET,
                       lambda: _all_predictions(km, _INPUTS[kind]()))
  assert set(spy.rows) == {_N}
  spy.rows.clear()
  chunked = _with_budget(monkeypatch, _SMALL_BUDGET,
                         lambda: _all_predictions(km, _INPUTS[kind]()))
  # 48 rows with distances to every center, 240 with the index alone.
  assert 48 in spy.rows and max(spy.rows) == _SMALL_BUDGET // (_D * 4 + 8)
  _assert_same(chunked, whole)
  # One batch of every point, as before.
  assert [len(b['cluster_index']) for b in chunked['batches']] == [_N]


@pytest.mark.parametrize('batch_size', [7, 100, 499, 1000])
def test_batch_size_slices_are_batches_whatever_the_chunks(
    trained, monkeypatch, batch_size):
  km = trained
  whole = _with_budget(
      monkeypatch, _WHOLE_BUDGET,
      lambda: _all_predictions(km, tf.constant(_POINTS),
                               batch_size=batch_size))
  chunked = _with_budget(
      monkeypatch, _SMALL_BUDGET,
      lambda: _all_predictions(km, _POINTS, batch_size=batch_size))
  _assert_same(chunked, whole)
  assert [len(b['cluster_index']) for b in chunked['batches']] == [
      min(batch_size, _N - start) for start in range(0, _N, batch_size)]


def test_dataset_batches_are_computed_in_chunks(trained, monkeypatch):
  km = trained
  dataset = tf.data.Dataset.from_tensor_slices(_POINTS).batch(200)
  spy = _ChunkSpy(monkeypatch, km)
  whole = _with_budget(monkeypatch, _WHOLE_BUDGET,
                       lambda: _all_predictions(km, dataset))
  spy.rows.clear()
  chunked = _with_budget(monkeypatch, _SMALL_BUDGET,
                         lambda: _all_predictions(km, dataset))
  assert 48 in spy.rows and max(spy.rows) == 200
  _assert_same(chunked, whole)
  assert [len(b['cluster_index']) for b in chunked['batches']] == [
      200, 200, 100]


@pytest.mark.parametrize('batch_size', [None, 64])
def test_chunked_evaluate_equals_one_chunk(trained, monkeypatch, batch_size):
  km = trained
  spy = _ChunkSpy(monkeypatch, km)
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', 1000)
  chunked = km.evaluate(_POINTS, batch_size=batch_size)
  assert max(spy.rows) < min(batch_size or _N, _N)
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', _WHOLE_BUDGET)
  whole = km.evaluate(tf.constant(_POINTS), batch_size=batch_size)
  assert chunked.keys() == whole.keys()
  assert chunked['num_points'] == whole['num_points'] == _N
  for key in ('score', 'loss', 'inertia', 'mean_squared_distance'):
    np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-5)
  distances = oracles.distances(_POINTS, km.cluster_centers(),
                                km.distance_metric).min(axis=1)
  np.testing.assert_allclose(chunked['inertia'], distances.sum(), rtol=1e-4)
  num_batches = 1 if batch_size is None else -(-_N // batch_size)
  np.testing.assert_allclose(chunked['score'],
                             distances.sum() / num_batches, rtol=1e-4)


def test_chunked_weighted_evaluate_equals_one_chunk(tmp_path, monkeypatch):
  rng = np.random.default_rng(1)
  weights = rng.uniform(0, 2, _N).astype(np.float32)
  km = KMeansClustering(num_clusters=_K, model_dir=str(tmp_path), seed=0,
                        use_mini_batch=False, weight_column='w')
  features = {'x': _POINTS, 'w': weights}
  km.train(features, steps=2)
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', 1000)
  chunked = km.evaluate(features)
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', _WHOLE_BUDGET)
  whole = km.evaluate(features)
  for key in ('inertia', 'total_weight', 'mean_squared_distance', 'score'):
    np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-5)
  distances = oracles.distances(_POINTS, km.cluster_centers()).min(axis=1)
  np.testing.assert_allclose(chunked['inertia'],
                             np.sum(weights * distances), rtol=1e-4)
  # Bad weights are refused before anything is evaluated, in any chunk.
  bad = weights.copy()
  bad[-1] = -1.0
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', 1000)
  with pytest.raises(ValueError, match='must be finite and >= 0'):
    km.evaluate({'x': _POINTS, 'w': bad})
  with pytest.raises(ValueError, match='sum to 0'):
    km.evaluate({'x': _POINTS, 'w': np.zeros(_N, np.float32)})


@pytest.mark.parametrize('row', [0, 250, _N - 1])
def test_non_finite_value_in_a_later_chunk_is_a_value_error(
    trained, monkeypatch, row):
  km = trained
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', _SMALL_BUDGET)
  points = _POINTS.copy()
  points[row, 1] = np.inf
  for call in (lambda: list(km.predict(points)),
               lambda: list(km.predict_cluster_index(points)),
               lambda: list(km.transform(points)),
               lambda: km.evaluate(points)):
    with pytest.raises(ValueError, match='NaN or Inf'):
      call()


def test_overflow_in_a_later_chunk_is_a_floating_point_error(
    trained, monkeypatch):
  km = trained
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', _SMALL_BUDGET)
  points = _POINTS.copy()
  points[-1] = 3e19
  if km.distance_metric == oracles.COSINE:  # Normalised: no overflow.
    assert len(list(km.predict_cluster_index(points))) == _N
    return
  for call in (lambda: list(km.predict_cluster_index(points)),
               lambda: km.evaluate(points)):
    with pytest.raises(FloatingPointError, match='overflow'):
      call()


class _Counter(SessionRunHook):

  def __init__(self):
    self.calls = []

  def begin(self):
    self.calls.append('begin')

  def before_run(self, run_context):
    self.calls.append('before')

  def after_run(self, run_context, run_values):
    self.calls.append('after')

  def end(self, session):
    self.calls.append('end')


def test_hooks_run_once_per_batch_not_per_chunk(trained, monkeypatch):
  km = trained
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', _SMALL_BUDGET)
  for kwargs, batches in (({}, 1), ({'batch_size': 200}, 3)):
    for single in (True, False):
      hook = _Counter()
      list(km.predict(_POINTS, hooks=[hook], yield_single_examples=single,
                      **kwargs))
      assert hook.calls == ['begin'] + ['before', 'after'] * batches + [
          'end']
    hook = _Counter()
    km.evaluate(_POINTS, hooks=[hook], **kwargs)
    assert hook.calls == ['begin'] + ['before', 'after'] * batches + ['end']


@pytest.mark.parametrize('k', [1, 16, 500, 20_000, 1_000_000])
@pytest.mark.parametrize('top_k', [None, 3])
def test_chunk_rows_fit_the_budget_as_k_grows(k, top_k):
  budget = constants.INFERENCE_CHUNK_BYTES
  for all_distances in (True, False):
    rows = distances_lib.inference_chunk_rows(
        32, k, 4, all_distances=all_distances,
        top_k=None if top_k is None else min(top_k, k))
    assert rows >= 1 and (rows % 16 == 0 or rows < 16)
    per_row = 32 * 4 + (4 * k * 4 if all_distances else 0)
    assert rows == 1 or rows * per_row <= budget
  # The index alone: many rows, but never the budget's worth of distances.
  assert distances_lib.inference_chunk_rows(32, k, 4) * 32 * 4 <= budget


def test_default_predict_of_a_large_k_is_chunked_without_batch_size(
    tmp_path, monkeypatch):
  # all_distances for k = 300 centers: a 64 KB budget holds 48 points'
  # distances and temporaries, so 500 points take 11 chunks.
  rng = np.random.default_rng(2)
  k = 300
  points = rng.normal(size=(_N, _D)).astype(np.float32)
  km = KMeansClustering(num_clusters=k, model_dir=str(tmp_path), seed=0,
                        initial_clusters=points[:k], use_mini_batch=False)
  km.train(points, steps=1)
  spy = _ChunkSpy(monkeypatch, km)
  monkeypatch.setattr(constants, 'INFERENCE_CHUNK_BYTES', 48 * (
      4 * k * 4 + _D * 4 + 8))
  got = [p['all_distances'] for p in km.predict(points)]
  assert max(spy.rows) == 48
  want = oracles.distances(points, km.cluster_centers())
  np.testing.assert_allclose(np.stack(got), want, rtol=1e-4, atol=1e-4)
