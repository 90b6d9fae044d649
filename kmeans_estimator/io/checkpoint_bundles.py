"""The checkpoint bundles in a model directory: their names, which are
complete, which file of a damaged one is at fault, and deleting old ones.

A bundle is what `tf.raw_ops.SaveV2` writes for one prefix,
`model_dir/model.ckpt-<step>`: an index file `<prefix>.index` and data
shards `<prefix>.data-<i>-of-<n>` (ours have one; the legacy estimator's may
have more, and a `.meta` graph). TensorFlow's tools take the index file as
the sign of a checkpoint. A bundle is complete when its index file and every
shard of one `-of-<n>` set exist. Which bundle is the latest checkpoint is
`checkpoint_state`'s business.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf
from absl import logging

from kmeans_estimator.io import filesystem

# Base name of the checkpoint prefixes, as used by the legacy estimator.
PREFIX_BASENAME = 'model.ckpt'
# SaveV2 without sharding always writes exactly one data shard.
DATA_SUFFIX = '.data-00000-of-00001'
INDEX_SUFFIX = '.index'
DATA_SHARD_RE = re.compile(r'\.data-\d{5}-of-\d{5}$')
# The index file of a checkpoint of ours (or the legacy estimator's).
BUNDLE_INDEX_RE = re.compile(
    re.escape(PREFIX_BASENAME) + r'-(\d+)' + re.escape(INDEX_SUFFIX))
SHARD_RE = re.compile(r'\.data-(\d{5})-of-(\d{5})')


def step_of(prefix: str) -> int | None:
  """17 for '.../model.ckpt-17'; None for another name."""
  match = BUNDLE_INDEX_RE.fullmatch(os.path.basename(prefix) + INDEX_SUFFIX)
  return None if match is None else int(match[1])


def complete_bundles(model_dir: str, names) -> dict[int, str]:
  """{step: prefix} of the complete `model.ckpt-<step>` bundles in `names`.

  Complete: the index file and every data shard of one `-of-<n>` set exist.
  """
  names = list(names)
  shards: dict[str, dict[int, set[int]]] = {}
  indexed: dict[str, int] = {}
  for name in names:
    match = BUNDLE_INDEX_RE.fullmatch(name)
    if match:
      indexed[name[:-len(INDEX_SUFFIX)]] = int(match[1])
  for name in names:
    base, dot, rest = name.partition('.data-')
    match = SHARD_RE.fullmatch(dot + rest) if dot else None
    if match and base in indexed:
      shards.setdefault(base, {}).setdefault(int(match[2]), set()).add(
          int(match[1]))
  return {step: os.path.join(model_dir, base)
          for base, step in indexed.items()
          if any(found == set(range(total))
                 for total, found in shards.get(base, {}).items())}


def newest_index(names) -> int | None:
  """The highest step of the `model.ckpt-<step>.index` files in `names`."""
  steps = [int(match[1]) for match in map(BUNDLE_INDEX_RE.fullmatch, names)
           if match]
  return max(steps, default=None)


def damaged_files(prefix: str, stage: str) -> str:
  """Says which file of the checkpoint `prefix` is missing or damaged."""
  index = prefix + INDEX_SUFFIX
  if not tf.io.gfile.exists(index):
    return f"its index file '{index}' is missing"
  directory, base = os.path.split(prefix)
  try:
    names = tf.io.gfile.listdir(directory or '.')
  except filesystem.WRITE_ERRORS:
    names = []
  data = sorted(
      os.path.join(directory, name) for name in names
      if name.startswith(base) and DATA_SHARD_RE.fullmatch(name[len(base):]))
  if not data:
    return f"its data file '{prefix}{DATA_SUFFIX}' is missing"
  if stage == 'open':
    return f"its index file '{index}' is truncated or not a checkpoint index"
  if len(data) == 1:
    return f"its data file '{data[0]}' is truncated or damaged"
  return f'one of its data files {data} is truncated, damaged or missing'


def delete_checkpoint_files(model_dir: str, prefix: str) -> None:
  """Deletes the files of the checkpoint `prefix` if it lies in `model_dir`.

  Checkpoints that the state file lists outside `model_dir` are only dropped
  from the state file, never deleted: they may belong to someone else.
  Failures are logged, not raised, since the new checkpoint is already safe.
  """
  directory, base = os.path.split(prefix)
  if filesystem.path_key(directory) != filesystem.path_key(model_dir):
    logging.info('Not deleting checkpoint %s: it is outside %s.', prefix,
                 model_dir)
    return
  try:
    names = tf.io.gfile.listdir(model_dir)
  except filesystem.WRITE_ERRORS as e:
    logging.warning('Could not list %s to delete old checkpoint %s: %s',
                    model_dir, prefix, e)
    return
  for name in names:
    if not name.startswith(base):
      continue
    rest = name[len(base):]
    if rest in (INDEX_SUFFIX, '.meta') or DATA_SHARD_RE.fullmatch(rest):
      filesystem.remove_quietly(os.path.join(model_dir, name))
  logging.info('Deleted old checkpoint %s.', prefix)
