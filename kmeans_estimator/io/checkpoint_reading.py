"""Reading a checkpoint: safe while a trainer writes, and with errors that
name the damaged file.

`checkpoints.read_checkpoint` and `checkpoints.list_checkpoint_variables`
open a bundle with the public `tf.train.load_checkpoint` reader through
`read_with`: a model directory is read at its latest checkpoint, and read
again at the new latest one if a trainer replaced (and deleted) it
meanwhile; a checkpoint that cannot be read is a `ValueError` saying which
of its files is missing or damaged and how to recover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import tensorflow as tf
from absl import logging

from kmeans_estimator.io import checkpoint_bundles as bundles_lib
from kmeans_estimator.io import checkpoint_state as state_lib

_T = TypeVar('_T')

# How often a reader of a model directory starts over when the checkpoint it
# opened was replaced by a newer one (and deleted) while it read.
_READ_ATTEMPTS = 5

# Exceptions that `tf.train.load_checkpoint` and `CheckpointReader` raise for
# missing, truncated or corrupted bundles. Besides `tf.errors.OpError`, the
# reader raises a bare `IndexError` ("Read less bytes than requested") for a
# truncated data file.
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError,
                OSError)


def read_with(path: str,
              read: Callable[[Any], _T]) -> _T:
  """Opens the checkpoint at `path` and returns `read(reader)`.

  For a model directory, a failure on a checkpoint that is no longer the
  latest one (a trainer moved on and deleted it meanwhile) starts over on the
  new latest checkpoint; a failure on the checkpoint that is still the latest
  one is a damaged checkpoint.

  Args:
    path: A model directory or a checkpoint prefix, a non-empty `str`
      (validated by the caller).
    read: Reads what it needs from the `CheckpointReader` that
      `tf.train.load_checkpoint` returns.
  """
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
          state_lib.latest(path) != prefix):
        logging.info('Checkpoint %s was replaced while being read; reading '
                     'the latest one again.', prefix)
        continue
      raise _corrupted_error(path, prefix, stage, e) from e
  raise AssertionError('unreachable')


def _resolve_prefix(model_dir: str) -> str:
  """The latest checkpoint of `model_dir`; a ValueError if there is none."""
  prefix = state_lib.latest(model_dir)
  if prefix is None:
    raise ValueError(
        '`model_dir` contains no checkpoint: its '
        f"'{state_lib.STATE_FILENAME}' file is missing, unreadable or names "
        'a checkpoint whose files are gone. Train a model into it first, or '
        'pass the directory of a trained model. Received: '
        f"model_dir='{model_dir}'")
  return prefix


def _corrupted_error(path: str, prefix: str, stage: str,
                     cause: BaseException) -> ValueError:
  """Builds the `ValueError` for a checkpoint that cannot be read."""
  lines = str(cause).strip().splitlines()
  detail = lines[0] if lines else ''
  return ValueError(
      f"The checkpoint '{prefix}' is unreadable or corrupted: "
      f'{bundles_lib.damaged_files(prefix, stage)} '
      f'({type(cause).__name__}: {detail}). '
      'Restore its files from a backup, delete this checkpoint (and its '
      "entry in the 'checkpoint' file) to fall back to an older one, or "
      f"retrain. Received: path='{path}'")
