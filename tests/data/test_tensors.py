"""Numpy arrays to Tensors: the one-copy conversion.

Arrays of 1 MiB or more are copied into Tensors by `tensors._copy_to_tensor`
(one aligned copy instead of `tf.convert_to_tensor`'s two), on several
threads above `tensors._PARALLEL_COPY_BYTES`; the Tensor must equal the
array whatever its dtype and memory layout, and must not share the caller's
memory.
"""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.data import adapters
from kmeans_estimator.data import tensors

import oracles

_K = 4
_D = 3
# 25 chunks of 4,096 rows (the most per chunk) for k = 4 (so the last chunk
# overlaps the one before it), and 1.2 MB in float32 (above the copy size).
_N = 100_000


def _points(seed=0):
  return oracles.blobs(_N, _K, _D, seed)


_POINTS = _points()


@pytest.mark.parametrize('dtype', [np.float16, np.float32, np.float64,
                                   np.int32, np.int64, np.uint8])
@pytest.mark.parametrize('layout', ['c', 'fortran', 'strided'])
def test_large_array_becomes_an_equal_tensor(dtype, layout):
  rng = np.random.default_rng(1)
  base = rng.normal(0, 50, (1 << 18, 6)).astype(dtype)
  array = {'c': base, 'fortran': np.asfortranarray(base),
           'strided': base[::2, ::2]}[layout]
  assert array.nbytes >= tensors.LARGE_ARRAY_BYTES or layout == 'strided'
  tensor = tensors.to_tensor(array, 'the features')
  assert tensor.dtype == tf.as_dtype(dtype)
  assert tensor.shape == array.shape
  np.testing.assert_array_equal(tensor.numpy(), array)


def test_large_array_tensor_does_not_share_the_callers_memory():
  array = _POINTS.copy()
  tensor = adapters.read_points(array).batch.points
  array[:] = 0.0
  np.testing.assert_array_equal(tensor.numpy(), _POINTS)


def test_large_array_computes_like_a_converted_one():
  # Matmul and slicing read the shared buffer (misalignment would abort).
  tensor = tensors.to_tensor(_POINTS, 'the features')
  centers = _POINTS[:_K]
  np.testing.assert_allclose(
      tf.matmul(tensor[1:], centers, transpose_b=True).numpy(),
      _POINTS[1:].astype(np.float64) @ centers.T.astype(np.float64),
      rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize('layout', ['c', 'fortran', 'strided', 'float64'])
def test_parallel_copy_of_a_large_array_equals_it(layout, monkeypatch):
  # Above _PARALLEL_COPY_BYTES the copy is split into slabs of rows over
  # several threads; every layout must come out equal, with nothing shared.
  monkeypatch.setattr(tensors, '_COPY_THREADS', 3)
  rng = np.random.default_rng(2)
  base = rng.normal(0, 50, (1001, 6000)).astype(np.float32)
  array = {'c': base, 'fortran': np.asfortranarray(base),
           'strided': base[::2, ::3], 'float64': base.astype(np.float64)
           }[layout]
  assert array.nbytes >= tensors._PARALLEL_COPY_BYTES or layout == 'strided'
  monkeypatch.setattr(tensors, '_PARALLEL_COPY_BYTES', min(
      array.nbytes, tensors._PARALLEL_COPY_BYTES))
  expected = array.copy()
  tensor = tensors.to_tensor(array, 'the features')
  array[...] = 0
  np.testing.assert_array_equal(tensor.numpy(), expected)


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs os.fork (POSIX)')
def test_parallel_copy_works_in_a_forked_child(monkeypatch):
  # The copy threads of the parent do not exist in a forked child: the child
  # must copy with threads of its own instead of waiting on the parent's.
  monkeypatch.setattr(tensors, '_PARALLEL_COPY_BYTES', 1 << 10)
  monkeypatch.setattr(tensors, '_COPY_THREADS', 2)  # A pool even on 1 core.
  # 2 MB: above _LARGE_ARRAY_BYTES, so it goes through _copy_to_tensor.
  array = np.arange(1024 * 512, dtype=np.float32).reshape(1024, 512)
  np.testing.assert_array_equal(
      tensors.to_tensor(array, 'the features').numpy(), array)
  assert tensors._copy_pool is not None  # The parent's pool now exists.
  read, write = os.pipe()
  pid = os.fork()
  if pid == 0:  # The child: copy, report, and leave at once.
    try:
      signal.alarm(20)  # A deadlock ends the child instead of the test run.
      tensor = tensors.to_tensor(array * 2, 'the features')
      os.write(write, b'ok' if np.array_equal(tensor.numpy(), array * 2)
               else b'bad')
    finally:
      os._exit(0)
  os.close(write)
  with os.fdopen(read, 'rb') as pipe:
    answer = pipe.read()
  os.waitpid(pid, 0)
  assert answer == b'ok'
