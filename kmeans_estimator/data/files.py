"""Input functions that stream points from `.npy`, `.csv` and TFRecord files.

`open_files(patterns, ...)` checks the files once (they exist, have a known
extension, are not empty, agree on their width; CSV headers and the first
TFRecord are read) and returns a `FileSource`, whose `input_fn(batch_size)`
gives `KMeansClustering` a finite `tf.data.Dataset` of float Tensors of shape
(n, d), in file order and row order. Nothing is read whole, so files larger
than memory work:
- `.npy`: memory-mapped (`np.load(mmap_mode='r', allow_pickle=False)`),
  `batch_size` rows at a time through `tf.numpy_function`. 2-D numeric
  arrays only.
- `.csv`: read line by line with `tf.data.TextLineDataset` and parsed with
  `tf.strings` ops. A header row is detected (or forced with `header`);
  `columns` picks columns by header name or 0-based index. Blank lines are
  skipped; cells may be quoted; a UTF-8 byte order mark opening the file is
  dropped (it is not part of the first row or header name).
- `.tfrecord`, `.tfrecords`, `.tfrec` (and `.gz` for GZIP) files of
  `tf.train.Example`: `features` names the float or int64 features to use,
  concatenated in that order (default: every numeric feature of the first
  record, in sorted name order); each feature's width is that of the first
  record, or is given as `(name, width)`.

With `weight_column` (a column of a `.csv` or `.npy` file, a one-value
feature of a TFRecord) each point also has a sample weight: the dataset's
elements are then dicts `{source.points_key: points (n, d), weight_column:
weights (n,)}`, which `KMeansClustering(weight_column=...,
feature_columns=[source.points_key])` reads (`FileSource.estimator_options`).
The weight is never one of the point's values.

A batch never spans two files, so the last batch of each file may be smaller.
Several files (or glob patterns) are read one after the other.

Problems found when opening are `ValueError`s: missing file, unknown
extension, empty file, pickled or non-numeric `.npy`, wrong rank, unknown
column or feature. Problems in rows read later (a CSV cell that is not a
number, a row with the wrong number of fields, a TFRecord without a feature)
surface as TensorFlow errors while the data stream; `readable_errors()` turns
them into `errors.InvalidInputError`s (ValueErrors, kind 'file') that name
the file and line. Bad `columns` or `features` are
`errors.InvalidArgumentError`s naming the argument.
"""

import contextlib
import dataclasses
import os
import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import message as message_lib

from kmeans_estimator import errors

DEFAULT_BATCH_SIZE = 1024
# Batches read ahead while the current one is clustered.
PREFETCH_BATCHES = 2

NPY = 'npy'
CSV = 'csv'
TFRECORD = 'tfrecord'
_SUFFIXES = {
    '.npy': (NPY, None),
    '.csv': (CSV, None),
    '.tfrecord': (TFRECORD, ''),
    '.tfrecords': (TFRECORD, ''),
    '.tfrec': (TFRECORD, ''),
    '.tfrecord.gz': (TFRECORD, 'GZIP'),
    '.tfrecords.gz': (TFRECORD, 'GZIP'),
    '.tfrec.gz': (TFRECORD, 'GZIP'),
}
_EXTENSIONS = '.npy, .csv, .tfrecord, .tfrecords, .tfrec (.gz for GZIP)'

# A number as tf.strings.to_number reads it (after stripping blanks and
# quotes); the same pattern in Python's `re` and TensorFlow's RE2.
_NUMBER = (r'[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|'
           r'[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])')
_NUMBER_RE = re.compile(_NUMBER)
# The UTF-8 byte order mark some programs write at the start of a CSV file.
_BOM = '\ufeff'
_NOT_UTF8_FIX = ', e.g. with iconv -f latin1 -t utf-8.'
_NOT_UTF8_ADVICE = (' is not UTF-8 text; save the CSV as UTF-8 (or ASCII), '
                    'or convert it' + _NOT_UTF8_FIX)


