"""`read_points`: one adapter per kind of input, one `Batch` type.

Evidence: every kind of input (array, Tensor, dict, dataset, endless
dataset, data read in chunks) is read by the adapter for it, says what it is
by one `kind`, and hands out its batches as `Batch`es whose weights are None
exactly when the data are unweighted, with the values numpy gives.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.data import adapters
from kmeans_estimator.data import arrays
from kmeans_estimator.data import base
from kmeans_estimator.data import datasets

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(10, 3)).astype(np.float32)
_W = _RNG.uniform(0.5, 2.0, size=10).astype(np.float32)


def _inputs():
  return {
      'array': (lambda: _X, base.IN_MEMORY, arrays.TensorPoints),
      'list': (lambda: _X.tolist(), base.IN_MEMORY, arrays.TensorPoints),
      'tensor': (lambda: tf.constant(_X), base.IN_MEMORY,
                 arrays.TensorPoints),
      'dict': (lambda: {'a': _X[:, :1], 'b': _X[:, 1:]}, base.IN_MEMORY,
               arrays.TensorPoints),
      'features_and_labels': (lambda: (_X, np.zeros(10)), base.IN_MEMORY,
                              arrays.TensorPoints),
      'dataset': (lambda: tf.data.Dataset.from_tensor_slices(_X).batch(4),
                  base.STREAM, datasets.StreamPoints),
      'endless': (lambda: tf.data.Dataset.from_tensors(_X).repeat(),
                  base.ENDLESS, datasets.StreamPoints),
  }


@pytest.mark.parametrize('name', sorted(_inputs()))
def test_each_kind_of_input_is_read_by_its_adapter_and_says_its_kind(name):
  make, kind, adapter = _inputs()[name]
  points = adapters.read_points(make())
  assert isinstance(points, adapter)
  assert points.kind == kind
  assert points.num_features == 3
  assert points.endless == (kind == base.ENDLESS)
  assert points.whole == (kind == base.IN_MEMORY)
  assert points.num_points == (10 if kind == base.IN_MEMORY else None)


@pytest.mark.parametrize('name', sorted(set(_inputs()) - {'endless'}))
def test_batches_are_unweighted_batches_holding_every_point(name):
  make, _, _ = _inputs()[name]
  batches = list(adapters.read_points(make()).batches())
  assert all(isinstance(batch, base.Batch) for batch in batches)
  assert all(batch.weights is None for batch in batches)
  np.testing.assert_array_equal(
      np.concatenate([batch.points.numpy() for batch in batches]), _X)


@pytest.mark.parametrize('form', ['dict', 'dataset'])
def test_weighted_batches_carry_the_weights_of_their_points(form):
  features = {'x': _X, 'w': _W}
  raw = (features if form == 'dict' else
         tf.data.Dataset.from_tensor_slices(features).batch(4))
  points = adapters.read_points(raw, feature_columns=['x'],
                                weight_column='w')
  assert points.weighted
  batches = list(points.batches())
  assert all(isinstance(batch, base.Batch) for batch in batches)
  np.testing.assert_array_equal(
      np.concatenate([batch.points.numpy() for batch in batches]), _X)
  np.testing.assert_array_equal(
      np.concatenate([batch.weights.numpy() for batch in batches]), _W)


def test_prediction_ignores_the_weights_but_leaves_them_out_of_the_points():
  points = adapters.read_points({'x': _X, 'w': _W}, weight_column='w',
                                read_weights=False)
  (batch,) = points.batches()
  assert not points.weighted and batch.weights is None
  np.testing.assert_array_equal(batch.points.numpy(), _X)


@pytest.mark.parametrize('batch_rows', [None, 4])
@pytest.mark.parametrize('weighted', [False, True])
def test_data_read_in_chunks_give_batches_of_batch_rows_in_chunks(
    batch_rows, weighted):
  raw = {'x': _X, 'w': _W}
  points = adapters.read_points(raw, feature_columns=['x'],
                                weight_column='w', read_weights=weighted,
                                in_chunks=True, batch_rows=batch_rows)
  assert isinstance(points, arrays.RowPoints) and points.kind == base.ROWS
  assert points.whole == (batch_rows is None)
  sizes, chunks = [], []
  for num_rows, batch_chunks in points.chunked_batches(3):
    sizes.append(num_rows)
    chunks.extend(batch_chunks)
  assert sizes == ([10] if batch_rows is None else [4, 4, 2])
  assert all(isinstance(chunk, base.Batch) and chunk.num_points <= 3
             for chunk, _ in chunks)
  assert sum(last for _, last in chunks) == len(sizes)
  np.testing.assert_array_equal(
      np.concatenate([chunk.points.numpy() for chunk, _ in chunks]), _X)
  if weighted:
    np.testing.assert_array_equal(
        np.concatenate([chunk.weights.numpy() for chunk, _ in chunks]), _W)
  else:
    assert all(chunk.weights is None for chunk, _ in chunks)
  with pytest.raises(TypeError, match='read in chunks'):
    points.batches()


@pytest.mark.parametrize('mini_batch', [False, True])
@pytest.mark.parametrize('finite_by_default', [False, True])
def test_step_inputs_of_data_in_memory_are_the_one_batch(mini_batch,
                                                         finite_by_default):
  points = adapters.read_points(_X)
  inputs = points.step_inputs(mini_batch, finite_by_default)
  taken = [next(inputs) for _ in range(1 if finite_by_default else 3)]
  assert all(batch is points.batch for batch in taken)
  if finite_by_default:  # One pass: one step over all the data.
    assert next(inputs, None) is None


def test_step_inputs_of_a_stream_are_its_batches_or_the_whole_stream():
  points = adapters.read_points(
      tf.data.Dataset.from_tensor_slices(_X).batch(4))
  mini = list(points.step_inputs(mini_batch=True, finite_by_default=False))
  assert [batch.num_points for batch in mini] == [4, 4, 2]
  (full,) = points.step_inputs(mini_batch=False, finite_by_default=True)
  assert full is points.dataset
  (unscreened,) = points.step_inputs(mini_batch=False,
                                     finite_by_default=True, unscreened=True)
  assert unscreened is points.unscreened


def test_step_inputs_of_an_endless_stream_are_one_batch_per_step():
  points = adapters.read_points(tf.data.Dataset.from_tensors(_X).repeat())
  inputs = points.step_inputs(mini_batch=False, finite_by_default=True)
  taken = [next(inputs) for _ in range(3)]
  assert all(isinstance(batch, base.Batch) and batch.num_points == 10
             for batch in taken)
