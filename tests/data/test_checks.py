"""The runtime checks attached to each batch as it is read."""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.data import checks

import oracles

_K = 4
_D = 3
_N = 100_000


def _points(seed=0):
  return oracles.blobs(_N, _K, _D, seed)


@pytest.mark.parametrize('bad', [
    None, np.nan, np.inf, -np.inf, 'inf_and_minus_inf', 'huge_finite'])
@pytest.mark.parametrize('screen_by_sum', [False, True])
def test_check_points_screened_by_sum_gives_the_plain_answer(bad,
                                                             screen_by_sum):
  # The screen sums the batch first; any NaN or Inf makes that sum
  # non-finite, and finite values whose sum overflows (huge_finite) must
  # then pass the exact check, not fail the screen.
  points = _points()[:1000].copy()
  if bad == 'inf_and_minus_inf':  # The sum is NaN.
    points[10, 0], points[500, 2] = np.inf, -np.inf
  elif bad == 'huge_finite':  # The sum is Inf; every value is finite.
    points[:20] = np.float32(3e38)
  elif bad is not None:
    points[999, 1] = bad
  finite = bad in (None, 'huge_finite')
  check = tf.function(lambda x: checks.check_points(
      x, _D, screen_by_sum=screen_by_sum))
  if finite:
    np.testing.assert_array_equal(check(tf.constant(points)).numpy(), points)
  else:
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=checks.NON_FINITE_MESSAGE[:30]):
      check(tf.constant(points))
