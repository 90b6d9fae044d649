"""Name-based, atomic checkpoints in TensorFlow's V2 bundle format.

The legacy `KMeans` Estimator stored its state in
*name-based* checkpoints: a `model_dir/checkpoint` state file plus
`model.ckpt-<step>.index` / `model.ckpt-<step>.data-00000-of-00001` bundles in
which every variable is stored under its plain name (`clusters`,
`global_step`, ...). Users read those with `tf.train.load_variable(model_dir,
'clusters')`, `tf.train.list_variables` and `tf.train.latest_checkpoint`.
`tf.train.Checkpoint` cannot produce that layout (it writes object-based keys
such as `clusters/.ATTRIBUTES/VARIABLE_VALUE`), and TF1's `Saver`
needs graphs and sessions. This module therefore writes bundles directly with
the eager `tf.raw_ops.SaveV2` op and reads them with the public
`tf.train.load_checkpoint` reader, which keeps existing model directories of
the legacy estimator readable and lets the legacy tooling read ours.

Saving is atomic with respect to `tf.train.latest_checkpoint`: the bundle is
first written under a temporary prefix, then the data file and the index file
are renamed to their final names (in that order, because
`tf.train.latest_checkpoint` only checks that the `.index` file exists), and
only then is the `checkpoint` state file replaced by an atomic rename. A crash
at any point therefore leaves the state file naming a complete checkpoint, or
no checkpoint at all if none was ever completed.

A checkpoint is never overwritten: `save_checkpoint` refuses a step whose
`.index` file exists (`CheckpointExistsError`). The latest checkpoint is
found from the files as well as from the state file (`latest_checkpoint`):
a crash between the index rename and the state file's, or a state file
deleted by hand, leaves complete bundles that the state file does not name,
and training resumes from the newest of them instead of starting over at
step 1 on top of them. `latest_checkpoint`'s docstring gives the rules (a
bundle newer than the state file, none, a roll-back, a damaged state file);
`check_no_lost_checkpoint` says how to recover from outside damage.

The code is split by what it handles, all of it behind the functions of
this module (callers import only these):
- `checkpoint_bundles`: the bundle files, which bundles are complete, which
  file of a damaged one is at fault, deleting old ones;
- `checkpoint_state`: the `checkpoint` state file (reading, formatting,
  atomic replacement) and the rule above for the latest checkpoint;
- `checkpoint_reading`: reading a bundle while a trainer may be replacing
  it, and the errors for damaged ones;
- `filesystem`: the `tf.io.gfile` helpers they share.
"""

from __future__ import annotations

import operator
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from kmeans_estimator import errors
from kmeans_estimator.io import checkpoint_bundles as bundles_lib
from kmeans_estimator.io import checkpoint_reading as reading_lib
from kmeans_estimator.io import checkpoint_state as state_lib
from kmeans_estimator.io import filesystem

__all__ = [
    'CheckpointExistsError',
    'CheckpointWriteError',
    'check_no_lost_checkpoint',
    'latest_checkpoint',
    'list_checkpoint_variables',
    'read_checkpoint',
    'remove_stale_temp_files',
    'save_checkpoint',
]

# Files of a save that did not finish: the bundle under its temporary prefix
# (SaveV2 may add its own `.tempstate<n>` suffix) and the state file's
# temporary copy. The names are those `save_checkpoint` and
# `state_lib.write_state_file` make.
_STALE_TEMP_RE = re.compile(
    re.escape(bundles_lib.PREFIX_BASENAME) + r'-\d+_temp_[0-9a-f]{32}\b.*|' +
    re.escape(state_lib.STATE_FILENAME) + r'\.tmp[0-9a-f]{32}')

# Defined in `errors`; importable from here as before.
CheckpointWriteError = errors.CheckpointWriteError
CheckpointExistsError = errors.CheckpointExistsError


