"""What the command-line tests share: the points, the training flags, and
ways to run the command line and read what it printed or trained.

The fixtures that train a model_dir with them are in conftest.py.
"""

import os
import pathlib
import re
import subprocess
import sys

import tensorflow as tf

import helpers

K = 3
BATCH = 64
STEPS = 5
# Exactly STEPS steps (no early stop at the command line's default
# --relative_tolerance), and a progress line for each.
TRAIN_FLAGS = (f'--num_clusters={K}', '--nouse_mini_batch',
               '--initial_clusters=kmeans_plus_plus', '--seed=0',
               f'--steps={STEPS}', f'--batch_size={BATCH}',
               '--relative_tolerance=0', '--progress_every_secs=0')
# A progress line: step (of the steps asked for), loss, relative change and
# points per second.
PROGRESS_LINE = (r'^step +(\d+)(?:/\d+)? +loss (\S+) +relative change (\S+) '
                 r'+([\d,]+) points/s$')
POINTS = helpers.file_points(k=K)


def run_process(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run(
      [sys.executable, '-m', 'kmeans_estimator', *map(str, args)],
      capture_output=True, text=True, env=env, timeout=120,
      cwd=pathlib.Path(__file__).resolve().parents[2], check=False)


def batches(points, batch_size=BATCH):
  """The Python API's input_fn for the batches the command line reads."""
  return lambda: tf.data.Dataset.from_tensor_slices(points).batch(batch_size)


def summary_value(text, label):
  return re.search(rf'{label}:\s+(\S+)', text).group(1)


def centers_of(model_dir):
  return tf.train.load_variable(str(model_dir), 'clusters')
