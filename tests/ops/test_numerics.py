"""Tests for kmeans_estimator.ops.numerics: the numerically safe helpers.

Each policy the module states (zero rows stay zero, tiny and huge magnitudes
normalise, sqrt of a rounding-negative value is 0, an empty cluster keeps its
center) has a test named after it.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.ops import distances
from kmeans_estimator.ops import numerics

DTYPES = (np.float32, np.float64)


@pytest.mark.parametrize('dtype', DTYPES)
def test_safe_l2_normalize_hand_checked(dtype):
  x = np.array([[3., 4.], [0., -2.], [-1., 0.]], dtype)
  got = numerics.safe_l2_normalize(tf.constant(x)).numpy()
  np.testing.assert_allclose(got, [[.6, .8], [0., -1.], [-1., 0.]],
                             rtol=1e-6)
  assert got.dtype == dtype


@pytest.mark.parametrize('dtype', DTYPES)
def test_safe_l2_normalize_keeps_zero_rows_zero(dtype):
  x = np.array([[0., 0., 0.], [1., 2., 2.], [0., 0., 0.]], dtype)
  got = numerics.safe_l2_normalize(tf.constant(x)).numpy()
  assert np.all(np.isfinite(got))
  np.testing.assert_array_equal(got[0], 0.)
  np.testing.assert_array_equal(got[2], 0.)
  np.testing.assert_allclose(got[1], [1 / 3, 2 / 3, 2 / 3], rtol=1e-6)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('magnitude', [1e-30, 1e30])
def test_tiny_and_huge_magnitudes_safe_l2_normalize(dtype, magnitude):
  # In float32 the squares of 1e-30 underflow to 0 and of 1e30 overflow to
  # inf; the naive x / |x| would give NaN or 0.
  x = np.array([[3., 4.], [1., 0.], [-1., 1.]], dtype) * dtype(magnitude)
  got = numerics.safe_l2_normalize(tf.constant(x)).numpy()
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(
      got, [[.6, .8], [1., 0.], [-2**-.5, 2**-.5]], rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1., rtol=1e-6)


def test_tiny_and_huge_magnitudes_safe_l2_normalize_mixed_rows():
  x = np.array([[1e30, 1.], [-1e30, 1e30], [1e-30, 0.], [1e-37, -1e-37]],
               np.float32)
  got = numerics.safe_l2_normalize(tf.constant(x)).numpy()
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got[0], [1., 0.], atol=1e-6)
  np.testing.assert_allclose(got[1], [-2**-.5, 2**-.5], rtol=1e-6)
  np.testing.assert_allclose(got[2], [1., 0.], atol=1e-6)
  np.testing.assert_allclose(got[3], [2**-.5, -2**-.5], rtol=1e-6)


def test_safe_l2_normalize_subnormal_rows_are_finite():
  # TensorFlow's CPU kernels may flush subnormals to zero; either way a
  # subnormal row comes out as a unit row or a zero row, never NaN.
  x = np.array([[1e-40, 0.], [1e-45, 1e-45]], np.float32)
  got = numerics.safe_l2_normalize(tf.constant(x)).numpy()
  assert np.all(np.isfinite(got))
  norms = np.linalg.norm(got, axis=1)
  assert np.all(np.isclose(norms, 1., rtol=1e-6) | (norms == 0.))


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('dtype', DTYPES)
def test_safe_l2_normalize_matches_numpy(seed, dtype):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(20, 5)).astype(dtype)
  want = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
  got = numerics.safe_l2_normalize(tf.constant(x)).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32
                             else 1e-12)


@pytest.mark.parametrize('dtype', DTYPES)
def test_clamped_sqrt_of_slightly_negative_is_zero(dtype):
  squared = np.array([-1e-7, -0.0, 0., 4., 2.25], dtype)
  got = numerics.clamped_sqrt(tf.constant(squared)).numpy()
  assert not np.any(np.isnan(got))
  np.testing.assert_array_equal(got, np.array([0., 0., 0., 2., 1.5], dtype))
  np.testing.assert_array_equal(
      distances.euclidean_distances(tf.constant(squared)).numpy(), got)


def test_clamped_sqrt_after_expansion_rounding():
  # |x|^2 - 2 x.x + |x|^2 for a large x rounds away from 0 in float32; the
  # distances must stay >= 0 and their square roots finite.
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(50, 8)) * 1e3 + 1e4).astype(np.float32)
  squared = distances.pairwise_distances(tf.constant(x), tf.constant(x),
                                         'squared_euclidean')
  assert np.all(squared.numpy() >= 0)
  assert np.all(np.isfinite(distances.euclidean_distances(squared).numpy()))


@pytest.mark.parametrize('dtype', DTYPES)
def test_divide_or_keep_keeps_old_rows_where_count_is_zero(dtype):
  sums = np.array([[2., 4.], [0., 0.], [9., -3.]], dtype)
  counts = np.array([2., 0., 3.], dtype)
  old = np.array([[7., 7.], [5., -5.], [1., 1.]], dtype)
  got = numerics.divide_or_keep(tf.constant(sums), tf.constant(counts),
                                tf.constant(old)).numpy()
  np.testing.assert_array_equal(got, np.array([[1., 2.], [5., -5.], [3., -1.]],
                                              dtype))
  # Not sent to the origin (the legacy sum / (count + eps) bug), not NaN.
  assert np.all(np.isfinite(got))


def test_divide_or_keep_all_empty_returns_old():
  old = np.arange(6, dtype=np.float32).reshape(3, 2)
  got = numerics.divide_or_keep(tf.zeros([3, 2]), tf.zeros([3]),
                                tf.constant(old)).numpy()
  np.testing.assert_array_equal(got, old)