def save_checkpoint(model_dir: str,
                    global_step: int,
                    tensors: Mapping[str, Any],
                    keep_checkpoint_max: int | None = 5) -> str:
  """Atomically writes a name-based checkpoint for `global_step`.

  Writes `model_dir/model.ckpt-{global_step}.index` and
  `model_dir/model.ckpt-{global_step}.data-00000-of-00001`, holding every entry
  of `tensors` under exactly its name, and then records the new checkpoint as
  the latest one in `model_dir/checkpoint`. Entries already listed in that
  state file (for example by the legacy TF1 estimator) are kept, so training
  can continue in an existing model directory.

  The write is atomic: the bundle goes to a temporary prefix first, its data
  and index files are renamed to the final names, and only then is the state
  file replaced (itself through a temporary file and a rename). If the process
  dies at any moment, `tf.train.latest_checkpoint(model_dir)` still names a
  complete checkpoint.

  Existing checkpoints are never overwritten: if
  `model.ckpt-{global_step}.index` exists, nothing is written and
  `CheckpointExistsError` names its files. A data file without its index is
  what a save killed between its two renames leaves; it is not a checkpoint
  and is replaced. If the state file lists the step although its index
  file is gone, that entry is dropped first, so that the state file never
  names a half-written checkpoint. Complete bundles newer than the state
  file's latest entry that it does not list (left by a save killed before
  its state file was written, or all of them when the state file was
  deleted) are listed again, oldest first, before the new checkpoint, so
  that `keep_checkpoint_max` counts them. If the save fails, the files it
  renamed into place are removed again unless the state file names them.

  Args:
    model_dir: Directory to write to; created if it does not exist. Any path
      or URL that `tf.io.gfile` understands.
    global_step: Non-negative integer step; it names the checkpoint.
    tensors: Mapping from variable name to value. Values may be numpy arrays,
      Python scalars, `tf.Tensor`s or `tf.Variable`s of any dtype (including
      bool, int64 and string) and any shape (including scalars). Values that
      are not TensorFlow objects are converted with `np.asarray` first, so a
      Python `int` is stored as int64 and a Python `float` as float64.
    keep_checkpoint_max: Keep only this many of the newest checkpoints listed
      in the state file, deleting the files of older ones (only those inside
      `model_dir`) after the state file has been updated. `None` or `0` keeps
      all of them.

  Returns:
    The checkpoint prefix, `os.path.join(model_dir, 'model.ckpt-<step>')`,
    which is what `tf.train.latest_checkpoint(model_dir)` now returns.

  Raises:
    ValueError: If an argument is invalid.
    TypeError: If a value cannot be stored in a checkpoint.
    RuntimeError: If called while not executing eagerly.
    CheckpointExistsError: If the checkpoint of `global_step` exists.
    CheckpointWriteError: If the file system refuses the write. Previously
      saved checkpoints are intact and temporary files are removed.
  """
  model_dir = _validate_model_dir(model_dir)
  step = _validate_global_step(global_step)
  keep = _validate_keep_checkpoint_max(keep_checkpoint_max)
  names, values = _prepare_tensors(tensors)
  if not tf.executing_eagerly():
    raise RuntimeError(
        '`save_checkpoint` writes files immediately and must run eagerly, '
        'not inside a `tf.function` or a TF1 graph. Call it from regular '
        'Python code.')

  _makedirs(model_dir)
  prefix = os.path.join(model_dir, f'{bundles_lib.PREFIX_BASENAME}-{step}')
  _refuse_existing(model_dir, prefix)
  temp_prefix = f'{prefix}_temp_{uuid.uuid4().hex}'
  state = state_lib.read_state(model_dir)
  # Before anything here rewrites the state file (its age is compared).
  unrecorded = state_lib.bundles_to_list(model_dir, state, step)

  succeeded = False
  dropped: list[str] = []
  renamed: list[str] = []
  try:
    if state.contains(prefix):
      # The final files are about to be replaced one by one; make sure the
      # state file never names them while they are inconsistent. (Before
      # the bundle is written, so that it is newer than the state file,
      # as `checkpoint_state` expects if the save is killed.)
      state = state.without(prefix)
      state_lib.write_state_file(model_dir, state)
    with tf.device('/cpu:0'):
      tf.raw_ops.SaveV2(
          prefix=temp_prefix,
          tensor_names=names,
          shape_and_slices=[''] * len(names),
          tensors=values)
    # Data first, so that an `.index` file (which TensorFlow tools take as
    # the sign of a checkpoint) never refers to a missing data file. A data
    # file already there has no index (checked above): a killed save's.
    data, index = bundles_lib.DATA_SUFFIX, bundles_lib.INDEX_SUFFIX
    tf.io.gfile.rename(temp_prefix + data, prefix + data, overwrite=True)
    renamed.append(prefix + data)
    tf.io.gfile.rename(temp_prefix + index, prefix + index, overwrite=False)
    renamed.append(prefix + index)
    for found in sorted(unrecorded):
      state = state.with_latest(*unrecorded[found])
    state = state.with_latest(prefix, timestamp=time.time())
    state, dropped = state.trimmed(keep, protect=prefix)
    state_lib.write_state_file(model_dir, state)
    succeeded = True
  except filesystem.WRITE_ERRORS as e:
    raise CheckpointWriteError(
        f"Could not write checkpoint '{prefix}' to `model_dir` ({e}). Make "
        'sure that `model_dir` is a directory this process can create and '
        'write to, with enough free space, or pass another `model_dir`. '
        "Checkpoints listed in its 'checkpoint' file are still complete. "
        f"Received: model_dir='{model_dir}'") from e
  finally:
    if not succeeded:
      filesystem.remove_files_with_prefix(model_dir,
                                          os.path.basename(temp_prefix))
      _unrename(model_dir, prefix, renamed)

  for old_prefix in dropped:
    bundles_lib.delete_checkpoint_files(model_dir, old_prefix)
  logging.info('Saved checkpoint for step %d to %s.', step, prefix)
  return prefix


