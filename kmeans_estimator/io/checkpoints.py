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
step 1 on top of them.
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
from google.protobuf import text_encoding

from kmeans_estimator import errors

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

# Name of the `CheckpointState` text proto file, as used by TensorFlow.
_STATE_FILENAME = 'checkpoint'
# Base name of the checkpoint prefixes, as used by the legacy estimator.
_PREFIX_BASENAME = 'model.ckpt'
# SaveV2 without sharding always writes exactly one data shard.
_DATA_SUFFIX = '.data-00000-of-00001'
_INDEX_SUFFIX = '.index'
_DATA_SHARD_RE = re.compile(r'\.data-\d{5}-of-\d{5}$')
# The index file of a checkpoint of ours (or the legacy estimator's).
_BUNDLE_INDEX_RE = re.compile(
    re.escape(_PREFIX_BASENAME) + r'-(\d+)' + re.escape(_INDEX_SUFFIX))
_SHARD_RE = re.compile(r'\.data-(\d{5})-of-(\d{5})')
# Files of a save that did not finish: the bundle under its temporary prefix
# (SaveV2 may add its own `.tempstate<n>` suffix) and the state file's
# temporary copy. The names are those `save_checkpoint` and
# `_write_state_file` make.
_STALE_TEMP_RE = re.compile(
    re.escape(_PREFIX_BASENAME) + r'-\d+_temp_[0-9a-f]{32}\b.*|' +
    re.escape(_STATE_FILENAME) + r'\.tmp[0-9a-f]{32}')
# How often a reader of a model directory starts over when the checkpoint it
# opened was replaced by a newer one (and deleted) while it read.
_READ_ATTEMPTS = 5

# Exceptions that `tf.train.load_checkpoint` and `CheckpointReader` raise for
# missing, truncated or corrupted bundles. Besides `tf.errors.OpError`, the
# reader raises a bare `IndexError` ("Read less bytes than requested") for a
# truncated data file.
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError,
                OSError)
# Exceptions that mean "the file system refused the write".
_WRITE_ERRORS = (tf.errors.OpError, OSError)


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
  prefix = os.path.join(model_dir, f'{_PREFIX_BASENAME}-{step}')
  _refuse_existing(model_dir, prefix)
  temp_prefix = f'{prefix}_temp_{uuid.uuid4().hex}'
  state = _read_state(model_dir)
  # Before anything here rewrites the state file (its age is compared).
  unrecorded = _bundles_to_list(model_dir, state, step)

  succeeded = False
  dropped: list[str] = []
  renamed: list[str] = []
  try:
    if state.contains(prefix):
      # The final files are about to be replaced one by one; make sure the
      # state file never names them while they are inconsistent. (Before
      # the bundle is written, so that it is newer than the state file,
      # as `_unrecorded_bundles` expects if the save is killed.)
      state = state.without(prefix)
      _write_state_file(model_dir, state)
    with tf.device('/cpu:0'):
      tf.raw_ops.SaveV2(
          prefix=temp_prefix,
          tensor_names=names,
          shape_and_slices=[''] * len(names),
          tensors=values)
    # Data first, so that an `.index` file (which TensorFlow tools take as
    # the sign of a checkpoint) never refers to a missing data file. A data
    # file already there has no index (checked above): a killed save's.
    tf.io.gfile.rename(temp_prefix + _DATA_SUFFIX, prefix + _DATA_SUFFIX,
                       overwrite=True)
    renamed.append(prefix + _DATA_SUFFIX)
    tf.io.gfile.rename(temp_prefix + _INDEX_SUFFIX, prefix + _INDEX_SUFFIX,
                       overwrite=False)
    renamed.append(prefix + _INDEX_SUFFIX)
    for found in sorted(unrecorded):
      state = state.with_latest(*unrecorded[found])
    state = state.with_latest(prefix, timestamp=time.time())
    state, dropped = state.trimmed(keep, protect=prefix)
    _write_state_file(model_dir, state)
    succeeded = True
  except _WRITE_ERRORS as e:
    raise CheckpointWriteError(
        f"Could not write checkpoint '{prefix}' to `model_dir` ({e}). Make "
        'sure that `model_dir` is a directory this process can create and '
        'write to, with enough free space, or pass another `model_dir`. '
        "Checkpoints listed in its 'checkpoint' file are still complete. "
        f"Received: model_dir='{model_dir}'") from e
  finally:
    if not succeeded:
      _remove_files_with_prefix(model_dir, os.path.basename(temp_prefix))
      _unrename(model_dir, prefix, renamed)

  for old_prefix in dropped:
    _delete_checkpoint_files(model_dir, old_prefix)
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
  model_dir = _validate_model_dir(model_dir)
  for _ in range(_LATEST_ATTEMPTS):
    found, written = _latest_once(model_dir)
    # None while a trainer replaced the state file: the one read may have
    # named a checkpoint that keep_checkpoint_max deleted since. Read again.
    if found is not None or written is None or written == _mtime_or_none(
        os.path.join(model_dir, _STATE_FILENAME)):
      return found
  return found