@dataclasses.dataclass(frozen=True)
class FileSource:
  """Checked input files, ready to be streamed.

  Attributes:
    paths: the files, in reading order (globs expanded and sorted).
    file_format: 'npy', 'csv' or 'tfrecord'.
    num_features: d, the width of every point.
    num_points: the number of points when known without reading (`.npy`),
      else None.
    feature_names: names of the d values of a point when the files name
      them (CSV header, TFRecord features), else None.
    weight_column: None, or the key of the weights in the dataset's dict
      elements: the `weight_column` given to `open_files`, as a str.
  """

  paths: tuple
  file_format: str
  num_features: int
  num_points: int | None
  feature_names: tuple | None
  _make_dataset: Callable = dataclasses.field(repr=False, compare=False)
  weight_column: str | None = None

  @property
  def points_key(self):
    """The key of the points in the dict elements of a weighted source:
    'points', or 'points_' when the weight column is itself called
    'points'."""
    return 'points' if self.weight_column != 'points' else 'points_'

  def estimator_options(self):
    """The `KMeansClustering` arguments that read this source's elements:
    `weight_column` and `feature_columns` (both None without weights)."""
    if self.weight_column is None:
      return {'weight_column': None, 'feature_columns': None}
    return {'weight_column': self.weight_column,
            'feature_columns': [self.points_key]}

  def dataset(self, batch_size=DEFAULT_BATCH_SIZE, dtype=tf.float32):
    """A finite `tf.data.Dataset` of `dtype` Tensors of shape (n, d).

    With a `weight_column`, of dicts `{points_key: points (n, d),
    weight_column: weights (n,)}` instead.

    Args:
      batch_size: the most points per batch (positive int).
      dtype: tf.float32 or tf.float64.

    Returns:
      The points of every file, in order, in batches of up to `batch_size`.
    """
    if isinstance(batch_size, bool) or not isinstance(
        batch_size, (int, np.integer)) or batch_size < 1:
      raise errors.InvalidArgumentError(
          '`batch_size` must be a positive integer. Received: '
          f'batch_size={batch_size!r}', 'batch_size', batch_size)
    dtype = tf.as_dtype(dtype)
    if dtype not in (tf.float32, tf.float64):
      raise errors.InvalidArgumentError(
          f'`dtype` must be float32 or float64. Received: dtype={dtype.name}',
          'dtype', dtype)
    dataset = self._make_dataset(int(batch_size), dtype)
    if self.weight_column is not None:
      points_key, weight_key = self.points_key, self.weight_column
      dataset = dataset.map(
          lambda points, weights: {points_key: points, weight_key: weights})
    dataset = dataset.prefetch(PREFETCH_BATCHES)
    # A full-batch step reads the files once per step, each time with a new
    # iterator, whose tf.data autotuner starts again from nothing and can
    # stall a pass while it learns. With fixed read-ahead no pass stalls,
    # and the parsing maps use every core (AUTOTUNE without the autotuner).
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)

  def input_fn(self, batch_size=DEFAULT_BATCH_SIZE, dtype=tf.float32,
               repeat=False):
    """An `input_fn` for `KMeansClustering` that streams the files.

    Args:
      batch_size: the most points per batch.
      dtype: tf.float32 or tf.float64.
      repeat: repeat the data without end (for mini-batch training for a
        number of steps); the dataset is then endless.

    Returns:
      A callable returning a `tf.data.Dataset` of Tensors of shape (n, d).
    """
    self.dataset(batch_size, dtype)  # Checks the arguments now.

    def input_fn():
      dataset = self.dataset(batch_size, dtype)
      return dataset.repeat() if repeat else dataset

    return input_fn

  def read_all(self, dtype=np.float32):
    """All the points as one array of shape (n, d), or with a
    `weight_column` a dict of arrays as the dataset's elements are; for data
    that fit in memory only."""
    tf_dtype = tf.as_dtype(dtype)
    with readable_errors():
      batches = list(self.dataset(DEFAULT_BATCH_SIZE, tf_dtype)
                     .as_numpy_iterator())
    if not batches:
      raise _bad_input(f'{_describe(self.paths)} holds no points.')
    if isinstance(batches[0], dict):
      return {key: np.concatenate([batch[key] for batch in batches], axis=0)
              for key in batches[0]}
    return np.concatenate(batches, axis=0)


