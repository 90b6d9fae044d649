"""The input files the command line reads (data/files.py): .npy, .csv and
TFRecord, streamed in batches.

Evidence: batches equal the array they were written from, in file order,
for every .npy layout; CSV headers, quotes, blank lines and byte order marks
are read as a spreadsheet writes them; bad files raise errors naming the file
(and line and column).
"""

import os
import shutil
import threading

import numpy as np
import pytest

from helpers import file_points, write_tfrecord
from helpers import fast_first
from kmeans_estimator import errors
from kmeans_estimator.data import files as file_inputs

POINTS = file_points()


def test_npy_streams_in_batches_in_file_order(tmp_path):
  np.save(tmp_path / 'a.npy', POINTS[:100].astype(np.float64))
  np.save(tmp_path / 'b.npy', POINTS[100:].astype(np.int64))
  source = file_inputs.open_files(str(tmp_path / '*.npy'), columns=[2, '0'])
  assert (source.num_points, source.num_features) == (300, 2)
  sizes = [len(batch) for batch in source.dataset(batch_size=64)]
  assert sizes == [64, 36, 64, 64, 64, 8]
  expected = np.concatenate([POINTS[:100], POINTS[100:].astype(np.int64)])
  np.testing.assert_array_equal(source.read_all(), expected[:, [2, 0]])


@pytest.mark.parametrize('layout', ['fortran', 'big_endian', 'version_2'])
def test_npy_batches_of_every_layout_equal_the_array(tmp_path, layout):
  path = str(tmp_path / 'p.npy')
  if layout == 'fortran':
    np.save(path, np.asfortranarray(POINTS))
  elif layout == 'big_endian':
    np.save(path, POINTS.astype('>f8'))
  else:
    with open(path, 'wb') as f:
      np.lib.format.write_array(f, POINTS, version=(2, 0))
  source = file_inputs.open_files(path, columns=[1, 2])
  batches = [batch.numpy() for batch in source.dataset(batch_size=128)]
  assert [len(batch) for batch in batches] == [128, 128, 44]
  np.testing.assert_array_equal(np.concatenate(batches),
                                POINTS[:, [1, 2]].astype(np.float32))


def test_npy_sources_of_one_file_share_one_memory_map(tmp_path):
  # However many sources and passes read a file, it is mapped once (so the
  # process's RSS grows by at most the file's size).
  path = tmp_path / 'p.npy'
  np.save(path, POINTS.astype(np.float32))
  passes = [iter(file_inputs.open_files(path).dataset(batch_size=size))
            for size in (64, 100, 300)]
  batches = [[batch.numpy() for batch in one_pass] for one_pass in passes]
  for one_pass in batches:
    np.testing.assert_array_equal(np.concatenate(one_pass), POINTS)
  maps = {key: array for key, array in file_inputs._MAPPED.items()
          if key[0] == os.path.realpath(path)}
  assert len(maps) == 1
  assert file_inputs._memory_map(str(path)) is next(iter(maps.values()))


def test_a_memory_map_being_loaded_does_not_block_other_readers(
    tmp_path, monkeypatch):
  # The garbage collector can run inside np.load, and a tf.data iterator it
  # finalises there waits for its reads in flight, of other files on other
  # threads. Those reads must not wait for the load: this hung the suite.
  first, second = tmp_path / 'first.npy', tmp_path / 'second.npy'
  np.save(first, POINTS.astype(np.float32))
  np.save(second, 2 * POINTS.astype(np.float32))
  load = np.load
  other = {}

  def load_waiting_for_another_reader(path, *args, **kwargs):
    if os.fspath(path) == os.fspath(first):
      reader = threading.Thread(target=lambda: other.update(
          array=file_inputs._memory_map(os.fspath(second))))
      reader.start()
      reader.join(timeout=30)
      assert not reader.is_alive(), 'a reader waited for another one\'s load'
    return load(path, *args, **kwargs)

  monkeypatch.setattr(np, 'load', load_waiting_for_another_reader)
  np.testing.assert_array_equal(file_inputs._memory_map(os.fspath(first)),
                                POINTS)
  np.testing.assert_array_equal(other['array'], 2 * POINTS)


