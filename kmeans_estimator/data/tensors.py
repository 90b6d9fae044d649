"""Numpy arrays and lists to Tensors: one aligned copy, or shared rows.

`to_tensor` converts the features a user gives (an array, a list of rows, a
Tensor) to a Tensor of their own dtype. An array of 1 MiB or more is copied
once, into an aligned buffer that the Tensor shares (`tf.convert_to_tensor`
copies it twice). The Tensors never share memory the caller may still
change (`arrays.shared_row_parts`, for prediction, does, on purpose).
"""

import concurrent.futures
import os
import threading

import numpy as np
import tensorflow as tf

from kmeans_estimator import errors

# Arrays of at least this many bytes are copied by `_copy_to_tensor`.
LARGE_ARRAY_BYTES = 1 << 20
_DLPACK_KINDS = 'fiu'
# TensorFlow's kernels need tensor buffers aligned to this many bytes.
TENSOR_ALIGNMENT = 64
# Arrays of at least this many bytes are copied by several threads at once.
_PARALLEL_COPY_BYTES = 16 << 20
_COPY_THREADS = max(1, min(os.cpu_count() or 1, 8))
_copy_pool = None
_copy_pool_lock = threading.Lock()


def _forget_copy_pool():
  # A forked child has none of the parent's threads: a pool inherited from
  # the parent would never run its work, so the child starts its own.
  global _copy_pool, _copy_pool_lock
  _copy_pool, _copy_pool_lock = None, threading.Lock()


if hasattr(os, 'register_at_fork'):
  os.register_at_fork(after_in_child=_forget_copy_pool)


def _copy_rows(destination, source):
  """np.copyto in slabs of rows on several threads (numpy drops the GIL).

  Most of a large copy into a fresh buffer is the kernel faulting its pages
  in, which runs on as many cores as write at once.
  """
  global _copy_pool
  rows = source.shape[0] if source.ndim else 0
  if (source.nbytes < _PARALLEL_COPY_BYTES or _COPY_THREADS == 1 or
      rows < _COPY_THREADS):
    np.copyto(destination, source)
    return
  with _copy_pool_lock:
    if _copy_pool is None:
      _copy_pool = concurrent.futures.ThreadPoolExecutor(
          _COPY_THREADS, thread_name_prefix='kmeans_estimator_copy')
  edges = np.linspace(0, rows, _COPY_THREADS + 1).astype(int)
  list(_copy_pool.map(
      lambda i: np.copyto(destination[edges[i]:edges[i + 1]],
                          source[edges[i]:edges[i + 1]]),
      range(_COPY_THREADS)))


def _copy_to_tensor(array):
  """A Tensor holding a copy of `array`, made by one copy.

  `tf.convert_to_tensor` copies an array twice (numpy's copy is not aligned
  as TensorFlow needs, so TensorFlow copies it again, into freshly faulted
  pages), which costs several times one copy on large arrays. Here
  the array is copied once into an aligned numpy buffer that the Tensor then
  shares (DLPack). The Tensor never shares the caller's array.
  """
  buffer = np.empty(array.nbytes + TENSOR_ALIGNMENT, np.uint8)
  offset = -buffer.ctypes.data % TENSOR_ALIGNMENT
  copy = buffer[offset:offset + array.nbytes].view(array.dtype).reshape(
      array.shape)
  _copy_rows(copy, array)
  try:
    return tf.experimental.dlpack.from_dlpack(copy.__dlpack__())
  except (AttributeError, BufferError, TypeError):  # An older numpy.
    return tf.convert_to_tensor(copy)


def to_tensor(value, what):
  """`value` (a Tensor, array, list or scalar) as a Tensor of its own dtype.

  Raises TypeError naming `what` for non-numeric data (strings, objects).
  """
  if isinstance(value, (tf.Tensor, tf.Variable, tf.SparseTensor,
                        tf.RaggedTensor)):
    return value
  array = np.asarray(value)
  if array.dtype == object or array.dtype.kind in 'USb':
    raise errors.InvalidArgumentTypeError(
        f'{what} must be numeric (integer or float). Received: dtype '
        f'{array.dtype}', 'input_fn')
  if (array.nbytes >= LARGE_ARRAY_BYTES and array.dtype.kind in _DLPACK_KINDS
      and array.dtype.isnative):
    return _copy_to_tensor(array)
  return tf.convert_to_tensor(array)