def open_files(patterns, columns=None, features=None, header=None,
               delimiter=',', weight_column=None):
  """Checks input files and returns a `FileSource` that streams them.

  Args:
    patterns: a path or glob, or a sequence of them; matches of a glob are
      read in sorted order. All files must have the same format and width.
    columns: for `.csv` and `.npy`: the columns to use, in order, as header
      names (CSV) or 0-based indices (ints or digit strings); None uses all.
    features: for TFRecord: feature names, or `(name, width)` pairs, in
      order; None uses every float or int64 feature of the first record in
      sorted name order.
    header: for `.csv`: None detects a header row (a first row with a cell
      that is not a number where the second row has a number, or, in a
      one-row file, a first row without numbers); True or False forces it.
    delimiter: for `.csv`: the one-character field separator.
    weight_column: None, or where each point's sample weight is: a column
      (header name or 0-based index) of `.csv` and `.npy` files, the name of
      a one-value feature of TFRecord files. It is never a point value:
      without `columns` or `features` the points are all the other columns
      or numeric features, and naming it there too is an error.

  Returns:
    `FileSource`.

  Raises:
    ValueError: no file matches, a file is missing, a directory, empty, of
      an unknown or mixed extension, of the wrong rank or dtype, pickled,
      or the files disagree on their width; `columns` or `features` name
      something the files lack, or are given for the wrong format;
      `weight_column` names something the files lack, a feature of more
      than one value, or one of `columns` or `features`.
  """
  if weight_column is not None and (
      isinstance(weight_column, bool) or
      not isinstance(weight_column, (str, int, np.integer))):
    raise errors.InvalidArgumentTypeError.from_template(
        '`{weight_column}` must be a column name or index, or None. '
        'Received: {weight_column=}', 'weight_column', weight_column)
  paths = _expand(patterns)
  formats = {path: _format_of(path) for path in paths}
  kinds = sorted({kind for kind, _ in formats.values()})
  if len(kinds) > 1:
    raise _bad_input(
        f'The input files mix formats ({", ".join(kinds)}): {list(paths)}; '
        'give files of one format.')
  kind = kinds[0]
  if columns is not None and kind == TFRECORD:
    raise errors.InvalidArgumentError.from_template(
        '`{columns}` applies to .csv and .npy files; for TFRecord files name '
        'the features with `{features}`. Received: {columns=}', 'columns',
        list(columns), features=features)
  if features is not None and kind != TFRECORD:
    raise errors.InvalidArgumentError.from_template(
        '`{features}` applies to TFRecord files; for .csv and .npy files '
        'pick columns with `{columns}`. Received: {features=}', 'features',
        list(features), columns=columns)
  if kind == NPY:
    return _open_npy(paths, columns, weight_column)
  if kind == CSV:
    if not isinstance(delimiter, str) or len(delimiter) != 1:
      raise errors.InvalidArgumentError.from_template(
          '`{delimiter}` must be one character. Received: {delimiter=}',
          'delimiter', delimiter)
    return _open_csv(paths, columns, header, delimiter, weight_column)
  compression = {formats[path][1] for path in paths}
  if len(compression) > 1:
    raise _bad_input('The TFRecord files mix GZIP (.gz) and uncompressed '
                     f'files: {list(paths)}; give files of one kind.')
  return _open_tfrecord(paths, features, compression.pop(), weight_column)


def _bad_input(message):
  """The error for input files that cannot be used (missing, of an unknown
  format, empty, damaged...): an `errors.InvalidInputError` of kind 'file'
  (a ValueError)."""
  return errors.InvalidInputError(message, kind='file', argument='patterns')


def _file_check(condition, message_parts):
  """A `graph_check` of the files' content: it stands for an
  `errors.InvalidInputError` of kind 'file' with the joined message."""
  return errors.graph_check(condition, errors.InvalidInputError,
                            message_parts, kind='file', argument='patterns')


@contextlib.contextmanager
def readable_errors():
  """Turns TensorFlow errors raised by the file pipelines into
  `errors.InvalidInputError`s (see `readable_error`)."""
  try:
    yield
  except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
    readable = readable_error(error)
    if readable is None:
      raise
    raise readable from None


def readable_error(error):
  """The error that explains a pipeline's `tf.errors.OpError`, or None.

  Args:
    error: a `tf.errors.OpError` raised while a `FileSource` was read.

  Returns:
    An `errors.InvalidInputError` (kind 'file') naming the file, line and
    what to do: the typed error of a failed check (`errors.translate`), or
    one for a TFRecord file TensorFlow could not read or parse. None when
    the error did not come from reading the files.
  """
  typed = errors.translate(error)
  if typed is not None:
    return typed
  if isinstance(error, tf.errors.DataLossError):
    detail = errors.tensorflow_text(error)
    return errors.InvalidInputError(
        f'A TFRecord file is corrupted or is not a TFRecord file ({detail}); '
        'check the files.', kind='file', argument='patterns')
  detail = errors.record_mismatch_detail(error)
  if detail is not None:
    return errors.InvalidInputError(
        f'A record of the TFRecord files does not match the first one '
        f'({detail}); every tf.train.Example needs the features in use, '
        'numeric and with the widths of the first record.', kind='file',
        argument='patterns')
  return None