def test_file_datasets_read_ahead_without_the_autotuner(tmp_path):
  # Every full-batch step reads the files with a new iterator; tf.data's
  # autotuner would start from nothing each time (measured: some passes
  # stalled to twice the time), so the read-ahead is fixed.
  np.save(tmp_path / 'p.npy', POINTS.astype(np.float32))
  np.savetxt(tmp_path / 'p.csv', POINTS, delimiter=',')
  for name in ('p.npy', 'p.csv'):
    dataset = file_inputs.open_files(str(tmp_path / name)).dataset(64)
    assert dataset.options().autotune.enabled is False
    np.testing.assert_allclose(np.concatenate(list(dataset)), POINTS,
                               rtol=1e-6)


def test_truncated_npy_is_a_clear_error_naming_the_file(tmp_path):
  path = tmp_path / 'p.npy'
  np.save(path, POINTS.astype(np.float32))
  path.write_bytes(path.read_bytes()[:-100])
  source = file_inputs.open_files(path)
  with (pytest.raises(ValueError, match=r"p\.npy' cannot be read \(.*\); the "
                                        r'file is truncated or damaged'),
        file_inputs.readable_errors()):
    for _ in source.dataset(batch_size=128):
      pass


def test_csv_header_is_detected_and_quotes_and_blank_lines_are_read(
    tmp_path):
  path = tmp_path / 'p.csv'
  path.write_text('"a", "b"\n\n1, "2.5"\n-3e1,inf\n')
  source = file_inputs.open_files(path)
  assert source.feature_names == ('a', 'b')
  np.testing.assert_array_equal(source.read_all(),
                                [[1, 2.5], [-30, np.inf]])
  headerless = file_inputs.open_files(path, header=False)
  with pytest.raises(ValueError, match=r"line 1, column 0: 'a' is not a "):
    headerless.read_all()


@pytest.mark.parametrize('boms', [1, 2], ids=['bom', 'converted_twice'])
@pytest.mark.parametrize('header', fast_first(1, [None, False]))
def test_a_csv_byte_order_mark_does_not_make_the_first_row_a_header(
    tmp_path, header, boms):
  # Spreadsheet programs open UTF-8 CSV files with a BOM (U+FEFF); a file
  # converted twice has two.
  path = tmp_path / 'p.csv'
  path.write_bytes(('\ufeff' * boms + '1,2,3\n4,5,6\n7,8,9\n').encode())
  source = file_inputs.open_files(path, header=header)
  assert source.feature_names is None
  expected = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
  np.testing.assert_array_equal(source.read_all(), expected)
  for batch_size in (1, 2):  # The first line alone, and with the next.
    np.testing.assert_array_equal(
        np.concatenate(list(source.dataset(batch_size))), expected)


def test_a_csv_byte_order_mark_is_not_part_of_the_first_header_name(
    tmp_path):
  path = tmp_path / 'p.csv'
  path.write_bytes('\ufeffx,y\n1,2\n3,4\n'.encode())
  source = file_inputs.open_files(path, columns=['x'])
  assert source.feature_names == ('x',)
  np.testing.assert_array_equal(source.read_all(), [[1], [3]])


