"""Fixtures of the command-line tests: the points as files, and a model_dir
the command line trained on them (read, never changed, by the tests)."""

import contextlib
import io

import numpy as np
import pytest

from cli_cases import POINTS, TRAIN_FLAGS
from helpers import run_cli, write_csv, write_tfrecord


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp('data')
  np.save(path / 'points.npy', POINTS)
  write_csv(path / 'points.csv', POINTS, ['x', 'y', 'z'])
  write_tfrecord(path / 'points.tfrecord', POINTS)
  return path


@pytest.fixture(scope='session')
def trained(data_dir, tmp_path_factory):
  """A model_dir trained by the command line on points.npy, and its output."""
  model_dir = tmp_path_factory.mktemp('trained') / 'model'
  out = io.StringIO()  # capsys is function-scoped.
  with contextlib.redirect_stdout(out):
    assert run_cli('train', f'--model_dir={model_dir}', *TRAIN_FLAGS,
                   data_dir / 'points.npy') == 0
  return model_dir, out.getvalue()
