"""Every `KMeansClustering` option as a flag (cli/flags.py, cli/commands.py).

Evidence: the constructor's signature is the list of flags to have; each
option flag's value is what the estimator the command line builds holds;
training with the weight column of a .csv, .npy or TFRecord file equals
numpy Lloyd over the rows repeated as often as their (integer) weight, and
score and predict read the same files (predict ignoring the weights);
--algorithm=hamerly really runs Hamerly over the points in memory, with
Lloyd's result; --num_restarts and --dtype show in the checkpoint; a bad
value of each is a usage error naming its flag, and leaves no model_dir.
"""

import inspect

import numpy as np
import oracles
import pytest
import tensorflow as tf
from absl import app

from cli_cases import K, POINTS, centers_of, summary_value
from helpers import run_cli, write_csv
from kmeans_estimator import KMeansClustering
from kmeans_estimator import algorithms
from kmeans_estimator.cli import commands
from kmeans_estimator.cli import flags
from kmeans_estimator.estimator import kmeans_clustering

# Constructor arguments set otherwise: the files' columns and features
# (--columns, --feature), and the RunConfig's parts (flags of their names).
_NOT_FLAGS = {'self', 'feature_columns', 'config'}


def test_every_constructor_argument_is_a_flag_of_its_name():
  arguments = set(inspect.signature(KMeansClustering.__init__).parameters)
  missing = sorted(arguments - _NOT_FLAGS - set(flags.FLAGS))
  assert not missing


def test_the_algorithm_flag_lists_the_registry():
  assert list(flags.ALGORITHMS) == algorithms.names()


def test_initial_clusters_help_lists_every_method():
  for name in ('random', 'kmeans_plus_plus', 'kmc2', 'kmeans_parallel'):
    assert name in flags.FLAGS['initial_clusters'].help
    assert name in dict(dict(flags.HELP_GROUPS)['The model'])[
        'initial_clusters']


def _estimator_of(*args, model_dir):
  """The estimator the command line builds for the flags `args`."""
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['kmeans-estimator', *args])
    return commands._estimator(
        str(model_dir), K, flags.FLAGS.distance_metric,
        commands.initial_clusters(), seed=0,
        relative_tolerance=flags.relative_tolerance())
  finally:
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize('args,read,expected', [
    (['--algorithm=yinyang'], lambda e: e._kmeans_config.algorithm,
     'yinyang'),
    (['--empty_cluster=farthest_point'],
     lambda e: e._kmeans_config.empty_cluster, 'farthest_point'),
    (['--num_restarts=3'], lambda e: e._kmeans_config.num_restarts, 3),
    (['--initial_clusters=kmc2', '--kmc2_chain_length=7'],
     lambda e: (e._kmeans_config.initial_clusters,
                e._kmeans_config.kmc2_chain_length), ('kmc2', 7)),
    (['--kmeans_parallel_rounds=2', '--kmeans_parallel_oversampling=1.5'],
     lambda e: (e._kmeans_config.kmeans_parallel_rounds,
                e._kmeans_config.kmeans_parallel_oversampling), (2, 1.5)),
    (['--kmeans_plus_plus_num_retries=4'],
     lambda e: e._kmeans_config.kmeans_plus_plus_num_retries, 4),
    (['--use_mini_batch', '--mini_batch_steps_per_iteration=3'],
     lambda e: (e._kmeans_config.use_mini_batch,
                e._kmeans_config.mini_batch_steps_per_iteration,
                e._kmeans_config.initial_clusters),
     (True, 3, 'kmeans_plus_plus')),
    (['--dtype=float64'], lambda e: e._kmeans_config.dtype, tf.float64),
    (['--distance_metric=cosine'], lambda e: e.distance_metric, 'cosine'),
    (['--run_eagerly'], lambda e: e._run_eagerly, True),
    (['--save_summary_steps=7', '--save_checkpoints_secs=30',
      '--keep_checkpoint_max=2'],
     lambda e: (e.config.save_summary_steps, e.config.save_checkpoints_secs,
                e.config.keep_checkpoint_max), (7, 30, 2)),
    (['--save_checkpoints_steps=5'],
     lambda e: e.config.save_checkpoints_steps, 5),
    # The command line's defaults, which differ from the API's on purpose.
    ([], lambda e: (e._kmeans_config.use_mini_batch,
                    e._kmeans_config.initial_clusters,
                    e._kmeans_config.relative_tolerance),
     (False, 'kmeans_parallel', 1e-4)),
    (['--use_mini_batch'],
     lambda e: e._kmeans_config.relative_tolerance, None),
], ids=['algorithm', 'empty_cluster', 'num_restarts', 'kmc2_chain_length',
        'kmeans_parallel', 'kmeans_plus_plus_num_retries',
        'mini_batch_steps_per_iteration', 'dtype', 'distance_metric',
        'run_eagerly', 'run_config', 'save_checkpoints_steps', 'defaults',
        'mini_batch_tolerance'])