def latest_checkpoint(model_dir: str) -> str | None:
  """Returns the prefix of the newest checkpoint in `model_dir`, if any.

  Normally this is `tf.train.latest_checkpoint`, the answer users and
  TensorFlow tooling get: the `model_checkpoint_path` of the `checkpoint`
  state file, provided its `.index` file exists. The files are looked at
  too, because the state file can lag behind them or be gone:
  - A complete `model.ckpt-<step>` bundle in `model_dir` (its index and
    every data shard present) of a later step than the state file's latest
    entry, and written no earlier than the state file (its index file's
    modification time is not older than the state file's), is the latest
    checkpoint: a save killed after its renames but before its state file
    was written leaves one. A later bundle that is older than the state
    file is not taken: the state file was written after it, by hand or by
    a tool, to name an earlier checkpoint (rolling a model back is done so),
    and the state file is followed, as TensorFlow's readers follow it. Such
    a bundle is left alone; a save of its step is refused
    (`CheckpointExistsError`) until it is moved away.
  - Without a state file, the newest complete bundle is the latest
    checkpoint (the state file was deleted, or a first save was killed
    before writing it); a warning says so. TensorFlow's own readers
    (`tf.train.load_variable(model_dir, ...)`) find none until the next
    `save_checkpoint` writes the state file again.
  - A state file that is unreadable, or that names a checkpoint whose index
    file is missing, gives None: it is not clear which checkpoint is meant,
    and `check_no_lost_checkpoint` raises an error that says how to
    recover. An older checkpoint is never taken in its place. (If the state
    file was replaced while it was read, as a trainer deleting its oldest
    checkpoint does, it is read again.)

  Args:
    model_dir: Directory holding the `checkpoint` state file.

  Returns:
    The checkpoint prefix, or `None` if `model_dir` does not exist, holds no
    complete checkpoint, or has a state file that is unusable.
  """
  return state_lib.latest(_validate_model_dir(model_dir))