# How often `latest_checkpoint` reads a state file that keeps changing.
_LATEST_ATTEMPTS = 10


def _mtime_or_none(path: str) -> int | None:
  try:
    return _mtime(path)
  except _WRITE_ERRORS:
    return None


def _latest_once(model_dir: str) -> tuple[str | None, int | None]:
  """`latest_checkpoint`'s answer, and the state file's time it read."""
  # In this order, for a trainer may be saving meanwhile: the state file's
  # time, then its content, then the files. A save finishing in between
  # then makes its bundle look newer than the state file, never older (and
  # so never hides it behind the state file's previous entry).
  state_path = os.path.join(model_dir, _STATE_FILENAME)
  has_state, written = True, None
  try:
    written = _mtime(state_path)
  except (FileNotFoundError, tf.errors.NotFoundError):
    has_state = False
  except _WRITE_ERRORS:
    pass  # Let TensorFlow's reader report it.
  latest = None
  if has_state:
    try:
      latest = tf.train.latest_checkpoint(model_dir)
    except ValueError as e:  # A state file without a latest entry.
      logging.warning('Ignoring invalid checkpoint state in %s: %s',
                      model_dir, e)
      return None, None
    if latest is None:
      return None, written  # Unusable: check_no_lost_checkpoint says why.
  try:
    names = (tf.io.gfile.listdir(model_dir)
             if tf.io.gfile.isdir(model_dir) else [])
  except _WRITE_ERRORS:
    names = []
  bundles = _complete_bundles(model_dir, names)
  newest = max(bundles, default=None)
  if newest is None:
    return latest, written
  if latest is None:
    if _newest_index(names) != newest:
      # The newest is damaged: check_no_lost_checkpoint says so.
      return None, None
    logging.warning(
        "%s has no '%s' state file; using its newest complete checkpoint, "
        '%s.', model_dir, _STATE_FILENAME, bundles[newest])
    return bundles[newest], None
  unrecorded = _unrecorded_bundles(bundles, latest, written)
  if unrecorded:
    return unrecorded[max(unrecorded)], written
  return latest, written


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
  state_path = os.path.join(model_dir, _STATE_FILENAME)
  try:
    if not tf.io.gfile.exists(state_path):
      _check_no_damaged_bundles(model_dir)
      return
    try:
      proto = tf.train.get_checkpoint_state(model_dir)
    except ValueError:  # A state file without `model_checkpoint_path`.
      proto = None
    bundles = sorted(
        name[:-len(_INDEX_SUFFIX)]
        for name in tf.io.gfile.listdir(model_dir)
        if name.startswith(_PREFIX_BASENAME) and name.endswith(_INDEX_SUFFIX)
        and not _STALE_TEMP_RE.fullmatch(name))
  except _WRITE_ERRORS:
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
  if not tf.io.gfile.exists(latest + _INDEX_SUFFIX):
    raise ValueError(
        f"The checkpoint state file '{state_path}' names the latest "
        f"checkpoint '{latest}', but its index file '{latest}"
        f"{_INDEX_SUFFIX}' is missing. Restore its files from a backup, or "
        "edit the state file to name an older checkpoint (model_dir holds "
        f'{bundles or "none"}), or move the checkpoint files away with it to '
        f"train from scratch. Received: model_dir='{model_dir}'")


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

  return _read_with(path, read)


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

  return _read_with(path, read)


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
  except _WRITE_ERRORS as e:
    logging.warning('Could not list %s to remove stale temporary files: %s',
                    model_dir, e)
    return []
  removed = [name for name in sorted(names) if _STALE_TEMP_RE.fullmatch(name)]
  for name in removed:
    logging.info('Removing %s, left by an interrupted checkpoint save.', name)
    _remove_quietly(os.path.join(model_dir, name))
  return removed