# ---------------------------------------------------------------- files
def _expand(patterns):
  if isinstance(patterns, (str, bytes)) or hasattr(patterns, '__fspath__'):
    patterns = [patterns]
  paths = []
  for pattern in patterns:
    # A leading ~ is expanded, as for model_dir (a shell leaves it in
    # --flag=~/x and in quoted globs).
    pattern = os.path.expanduser(os.fsdecode(pattern))
    if any(char in pattern for char in '*?['):
      matches = sorted(tf.io.gfile.glob(pattern))
      if not matches:
        raise _bad_input(f'No file matches {pattern!r}; check the path.')
      paths.extend(matches)
      continue
    if not tf.io.gfile.exists(pattern):
      raise _bad_input(f'File not found: {pattern!r}; check the path.')
    paths.append(pattern)
  if not paths:
    raise _bad_input('No input files were given; give at least one .npy, '
                     '.csv or TFRecord file.')
  for path in paths:
    if tf.io.gfile.isdir(path):
      raise _bad_input(f'{path!r} is a directory; give files, or a glob such '
                       f'as {path.rstrip("/")}/*.npy.')
  return tuple(paths)


def _format_of(path):
  name = path.lower()
  for suffix in sorted(_SUFFIXES, key=len, reverse=True):
    if name.endswith(suffix):
      return _SUFFIXES[suffix]
  raise _bad_input(f'{path!r} has an unknown extension; input files must end '
                   f'in {_EXTENSIONS}.')


def _describe(paths):
  return repr(paths[0]) if len(paths) == 1 else f'{len(paths)} files'


def _check_same_width(path, width, first_path, first_width, what='columns'):
  if width != first_width:
    raise _bad_input(
        f'{path!r} has {width} {what} but {first_path!r} has {first_width}; '
        'all input files must have the same width.')


def _as_list(value, argument, what, single_types):
  """`value` as a non-empty list (a single name or index becomes one)."""
  if isinstance(value, single_types):
    value = [value]
  value = list(value)
  if not value:
    raise errors.InvalidArgumentError.from_template(
        f'`{{{argument}}}` must name at least one {what}, or be None for '
        f'all. Received: {{{argument}=}}', argument, value)
  return value


def _select(columns, width, names, path, argument='columns'):
  """0-based indices of `columns` (names or indices) among `width` columns;
  a bad one is an error naming `argument`."""
  if columns is None:
    return None
  columns = _as_list(columns, argument, 'column', (str, int))
  indices = []
  for column in columns:
    if names is not None and isinstance(column, str) and column in names:
      indices.append(names.index(column))
      continue
    index = None
    if isinstance(column, (int, np.integer)) and not isinstance(column, bool) or isinstance(column, str) and column.strip().isdigit():
      index = int(column)
    if index is None or not 0 <= index < width:
      available = (f'the header names {list(names)} or ' if names else '')
      raise errors.InvalidArgumentError.from_template(
          f'`{{{argument}}}` must be {available}0-based indices below '
          f'{width} (the columns of {path!r}); {column!r} is neither. '
          f'Received: {{{argument}=}}', argument,
          columns if argument == 'columns' else columns[0])
    indices.append(index)
  return indices


def _weight_index(weight_column, indices, width, names, path):
  """(point column indices, weight column index or None).

  Policy: the weight column is never a point value. Without `columns`
  (`indices` None) the points are every other column; a weight column that
  `columns` also names is an error.
  """
  if weight_column is None:
    return indices, None
  weight, = _select([weight_column], width, names, path, 'weight_column')
  if indices is None:
    indices = [i for i in range(width) if i != weight]
    if not indices:
      raise errors.InvalidArgumentError.from_template(
          f'`{{weight_column}}` is the only column of {path!r}; the points '
          'need at least one other column. Received: {weight_column=}',
          'weight_column', weight_column)
  elif weight in indices:
    raise errors.InvalidArgumentError.from_template(
        '`{weight_column}` must not be one of `{columns}`: a weight is not '
        'a point value. Received: {weight_column=}', 'weight_column',
        weight_column, columns=None)
  return indices, weight


# ------------------------------------------------------------------ npy
def _npy_header(path):
  """(shape, dtype) of a .npy file, read without loading it."""
  with tf.io.gfile.GFile(path, 'rb') as f:
    try:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
      else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError, SyntaxError) as error:
      raise _bad_input(
          f'{path!r} is not a .npy file ({error}); write it with numpy.save, '
          'or give the file its right extension.') from None
  return shape, dtype


