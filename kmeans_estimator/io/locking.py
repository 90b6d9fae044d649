"""One trainer per `model_dir`: an exclusive lock for the whole of training.

Two processes (or two estimators in one process) training into the same
`model_dir` would interleave their checkpoints: each restores the other's
state at some step, overwrites the other's `model.ckpt-<step>` files, and
the result is neither run. `KMeansClustering.train` therefore holds
`model_dir_lock(model_dir)` while it runs, and a second trainer fails at once
with `ModelDirLockedError`, which names the directory and the process that
holds it.

The policy:
- The lock is an advisory `fcntl.flock` lock on the file
  `model_dir/.kmeans_estimator.lock`. Only trainers take it. Readers
  (`predict`, `evaluate`, `cluster_centers`, `export_saved_model`,
  `tf.train.load_variable`) never do: checkpoints are written atomically
  (see `checkpoints`), so a reader always sees the latest complete one, even
  while a trainer writes.
- The operating system releases the lock when the process that holds it
  ends, however it ends (normal exit, exception, SIGKILL, out-of-memory
  kill), so a crash can never leave a `model_dir` locked. A lock file left
  behind by a killed process is only a note of who last held it; the next
  trainer takes the lock at once.
- On a normal release the lock file is removed, and so is `model_dir` if
  taking the lock created it and it is still empty: a `train` call that
  fails before writing a checkpoint leaves the file system as it found it.
- Whoever takes the lock knows that no other trainer is writing, so it
  removes the temporary files of saves that a killed trainer left half done
  (`checkpoints.remove_stale_temp_files`).
- The lock file's name never looks like a checkpoint: it starts with a dot
  and is not `checkpoint` or `model.ckpt-*`, so `tf.train.latest_checkpoint`,
  `tf.train.list_variables` and `keep_checkpoint_max` clean-up ignore it.
- `flock` locks belong to an open file, not to a process, so two estimators
  or threads of one process exclude each other too.
- The lock file is opened without following a symbolic link
  (`O_NOFOLLOW`), and written only when it is a regular file with no other
  name (one hard link): a symlink or hard link planted at its path can
  never make a trainer truncate or write the file it points to. Such a
  lock path is refused with a `CheckpointWriteError` naming it, before
  anything is written; remove it to train.
- Under a `tf.distribute` strategy only the chief takes the lock: the
  other workers of the same run share `model_dir` but never write to it.
- Limits: a `model_dir` given as a URL (`gs://`, `s3://`, `hdfs://`, ...),
  a platform without `fcntl` (Windows), or a file system that refuses
  `flock` gets no lock (a warning is logged); do not train into such a
  directory from two places at once. On NFS, Linux maps `flock` to NFS
  byte-range locks, which need a working lock daemon.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import socket
import stat
from typing import Any, Callable, Concatenate, ParamSpec, Protocol, TypeVar

from absl import logging

from kmeans_estimator import errors
from kmeans_estimator.io import checkpoints
from kmeans_estimator import distribute as distribute_lib

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Windows.
  fcntl = None  # type: ignore[assignment]

__all__ = [
    'LOCK_FILENAME',
    'ModelDirLockedError',
    'holds_model_dir_lock',
    'model_dir_lock',
]

LOCK_FILENAME = '.kmeans_estimator.lock'
# How often to retry when the lock file is replaced or its directory removed
# while we open it (each retry means another process just released it).
_MAX_ATTEMPTS = 100
# The most of a lock file's content quoted in an error message.
_MAX_HOLDER_CHARS = 200


# Defined in `errors`; importable from here as before.
ModelDirLockedError = errors.ModelDirLockedError


@contextlib.contextmanager
def model_dir_lock(model_dir):
  """Holds the exclusive training lock on `model_dir` inside the block.

  Creates `model_dir` (and missing parents) if needed. See the module
  docstring for the policy.

  Args:
    model_dir: The model directory, a local path. For a URL the block runs
      without a lock (a warning is logged).

  Yields:
    None.

  Raises:
    ModelDirLockedError: If another trainer (in this or another process)
      holds the lock; nothing is written.
    checkpoints.CheckpointWriteError: If `model_dir` cannot be created or
      the lock file cannot be written there (not a directory, no
      permission, read-only file system).
  """
  model_dir = os.fspath(model_dir)
  if '://' in model_dir or fcntl is None:
    logging.warning(
        'Training into %s without a lock: %s. Do not train into it from two '
        'places at once.', model_dir,
        'locks need a local path' if fcntl is not None else
        'this platform has no fcntl')
    yield
    return
  fd, path, created = _acquire(model_dir)
  try:
    if fd is not None:
      checkpoints.remove_stale_temp_files(model_dir)
    yield
  finally:
    _release(fd, path, created)


class _HasModelDir(Protocol):
  """What `holds_model_dir_lock` reads from the object of a method."""

  @property
  def model_dir(self) -> str:
    ...

  @property
  def config(self) -> Any:
    ...


_Self = TypeVar('_Self', bound=_HasModelDir)
_P = ParamSpec('_P')
_R = TypeVar('_R')


def holds_model_dir_lock(
    method: Callable[Concatenate[_Self, _P], _R],
) -> Callable[Concatenate[_Self, _P], _R]:
  """Runs an estimator method under `model_dir_lock(self.model_dir)`.

  Under a `tf.distribute` strategy (`self.config.train_distribute`) only the
  process that writes checkpoints (the chief) takes the lock; the other
  workers of the same run write nothing, so they must not be refused.

  Args:
    method: A method of an object with `model_dir` and `config` attributes.

  Returns:
    The wrapped method.
  """

  @functools.wraps(method)
  def wrapper(self: _Self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
    strategy = getattr(self.config, 'train_distribute', None)
    if not distribute_lib.is_chief(strategy):
      return method(self, *args, **kwargs)
    with model_dir_lock(self.model_dir):
      return method(self, *args, **kwargs)

  return wrapper


# ---------------------------------------------------------------------------
# Taking and releasing the lock.
# ---------------------------------------------------------------------------


def _acquire(model_dir):
  """Takes the lock; returns (fd, lock path, directories created).

  fd is None when the file system refuses `flock` (training goes on
  unlocked, with a warning).

  The lock file is removed by its holder on release, so the file we open may
  be unlinked (or its directory removed) before we lock it. Holders only
  remove the file while they hold the lock, so after locking we check that
  the path still names the file we locked, and start over if not.
  """
  path = os.path.join(model_dir, LOCK_FILENAME)
  created = []
  for _ in range(_MAX_ATTEMPTS):
    created += _makedirs(model_dir)
    try:
      fd = os.open(path, _OPEN_FLAGS, 0o644)
    except FileNotFoundError:
      continue  # model_dir was just removed by a trainer that created it.
    except OSError as e:
      _remove_empty_dirs(created)
      if os.path.islink(path):  # O_NOFOLLOW refused it (ELOOP).
        raise _planted_error(model_dir, path, 'a symbolic link to '
                             f'{os.readlink(path)!r}') from None
      try:
        mode = os.lstat(path).st_mode
      except OSError:
        mode = None
      if mode is not None and not stat.S_ISREG(mode):  # EISDIR, ENXIO, ...
        raise _planted_error(
            model_dir, path, 'a directory' if stat.S_ISDIR(mode) else
            'not a regular file') from None
      raise _unwritable_error(model_dir, e) from e
    planted = _not_our_kind_of_file(fd)
    if planted is not None:
      os.close(fd)
      _remove_empty_dirs(created)
      raise _planted_error(model_dir, path, planted)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise ModelDirLockedError(_locked_message(model_dir, holder)) from None
    except OSError as e:  # ENOLCK, EOPNOTSUPP: the file system has no flock.
      os.close(fd)
      logging.warning(
          'Training into %s without a lock: its file system refuses flock '
          '(%s). Do not train into it from two places at once.', model_dir, e)
      _unlink_quietly(path)
      return None, path, created
    if not _names_open_file(path, fd):
      os.close(fd)  # Released and removed by its holder as we opened it.
      continue
    _write_holder(fd)
    return fd, path, created
  raise ModelDirLockedError(_locked_message(
      model_dir, 'it was taken and released too often to get hold of it'))


# O_NOFOLLOW: never open the file a planted symlink names. O_NONBLOCK: a
# FIFO planted at the path must not block the open (it is then refused).
_OPEN_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0) |
               getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_CLOEXEC', 0) |
               getattr(os, 'O_NOCTTY', 0))


def _not_our_kind_of_file(fd):
  """Why the open lock file may not be written, or None if it may.

  Only a regular file with a single name is ours to truncate: anything
  else at the lock path (a FIFO, a device, a hard link to some other file)
  was put there by someone else.
  """
  info = os.fstat(fd)
  if not stat.S_ISREG(info.st_mode):
    return 'not a regular file'
  if info.st_nlink > 1:
    return f'a hard link to a file with {info.st_nlink} names'
  return None


def _planted_error(model_dir, path, what):
  return checkpoints.CheckpointWriteError(
      f'The training lock file {path!r} is {what}; trainers only ever create '
      'it as a regular file, and never write through a link or into another '
      'file. Nothing was trained or written, and what it points to is '
      'untouched. Remove it (it is not part of the model) and train again, '
      f"or train into another model_dir. Received: model_dir='{model_dir}'")


def _release(fd, path, created):
  """Removes the lock file (while still holding it), then unlocks."""
  if fd is not None:
    _unlink_quietly(path)
    os.close(fd)  # Releases the flock.
  _remove_empty_dirs(created)


def _names_open_file(path, fd):
  """Whether `path` is (still) the file open as `fd`."""
  try:
    on_disk = os.stat(path)
  except FileNotFoundError:
    return False
  opened = os.fstat(fd)
  return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def _write_holder(fd):
  """Records who holds the lock, for the error message of the next trainer.

  The note is written over the file's start, then the file is cut to its
  length (dropping what a longer stale note left), never truncated to zero
  first: ext4 (auto_da_alloc) writes a file truncated to zero and then
  written back to disk when it is closed, which `_release` would wait for
  on every train().
  """
  since = datetime.datetime.now(datetime.timezone.utc).strftime(
      '%Y-%m-%d %H:%M:%S UTC')
  note = f'pid {os.getpid()} on host {socket.gethostname()} since {since}\n'
  try:
    data = note.encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
  except OSError as e:  # The note is informative only.
    logging.warning('Could not write the lock note %s: %s', fd, e)


def _read_holder(fd):
  """The lock file's note on its holder, or a placeholder."""
  try:
    note = os.pread(fd, 4 * _MAX_HOLDER_CHARS, 0).decode('utf-8', 'replace')
  except OSError:
    note = ''
  note = ''.join(c for c in note.strip() if c.isprintable())
  return note[:_MAX_HOLDER_CHARS] or 'holder unknown'