# ---------------------------------------------------------------------------
# Finding checkpoints from their files.
# ---------------------------------------------------------------------------


def _step_of(prefix: str) -> int | None:
  """17 for '.../model.ckpt-17'; None for another name."""
  match = _BUNDLE_INDEX_RE.fullmatch(os.path.basename(prefix) + _INDEX_SUFFIX)
  return None if match is None else int(match[1])


def _complete_bundles(model_dir: str, names) -> dict[int, str]:
  """{step: prefix} of the complete `model.ckpt-<step>` bundles in `names`.

  Complete: the index file and every data shard of one `-of-<n>` set exist.
  """
  names = list(names)
  shards: dict[str, dict[int, set[int]]] = {}
  indexed: dict[str, int] = {}
  for name in names:
    match = _BUNDLE_INDEX_RE.fullmatch(name)
    if match:
      indexed[name[:-len(_INDEX_SUFFIX)]] = int(match[1])
  for name in names:
    base, dot, rest = name.partition('.data-')
    match = _SHARD_RE.fullmatch(dot + rest) if dot else None
    if match and base in indexed:
      shards.setdefault(base, {}).setdefault(int(match[2]), set()).add(
          int(match[1]))
  return {step: os.path.join(model_dir, base)
          for base, step in indexed.items()
          if any(found == set(range(total))
                 for total, found in shards.get(base, {}).items())}


def _newest_index(names) -> int | None:
  """The highest step of the `model.ckpt-<step>.index` files in `names`."""
  steps = [int(match[1]) for match in map(_BUNDLE_INDEX_RE.fullmatch, names)
           if match]
  return max(steps, default=None)


def _check_no_damaged_bundles(model_dir: str) -> None:
  """Raises if, without a state file, the newest checkpoint is not whole."""
  names = tf.io.gfile.listdir(model_dir) if tf.io.gfile.isdir(
      model_dir) else []
  newest = _newest_index(names)
  if newest is None or newest in _complete_bundles(model_dir, names):
    return
  prefix = os.path.join(model_dir, f'{_PREFIX_BASENAME}-{newest}')
  raise ValueError(
      f"`model_dir` has no '{_STATE_FILENAME}' state file, and its newest "
      f"checkpoint '{prefix}' is incomplete: "
      f"{_damaged_files(prefix, 'open')}. Restore its files from a backup, "
      'or move them away to fall back to the previous checkpoint (or all '
      'checkpoint files, to train from scratch). Received: '
      f"model_dir='{model_dir}'")


def _refuse_existing(model_dir: str, prefix: str) -> None:
  """Raises CheckpointExistsError if the checkpoint `prefix` exists."""
  try:
    exists = tf.io.gfile.exists(prefix + _INDEX_SUFFIX)
  except _WRITE_ERRORS:
    return  # The save itself will report the file system's error.
  if not exists:
    return
  directory, base = os.path.split(prefix)
  try:
    files = sorted(name for name in tf.io.gfile.listdir(directory)
                   if name.startswith(base) and (
                       name[len(base):] == _INDEX_SUFFIX or
                       _DATA_SHARD_RE.fullmatch(name[len(base):])))
  except _WRITE_ERRORS:
    files = [base + _INDEX_SUFFIX]
  raise CheckpointExistsError(
      f"The checkpoint '{prefix}' already exists ({files}), and checkpoints "
      'are never overwritten; nothing was written. The latest checkpoint is '
      f"{latest_checkpoint(model_dir)!r} (if model_dir's '{_STATE_FILENAME}' "
      'file was edited or restored from an older copy, it may name an older '
      'one). Move those files away, or train into another model_dir. '
      f"Received: model_dir='{model_dir}'")


