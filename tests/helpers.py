"""Test helpers shared by several test modules (not oracles: see oracles.py)."""

import logging as std_logging
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from kmeans_estimator import SessionRunArgs
from kmeans_estimator import SessionRunHook
from kmeans_estimator.cli import app as cli


def fast_first(keep, cases):
  """The parametrize `cases`, the first `keep` of them fast and the others slow.

  A sweep keeps a representative few cases in the inner loop
  (`pytest -m 'not slow'`) and runs every case in the whole suite. A case is
  a value (one argument), a tuple of values (several arguments) or a
  `pytest.param`, whose marks and id are kept.
  """
  marked = []
  for index, case in enumerate(cases):
    if index < keep:
      marked.append(case)
    elif isinstance(case, type(pytest.param(None))):
      marked.append(pytest.param(*case.values, id=case.id,
                                 marks=(*case.marks, pytest.mark.slow)))
    elif isinstance(case, tuple):
      marked.append(pytest.param(*case, marks=pytest.mark.slow))
    else:
      marked.append(pytest.param(case, marks=pytest.mark.slow))
  return marked


class LossRecorder(SessionRunHook):
  """Records the loss of every training step."""

  def __init__(self):
    self.losses = []

  def before_run(self, run_context):
    return SessionRunArgs('loss')

  def after_run(self, run_context, run_values):
    self.losses.append(float(run_values.results))


def run_cli(*args):
  """cli.main on flags parsed as absl would, in this process."""
  absl_logger = std_logging.getLogger('absl')
  level = absl_logger.level
  flags.FLAGS.unparse_flags()
  try:
    return cli.main(flags.FLAGS(['kmeans-estimator', *map(str, args)]))
  finally:
    flags.FLAGS.unparse_flags()
    # Parsing --verbosity set the absl logger's level; leave it as found, so
    # that later tests still see INFO logs.
    absl_logger.setLevel(level)


def file_points(seed=0, n=300, d=3, k=3):
  """float32 array (n, d): n points around k centers drawn uniformly in
  [0, 6]^d, with unit Gaussian noise; what the command-line and file-input
  tests write to files."""
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 6, size=(k, d))
  points = centers[rng.integers(k, size=n)] + rng.normal(0, 1, (n, d))
  return points.astype(np.float32)


def write_csv(path, points, header=None, extra_column=False):
  with open(path, 'w') as f:
    if header:
      f.write(','.join(header) + '\n')
    for i, row in enumerate(points):
      cells = [repr(float(v)) for v in row]
      if extra_column:
        cells.append(f'label{i % 2}')
      f.write(','.join(cells) + '\n')
  return path


def write_tfrecord(path, points):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for row in points:
      feature = {
          'xy': tf.train.Feature(float_list=tf.train.FloatList(value=row[:2])),
          'z': tf.train.Feature(float_list=tf.train.FloatList(value=row[2:])),
          'id': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'p'])),
      }
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())
  return path


def checkpoint_tensors(seed=0):
  """A small set of checkpoint variables of three dtypes, drawn from seed."""
  rng = np.random.default_rng(seed)
  return {
      'clusters': rng.normal(size=(5, 2)).astype(np.float32),
      'global_step': np.int64(seed),
      'initialized': np.bool_(True),
  }


def saved_model_cli(*args):
  """Runs TensorFlow's `saved_model_cli` with `args` (the console script
  beside this Python, else its module); the completed process."""
  cli = pathlib.Path(sys.executable).parent / 'saved_model_cli'
  command = ([str(cli)] if cli.exists() else
             [sys.executable, '-m', 'tensorflow.python.tools.saved_model_cli'])
  return subprocess.run(command + list(args), capture_output=True, text=True,
                        timeout=300, check=False)