def test_each_option_flag_reaches_the_estimator(tmp_path, args, read,
                                                expected):
  estimator = _estimator_of(*args, model_dir=tmp_path / 'model')
  assert read(estimator) == expected


@pytest.mark.parametrize('args,message', [
    (['--num_restarts=0'],
     r'`num_restarts` must be a positive integer.*Received: '
     r'--num_restarts=0'),
    (['--initial_clusters=kmc2', '--kmc2_chain_length=0'],
     r'`kmc2_chain_length` must .*Received: --kmc2_chain_length=0'),
    (['--kmeans_parallel_rounds=0'],
     r'`kmeans_parallel_rounds` must .*Received: --kmeans_parallel_rounds=0'),
    (['--num_restarts=2', '--use_mini_batch'],
     r'num_restarts.*use_mini_batch'),
    (['--initial_clusters=kmeans_parallel', '--use_mini_batch'],
     r'`initial_clusters` must not be kmeans_parallel with --use_mini_batch'
     r'.*Received: --initial_clusters=kmeans_parallel'),
    (['--save_summary_steps=0'],
     r'`save_summary_steps` must .*Received: --save_summary_steps=0'),
    (['--save_checkpoints_secs=-5'],
     r'`save_checkpoints_secs` must .*Received: --save_checkpoints_secs=-5'),
    (['--progress_every_secs=-1'],
     r'`progress_every_secs` must be a number of seconds >= 0.*Received: '
     r'--progress_every_secs=-1'),
    (['--steps=0'], r'`steps` must be a positive integer\. Received: '
                    r'--steps=0'),
    (['--weight_column=w'],
     r"`weight_column` must be the header names \['x', 'y', 'z'\] or "
     r"0-based indices .*'w' is neither\. Received: --weight_column='w'"),
    (['--weight_column=z', '--columns=x,z'],
     r'`weight_column` must not be one of `columns`: a weight is not a '
     r"point value\. Received: --weight_column='z'"),
    (['--weight_column= '], r'`weight_column` must name a column'),
], ids=['num_restarts', 'kmc2_chain_length', 'kmeans_parallel_rounds',
        'num_restarts_mini_batch', 'kmeans_parallel_mini_batch',
        'save_summary_steps', 'save_checkpoints_secs', 'progress_every_secs',
        'steps', 'weight_column_missing', 'weight_column_in_columns',
        'weight_column_blank'])
def test_a_bad_option_is_a_usage_error_naming_its_flag(data_dir, tmp_path,
                                                       args, message):
  with pytest.raises(app.UsageError, match=message):
    run_cli('train', f'--model_dir={tmp_path / "model"}', f'--num_clusters={K}',
            *args, data_dir / 'points.csv')
  assert not (tmp_path / 'model').exists()


# ------------------------------------------------------------- weights
_WEIGHTS = np.random.default_rng(1).integers(1, 4, size=len(POINTS))