def _unrecorded_bundles(bundles: dict[int, str], latest: str,
                        written: int | None) -> dict[int, str]:
  """The `bundles` the state file, naming `latest`, has not caught up with.

  Those of a later step than `latest` whose index file is not older than
  the state file's modification time `written` (ns): saves that renamed
  their files into place after the state file was last written. Bundles
  older than the state file were there when it was written, and left out
  of it on purpose (a roll-back); they are not returned. A bundle whose
  index is gone by now is not returned. If a time cannot be read (or
  `written` is None), the bundle is returned.
  """
  after = _step_of(latest)
  if after is None:
    return {}
  unrecorded = {}
  for found, prefix in bundles.items():
    if found <= after:
      continue
    if written is not None:
      try:
        if _mtime(prefix + _INDEX_SUFFIX) < written:
          continue
      except (FileNotFoundError, tf.errors.NotFoundError):
        continue  # Deleted meanwhile (keep_checkpoint_max).
      except _WRITE_ERRORS:
        pass
    unrecorded[found] = prefix
  return unrecorded


def _mtime(path: str) -> int:
  """`path`'s modification time in ns (TensorFlow's stat has whole seconds
  for local files, too coarse to order a save and a state file)."""
  if '://' in path:
    return tf.io.gfile.stat(path).mtime_nsec
  return os.stat(path).st_mtime_ns


def _bundles_to_list(model_dir: str, state: _State,
                     step: int) -> dict[int, tuple[str, float]]:
  """{step: (prefix, timestamp)} of bundles a save of `step` lists first.

  They are the complete bundles before `step` that `latest_checkpoint`
  may have resumed from though the state file does not name them: all of
  them without a state file, else those it has not caught up with
  (`_unrecorded_bundles`). Listed, `keep_checkpoint_max` counts them.
  Called before the save writes anything.
  """
  state_path = os.path.join(model_dir, _STATE_FILENAME)
  try:
    written = _mtime(state_path) if state.latest is not None else None
  except _WRITE_ERRORS:
    written = None
  try:
    bundles = _complete_bundles(model_dir, tf.io.gfile.listdir(model_dir))
  except _WRITE_ERRORS:
    return {}
  if state.latest is not None:
    bundles = _unrecorded_bundles(bundles, state.latest, written)
  listed = {}
  for found, prefix in bundles.items():
    if found >= step or state.contains(prefix):
      continue
    try:
      stamp = _mtime(prefix + _INDEX_SUFFIX) / 1e9
    except _WRITE_ERRORS:
      stamp = time.time()
    listed[found] = (prefix, stamp)
  return listed


def _unrename(model_dir: str, prefix: str, renamed: list[str]) -> None:
  """Removes the files a failed save renamed into place, index first.

  Unless the state file names `prefix` (the failure came after it was
  written): then they are the latest checkpoint.
  """
  if not renamed:
    return
  try:
    if _read_state(model_dir).contains(prefix):
      return
  except _WRITE_ERRORS:
    return
  for path in reversed(renamed):
    _remove_quietly(path)


# ---------------------------------------------------------------------------
# Reading helpers.
# ---------------------------------------------------------------------------


def _read_with(path: Any, read):
  """Opens the checkpoint at `path` and returns `read(reader)`.

  For a model directory, a failure on a checkpoint that is no longer the
  latest one (a trainer moved on and deleted it meanwhile) starts over on the
  new latest checkpoint; a failure on the checkpoint that is still the latest
  one is a damaged checkpoint.
  """
  path = _validate_path(path)
  is_dir = tf.io.gfile.isdir(path)
  for attempt in range(_READ_ATTEMPTS):
    prefix = _resolve_prefix(path) if is_dir else path
    stage = 'open'
    try:
      reader = tf.train.load_checkpoint(prefix)
      stage = 'read'
      return read(reader)
    except _READ_ERRORS as e:
      if (is_dir and attempt + 1 < _READ_ATTEMPTS and
          latest_checkpoint(path) != prefix):
        logging.info('Checkpoint %s was replaced while being read; reading '
                     'the latest one again.', prefix)
        continue
      raise _corrupted_error(path, prefix, stage, e) from e
  raise AssertionError('unreachable')


