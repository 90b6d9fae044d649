"""The console script's answers (cli/app.py) and the lazy package.

Evidence, from `python -m kmeans_estimator` in a subprocess as a user runs
it: --help and --version exit 0 without importing TensorFlow; a usage error
(missing flag, unknown command or flag, bad value, a library error on a
flag) is at most three lines ending with where to look, status 2; a train
run prints nothing on stderr (TensorFlow's start-up messages silenced).
`import kmeans_estimator` imports no TensorFlow and its public names are
the modules' objects.
"""

import ast
import importlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import kmeans_estimator
from cli_cases import K, POINTS

_ROOT = pathlib.Path(__file__).resolve().parents[2]
# Runs the console script's entry point, then reports (on the last line of
# stderr) whether TensorFlow was imported.
_WRAPPER = '''
import json, sys
from kmeans_estimator.cli import app
sys.argv = ['kmeans-estimator'] + json.loads(sys.argv[1])
try:
  app.run()
  code = 0
except SystemExit as exit:
  code = exit.code
print(json.dumps({'tensorflow': 'tensorflow' in sys.modules}),
      file=sys.stderr)
sys.exit(code)
'''


def _run(*args, env=None):
  """(status, stdout, stderr lines, whether TensorFlow was imported)."""
  env = dict(os.environ if env is None else env)
  env['PYTHONPATH'] = os.pathsep.join(
      [str(_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                      if p])
  result = subprocess.run(
      [sys.executable, '-c', _WRAPPER, json.dumps([str(a) for a in args])],
      capture_output=True, text=True, env=env, timeout=300, cwd=_ROOT,
      check=False)
  *err, report = result.stderr.splitlines()
  return (result.returncode, result.stdout, err,
          json.loads(report)['tensorflow'])


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_exits_0_without_tensorflow_and_lists_commands_and_flags(flag):
  status, out, err, tensorflow = _run(flag)
  assert (status, err, tensorflow) == (0, [], False)
  assert 'Usage: kmeans-estimator COMMAND [flags] [FILE...]' in out
  for command in ('train', 'predict', 'score', 'centers', 'export'):
    assert f'\n  {command} ' in out
  for name in ('--model_dir', '--num_clusters', '--initial_clusters',
               '--algorithm', '--weight_column', '--steps',
               '--relative_tolerance', '--helpfull'):
    assert name in out
  assert 'kmeans_parallel' in out
  assert len(out.splitlines()) < 60
  assert max(map(len, out.splitlines())) <= 80


def test_helpfull_lists_every_flag_with_status_0():
  status, out, _, tensorflow = _run('--helpfull')
  assert (status, tensorflow) == (0, False)
  for name in ('--kmc2_chain_length', '--dtype', '--save_summary_steps',
               '--verbosity', '--progress_every_secs'):
    assert name in out


def test_version_prints_the_package_metadata_version():
  status, out, err, tensorflow = _run('--version')
  assert (status, err, tensorflow) == (0, [], False)
  assert out == f'kmeans-estimator {kmeans_estimator.__version__}\n'


@pytest.mark.parametrize('args,message', [
    (['train', '--model_dir={tmp}/model', '{data}'],
     'kmeans-estimator train: error: `num_clusters` must be given to train a '
     'new model in --model_dir={tmp}/model. Received: no --num_clusters'),
    (['trian', '--model_dir={tmp}/model', '{data}'],
     'kmeans-estimator: error: The command must be one of train, predict, '
     'score, centers, export. Did you mean train? Received: trian'),
    (['train', '--num_cluster=3', '{data}'],
     'kmeans-estimator: error: unknown flag --num_cluster. Did you mean '
     '--num_clusters?'),
    (['train', '--num_clusters=three', '{data}'],
     'kmeans-estimator: error: `num_clusters` must be an integer. Received: '
     '--num_clusters=three'),
    (['train', '--algorithm=elkan', '{data}'],
     'kmeans-estimator: error: `algorithm` must be one of lloyd, hamerly, '
     'yinyang. Received: --algorithm=elkan'),
    (['train', '--dtype', 'float16', '{data}'],
     'kmeans-estimator: error: `dtype` must be one of float32, float64. '
     'Received: --dtype=float16'),
    (['train', '--empty_cluster=drop', '{data}'],
     'kmeans-estimator: error: `empty_cluster` must be one of keep, '
     'farthest_point. Received: --empty_cluster=drop'),
    (['train', '--use_mini_batch=maybe', '{data}'],
     'kmeans-estimator: error: `use_mini_batch` must be true or false (or '
     '--use_mini_batch / --nouse_mini_batch). Received: '
     '--use_mini_batch=maybe'),
    (['centers', '--model_dir={tmp}/none'],
     'kmeans-estimator centers: error: `model_dir` must hold a trained model '
     '(run `kmeans-estimator train` first). Received: '
     '--model_dir={tmp}/none'),
    ([], 'kmeans-estimator: error: Give a command: one of train, predict, '
         'score, centers, export. For example: kmeans-estimator train '
         '--model_dir=model --num_clusters=5 points.npy'),
], ids=['missing_num_clusters', 'unknown_command', 'unknown_flag',
        'not_an_integer', 'unknown_algorithm', 'unknown_dtype',
        'unknown_empty_cluster', 'not_a_bool', 'untrained_model_dir',
        'no_command'])
def test_a_usage_error_is_two_lines_and_status_2_without_tensorflow(
    tmp_path, args, message):
  np.save(tmp_path / 'points.npy', POINTS)
  fill = {'tmp': tmp_path, 'data': tmp_path / 'points.npy'}
  status, out, err, tensorflow = _run(*[a.format(**fill) for a in args])
  assert (status, out, tensorflow) == (2, '', False)
  assert err == [message.format(**fill), "Try 'kmeans-estimator --help'."]
  assert not (tmp_path / 'model').exists()


@pytest.mark.slow
def test_train_prints_no_tensorflow_noise_and_library_errors_are_usage(
    tmp_path):
  np.save(tmp_path / 'points.npy', POINTS)
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  status, out, err, tensorflow = _run(
      'train', f'--model_dir={tmp_path / "model"}', f'--num_clusters={K}',
      '--steps=3', tmp_path / 'points.npy', env=env)
  assert (status, err, tensorflow) == (0, [], True)
  assert 'final inertia' in out
  # A reader that stops early ends predict quietly, with status 0.
  piped = subprocess.run(
      ['bash', '-euo', 'pipefail', '-c',
       f'"{sys.executable}" -m kmeans_estimator predict '
       f'--model_dir="{tmp_path / "model"}" "{tmp_path / "points.npy"}" '
       '| head -2'], capture_output=True, text=True, timeout=300, cwd=_ROOT,
      env=dict(env, PYTHONPATH=str(_ROOT)), check=False)
  assert (piped.returncode, piped.stdout, piped.stderr) == (
      0, 'cluster_index\n' + piped.stdout.splitlines()[1] + '\n', '')
  # A library error about a flag's value: two lines, status 2.
  status, out, err, _ = _run(
      'train', f'--model_dir={tmp_path / "other"}', f'--num_clusters={K}',
      '--kmeans_parallel_oversampling=-1', tmp_path / 'points.npy', env=env)
  assert status == 2
  assert err == [
      'kmeans-estimator train: error: `kmeans_parallel_oversampling` must be '
      'a finite number > 0. Received: --kmeans_parallel_oversampling=-1.0',
      "Try 'kmeans-estimator --help'."]
  assert not (tmp_path / 'other').exists()


# ------------------------------------------------------- the lazy package
def test_importing_the_package_imports_no_tensorflow():
  code = ('import sys, kmeans_estimator; '
          "print('tensorflow' in sys.modules, kmeans_estimator.__version__)")
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=_ROOT, timeout=120, check=True,
                          env=dict(os.environ, PYTHONPATH=str(_ROOT)))
  assert result.stdout.split() == ['False', kmeans_estimator.__version__]