def _weighted_tfrecord(path):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for row, weight in zip(POINTS, _WEIGHTS):
      feature = {
          'xyz': tf.train.Feature(float_list=tf.train.FloatList(value=row)),
          'w': tf.train.Feature(int64_list=tf.train.Int64List(
              value=[weight])),
      }
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())
  return path, 'w'


def _weighted_csv(path):
  table = np.column_stack([POINTS, _WEIGHTS])
  return write_csv(path.with_suffix('.csv'), table, ['x', 'y', 'z', 'w']), 'w'


def _weighted_npy(path):
  # The weight first: the points are the other columns, in order.
  path = path.with_suffix('.npy')
  np.save(path, np.column_stack([_WEIGHTS, POINTS]).astype(np.float32))
  return path, '0'


@pytest.mark.parametrize('make', [_weighted_csv, _weighted_tfrecord,
                                  _weighted_npy], ids=['csv', 'tfrecord',
                                                       'npy'])
def test_weight_column_counts_each_point_as_often_as_its_weight(
    tmp_path, capsys, make):
  path, column = make(tmp_path / 'points.tfrecord')
  initial = POINTS[:K]
  np.save(tmp_path / 'initial.npy', initial)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 f'--initial_clusters={tmp_path / "initial.npy"}',
                 '--steps=3', '--relative_tolerance=0', '--batch_size=64',
                 f'--weight_column={column}', path) == 0
  repeated = np.repeat(POINTS, _WEIGHTS, axis=0)
  expected, _ = oracles.lloyd(repeated, initial, 3)
  centers = centers_of(tmp_path / 'model')
  np.testing.assert_allclose(centers, expected, rtol=1e-5, atol=1e-5)
  out = capsys.readouterr().out
  assert float(summary_value(out, 'final weighted inertia')) == (
      pytest.approx(oracles.inertia(repeated, centers), rel=1e-5))
  # score weighs the points too.
  assert run_cli('score', f'--model_dir={tmp_path / "model"}',
                 f'--weight_column={column}', path) == 0
  assert float(summary_value(capsys.readouterr().out, 'inertia')) == (
      pytest.approx(oracles.inertia(repeated, centers), rel=1e-5))
  # predict leaves the weights out of the points, and ignores them.
  assert run_cli('predict', f'--model_dir={tmp_path / "model"}',
                 f'--weight_column={column}',
                 f'--output={tmp_path / "index.npy"}', path) == 0
  np.testing.assert_array_equal(
      np.load(tmp_path / 'index.npy'),
      oracles.distances(POINTS, centers).argmin(axis=1))


# ----------------------------------------------------- algorithms, restarts
def test_algorithm_hamerly_runs_hamerly_in_memory_with_lloyds_result(
    data_dir, tmp_path, monkeypatch):
  chosen = []

  def choose(*args, **kwargs):
    chosen.append(real_choose(*args, **kwargs))
    return chosen[-1]

  real_choose = algorithms.choose
  monkeypatch.setattr(kmeans_clustering.algorithms, 'choose', choose)
  initial = POINTS[[0, 1, 2]]
  np.save(tmp_path / 'initial.npy', initial)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 '--algorithm=hamerly', '--steps=4', '--relative_tolerance=0',
                 f'--initial_clusters={tmp_path / "initial.npy"}',
                 '--noprogress', data_dir / 'points.npy') == 0
  assert [c.algorithm.name for c in chosen] == ['hamerly']
  assert chosen[0].warning is None
  np.testing.assert_allclose(centers_of(tmp_path / 'model'),
                             oracles.lloyd(POINTS, initial, 4)[0],
                             rtol=1e-5, atol=1e-5)


def test_num_restarts_and_dtype_show_in_the_checkpoint(data_dir, tmp_path):
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 f'--num_clusters={K}', '--num_restarts=2', '--dtype=float64',
                 '--steps=2', '--noprogress', data_dir / 'points.npy') == 0
  restarts = tf.train.load_variable(str(tmp_path / 'model'),
                                    'restart_clusters')
  assert restarts.shape == (2, K, 3)
  assert centers_of(tmp_path / 'model').dtype == np.float64
