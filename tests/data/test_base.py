"""`Batch`: one batch of points and its weights, the one form a batch takes."""

import numpy as np
import tensorflow as tf

from kmeans_estimator.data import base


def test_batch_of_a_tensor_is_unweighted():
  points = tf.ones([3, 2])
  batch = base.Batch.of(points)
  assert batch.points is points and batch.weights is None
  assert batch.element() is points


def test_batch_of_a_weighted_element_is_its_two_parts():
  points, weights = tf.ones([3, 2]), tf.constant([1.0, 2.0, 3.0])
  batch = base.Batch.of((points, weights))
  assert isinstance(batch, base.Batch)
  assert batch.points is points and batch.weights is weights
  assert base.Batch.of(batch) is batch
  element = batch.element()  # What KMeans' dataset methods read.
  assert type(element) is tuple and element[1] is weights


def test_row_chunks_cover_the_batch_in_order_with_its_weights():
  points = tf.reshape(tf.range(14, dtype=tf.float32), [7, 2])
  weights = tf.range(7, dtype=tf.float32)
  chunks = list(base.row_chunks(base.Batch(points, weights), 3))
  assert [chunk.num_points for chunk, _ in chunks] == [3, 3, 1]
  assert [last for _, last in chunks] == [False, False, True]
  np.testing.assert_array_equal(
      np.concatenate([chunk.points.numpy() for chunk, _ in chunks]), points)
  np.testing.assert_array_equal(
      np.concatenate([chunk.weights.numpy() for chunk, _ in chunks]),
      weights)
  (whole, last), = base.row_chunks(base.Batch(points), 7)
  assert whole.points is points and whole.weights is None and last
