"""The `checkpoint` state file of a model directory, and which checkpoint
is the latest.

The state file is TensorFlow's `CheckpointState` text proto: the latest
checkpoint (`model_checkpoint_path`), every checkpoint kept, oldest first
(`all_model_checkpoint_paths`) and, for ours, when each was saved
(`all_model_checkpoint_timestamps`). Paths inside the model directory are
written relative to it. `tf.train.latest_checkpoint` and the legacy tooling
read it, so its format is a contract: entries of the legacy estimator are
kept as they are. It is only ever replaced whole, by a rename
(`write_state_file`).

Which checkpoint is the latest (`latest`) is found from the state file and
from the bundles on disk, which can be ahead of it (a save killed after its
renames, before its state file was written) or be all there is (the state
file deleted): the rules are those of `checkpoints.latest_checkpoint`. A
save lists such bundles in the state file again (`bundles_to_list`), so that
`keep_checkpoint_max` counts them.
"""

from __future__ import annotations

import os
import time
import typing
import uuid

import tensorflow as tf
from absl import logging
from google.protobuf import text_encoding

from kmeans_estimator.io import checkpoint_bundles as bundles_lib
from kmeans_estimator.io import filesystem

# Name of the `CheckpointState` text proto file, as used by TensorFlow.
STATE_FILENAME = 'checkpoint'


class State:
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
    key = filesystem.path_key(prefix)
    return (any(filesystem.path_key(p) == key for p in self.paths) or
            (self.latest is not None and
             filesystem.path_key(self.latest) == key))

  def without(self, prefix: str) -> State:
    """Returns a copy that no longer lists `prefix`."""
    key = filesystem.path_key(prefix)
    keep = [i for i, p in enumerate(self.paths)
            if filesystem.path_key(p) != key]
    paths = [self.paths[i] for i in keep]
    timestamps = (None if self.timestamps is None else
                  [self.timestamps[i] for i in keep])
    latest = self.latest
    if latest is None or filesystem.path_key(latest) == key:
      latest = paths[-1] if paths else None
    return State(paths, timestamps, latest, self.last_preserved_timestamp)

  def with_latest(self, prefix: str, timestamp: float) -> State:
    """Returns a copy with `prefix` appended as the newest checkpoint."""
    state = self.without(prefix)
    paths = state.paths + [prefix]
    timestamps = (None if state.timestamps is None else
                  state.timestamps + [timestamp])
    return State(paths, timestamps, prefix, state.last_preserved_timestamp)

  def trimmed(self, keep: int, protect: str) -> tuple[State, list[str]]:
    """Keeps the newest `keep` paths (all if 0); returns (state, dropped)."""
    if not keep or len(self.paths) <= keep:
      return self, []
    dropped = self.paths[:-keep]
    paths = self.paths[-keep:]
    timestamps = None if self.timestamps is None else self.timestamps[-keep:]
    # Never delete files that a kept entry (or the new checkpoint) still uses.
    kept_keys = ({filesystem.path_key(p) for p in paths} |
                 {filesystem.path_key(protect)})
    dropped = [p for p in dropped if filesystem.path_key(p) not in kept_keys]
    latest = self.latest
    if latest is not None and filesystem.path_key(latest) not in kept_keys:
      latest = paths[-1]
    return (State(paths, timestamps, latest, self.last_preserved_timestamp),
            dropped)


def read_state(model_dir: str) -> State:
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
    return State([], [], None, None)

  paths: list[str] = []
  kept_timestamps: list[float] = []
  raw_timestamps = list(proto.all_model_checkpoint_timestamps)
  aligned = len(raw_timestamps) == len(proto.all_model_checkpoint_paths)
  for i, path in enumerate(proto.all_model_checkpoint_paths):
    key = filesystem.path_key(path)
    # Drop duplicates, keeping the newest (last) occurrence.
    later = [filesystem.path_key(p)
             for p in proto.all_model_checkpoint_paths[i + 1:]]
    if key in later:
      continue
    paths.append(path)
    if aligned:
      kept_timestamps.append(raw_timestamps[i])
  timestamps: list[float] | None = kept_timestamps if aligned else None
  latest = proto.model_checkpoint_path or None
  if latest is not None and not any(
      filesystem.path_key(p) == filesystem.path_key(latest) for p in paths):
    # TensorFlow always lists the latest checkpoint last; repair if needed.
    paths.append(latest)
    timestamps = None
  last_preserved = proto.last_preserved_timestamp or None
  return State(paths, timestamps, latest, last_preserved)


def _format_state(model_dir: str, state: State) -> str:
  """Serializes `state` as a text-format `CheckpointState` proto.

  Paths inside `model_dir` are written relative to it, like TensorFlow does,
  so that the directory can be moved or copied as a whole.
  """

  def quote(path: str) -> str:
    return '"' + text_encoding.CEscape(
        filesystem.relative_to(model_dir, path), as_utf8=True) + '"'

  # `write_state_file` writes only states that name a checkpoint.
  lines = [f'model_checkpoint_path: {quote(typing.cast(str, state.latest))}']
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


