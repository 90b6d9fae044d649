"""`kmeans_loss`: the k-means objective as a differentiable loss.

Bottou and Bengio (1995) write k-means as the minimisation of

    E(w) = sum_i min_k |x_i - w_k|^2

over the centers w. E is differentiable almost everywhere (wherever no point
is equally near two centers), with dE/dw_k = 2 sum_{i in C_k} (w_k - x_i),
C_k the points nearest to w_k: a gradient step of size 1 / (2 |C_k|) on
center k is exactly Lloyd's update, and smaller steps (or any Keras
optimizer) move the centers towards the same fixed points.
"""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from kmeans_estimator import config as options
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.keras import backend
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import numerics
from kmeans_estimator.typing import ArrayLike


def _float_dtype(tensor: tf.Tensor) -> tf.DType:
  return tensor.dtype if tensor.dtype in (tf.float32, tf.float64) else (
      tf.float32)


def kmeans_loss(points: ArrayLike,
                centers: ArrayLike,
                weights: Optional[ArrayLike] = None,
                distance_metric: str = constants.SQUARED_EUCLIDEAN_DISTANCE,
                chunk_elements: int = constants.DEFAULT_CHUNK_ELEMENTS
                ) -> tf.Tensor:
  """The k-means objective E(w) = sum_i min_k |x_i - w_k|^2, differentiable.

  The value is the estimator's inertia for the same centers
  (`KMeansClustering.evaluate(...)['inertia']`, `score`): the sum over
  points of the distance to the nearest center. Its gradient with respect
  to `centers` is the Bottou-Bengio gradient 2 sum_{i in C_k} (w_k - x_i)
  (and it is differentiable with respect to `points` too). The nearest
  centers are found in chunks with no gradient (ties to the lower index,
  as everywhere in the library); the loss is then summed from
  |x_i - w_{k(i)}|^2 of the nearest center only, so memory holds
  `chunk_elements` distances and the (n, d) differences, never (n, k).

  Under distance_metric='cosine' the distance is 1 - cos(x_i, w_k)
  (points and centers L2-normalised; a zero vector stays zero and is at
  distance 1 from everything), the objective of spherical k-means.

  Args:
    points: float Tensor or array of shape (n, d) (other numeric dtypes
      are cast to the dtype of `centers`).
    centers: float Tensor, Variable or array of shape (k, d); float32 or
      float64 (other dtypes compute in float32).
    weights: optional float Tensor (n,) of sample weights: the weighted sum
      sum_i weights_i min_k |x_i - w_k|^2.
    distance_metric: 'squared_euclidean' or 'cosine'.
    chunk_elements: the most point-to-center distances held at once.

  Returns:
    scalar float Tensor, the dtype of `centers`: the sum (not the mean)
    over points. Divide by n for a per-point loss that does not grow with
    the batch.

  Raises:
    errors.KerasBackendError: Keras runs another backend than TensorFlow.
    errors.InvalidArgumentError: `points` or `centers` not of rank 2, or of
      different widths; `weights` not of shape (n,); an unknown
      `distance_metric`.

  Example:

  ```python
  centers = tf.Variable(points[:3])
  with tf.GradientTape() as tape:
    loss = kmeans_loss(points, centers)
  tape.gradient(loss, centers)      # 2 sum over each cluster of (w_k - x_i)
  ```
  """
  backend.check_backend('kmeans_loss')
  options.check_distance_metric(distance_metric)
  chunk_elements = options.check_positive_int('chunk_elements',
                                              chunk_elements)
  given_centers: Any = centers
  if not isinstance(given_centers, (tf.Tensor, tf.Variable)):
    given_centers = tf.convert_to_tensor(given_centers)
  dtype = _float_dtype(given_centers)
  centers_t = tf.cast(given_centers, dtype)
  points_t = tf.cast(tf.convert_to_tensor(points), dtype)
  for name, tensor in (('points', points_t), ('centers', centers_t)):
    if tensor.shape.rank != 2:
      raise errors.InvalidArgumentError(
          f'`{name}` must have shape ({"n" if name == "points" else "k"}, '
          f'd). Received: {name} with shape {tensor.shape}', name)
  if (points_t.shape[1] is not None and centers_t.shape[1] is not None and
      points_t.shape[1] != centers_t.shape[1]):
    raise errors.InvalidArgumentError(
        f'`points` must have the width of `centers` ({centers_t.shape[1]}). '
        f'Received: points with shape {points_t.shape}', 'points')
  if distance_metric == constants.COSINE_DISTANCE:
    points_t = numerics.safe_l2_normalize(points_t)
  index, _ = distances_lib.nearest_centers(
      tf.stop_gradient(points_t), tf.stop_gradient(centers_t),
      distance_metric, chunk_elements)
  nearest = tf.gather(centers_t, index)
  if distance_metric == constants.COSINE_DISTANCE:
    distance = 1.0 - tf.reduce_sum(
        points_t * numerics.safe_l2_normalize(nearest), axis=1)
  else:
    distance = tf.reduce_sum(tf.square(points_t - nearest), axis=1)
  if weights is None:
    return tf.reduce_sum(distance)
  weights_t = tf.cast(tf.convert_to_tensor(weights), dtype)
  if weights_t.shape.rank != 1 or (
      weights_t.shape[0] is not None and points_t.shape[0] is not None and
      weights_t.shape[0] != points_t.shape[0]):
    raise errors.InvalidArgumentError(
        f'`weights` must have shape (n,), one per point, here '
        f'({points_t.shape[0]},). Received: weights with shape '
        f'{weights_t.shape}', 'weights')
  return tf.reduce_sum(weights_t * distance)