def _locked_message(model_dir, holder):
  held_here = f'pid {os.getpid()} on host {socket.gethostname()} '
  where = ('another estimator or thread of this process'
           if holder.startswith(held_here) else 'another process')
  return (
      f'`model_dir` is locked: {where} is training into it ({holder}). Two '
      'trainers in one model_dir would overwrite each other\'s checkpoints. '
      'Wait for that training to finish or stop it, or train into another '
      'model_dir; reading (predict, evaluate, cluster_centers) needs no '
      f'lock. The lock, on {os.path.join(model_dir, LOCK_FILENAME)}, is '
      'released by the operating system when its holder exits, even if it '
      f"crashes. Received: model_dir='{model_dir}'")


def _unwritable_error(model_dir, cause):
  return checkpoints.CheckpointWriteError(
      f'Could not create the training lock file in `model_dir` ({cause}). '
      '`model_dir` must be a directory that this process can create and '
      'write to; pass another model_dir, or fix its permissions. Nothing '
      f"was trained or written. Received: model_dir='{model_dir}'")


# ---------------------------------------------------------------------------
# Directories.
# ---------------------------------------------------------------------------


def _makedirs(model_dir):
  """Creates `model_dir` and missing parents; returns those created, in order.

  Another trainer may remove a directory it created (see `_release`) while
  we create its children; then we start over.
  """
  created = []
  for _ in range(_MAX_ATTEMPTS):
    missing = []
    path = os.path.abspath(model_dir)
    while not os.path.isdir(path):
      missing.append(path)
      parent = os.path.dirname(path)
      if parent == path:
        break
      path = parent
    try:
      for path in reversed(missing):
        try:
          os.mkdir(path)
          created.append(path)
        except FileExistsError:
          if os.path.isdir(path):
            continue
          if os.path.lexists(path):
            raise NotADirectoryError(
                f'{path!r} exists and is not a directory') from None
          # Created by another trainer and removed again since: start over.
          raise FileNotFoundError(path) from None
      return created
    except FileNotFoundError:
      continue  # A parent was removed meanwhile.
    except OSError as e:
      _remove_empty_dirs(created)
      raise _unwritable_error(model_dir, e) from e
  _remove_empty_dirs(created)
  raise _unwritable_error(model_dir, OSError('its parents keep vanishing'))


def _remove_empty_dirs(created):
  """Removes the directories this lock created, deepest first, while empty."""
  for path in reversed(created):
    try:
      os.rmdir(path)
    except OSError:
      return  # Not empty (or gone): someone uses it.


def _unlink_quietly(path):
  try:
    os.unlink(path)
  except OSError:
    pass