def _resolve_prefix(model_dir: str) -> str:
  """The latest checkpoint of `model_dir`; a ValueError if there is none."""
  prefix = latest_checkpoint(model_dir)
  if prefix is None:
    raise ValueError(
        f"`model_dir` contains no checkpoint: its '{_STATE_FILENAME}' file "
        'is missing, unreadable or names a checkpoint whose files are '
        'gone. Train a model into it first, or pass the directory of a '
        f"trained model. Received: model_dir='{model_dir}'")
  return prefix


def _damaged_files(prefix: str, stage: str) -> str:
  """Says which file of the checkpoint `prefix` is missing or damaged."""
  index = prefix + _INDEX_SUFFIX
  if not tf.io.gfile.exists(index):
    return f"its index file '{index}' is missing"
  directory, base = os.path.split(prefix)
  try:
    names = tf.io.gfile.listdir(directory or '.')
  except _WRITE_ERRORS:
    names = []
  data = sorted(
      os.path.join(directory, name) for name in names
      if name.startswith(base) and _DATA_SHARD_RE.fullmatch(name[len(base):]))
  if not data:
    return f"its data file '{prefix}{_DATA_SUFFIX}' is missing"
  if stage == 'open':
    return f"its index file '{index}' is truncated or not a checkpoint index"
  if len(data) == 1:
    return f"its data file '{data[0]}' is truncated or damaged"
  return f'one of its data files {data} is truncated, damaged or missing'


def _corrupted_error(path: str, prefix: str, stage: str,
                     cause: BaseException) -> ValueError:
  """Builds the `ValueError` for a checkpoint that cannot be read."""
  detail = str(cause).strip().splitlines()
  detail = detail[0] if detail else ''
  return ValueError(
      f"The checkpoint '{prefix}' is unreadable or corrupted: "
      f'{_damaged_files(prefix, stage)} ({type(cause).__name__}: {detail}). '
      'Restore its files from a backup, delete this checkpoint (and its '
      "entry in the 'checkpoint' file) to fall back to an older one, or "
      f"retrain. Received: path='{path}'")


# ---------------------------------------------------------------------------
# Checkpoint state file.
# ---------------------------------------------------------------------------


class _State:
  """In-memory view of a `CheckpointState` proto.

  Attributes:
    paths: `all_model_checkpoint_paths`, oldest first, as absolute (or
      `model_dir`-joined) prefixes.
    timestamps: `all_model_checkpoint_timestamps`, aligned with `paths`, or
      `None` when the file did not have one per path (legacy files have none).
    latest: `model_checkpoint_path`, or `None`.
    last_preserved_timestamp: Kept verbatim from the existing file, or `None`.
  """

  def __init__(self, paths: list[str], timestamps: list[float] | None,
               latest: str | None, last_preserved_timestamp: float | None):
    self.paths = paths
    self.timestamps = timestamps
    self.latest = latest
    self.last_preserved_timestamp = last_preserved_timestamp

  def contains(self, prefix: str) -> bool:
    """Whether the state file names `prefix` at all."""
    key = _path_key(prefix)
    return (any(_path_key(p) == key for p in self.paths) or
            (self.latest is not None and _path_key(self.latest) == key))

  def without(self, prefix: str) -> _State:
    """Returns a copy that no longer lists `prefix`."""
    key = _path_key(prefix)
    keep = [i for i, p in enumerate(self.paths) if _path_key(p) != key]
    paths = [self.paths[i] for i in keep]
    timestamps = (None if self.timestamps is None else
                  [self.timestamps[i] for i in keep])
    latest = self.latest
    if latest is None or _path_key(latest) == key:
      latest = paths[-1] if paths else None
    return _State(paths, timestamps, latest, self.last_preserved_timestamp)

  def with_latest(self, prefix: str, timestamp: float) -> _State:
    """Returns a copy with `prefix` appended as the newest checkpoint."""
    state = self.without(prefix)
    paths = state.paths + [prefix]
    timestamps = (None if state.timestamps is None else
                  state.timestamps + [timestamp])
    return _State(paths, timestamps, prefix, state.last_preserved_timestamp)

  def trimmed(self, keep: int, protect: str) -> tuple[_State, list[str]]:
    """Keeps the newest `keep` paths (all if 0); returns (state, dropped)."""
    if not keep or len(self.paths) <= keep:
      return self, []
    dropped = self.paths[:-keep]
    paths = self.paths[-keep:]
    timestamps = None if self.timestamps is None else self.timestamps[-keep:]
    # Never delete files that a kept entry (or the new checkpoint) still uses.
    kept_keys = {_path_key(p) for p in paths} | {_path_key(protect)}
    dropped = [p for p in dropped if _path_key(p) not in kept_keys]
    latest = self.latest
    if latest is not None and _path_key(latest) not in kept_keys:
      latest = paths[-1]
    return (_State(paths, timestamps, latest, self.last_preserved_timestamp),
            dropped)