def check_no_lost_checkpoint(model_dir: str) -> None:
  """Raises if `model_dir` holds checkpoints that no longer can be found.

  `tf.train.latest_checkpoint` (and `latest_checkpoint`) return None both for
  a directory never trained into and for one whose `checkpoint` state file
  is damaged or names a checkpoint whose index file is gone. Treating the
  second kind as untrained would restart training from step 0 and let
  `keep_checkpoint_max` delete the older checkpoints still listed, so call
  this before concluding that `model_dir` holds no model. `save_checkpoint`
  never leaves a directory in either state; only outside damage does.

  Args:
    model_dir: The model directory.

  Raises:
    ValueError: If the state file is unreadable while checkpoint files
      exist, or names a latest checkpoint whose index file is missing, or
      is missing while index files exist but no checkpoint is complete. The
      message names the files and says how to recover.
  """
  model_dir = _validate_model_dir(model_dir)
  state_path = os.path.join(model_dir, state_lib.STATE_FILENAME)
  try:
    if not tf.io.gfile.exists(state_path):
      _check_no_damaged_bundles(model_dir)
      return
    try:
      proto = tf.train.get_checkpoint_state(model_dir)
    except ValueError:  # A state file without `model_checkpoint_path`.
      proto = None
    bundles = sorted(
        name[:-len(bundles_lib.INDEX_SUFFIX)]
        for name in tf.io.gfile.listdir(model_dir)
        if name.startswith(bundles_lib.PREFIX_BASENAME) and
        name.endswith(bundles_lib.INDEX_SUFFIX) and
        not _STALE_TEMP_RE.fullmatch(name))
  except filesystem.WRITE_ERRORS:
    return  # Unreadable directory: reading the checkpoint will say so.
  if proto is None or not proto.model_checkpoint_path:
    if bundles:
      raise ValueError(
          f"The checkpoint state file '{state_path}' is unreadable, but "
          f'`model_dir` holds checkpoints {bundles}. Restore the state file '
          'from a backup, or write one naming the checkpoint to resume from '
          '(a line model_checkpoint_path: "model.ckpt-<step>"), or move the '
          'checkpoint files away with it to train from scratch. Received: '
          f"model_dir='{model_dir}'")
    return
  latest = proto.model_checkpoint_path
  if not tf.io.gfile.exists(latest + bundles_lib.INDEX_SUFFIX):
    raise ValueError(
        f"The checkpoint state file '{state_path}' names the latest "
        f"checkpoint '{latest}', but its index file '{latest}"
        f"{bundles_lib.INDEX_SUFFIX}' is missing. Restore its files from a "
        'backup, or edit the state file to name an older checkpoint '
        f'(model_dir holds {bundles or "none"}), or move the checkpoint files '
        'away with it to train from scratch. Received: '
        f"model_dir='{model_dir}'")


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
  """Reads every variable of a checkpoint into numpy arrays.

  Reading a model directory is safe while a trainer writes into it: if the
  latest checkpoint is replaced by a newer one (and its files deleted by
  `keep_checkpoint_max`) while it is being read, the read starts over on the
  newer one.

  Args:
    path: Either a model directory (its latest checkpoint is read) or a
      checkpoint prefix such as `model_dir/model.ckpt-10`.

  Returns:
    A dict from variable name to numpy array. Scalars are 0-d arrays; string
    tensors are arrays of `bytes`.

  Raises:
    ValueError: If `path` is a directory without a checkpoint, or if the
      checkpoint is missing, truncated or corrupted; the message names the
      checkpoint and the damaged file.
  """

  def read(reader):
    dtypes = reader.get_variable_to_dtype_map()
    return {
        name: np.asarray(reader.get_tensor(name)) for name in sorted(dtypes)
    }

  return reading_lib.read_with(_validate_path(path), read)


def list_checkpoint_variables(path: str) -> list[tuple[str, list[int]]]:
  """Lists the names and shapes of the variables in a checkpoint.

  Like `tf.train.list_variables`, but with the error handling of
  `read_checkpoint`.

  Args:
    path: Either a model directory (its latest checkpoint is used) or a
      checkpoint prefix.

  Returns:
    `(name, shape)` pairs sorted by name; `shape` is a list of ints.

  Raises:
    ValueError: If `path` is a directory without a checkpoint, or if the
      checkpoint is missing or corrupted.
  """

  def read(reader):
    shapes = reader.get_variable_to_shape_map()
    return [(name, list(shapes[name])) for name in sorted(shapes)]

  return reading_lib.read_with(_validate_path(path), read)


