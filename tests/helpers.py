"""Test helpers shared by several test modules (not oracles: see oracles.py)."""

import logging as std_logging

from absl import flags

from kmeans_estimator import SessionRunArgs
from kmeans_estimator import SessionRunHook
from kmeans_estimator.cli import app as cli


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