# The memory map of each .npy file in use, shared by every dataset that reads
# it (for as long as one does): a batch of a float32 file is then a view of
# the mapped rows (numpy copies nothing), and however many sources, datasets
# and passes read a file, the process maps its pages once, so its RSS grows
# by at most the file's size.
_MAPPED: weakref.WeakValueDictionary[Any, Any] = (
    weakref.WeakValueDictionary())


def _memory_map(path):
  """The shared read-only memory map of the .npy at `path`.

  Deliberately without a lock. Readers run on tf.data's threads, and the
  garbage collector can run inside `np.load`: when it finalises a tf.data
  iterator, the finaliser waits for that iterator's reads in flight. A lock
  held across the load would keep those reads waiting for the thread that
  waits for them (a hang, seen in the test suite). Two threads that map the
  same file at the same moment both get a valid map; the dictionary keeps
  one of them.
  """
  stat = os.stat(path)
  key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
  array = _MAPPED.get(key)
  if array is None:
    array = _MAPPED.setdefault(
        key, np.load(path, mmap_mode='r', allow_pickle=False))
  return array


def _open_npy(paths, columns, weight_column=None):
  arrays, rows, first = [], [], None
  for path in paths:
    shape, dtype = _npy_header(path)
    if dtype.hasobject:
      raise _bad_input(
          f'{path!r} holds a pickled object array (dtype {dtype}), which is '
          'not loaded for safety (allow_pickle=False); save a numeric array '
          'with np.save(path, np.asarray(points, np.float32)).')
    if dtype.kind not in 'iuf':
      raise _bad_input(
          f'{path!r} holds dtype {dtype}; the points must be integers or '
          'floats.')
    if len(shape) != 2:
      raise _bad_input(
          f'{path!r} holds an array of shape {shape}; the points must be a '
          '2-D array of shape (n, d). Save points.reshape(-1, 1) for one '
          'feature.')
    if shape[0] == 0:
      raise _bad_input(f'{path!r} is empty (shape {shape}); give at least '
                       'one point.')
    if shape[1] == 0:
      raise _bad_input(f'{path!r} has 0 features per point (shape {shape}); '
                       'each point needs at least one feature.')
    if first is None:
      first = (path, shape[1])
    _check_same_width(path, shape[1], *first)
    arrays.append(path)
    rows.append(shape[0])
  indices = _select(columns, first[1], None, first[0])
  indices, weight = _weight_index(weight_column, indices, first[1], None,
                                  first[0])
  width = first[1] if indices is None else len(indices)

  def mapped(file_id):
    path = arrays[file_id]
    try:
      return _memory_map(path)
    except ValueError as error:
      # Tagged like the in-graph checks, so that `readable_error` finds its
      # typed error in the error TensorFlow wraps it in.
      raise ValueError(errors.tagged_message(
          errors.InvalidInputError,
          f'{path!r} cannot be read ({error}); the file is '
          'truncated or damaged: write it again with numpy.save.',
          kind='file', argument='patterns')) from None

  def make_dataset(batch_size, dtype):
    np_dtype = dtype.as_numpy_dtype
    file_ids = np.concatenate([
        np.full(-(-n // batch_size), i, np.int64) for i, n in enumerate(rows)])
    starts = np.concatenate([
        np.arange(0, n, batch_size, dtype=np.int64) for n in rows])
    held = {}  # The maps this dataset reads, kept while it lives.

    def read(file_id, start):
      file_id = int(file_id)
      if file_id not in held:
        held[file_id] = mapped(file_id)
      rows = held[file_id][int(start):int(start) + batch_size]
      batch = rows if indices is None else rows[:, indices]
      batch = np.ascontiguousarray(batch, dtype=np_dtype)
      if weight is None:
        return batch
      return batch, np.ascontiguousarray(rows[:, weight], dtype=np_dtype)

    def to_batch(file_id, start):
      if weight is None:
        batch = tf.numpy_function(read, [file_id, start], dtype)
        batch.set_shape([None, width])
        return batch
      batch, weights = tf.numpy_function(read, [file_id, start],
                                         [dtype, dtype])
      batch.set_shape([None, width])
      weights.set_shape([None])
      return batch, weights

    return tf.data.Dataset.from_tensor_slices((file_ids, starts)).map(
        to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  return FileSource(paths, NPY, width, int(sum(rows)), None, make_dataset,
                    None if weight is None else str(weight_column))


# ------------------------------------------------------------------ csv
def _cells(line, delimiter):
  return [cell.strip().strip('"').strip() for cell in line.split(delimiter)]


def _is_number(cell):
  return _NUMBER_RE.fullmatch(cell) is not None


def _first_rows(path, delimiter):
  """The first two non-blank rows (as cells) and the first one's line index.

  Byte order marks at the start of the file (which spreadsheet programs
  write; one per conversion) are not part of the first row: they are
  dropped, as the dataset's parser drops them, so that they never turn a
  row of numbers into a header.
  """
  rows, first_index = [], None
  with tf.io.gfile.GFile(path, 'r') as f:
    for index, line in enumerate(f):
      if index == 0:
        line = line.lstrip(_BOM)  # All of them: see _drop_bom.
      if not line.strip():
        continue
      if first_index is None:
        first_index = index
      rows.append(_cells(line.rstrip('\r\n'), delimiter))
      if len(rows) == 2:
        break
  return rows, first_index


def _drop_bom(lines):
  """`lines` (a string Tensor (n,), n >= 1) without the BOMs opening the first.

  Every byte order mark at the start goes: a file converted twice has two.
  """
  first = tf.strings.regex_replace(lines[0], '^(' + _BOM + ')+', '')
  return tf.concat([first[tf.newaxis], lines[1:]], 0)


def _has_header(rows):
  first = rows[0]
  if len(rows) == 1:
    return not any(_is_number(cell) for cell in first)
  return any(not _is_number(a) and _is_number(b)
             for a, b in zip(first, rows[1]))


def _open_csv(paths, columns, header, delimiter, weight_column=None):
  if header not in (None, True, False):
    raise errors.InvalidArgumentError.from_template(
        '`{header}` must be None (detect), True or False. Received: '
        '{header=}', 'header', header)
  skips, names, first = [], None, None
  for path in paths:
    try:
      rows, first_index = _first_rows(path, delimiter)
    except UnicodeDecodeError as error:
      raise _bad_input(
          f'{path!r} is not UTF-8 text (byte {error.start} is '
          f'{error.object[error.start:error.start + 1]!r}); save the CSV as '
          f'UTF-8 (or ASCII), or convert it{_NOT_UTF8_FIX}') from None
    if not rows:
      raise _bad_input(f'{path!r} is empty; give a CSV file with at least '
                       'one row of numbers.')
    has_header = _has_header(rows) if header is None else header
    if has_header and len(rows) == 1:
      raise _bad_input(f'{path!r} has a header row but no data rows; give at '
                       'least one row of numbers.')
    if has_header:
      if names is None:
        names = (path, rows[0])
      elif rows[0] != names[1]:
        raise _bad_input(
            f'{path!r} has the header {rows[0]} but {names[0]!r} has '
            f'{names[1]}; all CSV files must have the same columns.')
    if first is None:
      first = (path, len(rows[0]))
    _check_same_width(path, len(rows[0]), *first)
    skips.append(first_index + 1 if has_header else 0)
  num_columns = first[1]
  header_names = None if names is None else list(names[1])
  indices = _select(columns, num_columns, header_names, first[0])
  indices, weight = _weight_index(weight_column, indices, num_columns,
                                  header_names, first[0])
  if indices is None:
    indices = list(range(num_columns))
  # The weight is parsed (and checked) with the points, as the last column.
  parsed = indices if weight is None else indices + [weight]
  labels = [header_names[i] if header_names else f'{i}' for i in parsed]

  def make_dataset(batch_size, dtype):
    def batches_of(path, skip):
      lines = tf.data.TextLineDataset(path).skip(skip).batch(batch_size)
      return lines.enumerate().map(
          lambda index, batch: (path, skip + 1 + index * batch_size, batch))

    def parse(path, first_line, lines):
      # A byte order mark opens the file's first line, not its first cell.
      lines = tf.cond(first_line == 1, lambda: _drop_bom(lines),
                      lambda: lines)
      numbers = first_line + tf.range(tf.size(lines, tf.int64))
      keep = tf.strings.length(tf.strings.strip(lines)) > 0
      lines = tf.boolean_mask(lines, keep)
      numbers = tf.boolean_mask(numbers, keep)
      # Only blank lines: an empty batch, which the filter below drops (the
      # checks below cannot point at a row of an empty batch).
      return tf.cond(tf.size(lines) > 0,
                     lambda: parse_rows(path, lines, numbers),
                     lambda: tf.zeros([0, len(parsed)], dtype))

    def parse_rows(path, lines, numbers):
      cells = tf.strings.split(lines, sep=delimiter)
      widths = cells.row_lengths()
      bad_row = tf.argmax(tf.cast(widths != num_columns, tf.int32))
      width_ok = _file_check(
          tf.reduce_all(widths == num_columns),
          [path, ' line ',
           tf.strings.as_string(tf.gather(numbers, bad_row)), ' has ',
           tf.strings.as_string(tf.gather(widths, bad_row)),
           (f' fields but the first row has {num_columns}; every row '
            f'needs {num_columns} values separated by "{delimiter}".')])
      with tf.control_dependencies([width_ok]):
        table = cells.to_tensor(default_value='')
      picked = tf.gather(table, parsed, axis=1)
      picked = tf.strings.strip(tf.strings.regex_replace(
          tf.strings.strip(picked), r'^"(.*)"$', r'\1'))
      is_number = tf.strings.regex_full_match(picked, _NUMBER)

      def refuse_bad_cell():
        # Only when a cell is not a number (a number is ASCII). A cell that
        # is not UTF-8 is refused by its line without being quoted:
        # TensorFlow cannot hand an error message holding such bytes to
        # Python (it raised a UnicodeDecodeError naming no file).
        valid = tf.reduce_all(tf.strings.unicode_transcode(
            picked, 'UTF-8', 'UTF-8', errors='replace',
            replacement_char=0xFFFD) == picked, axis=1)
        utf8_ok = _file_check(
            tf.reduce_all(valid),
            [path, ' line ',
             tf.strings.as_string(tf.gather(
                 numbers, tf.argmax(tf.cast(tf.logical_not(valid),
                                            tf.int32)))),
             _NOT_UTF8_ADVICE])
        flat = tf.reshape(is_number, [-1])
        bad = tf.argmax(tf.cast(tf.logical_not(flat), tf.int32))
        row, column = bad // len(parsed), bad % len(parsed)
        with tf.control_dependencies([utf8_ok]):
          cell = tf.gather(tf.reshape(picked, [-1]), bad)
        numbers_ok = _file_check(
            False,
            [path, ' line ',
             tf.strings.as_string(tf.gather(numbers, row)), ', column ',
             tf.gather(tf.constant(labels), column), ": '", cell,
             ("' is not a number; fix the cell, or pick numeric columns "
              'with `columns`.')])
        with tf.control_dependencies([numbers_ok]):
          return tf.constant(False)

      numbers_ok = tf.cond(tf.reduce_all(is_number),
                           lambda: tf.constant(True), refuse_bad_cell)
      with tf.control_dependencies([numbers_ok]):
        points = tf.strings.to_number(picked, dtype)
      return tf.ensure_shape(points, [None, len(parsed)])

    def split_weights(table):
      return table[:, :len(indices)], table[:, len(indices)]

    files = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(paths)), tf.constant(skips, tf.int64)))
    no_autograph = tf.autograph.experimental.do_not_convert
    # A batch emptied by blank lines would be a training step on no points.
    # (The other formats never give an empty batch, and skip this stage: a
    # few percent of a streamed step.)
    dataset = files.flat_map(no_autograph(batches_of)).map(
        no_autograph(parse), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).filter(lambda x: tf.shape(x)[0] > 0)
    return dataset if weight is None else dataset.map(split_weights)

  return FileSource(paths, CSV, len(indices), None,
                    tuple(labels[:len(indices)]) if header_names else None,
                    make_dataset,
                    None if weight is None else str(weight_column))


# ------------------------------------------------------------- tfrecord
_READ_BUFFER_BYTES = 1 << 18
_KINDS = {'float_list': tf.float32, 'int64_list': tf.int64}


def _first_example(path, compression):
  try:
    records = tf.data.TFRecordDataset(path, compression_type=compression,
                                      buffer_size=_READ_BUFFER_BYTES)
    record = next(iter(records.take(1)), None)
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
    raise _bad_input(
        f'{path!r} is not a readable TFRecord file '
        f'({errors.tensorflow_text(error)}); write it with '
        'tf.io.TFRecordWriter, or give the file its right extension.'
    ) from None
  if record is None:
    raise _bad_input(f'{path!r} is empty; give a TFRecord file with at least '
                     'one tf.train.Example.')
  try:
    return tf.train.Example.FromString(record.numpy())
  except message_lib.DecodeError:
    raise _bad_input(f'The first record of {path!r} is not a '
                     'tf.train.Example; write serialized Examples.') from None


def _example_widths(example):
  """{name: (kind, width)} of the features of a tf.train.Example."""
  return {name: (feature.WhichOneof('kind'),
                 len(getattr(feature, feature.WhichOneof('kind')).value)
                 if feature.WhichOneof('kind') else 0)
          for name, feature in example.features.feature.items()}


def _feature_specs(features, found, path, weight_column=None):
  """[(name, tf dtype, width)] of the requested features (without
  `features`, every numeric one but `weight_column`)."""
  if features is None:
    names = sorted(name for name, (kind, _) in found.items()
                   if kind in _KINDS and name != weight_column)
    if not names:
      raise _bad_input(
          f'The first record of {path!r} has no float or int64 features '
          f'(it has {sorted(found)}); write numeric features.')
    features = names
  features = _as_list(features, 'features', 'feature', str)
  specs = []
  for feature in features:
    name, width = (feature, None) if isinstance(feature, str) else feature
    if name not in found:
      raise errors.InvalidArgumentError.from_template(
          f'`{{features}}` must name features of the records; the first '
          f'record of {path!r} has {sorted(found)}. Received: {{features=}}',
          'features', features)
    kind, found_width = found[name]
    if kind not in _KINDS:
      raise errors.InvalidArgumentError.from_template(
          f'Feature {name!r} of {path!r} holds {kind or "no values"}, not '
          'numbers; `{features}` must name float or int64 features. '
          'Received: {features=}', 'features', features)
    if width is not None and width != found_width:
      raise errors.InvalidArgumentError.from_template(
          f'Feature {name!r} has {found_width} values in the first record of '
          f'{path!r}, but `{{features}}` gives width {width}; give its width '
          'or leave it out. Received: {features=}', 'features', features)
    if found_width == 0:
      raise _bad_input(f'Feature {name!r} is empty in the first record of '
                       f'{path!r}; each feature needs at least one value.')
    specs.append((name, _KINDS[kind], found_width))
  return specs


def _weight_spec(weight_column, specs, found, path):
  """(name, tf dtype, 1) of the weight feature; see `_weight_index` for the
  policy."""
  if weight_column in (name for name, _, _ in specs):
    raise errors.InvalidArgumentError.from_template(
        '`{weight_column}` must not be one of `{features}`: a weight is not '
        'a point value. Received: {weight_column=}', 'weight_column',
        weight_column, features=None)
  kind, width = found.get(weight_column, (None, 0))
  if kind not in _KINDS or width != 1:
    what = ('has no such feature' if weight_column not in found else
            f'holds {width} values of kind {kind}')
    raise errors.InvalidArgumentError.from_template(
        f'`{{weight_column}}` must name a float or int64 feature of one '
        f'value per record; the first record of {path!r} {what} (its '
        f'features: {sorted(found)}). Received: {{weight_column=}}',
        'weight_column', weight_column)
  return weight_column, _KINDS[kind], 1


def _open_tfrecord(paths, features, compression, weight_column=None):
  if weight_column is not None and not isinstance(weight_column, str):
    raise errors.InvalidArgumentTypeError.from_template(
        '`{weight_column}` must name a feature (a str) for TFRecord files. '
        'Received: {weight_column=}', 'weight_column', weight_column)
  specs = None
  for path in paths:
    found = _example_widths(_first_example(path, compression))
    if specs is None:
      specs = _feature_specs(features, found, path, weight_column)
      if weight_column is not None:
        weight_spec = _weight_spec(weight_column, specs, found, path)
      first_path = path
      continue
    for name, _, width in specs + ([] if weight_column is None
                                   else [weight_spec]):
      if name not in found or found[name][1] != width:
        raise _bad_input(
            f'Feature {name!r} has {width} values in the first record of '
            f'{first_path!r} but {found.get(name, (None, 0))[1]} in the '
            f'first record of {path!r}; all files must hold the same '
            'features.')
  parse_spec = {name: tf.io.FixedLenFeature([width], kind)
                for name, kind, width in specs}
  if weight_column is not None:
    parse_spec[weight_column] = tf.io.FixedLenFeature([1], weight_spec[1])
  width = sum(width for _, _, width in specs)

  def make_dataset(batch_size, dtype):
    def parse(records):
      parsed = tf.io.parse_example(records, parse_spec)
      parts = [tf.cast(parsed[name], dtype) for name, _, _ in specs]
      points = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
      if weight_column is None:
        return points
      return points, tf.cast(parsed[weight_column][:, 0], dtype)

    records = tf.data.TFRecordDataset(list(paths),
                                      compression_type=compression,
                                      buffer_size=_READ_BUFFER_BYTES)
    return records.batch(batch_size).map(
        tf.autograph.experimental.do_not_convert(parse),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  names = []
  for name, _, feature_width in specs:
    names.extend([name] if feature_width == 1 else
                 [f'{name}[{i}]' for i in range(feature_width)])
  return FileSource(paths, TFRECORD, width, None, tuple(names), make_dataset,
                    weight_column)