def remove_stale_temp_files(model_dir: str) -> list[str]:
  """Deletes the temporary files of saves that never finished.

  A process killed inside `save_checkpoint` leaves its bundle under a
  temporary prefix (`model.ckpt-<step>_temp_<hex>.*`) and possibly a
  temporary state file (`checkpoint.tmp<hex>`). They are never read, but
  they take space. Call this only while no other process can be saving into
  `model_dir` (`locking.model_dir_lock` does, after taking the lock).

  Args:
    model_dir: The model directory.

  Returns:
    The names of the files removed (failures are logged, not raised).
  """
  model_dir = _validate_model_dir(model_dir)
  try:
    names = tf.io.gfile.listdir(model_dir)
  except filesystem.WRITE_ERRORS as e:
    logging.warning('Could not list %s to remove stale temporary files: %s',
                    model_dir, e)
    return []
  removed = [name for name in sorted(names) if _STALE_TEMP_RE.fullmatch(name)]
  for name in removed:
    logging.info('Removing %s, left by an interrupted checkpoint save.', name)
    filesystem.remove_quietly(os.path.join(model_dir, name))
  return removed


def checkpoint_stamp(prefix):
  """(prefix, index file mtime, size), or None: changes when it is rewritten."""
  try:
    stat = tf.io.gfile.stat(prefix + '.index')
  except tf.errors.OpError:
    return None
  return (prefix, stat.mtime_nsec, stat.length)


# ---------------------------------------------------------------------------
# The steps of a save, and of check_no_lost_checkpoint.
# ---------------------------------------------------------------------------


def _makedirs(model_dir: str) -> None:
  """Creates `model_dir`, turning file system errors into a clear error."""
  try:
    tf.io.gfile.makedirs(model_dir)
    is_dir = tf.io.gfile.isdir(model_dir)
  except filesystem.WRITE_ERRORS as e:
    raise CheckpointWriteError(
        f'Could not create `model_dir` ({e}). Pass a directory that this '
        'process can create and write to. Received: model_dir='
        f"'{model_dir}'") from e
  if not is_dir:
    raise CheckpointWriteError(
        '`model_dir` exists but is not a directory. Pass the path of a '
        f"directory. Received: model_dir='{model_dir}'")


def _refuse_existing(model_dir: str, prefix: str) -> None:
  """Raises CheckpointExistsError if the checkpoint `prefix` exists."""
  try:
    exists = tf.io.gfile.exists(prefix + bundles_lib.INDEX_SUFFIX)
  except filesystem.WRITE_ERRORS:
    return  # The save itself will report the file system's error.
  if not exists:
    return
  directory, base = os.path.split(prefix)
  try:
    files = sorted(name for name in tf.io.gfile.listdir(directory)
                   if name.startswith(base) and (
                       name[len(base):] == bundles_lib.INDEX_SUFFIX or
                       bundles_lib.DATA_SHARD_RE.fullmatch(name[len(base):])))
  except filesystem.WRITE_ERRORS:
    files = [base + bundles_lib.INDEX_SUFFIX]
  raise CheckpointExistsError(
      f"The checkpoint '{prefix}' already exists ({files}), and checkpoints "
      'are never overwritten; nothing was written. The latest checkpoint is '
      f"{latest_checkpoint(model_dir)!r} (if model_dir's "
      f"'{state_lib.STATE_FILENAME}' file was edited or restored from an "
      'older copy, it may name an older one). Move those files away, or '
      'train into another model_dir. '
      f"Received: model_dir='{model_dir}'")


def _unrename(model_dir: str, prefix: str, renamed: list[str]) -> None:
  """Removes the files a failed save renamed into place, index first.

  Unless the state file names `prefix` (the failure came after it was
  written): then they are the latest checkpoint.
  """
  if not renamed:
    return
  try:
    if state_lib.read_state(model_dir).contains(prefix):
      return
  except filesystem.WRITE_ERRORS:
    return
  for path in reversed(renamed):
    filesystem.remove_quietly(path)


def _check_no_damaged_bundles(model_dir: str) -> None:
  """Raises if, without a state file, the newest checkpoint is not whole."""
  names = tf.io.gfile.listdir(model_dir) if tf.io.gfile.isdir(
      model_dir) else []
  newest = bundles_lib.newest_index(names)
  if newest is None or newest in bundles_lib.complete_bundles(model_dir,
                                                              names):
    return
  prefix = os.path.join(model_dir, f'{bundles_lib.PREFIX_BASENAME}-{newest}')
  raise ValueError(
      f"`model_dir` has no '{state_lib.STATE_FILENAME}' state file, and its "
      f"newest checkpoint '{prefix}' is incomplete: "
      f"{bundles_lib.damaged_files(prefix, 'open')}. Restore its files from a "
      'backup, or move them away to fall back to the previous checkpoint (or '
      'all checkpoint files, to train from scratch). Received: '
      f"model_dir='{model_dir}'")


