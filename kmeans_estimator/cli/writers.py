"""The command line's output files: centers and predictions as .npy or CSV.

Every file is written under a temporary name created exclusively (O_EXCL,
and O_NOFOLLOW for the last component) and renamed over the output on
success (`AtomicFile`), so a failed run leaves an existing output as it was
and no partial file, and a file or symlink planted beside the output is never
written through. Predictions are streamed batch by batch (`PredictionWriter`
over `_NpyStream`): memory is bounded by a batch, not by the number of
points.
"""

import os
import secrets
import sys

import numpy as np

from kmeans_estimator import constants


def _float_format(array):
  """A printf format that round-trips `array`'s float type."""
  return '%.17g' if array.dtype == np.float64 else '%.9g'


def write_csv(f, array):
  """Writes a 2-D float `array` to the open text file `f`, a row a line."""
  np.savetxt(f, array, fmt=_float_format(array), delimiter=',')
  f.flush()


# Flags that create a new file and nothing else: never an existing file,
# never through a symlink (O_EXCL fails on any existing name, links
# included; O_NOFOLLOW says so again for the last component).
_CREATE_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL |
                 getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0))
_CREATE_ATTEMPTS = 100


class AtomicFile:
  """A file written under a temporary name, renamed on success.

  A failed run leaves an existing file as it was and no partial file behind.
  The temporary file is created exclusively under an unpredictable name
  (`<path>.tmp-<random hex>`) in the output's directory, so a file or
  symlink someone planted there is never written through; the rename then
  replaces whatever directory entry `path` is (a symlink there is replaced
  by the new file, and what it pointed to is left untouched).
  """

  def __init__(self, path, mode):
    self.path = path
    self._mode = mode
    self._temp = None
    self._file = None

  def __enter__(self):
    for _ in range(_CREATE_ATTEMPTS):
      temp = f'{self.path}.tmp-{secrets.token_hex(8)}'
      try:
        fd = os.open(temp, _CREATE_FLAGS, 0o666)
      except FileExistsError:
        continue  # Taken (or planted): draw another name.
      self._temp = temp
      self._file = os.fdopen(fd, self._mode)
      return self._file
    raise FileExistsError(
        f'Could not create a temporary file beside {self.path!r}: '
        f'{_CREATE_ATTEMPTS} random names were all taken.')

  def __exit__(self, error_type, error, traceback):
    self._file.close()
    if error_type is None:
      os.replace(self._temp, self.path)
    else:
      try:
        os.remove(self._temp)
      except FileNotFoundError:
        pass
    return False


class _NpyStream:
  """Writes a .npy array row block by row block, its length unknown ahead.

  The header reserves room for any length and is rewritten on `close`.
  """

  _HEADER_BYTES = 128

  def __init__(self, f, dtype, row_shape):
    self._file = f
    self._dtype = np.dtype(dtype)
    self._row_shape = tuple(row_shape)
    self.rows = 0
    self._write_header()

  def _write_header(self):
    header = repr({'descr': np.lib.format.dtype_to_descr(self._dtype),
                   'fortran_order': False,
                   'shape': (self.rows,) + self._row_shape})
    size = self._HEADER_BYTES - 10  # magic (6), version (2), length (2).
    header = header.ljust(size - 1) + '\n'
    self._file.seek(0)
    self._file.write(b'\x93NUMPY\x01\x00' +
                     len(header).to_bytes(2, 'little') + header.encode())

  def write(self, block):
    block = np.ascontiguousarray(block, self._dtype)
    self._file.seek(0, os.SEEK_END)
    self._file.write(block.tobytes())
    self.rows += len(block)

  def close(self):
    self._write_header()


class PredictionWriter:
  """Writes cluster indices (and distances) to .npy or .csv, or prints CSV.

  To `.npy`: cluster_index to OUT (int64, shape (n,)) and, with distances,
  the distances to OUT with `.distances.npy` for `.npy` (shape (n, k)). To
  `.csv` or standard output: a header row, then one row per point:
  cluster_index[,distance_0,...,distance_{k-1}].
  """

  def __init__(self, output, num_clusters, distances, dtype):
    self._output = output
    self._num_clusters = num_clusters
    self._distances = distances
    self._dtype = dtype
    self.count = 0
    self.paths = []
    self._files = []
    self._streams = None
    self._csv = None

  @staticmethod
  def paths_for(output, distances):
    """The files written for `output` (and `distances`)."""
    if output.lower().endswith('.csv') or not distances:
      return [output]
    return [output, output[:-len('.npy')] + '.distances.npy']

  def __enter__(self):
    if self._output is None:
      self._csv = sys.stdout
    else:
      mode = 'w' if self._output.lower().endswith('.csv') else 'w+b'
      self._files = [AtomicFile(path, mode) for path in
                     self.paths_for(self._output, self._distances)]
    self.paths = [f.path for f in self._files]
    opened = [f.__enter__() for f in self._files]
    if self._output is not None and self._output.lower().endswith('.npy'):
      self._streams = [_NpyStream(opened[0], np.int64, ())]
      if self._distances:
        self._streams.append(
            _NpyStream(opened[1], self._dtype, (self._num_clusters,)))
    elif self._output is not None:
      self._csv = opened[0]
    header = constants.CLUSTER_INDEX
    if self._distances:
      header += ''.join(f',distance_{j}' for j in range(self._num_clusters))
    if self._csv is not None:
      self._csv.write(header + '\n')
    return self

  def write(self, indices, distances=None):
    self.count += len(indices)
    if self._streams is not None:
      self._streams[0].write(indices)
      if distances is not None:
        self._streams[1].write(distances)
      return
    if distances is None:
      np.savetxt(self._csv, indices.reshape(-1, 1), fmt='%d')
    else:
      fmt = ['%d'] + [_float_format(distances)] * distances.shape[1]
      np.savetxt(self._csv, np.column_stack([indices, distances]), fmt=fmt,
                 delimiter=',')

  def __exit__(self, error_type, error, traceback):
    if error_type is None and self._streams is not None:
      for stream in self._streams:
        stream.close()
    if self._csv is not None:
      self._csv.flush()
    for f in reversed(self._files):
      f.__exit__(error_type, error, traceback)
    return False


def write_array(output, array):
  """Writes a 2-D `array` to `output` (.npy or .csv), or prints it as CSV.

  Args:
    output: the path, ending in .npy or .csv (checked by the flags), or None
      to print CSV on standard output.
    array: a float numpy array of shape (rows, columns).
  """
  if output is None:
    write_csv(sys.stdout, array)
    return
  as_npy = output.lower().endswith('.npy')
  with AtomicFile(output, 'wb' if as_npy else 'w') as f:
    if as_npy:
      np.save(f, array)
    else:
      write_csv(f, array)