def test_a_csv_batch_of_blank_lines_is_skipped_not_an_empty_batch(tmp_path):
  # Batches of 2 lines: the second holds only blank lines.
  path = tmp_path / 'p.csv'
  path.write_text('1,2\n3,4\n\n  \n5,6\n')
  batches = [batch.numpy() for batch in
             file_inputs.open_files(path).dataset(batch_size=2)]
  assert [len(batch) for batch in batches] == [2, 1]
  np.testing.assert_array_equal(np.concatenate(batches),
                                [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize('content,name,message', [
    (None, 'p.txt', (r"'.*p\.txt' has an unknown extension; input files "
                     r'must end in \.npy, \.csv')),
    ('', 'p.csv', r"'.*p\.csv' is empty"),
    ('x,y\n', 'p.csv', r'has a header row but no data rows'),
    ('1,2\n3\n', 'p.csv', r'line 2 has 1 fields but the first row has 2'),
    ('x,y\n1,2\n', 'p.csv', None),
], ids=['unknown_extension', 'empty_csv', 'header_only', 'short_row',
        'bad_column'])
def test_csv_and_extension_errors(tmp_path, content, name, message):
  path = tmp_path / name
  path.write_text('1,2\n' if content is None else content)
  if message is None:
    with pytest.raises(ValueError, match=r'`columns` must be .*Received: '
                                         r"columns=\['z'\]"):
      file_inputs.open_files(path, columns=['z'])
    return
  with pytest.raises(ValueError, match=message):
    file_inputs.open_files(path).read_all()


@pytest.mark.parametrize('array,message', [
    (np.array([{'a': 1}], dtype=object), r'pickled object array'),
    (np.arange(5.0), r'shape \(5,\); the points must be a 2-D array'),
    (np.zeros((0, 3)), r'is empty'),
    (np.array([['a', 'b']]), r'must be integers or floats'),
], ids=['pickled', 'rank_1', 'no_rows', 'strings'])
def test_npy_errors(tmp_path, array, message):
  np.save(tmp_path / 'p.npy', array, allow_pickle=True)
  with pytest.raises(ValueError, match=message):
    file_inputs.open_files(tmp_path / 'p.npy')


def test_tfrecord_features_default_and_errors(tmp_path):
  path = write_tfrecord(tmp_path / 'p.tfrecord', POINTS)
  source = file_inputs.open_files(path)  # Numeric features by name.
  assert source.feature_names == ('xy[0]', 'xy[1]', 'z')
  np.testing.assert_array_equal(source.read_all(), POINTS)
  with pytest.raises(ValueError, match=r"`features` must name features of "
                                       r"the records.*'id', 'xy', 'z'"):
    file_inputs.open_files(path, features=['w'])
  with pytest.raises(ValueError, match=r"Feature 'id' .* holds bytes_list"):
    file_inputs.open_files(path, features=['id'])
  with pytest.raises(ValueError, match=r'gives width 3'):
    file_inputs.open_files(path, features=[('xy', 3)])
  empty = tmp_path / 'e.tfrecord'
  empty.write_bytes(b'')
  with pytest.raises(ValueError, match=r'is empty'):
    file_inputs.open_files(empty)
  with pytest.raises(ValueError, match=r'not a readable TFRecord file'):
    file_inputs.open_files(shutil.copy(tmp_path / 'p.tfrecord',
                                       tmp_path / 'bad.tfrecord.gz'))


@pytest.mark.parametrize('name,content,after_path', [
    ('p.csv', b'x,y\n1,2\n3\n', ' line 3 has 1 fields but the first row has 2'),
    ('p.csv', b'x,y\n1,2\n3,oops\n', " line 3, column y: 'oops' is not a number"),
    ('p.csv', b'x,y\n1,2\n3,\xff\n', ' line 3 is not UTF-8 text'),
    ('p.npy', None, "' cannot be read ("),
], ids=['short_row', 'bad_cell', 'not_utf8', 'truncated_npy'])
def test_an_error_found_while_reading_starts_with_the_file(
    tmp_path, name, content, after_path):
  # What the command line prints after "error: ", and what a ValueError
  # handler shows: the file first, nothing before it.
  path = tmp_path / name
  if content is None:
    np.save(path, POINTS)
    path.write_bytes(path.read_bytes()[:-100])
  else:
    path.write_bytes(content)
  source = file_inputs.open_files(path)
  with pytest.raises(errors.InvalidInputError) as error:
    with file_inputs.readable_errors():
      for _ in source.dataset(batch_size=8):
        pass
  shown = repr(str(path))[:-1] if content is None else str(path)
  assert str(error.value).startswith(shown + after_path), str(error.value)