def _read_state(model_dir: str) -> _State:
  """Reads `model_dir/checkpoint`; an unusable file yields an empty state.

  A state file that cannot be parsed is not fatal: it is replaced by one that
  lists only the new checkpoint (the old checkpoint files are left alone).
  """
  try:
    proto = tf.train.get_checkpoint_state(model_dir)
  except ValueError as e:  # A state file without `model_checkpoint_path`.
    logging.warning('Ignoring invalid checkpoint state in %s: %s', model_dir,
                    e)
    proto = None
  if proto is None:
    return _State([], [], None, None)

  paths: list[str] = []
  timestamps: list[float] | None = []
  raw_timestamps = list(proto.all_model_checkpoint_timestamps)
  aligned = len(raw_timestamps) == len(proto.all_model_checkpoint_paths)
  for i, path in enumerate(proto.all_model_checkpoint_paths):
    key = _path_key(path)
    # Drop duplicates, keeping the newest (last) occurrence.
    later = [_path_key(p) for p in proto.all_model_checkpoint_paths[i + 1:]]
    if key in later:
      continue
    paths.append(path)
    if aligned:
      timestamps.append(raw_timestamps[i])
  if not aligned:
    timestamps = None
  latest = proto.model_checkpoint_path or None
  if latest is not None and not any(
      _path_key(p) == _path_key(latest) for p in paths):
    # TensorFlow always lists the latest checkpoint last; repair if needed.
    paths.append(latest)
    timestamps = None
  last_preserved = proto.last_preserved_timestamp or None
  return _State(paths, timestamps, latest, last_preserved)


def _format_state(model_dir: str, state: _State) -> str:
  """Serializes `state` as a text-format `CheckpointState` proto.

  Paths inside `model_dir` are written relative to it, like TensorFlow does,
  so that the directory can be moved or copied as a whole.
  """

  def quote(path: str) -> str:
    return '"' + text_encoding.CEscape(_relative_to(model_dir, path),
                                       as_utf8=True) + '"'

  lines = [f'model_checkpoint_path: {quote(state.latest)}']
  lines += [f'all_model_checkpoint_paths: {quote(p)}' for p in state.paths]
  if state.timestamps:
    lines += [
        f'all_model_checkpoint_timestamps: {_format_float(t)}'
        for t in state.timestamps
    ]
  if state.last_preserved_timestamp:
    lines.append('last_preserved_timestamp: '
                 f'{_format_float(state.last_preserved_timestamp)}')
  return '\n'.join(lines) + '\n'


