"""Numerically safe helpers shared by the k-means maths.

Each helper exists because the obvious formula fails on data users have:
zero vectors, tiny or huge magnitudes, and clusters that lose all their points.
"""

import math

import tensorflow as tf


def safe_l2_normalize(x):
  """Scales each row of `x` to unit L2 norm; a zero row stays zero.

  Rows are first divided by their largest absolute value, so magnitudes such
  as 1e-30 or 1e30, whose squares under- or overflow float32, still normalise
  correctly.

  Args:
    x: float Tensor of shape (n, d).

  Returns:
    float Tensor of shape (n, d): unit rows, and zero rows where `x` was zero.
  """
  scale = tf.reduce_max(tf.abs(x), axis=1, keepdims=True)
  nonzero = scale > 0
  scaled = x / tf.where(nonzero, scale, tf.ones_like(scale))
  norm = tf.norm(scaled, axis=1, keepdims=True)
  return tf.where(nonzero, scaled / tf.where(nonzero, norm, tf.ones_like(norm)),
                  tf.zeros_like(x))


def clamped_sqrt(squared):
  """Square root of a squared distance, clamped at 0 first.

  The expansion |x|^2 - 2 x.c + |c|^2 can come out slightly negative through
  rounding; `sqrt` of that would be NaN.
  """
  return tf.sqrt(tf.maximum(squared, tf.zeros_like(squared)))


def divide_or_keep(sums, counts, old):
  """Per-row `sums / counts`, keeping the old row where the count is 0.

  This is how an empty cluster keeps its center: `sum / (count + eps)` would
  send it to the origin instead (the legacy bug).

  Args:
    sums: float Tensor of shape (k, d).
    counts: float Tensor of shape (k,), the same dtype as `sums`.
    old: float Tensor of shape (k, d), the values to keep where counts == 0.

  Returns:
    float Tensor of shape (k, d).
  """
  has_points = counts > 0
  safe_counts = tf.where(has_points, counts, tf.ones_like(counts))
  return tf.where(has_points[:, tf.newaxis], sums / safe_counts[:, tf.newaxis],
                  old)


def overflow_limit(dtype):
  """The magnitude of data above which squared distances overflow `dtype`:
  the square root of its largest value (about 1.8e19 in float32, 1.3e154 in
  float64)."""
  return math.sqrt(tf.as_dtype(dtype).max)


def overflow_advice(dtype):
  """What to say about data whose squared distances overflow `dtype`.

  Rescaling always helps. A wider dtype helps only below float64: under
  float64, the widest float TensorFlow computes in, advising
  dtype=tf.float64 would send the user back to where they are.

  Returns:
    (limit, widen): the magnitude where overflow starts, as text ('2e19'
    for float32, '1e154' for float64), and whether to advise
    dtype=tf.float64.
  """
  dtype = tf.as_dtype(dtype)
  limit = f'{overflow_limit(dtype):.0e}'.replace('e+', 'e')
  return limit, dtype.size < 8