# ---------------------------------------------------------------------------
# Argument validation.
# ---------------------------------------------------------------------------


def _validate_model_dir(model_dir: Any) -> str:
  """Returns `model_dir` as a non-empty `str`."""
  try:
    model_dir = os.fspath(model_dir)
  except TypeError:
    model_dir = None
  if not isinstance(model_dir, str) or not model_dir:
    raise ValueError(
        '`model_dir` must be a non-empty path string. Pass the directory '
        f'that holds (or should hold) the checkpoints. Received: '
        f'model_dir={model_dir!r}')
  return model_dir


def _validate_path(path: Any) -> str:
  """Returns `path` as a non-empty `str`."""
  try:
    path = os.fspath(path)
  except TypeError:
    path = None
  if not isinstance(path, str) or not path:
    raise ValueError(
        '`path` must be a model directory or a checkpoint prefix such as '
        f"'model_dir/model.ckpt-10'. Received: path={path!r}")
  return path


def _validate_global_step(global_step: Any) -> int:
  """Returns `global_step` as a non-negative Python int."""
  step = None
  if not isinstance(global_step, (bool, np.bool_)):
    try:
      step = operator.index(
          global_step.numpy() if tf.is_tensor(global_step) else global_step)
    except (TypeError, AttributeError, ValueError):
      step = None
  if step is None or step < 0:
    raise ValueError(
        '`global_step` must be a non-negative integer; it names the '
        f'checkpoint. Received: global_step={global_step!r}')
  return int(step)


def _validate_keep_checkpoint_max(keep_checkpoint_max: Any) -> int:
  """Returns `keep_checkpoint_max` as an int, 0 meaning "keep all"."""
  if keep_checkpoint_max is None:
    return 0
  keep = None
  if not isinstance(keep_checkpoint_max, (bool, np.bool_)):
    try:
      keep = operator.index(keep_checkpoint_max)
    except TypeError:
      keep = None
  if keep is None or keep < 0:
    raise ValueError(
        '`keep_checkpoint_max` must be None, 0 (both keep every checkpoint) '
        'or a positive number of checkpoints to keep. Received: '
        f'keep_checkpoint_max={keep_checkpoint_max!r}')
  return int(keep)


def _prepare_tensors(tensors: Any) -> tuple[list[str], list[tf.Tensor]]:
  """Validates `tensors` and converts it to sorted names and eager tensors."""
  if not isinstance(tensors, Mapping) or not tensors:
    raise ValueError(
        '`tensors` must be a non-empty mapping from variable name to value. '
        f'Received: tensors={tensors!r}')
  names: list[str] = []
  values: list[tf.Tensor] = []
  for name in sorted(tensors, key=str):
    if not isinstance(name, str) or not name:
      raise ValueError(
          'Every key of `tensors` must be a non-empty string; it is the '
          f'variable name in the checkpoint. Received: key={name!r}')
    value = tensors[name]
    try:
      if isinstance(value, tf.Variable) or tf.is_tensor(value):
        tensor = tf.convert_to_tensor(value)
      else:
        tensor = tf.convert_to_tensor(np.asarray(value))
    except (TypeError, ValueError) as e:
      raise TypeError(
          f"The value of `tensors['{name}']` cannot be stored in a "
          f'checkpoint ({e}). Pass a numpy array, a number or a TensorFlow '
          f'tensor or variable. Received: type={type(value).__name__}') from e
    if tensor.dtype in (tf.resource, tf.variant):
      raise TypeError(
          f"The value of `tensors['{name}']` has dtype {tensor.dtype.name}, "
          'which cannot be stored in a checkpoint. Pass the variable itself '
          'or its value instead of a handle.')
    names.append(name)
    values.append(tensor)
  return names, values