def _write_state_file(model_dir: str, state: _State) -> None:
  """Atomically replaces `model_dir/checkpoint` with `state`.

  The content is written to a temporary file that is then renamed over the
  state file, so readers see either the old or the new state, never a partial
  one. A state without any checkpoint removes the file instead, because
  `tf.train.latest_checkpoint` raises on an empty `model_checkpoint_path`.
  """
  state_path = os.path.join(model_dir, _STATE_FILENAME)
  if state.latest is None:
    if tf.io.gfile.exists(state_path):
      tf.io.gfile.remove(state_path)
    return
  temp_path = f'{state_path}.tmp{uuid.uuid4().hex}'
  try:
    with tf.io.gfile.GFile(temp_path, 'w') as f:
      f.write(_format_state(model_dir, state))
    tf.io.gfile.rename(temp_path, state_path, overwrite=True)
  finally:
    if tf.io.gfile.exists(temp_path):
      _remove_quietly(temp_path)


# ---------------------------------------------------------------------------
# File helpers.
# ---------------------------------------------------------------------------


def _makedirs(model_dir: str) -> None:
  """Creates `model_dir`, turning file system errors into a clear error."""
  try:
    tf.io.gfile.makedirs(model_dir)
    is_dir = tf.io.gfile.isdir(model_dir)
  except _WRITE_ERRORS as e:
    raise CheckpointWriteError(
        f'Could not create `model_dir` ({e}). Pass a directory that this '
        'process can create and write to. Received: model_dir='
        f"'{model_dir}'") from e
  if not is_dir:
    raise CheckpointWriteError(
        '`model_dir` exists but is not a directory. Pass the path of a '
        f"directory. Received: model_dir='{model_dir}'")


def _delete_checkpoint_files(model_dir: str, prefix: str) -> None:
  """Deletes the files of the checkpoint `prefix` if it lies in `model_dir`.

  Checkpoints that the state file lists outside `model_dir` are only dropped
  from the state file, never deleted: they may belong to someone else.
  Failures are logged, not raised, since the new checkpoint is already safe.
  """
  directory, base = os.path.split(prefix)
  if _path_key(directory) != _path_key(model_dir):
    logging.info('Not deleting checkpoint %s: it is outside %s.', prefix,
                 model_dir)
    return
  try:
    names = tf.io.gfile.listdir(model_dir)
  except _WRITE_ERRORS as e:
    logging.warning('Could not list %s to delete old checkpoint %s: %s',
                    model_dir, prefix, e)
    return
  for name in names:
    if not name.startswith(base):
      continue
    rest = name[len(base):]
    if rest in (_INDEX_SUFFIX, '.meta') or _DATA_SHARD_RE.fullmatch(rest):
      _remove_quietly(os.path.join(model_dir, name))
  logging.info('Deleted old checkpoint %s.', prefix)


def _remove_files_with_prefix(model_dir: str, base: str) -> None:
  """Best-effort removal of the temporary files of a failed save."""
  try:
    names = tf.io.gfile.listdir(model_dir)
  except _WRITE_ERRORS as e:
    logging.warning('Could not list %s to remove temporary files: %s',
                    model_dir, e)
    return
  for name in names:
    if name.startswith(base):
      _remove_quietly(os.path.join(model_dir, name))


def _remove_quietly(path: str) -> None:
  """Removes a file, logging instead of raising on failure."""
  try:
    tf.io.gfile.remove(path)
  except _WRITE_ERRORS as e:
    logging.warning('Could not remove %s: %s', path, e)


def _relative_to(model_dir: str, path: str) -> str:
  """Returns `path` relative to `model_dir` if it lies directly inside it."""
  directory, base = os.path.split(path)
  if _path_key(directory) == _path_key(model_dir):
    return base
  return path


def _path_key(path: str) -> str:
  """Normalizes a path for comparisons (URLs are compared verbatim)."""
  if '://' in path:
    return path.rstrip('/')
  return os.path.normpath(os.path.abspath(path))


def _format_float(value: float) -> str:
  """Formats a double for a text proto, without loss of precision."""
  return repr(float(value))


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



def checkpoint_stamp(prefix):
  """(prefix, index file mtime, size), or None: changes when it is rewritten."""
  try:
    stat = tf.io.gfile.stat(prefix + '.index')
  except tf.errors.OpError:
    return None
  return (prefix, stat.mtime_nsec, stat.length)