def test_public_names_are_the_modules_objects():
  from kmeans_estimator import KMeansClustering  # pylint: disable=import-outside-toplevel
  module = importlib.import_module(
      'kmeans_estimator.estimator.kmeans_clustering')
  assert KMeansClustering is module.KMeansClustering
  assert kmeans_estimator.KMeansClustering is module.KMeansClustering
  assert set(kmeans_estimator.__all__) <= set(dir(kmeans_estimator))
  with pytest.raises(AttributeError, match='no attribute'):
    getattr(kmeans_estimator, 'NoSuchName')


def test_the_version_comes_from_the_metadata_or_says_unknown(monkeypatch):
  metadata = importlib.import_module('importlib.metadata')
  assert kmeans_estimator.__version__ == metadata.version('kmeans_estimator')

  def not_installed(name):
    raise metadata.PackageNotFoundError(name)

  monkeypatch.setattr(kmeans_estimator._metadata, 'version', not_installed)
  assert kmeans_estimator._installed_version() == '0+unknown'


def test_the_lazy_names_and_the_type_checking_imports_agree_with_all():
  tree = ast.parse(pathlib.Path(kmeans_estimator.__file__).read_text())
  guarded, = [node for node in tree.body if isinstance(node, ast.If)]
  imported = {alias.name: node.module for node in guarded.body
              for alias in node.names}
  assert imported == kmeans_estimator._PUBLIC
  assert set(imported) == set(kmeans_estimator.__all__)


@pytest.mark.parametrize('verbosity,level', [
    (None, '3'), (0, '0'), (1, '0'), (-1, '1'), (-2, '2'), (-3, '3')])
def test_verbosity_sets_tensorflows_log_level_unless_the_environment_does(
    monkeypatch, verbosity, level):
  from kmeans_estimator.cli import app  # pylint: disable=import-outside-toplevel
  monkeypatch.delenv('TF_CPP_MIN_LOG_LEVEL', raising=False)
  app._import_tensorflow(verbosity)
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == level
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '1')
  app._import_tensorflow(verbosity)
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '1'