def write_state_file(model_dir: str, state: State) -> None:
  """Atomically replaces `model_dir/checkpoint` with `state`.

  The content is written to a temporary file that is then renamed over the
  state file, so readers see either the old or the new state, never a partial
  one. A state without any checkpoint removes the file instead, because
  `tf.train.latest_checkpoint` raises on an empty `model_checkpoint_path`.
  """
  state_path = os.path.join(model_dir, STATE_FILENAME)
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
      filesystem.remove_quietly(temp_path)


def _format_float(value: float) -> str:
  """Formats a double for a text proto, without loss of precision."""
  return repr(float(value))


# ---------------------------------------------------------------------------
# Which checkpoint is the latest.
# ---------------------------------------------------------------------------

# How often `latest` reads a state file that keeps changing.
_LATEST_ATTEMPTS = 10


def latest(model_dir: str) -> str | None:
  """The latest checkpoint of `model_dir` (a valid path), or None.

  The rules are `checkpoints.latest_checkpoint`'s. A state file replaced
  while it was read is read again: the one read may have named a checkpoint
  that keep_checkpoint_max deleted since.
  """
  for _ in range(_LATEST_ATTEMPTS):
    found, written = _latest_once(model_dir)
    if found is not None or written is None or written == (
        filesystem.mtime_or_none(os.path.join(model_dir, STATE_FILENAME))):
      return found
  return found


def _latest_once(model_dir: str) -> tuple[str | None, int | None]:
  """`latest`'s answer, and the state file's time it read."""
  # In this order, for a trainer may be saving meanwhile: the state file's
  # time, then its content, then the files. A save finishing in between
  # then makes its bundle look newer than the state file, never older (and
  # so never hides it behind the state file's previous entry).
  state_path = os.path.join(model_dir, STATE_FILENAME)
  has_state, written = True, None
  try:
    written = filesystem.mtime(state_path)
  except (FileNotFoundError, tf.errors.NotFoundError):
    has_state = False
  except filesystem.WRITE_ERRORS:
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
  except filesystem.WRITE_ERRORS:
    names = []
  bundles = bundles_lib.complete_bundles(model_dir, names)
  newest = max(bundles, default=None)
  if newest is None:
    return latest, written
  if latest is None:
    if bundles_lib.newest_index(names) != newest:
      # The newest is damaged: check_no_lost_checkpoint says so.
      return None, None
    logging.warning(
        "%s has no '%s' state file; using its newest complete checkpoint, "
        '%s.', model_dir, STATE_FILENAME, bundles[newest])
    return bundles[newest], None
  unrecorded = _unrecorded_bundles(bundles, latest, written)
  if unrecorded:
    return unrecorded[max(unrecorded)], written
  return latest, written


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
  after = bundles_lib.step_of(latest)
  if after is None:
    return {}
  unrecorded = {}
  for found, prefix in bundles.items():
    if found <= after:
      continue
    if written is not None:
      try:
        if filesystem.mtime(prefix + bundles_lib.INDEX_SUFFIX) < written:
          continue
      except (FileNotFoundError, tf.errors.NotFoundError):
        continue  # Deleted meanwhile (keep_checkpoint_max).
      except filesystem.WRITE_ERRORS:
        pass
    unrecorded[found] = prefix
  return unrecorded


def bundles_to_list(model_dir: str, state: State,
                    step: int) -> dict[int, tuple[str, float]]:
  """{step: (prefix, timestamp)} of bundles a save of `step` lists first.

  They are the complete bundles before `step` that `latest` may have
  resumed from though the state file does not name them: all of
  them without a state file, else those it has not caught up with
  (`_unrecorded_bundles`). Listed, `keep_checkpoint_max` counts them.
  Called before the save writes anything.
  """
  state_path = os.path.join(model_dir, STATE_FILENAME)
  try:
    written = (filesystem.mtime(state_path) if state.latest is not None
               else None)
  except filesystem.WRITE_ERRORS:
    written = None
  try:
    bundles = bundles_lib.complete_bundles(model_dir,
                                           tf.io.gfile.listdir(model_dir))
  except filesystem.WRITE_ERRORS:
    return {}
  if state.latest is not None:
    bundles = _unrecorded_bundles(bundles, state.latest, written)
  listed = {}
  for found, prefix in bundles.items():
    if found >= step or state.contains(prefix):
      continue
    try:
      stamp = filesystem.mtime(prefix + bundles_lib.INDEX_SUFFIX) / 1e9
    except filesystem.WRITE_ERRORS:
      stamp = time.time()
    listed[found] = (prefix, stamp)
  return listed
