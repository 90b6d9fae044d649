"""File-system helpers of the checkpoint modules, over `tf.io.gfile`.

They work on local paths and on URLs (`gs://...`) alike, as checkpoints do.
Failures of best-effort clean-up (`remove_quietly`,
`remove_files_with_prefix`) are logged, never raised: they run after the
checkpoint that matters is safe, or while an error is already on its way.

`locking` has its own, `os`-level helpers on purpose: `flock` needs a local
file, and the lock file is opened without following links.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import logging

# Exceptions that mean "the file system refused the write".
WRITE_ERRORS = (tf.errors.OpError, OSError)


def path_key(path: str) -> str:
  """Normalizes a path for comparisons (URLs are compared verbatim)."""
  if '://' in path:
    return path.rstrip('/')
  return os.path.normpath(os.path.abspath(path))


def relative_to(model_dir: str, path: str) -> str:
  """Returns `path` relative to `model_dir` if it lies directly inside it."""
  directory, base = os.path.split(path)
  if path_key(directory) == path_key(model_dir):
    return base
  return path


def mtime(path: str) -> int:
  """`path`'s modification time in ns (TensorFlow's stat has whole seconds
  for local files, too coarse to order a save and a state file)."""
  if '://' in path:
    return tf.io.gfile.stat(path).mtime_nsec
  return os.stat(path).st_mtime_ns


def mtime_or_none(path: str) -> int | None:
  """`mtime(path)`, or None if the file system cannot tell it."""
  try:
    return mtime(path)
  except WRITE_ERRORS:
    return None


def remove_quietly(path: str) -> None:
  """Removes a file, logging instead of raising on failure."""
  try:
    tf.io.gfile.remove(path)
  except WRITE_ERRORS as e:
    logging.warning('Could not remove %s: %s', path, e)


def remove_files_with_prefix(model_dir: str, base: str) -> None:
  """Best-effort removal of the temporary files of a failed save."""
  try:
    names = tf.io.gfile.listdir(model_dir)
  except WRITE_ERRORS as e:
    logging.warning('Could not list %s to remove temporary files: %s',
                    model_dir, e)
    return
  for name in names:
    if name.startswith(base):
      remove_quietly(os.path.join(model_dir, name))
