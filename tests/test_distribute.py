"""Training on tf.distribute equals training in one process.

Evidence: MirroredStrategy over two logical CPU devices against the same
estimator without a strategy (and numpy Lloyd), for both metrics and both
modes; two real worker processes under MultiWorkerMirroredStrategy against
one process; a killed worker fails the survivor within a bounded time with a
WorkerFailedError naming it, leaves the chief's checkpoint intact, and
restarting both workers resumes from it and ends as an uninterrupted run.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import distribute

import oracles
from helpers import LossRecorder
from helpers import fast_first

_WORKER = pathlib.Path(__file__).parent / '_distributed_worker.py'


def blobs(seed=0, n=301, d=3, k=4):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(-50, 50, size=(k, d))
  return (centers[rng.integers(k, size=n)] +
          rng.normal(0, 8, size=(n, d))).astype(np.float32)


@pytest.fixture(scope='module')
def mirrored():
  return tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])


def train(model_dir, input_fn, metric, mini_batch, strategy, steps, initial):
  kmeans = KMeansClustering(
      4, model_dir=str(model_dir), initial_clusters=initial,
      distance_metric=metric, use_mini_batch=mini_batch,
      config=RunConfig(train_distribute=strategy))
  hook = LossRecorder()
  for _ in range(2):  # Two train() calls: the second resumes.
    kmeans.train(input_fn, steps=steps, hooks=[hook])
  return kmeans, hook.losses


@pytest.mark.parametrize('metric', oracles.METRICS)
@pytest.mark.parametrize('mini_batch', fast_first(1, [False, True]))
@pytest.mark.parametrize('whole', fast_first(1, [True, False]))
def test_mirrored_equals_one_device(tmp_path, mirrored, metric, mini_batch,
                                    whole):
  points = blobs()
  initial = points[:4] + 1.0
  if whole:
    single_fn = distributed_fn = lambda: points
    steps = 3
  else:
    # Seven batches of 40 and one of 21 (uneven over two replicas). In
    # mini-batch mode a distributed step takes one batch per replica: its
    # global batch is the single process's batch of 80.
    size = 80 if mini_batch else 40
    single_fn = lambda: tf.data.Dataset.from_tensor_slices(points).batch(size)
    distributed_fn = lambda: tf.data.Dataset.from_tensor_slices(points).batch(
        40)
    steps = None
  single, single_losses = train(tmp_path / 'single', single_fn, metric,
                                mini_batch, None, steps, initial)
  both, both_losses = train(tmp_path / 'mirrored', distributed_fn, metric,
                            mini_batch, mirrored, steps, initial)
  assert len(single_losses) == len(both_losses) >= 2
  np.testing.assert_allclose(both_losses, single_losses, rtol=1e-5)
  np.testing.assert_allclose(both.cluster_centers(), single.cluster_centers(),
                             rtol=1e-5, atol=1e-4)
  assert both.get_variable_value('global_step') == single.get_variable_value(
      'global_step')
  if not mini_batch and metric == oracles.SQUARED_EUCLIDEAN:
    want, _ = oracles.lloyd(points, initial, len(both_losses))
    np.testing.assert_allclose(both.cluster_centers(), want, rtol=1e-5,
                               atol=1e-4)
  if mini_batch:
    np.testing.assert_array_equal(both.get_variable_value('Variable'),
                                  single.get_variable_value('Variable'))


@pytest.mark.parametrize('init', fast_first(1, ['random', 'kmeans_plus_plus',
                                             'kmc2']))
def test_seeded_initialisation_is_the_one_process_choice(tmp_path, mirrored,
                                                         init):
  # The first replica initialises from the first batch, as one process
  # does, and broadcasts; the result after training is the same.
  points = blobs(seed=6, n=400)
  input_fn = lambda: tf.data.Dataset.from_tensor_slices(points).batch(50)
  centers = []
  for name, strategy in (('single', None), ('mirrored', mirrored)):
    kmeans = KMeansClustering(4, model_dir=str(tmp_path / name), seed=3,
                              initial_clusters=init, use_mini_batch=False,
                              config=RunConfig(train_distribute=strategy))
    kmeans.train(input_fn, steps=2)
    centers.append(kmeans.cluster_centers())
  np.testing.assert_allclose(centers[1], centers[0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('metric', ['squared_euclidean', 'cosine'])
@pytest.mark.slow
def test_kmeans_parallel_samples_every_replica(tmp_path, mirrored, metric):
  """k-means|| over both replicas' batches: every blob gets a center, the
  fit equals one process's to 1%, and the same seed gives the same
  centers."""
  rng = np.random.default_rng(9)
  true_centers = rng.uniform(-50, 50, size=(6, 3))
  points = (true_centers[rng.integers(6, size=2000)] +
            rng.normal(0, 1, size=(2000, 3))).astype(np.float32)
  input_fn = lambda: tf.data.Dataset.from_tensor_slices(points).batch(100)
  fits = []
  for name, strategy in (('single', None), ('mirrored', mirrored),
                         ('again', mirrored)):
    kmeans = KMeansClustering(6, model_dir=str(tmp_path / name), seed=3,
                              initial_clusters='kmeans_parallel',
                              distance_metric=metric, use_mini_batch=False,
                              kmeans_parallel_rounds=3,
                              config=RunConfig(train_distribute=strategy))
    kmeans.train(input_fn, steps=1)
    fits.append(kmeans.cluster_centers())
  np.testing.assert_array_equal(fits[2], fits[1])
  losses = [oracles.inertia(points, centers, metric) for centers in fits]
  assert losses[1] <= 1.01 * losses[0] + 1e-6
  if metric == 'squared_euclidean':
    for centers in fits:
      nearest = np.argmin(oracles.distances(centers, true_centers), axis=1)
      assert len(set(nearest)) == 6


def test_default_strategy_equals_no_strategy(tmp_path):
  points = blobs(seed=7)
  results = []
  for name, strategy in (('none', None),
                         ('default', tf.distribute.get_strategy())):
    kmeans, losses = train(tmp_path / name, lambda: points,
                           oracles.SQUARED_EUCLIDEAN, False, strategy, 2,
                           points[:4])
    results.append((kmeans.cluster_centers(), losses))
  np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
  np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6)


def test_mirrored_model_predicts_in_a_plain_estimator(tmp_path, mirrored):
  points = blobs(seed=1)
  trained, _ = train(tmp_path, lambda: points, oracles.SQUARED_EUCLIDEAN,
                     False, mirrored, 2, points[:4])
  plain = KMeansClustering(4, model_dir=str(tmp_path))
  want = oracles.distances(points, trained.cluster_centers()).argmin(1)
  np.testing.assert_array_equal(
      list(plain.predict_cluster_index(lambda: points)), want)
  # And the plain estimator trains on from the distributed checkpoint.
  plain.train(lambda: points, steps=1)
  assert plain.get_variable_value('global_step') == 5


def test_input_fn_with_input_context_shards_itself(tmp_path, mirrored):
  points = blobs(seed=2)
  contexts = []

  def input_fn(input_context):
    contexts.append(input_context)
    return tf.data.Dataset.from_tensor_slices(points).batch(50)

  kmeans = KMeansClustering(4, model_dir=str(tmp_path),
                            initial_clusters=points[:4],
                            use_mini_batch=False,
                            config=RunConfig(train_distribute=mirrored))
  kmeans.train(input_fn)
  assert any(c is not None and c.num_replicas_in_sync == 2 for c in contexts)
  want, _ = oracles.lloyd(points, points[:4], 1)
  np.testing.assert_allclose(kmeans.cluster_centers(), want, rtol=1e-5,
                             atol=1e-4)


def test_core_inside_a_users_strategy_scope(mirrored):
  points = blobs(seed=3, n=200)
  initial = points[:4]
  with mirrored.scope():
    core = KMeans(4, initial_clusters=initial, use_mini_batch=False)
  dataset = mirrored.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(points).batch(200))

  @tf.function
  def step(batch):
    return mirrored.run(core.full_batch_step, args=(batch,))

  for batch in dataset:
    stats = step(batch)
  loss = mirrored.experimental_local_results(stats['loss'])
  want_centers, want_losses = oracles.lloyd(points, initial, 1)
  np.testing.assert_allclose([float(x) for x in loss],
                             [want_losses[0]] * 2, rtol=1e-5)
  for replica_centers in core.clusters.values:
    np.testing.assert_allclose(replica_centers.numpy(), want_centers,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('whole', fast_first(1, [True, False]))
def test_eval_distribute_equals_one_process(tmp_path, mirrored, whole):
  points = blobs(seed=5)
  kmeans, _ = train(tmp_path, lambda: points, oracles.COSINE, False, None, 2,
                    points[:4])
  input_fn = ((lambda: points) if whole else
              (lambda: tf.data.Dataset.from_tensor_slices(points).batch(40)))
  want = kmeans.evaluate(input_fn)
  got = KMeansClustering(
      4, model_dir=str(tmp_path), distance_metric=oracles.COSINE,
      config=RunConfig(eval_distribute=mirrored)).evaluate(input_fn)
  assert got['num_points'] == want['num_points'] == len(points)
  assert got['global_step'] == want['global_step'] == 4
  for name in ('inertia', 'mean_squared_distance', 'score'):
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5)
  np.testing.assert_allclose(
      got['inertia'],
      oracles.inertia(points, kmeans.cluster_centers(), oracles.COSINE),
      rtol=1e-4)


def test_train_distribute_must_be_a_strategy():
  with pytest.raises(TypeError, match='`train_distribute` must be None or a '
                     'tf.distribute.Strategy'):
    RunConfig(train_distribute='mirrored')


# What TensorFlow 2.21 said on the survivor when a worker was killed or
# stopped (SIGSTOP) mid-run, one collective each, trimmed.
_HEARTBEAT_LOST = (
    '{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/'
    'job:worker/replica:0/task:0/device:CPU:0}} Collective ops is aborted '
    'by: Error reported from /job:worker/task:1: The following tasks are '
    'unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n'
    'The tasks have crashed.')
_CONNECTION_REFUSED = (
    '{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/'
    'job:worker/replica:0/task:1/device:CPU:0}} Collective ops is aborted '
    'by: failed to connect to all addresses; last error: UNKNOWN: ipv4:'
    '127.0.0.1:5000: Failed to connect to remote host: Connection refused\n'
    'Additional GRPC error information from remote target /job:worker/'
    'replica:0/task:0 while calling /tensorflow.WorkerService/'
    'CompleteInstance')
_DEADLINE = (
    '{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/'
    'job:worker/replica:0/task:1/device:CPU:0}} Collective ops is aborted '
    'by: Deadline Exceeded')


def _two_worker_strategy(task_id):
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec({'worker': ['127.0.0.1:5000', '127.0.0.1:5001']}),
      task_type='worker', task_id=task_id)
  return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize('error_type, message, task_id, lost', [
    (tf.errors.UnavailableError, _HEARTBEAT_LOST, 0, ['/job:worker/task:1']),
    (tf.errors.UnavailableError, _CONNECTION_REFUSED, 1,
     ['/job:worker/task:0']),
    (tf.errors.DeadlineExceededError, _DEADLINE, 1, []),
])
def test_a_lost_peer_is_a_worker_failed_error_naming_it(
    tmp_path, error_type, message, task_id, lost):
  model_dir = tmp_path / 'model'
  kmeans = KMeansClustering(4, model_dir=str(model_dir),
                            initial_clusters=blobs()[:4])
  kmeans.train(blobs(), steps=2)
  with pytest.raises(distribute.WorkerFailedError) as raised:
    with distribute.peer_failures(_two_worker_strategy(task_id),
                                  str(model_dir)):
      raise error_type(None, None, message)
  error = raised.value
  assert isinstance(error, RuntimeError)
  assert isinstance(error.__cause__, error_type)
  assert list(error.lost_tasks) == lost
  assert error.checkpoint == str(model_dir / 'model.ckpt-2')
  me = f'this worker (/job:worker/task:{task_id} (127.0.0.1:500{task_id}))'
  if lost:
    other = 1 - task_id
    assert str(error).startswith(
        f'Worker /job:worker/task:{other} (127.0.0.1:500{other}) of the '
        'distributed run failed or stopped responding '
        f'({error_type.__name__}), so {me} stops too')
  else:
    assert str(error).startswith(
        'A worker of the distributed run (TensorFlow did not say which; the '
        'cluster is /job:worker/task:0 (127.0.0.1:5000), /job:worker/task:1 '
        '(127.0.0.1:5001)) failed or stopped responding')
  assert ('Restart all worker processes, this one included, with the same '
          "TF_CONFIG and command: they resume from the chief's last "
          f"checkpoint, '{model_dir / 'model.ckpt-2'}'.") in str(error)


def test_a_lost_peer_is_found_by_its_whole_address(tmp_path):
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec({'worker': ['127.0.0.1:5000', '127.0.0.1:50001']}),
      task_type='worker', task_id=0)
  strategy = types.SimpleNamespace(cluster_resolver=resolver)
  with pytest.raises(distribute.WorkerFailedError) as raised:
    with distribute.peer_failures(strategy, str(tmp_path)):
      raise tf.errors.UnavailableError(
          None, None, 'failed to connect to all addresses; last error: '
          'UNKNOWN: ipv4:127.0.0.1:50001: Connection refused')
  assert raised.value.lost_tasks == ('/job:worker/task:1',)
  assert str(raised.value).endswith(
      'TensorFlow said: failed to connect to all addresses; last error: '
      'UNKNOWN: ipv4:127.0.0.1:50001: Connection refused')


def test_a_lost_peer_before_any_checkpoint_says_the_restart_starts_over(
    tmp_path):
  with pytest.raises(distribute.WorkerFailedError,
                     match='this worker sees no checkpoint in model_dir=.*, '
                     'so unless the chief saved one there they start over'):
    with distribute.peer_failures(_two_worker_strategy(0),
                                  str(tmp_path / 'empty')):
      raise tf.errors.UnavailableError(None, None, _HEARTBEAT_LOST)


def test_other_errors_and_runs_without_a_strategy_pass_through(tmp_path):
  with pytest.raises(tf.errors.InvalidArgumentError):
    with distribute.peer_failures(_two_worker_strategy(0), str(tmp_path)):
      raise tf.errors.InvalidArgumentError(None, None, 'bad data')
  with pytest.raises(tf.errors.UnavailableError):
    with distribute.peer_failures(None, str(tmp_path)):
      raise tf.errors.UnavailableError(None, None, _HEARTBEAT_LOST)


@pytest.mark.parametrize('mode', ['train', 'evaluate'])
def test_train_and_evaluate_under_a_strategy_raise_worker_failed_error(
    tmp_path, mirrored, monkeypatch, mode):
  points = blobs(seed=8)
  KMeansClustering(4, model_dir=str(tmp_path),
                   initial_clusters=points[:4]).train(points, steps=1)

  def lost(*args, **kwargs):
    del args, kwargs
    raise tf.errors.UnavailableError(None, None, _HEARTBEAT_LOST)

  def evaluations(*args, **kwargs):  # A generator, as the real one.
    yield lost(*args, **kwargs)

  if mode == 'train':
    monkeypatch.setattr(distribute.Trainer, 'initialize', lost)
  else:
    monkeypatch.setattr(distribute, 'evaluations', evaluations)
  kmeans = KMeansClustering(4, model_dir=str(tmp_path), config=RunConfig(
      train_distribute=mirrored, eval_distribute=mirrored))
  with pytest.raises(distribute.WorkerFailedError,
                     match='Restart all worker processes'):
    getattr(kmeans, mode)(lambda: points)
  assert tf.train.load_variable(str(tmp_path), 'global_step') == 1


# ------------------------------------------------------------ multi-worker
def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start_workers(tmp_path, name, model_dir, steps, step_delay=0.0,
                   save_checkpoints_steps=None, timeout=20, max_steps=None):
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  processes = []
  for index in range(2):
    config = dict(
        tf_config={'cluster': cluster,
                   'task': {'type': 'worker', 'index': index}},
        model_dir=str(model_dir), data=str(tmp_path / 'points.npy'),
        initial=str(tmp_path / 'initial.npy'),
        metric=oracles.SQUARED_EUCLIDEAN, mini_batch=False, batch_size=40,
        steps=steps, max_steps=max_steps, timeout=timeout, step_delay=step_delay,
        save_checkpoints_steps=save_checkpoints_steps,
        output=str(tmp_path / f'{name}{index}.npz'))
    path = tmp_path / f'{name}{index}.json'
    path.write_text(json.dumps(config))
    log = open(tmp_path / f'{name}{index}.log', 'w')  # pylint: disable=consider-using-with
    processes.append(subprocess.Popen(
        [sys.executable, str(_WORKER), str(path)], stdout=log,
        stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(
            pathlib.Path(__file__).parent.parent))))
  return processes


def _wait(processes, timeout):
  deadline = time.time() + timeout
  try:
    for process in processes:
      process.wait(timeout=max(deadline - time.time(), 1))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  return [p.returncode for p in processes]


@pytest.fixture()
def cluster_data(tmp_path):
  points = blobs(seed=4, n=330)
  np.save(tmp_path / 'points.npy', points)
  np.save(tmp_path / 'initial.npy', points[:4])
  return points


@pytest.mark.slow
def test_two_workers_equal_one_process(tmp_path, cluster_data):
  points = cluster_data
  model_dir = tmp_path / 'model'
  # One step in this process, three more on two workers, then on here again:
  # a model moves between one process and several in both directions.
  kmeans = KMeansClustering(4, model_dir=str(model_dir),
                            initial_clusters=points[:4],
                            use_mini_batch=False)
  kmeans.train(lambda: tf.data.Dataset.from_tensor_slices(points).batch(40))
  codes = _wait(_start_workers(tmp_path, 'run', model_dir, steps=3), 240)
  logs = [(tmp_path / f'run{i}.log').read_text()[-3000:] for i in range(2)]
  assert codes == [0, 0], logs
  single = KMeansClustering(4, model_dir=str(tmp_path / 'single'),
                            initial_clusters=points[:4],
                            use_mini_batch=False)
  hook = LossRecorder()
  single.train(lambda: points, steps=4, hooks=[hook])
  for index in range(2):
    result = np.load(tmp_path / f'run{index}.npz')
    np.testing.assert_allclose(result['losses'], hook.losses[1:], rtol=1e-5)
    np.testing.assert_allclose(result['centers'][-1], single.cluster_centers(),
                               rtol=1e-5, atol=1e-4)
  # The chief's checkpoint loads and predicts in a plain process.
  assert tf.train.load_variable(str(model_dir), 'global_step') == 4
  np.testing.assert_allclose(
      tf.train.load_variable(str(model_dir), 'clusters'),
      single.cluster_centers(), rtol=1e-5, atol=1e-4)
  kmeans = KMeansClustering(4, model_dir=str(model_dir))
  np.testing.assert_array_equal(
      list(kmeans.predict_cluster_index(lambda: points)),
      list(single.predict_cluster_index(lambda: points)))


@pytest.mark.slow
def test_a_killed_worker_fails_the_survivor_and_a_restart_ends_as_if_uninterrupted(
    tmp_path):
  # One Gaussian blob: Lloyd keeps moving for more than a dozen steps, so a
  # restart that did not resume from the checkpoint would show in the losses.
  points = np.random.default_rng(2).normal(0, 10, size=(330, 3)).astype(
      np.float32)
  np.save(tmp_path / 'points.npy', points)
  np.save(tmp_path / 'initial.npy', points[:4])
  model_dir = tmp_path / 'model'
  processes = _start_workers(tmp_path, 'fail', model_dir, steps=200,
                             step_delay=0.5, save_checkpoints_steps=1)
  chief_log = tmp_path / 'fail0.log'
  deadline = time.time() + 120
  while chief_log.read_text().count('step done') < 2:
    assert time.time() < deadline, chief_log.read_text()[-3000:]
    assert processes[0].poll() is None, chief_log.read_text()[-3000:]
    time.sleep(0.2)
  processes[1].send_signal(signal.SIGKILL)
  killed_at = time.time()
  # The survivor (the chief) stops by itself within the bound; a hang would
  # end in _wait's kill, with no error file.
  codes = _wait(processes[:1], timeout=90)
  processes[1].wait()
  assert time.time() - killed_at < 90
  assert codes[0] == 1, chief_log.read_text()[-3000:]
  error = json.loads((tmp_path / 'fail0.npz.error.json').read_text())
  assert error['type'] == 'WorkerFailedError'
  assert error['lost_tasks'] == ['/job:worker/task:1']
  assert error['message'].startswith(
      'Worker /job:worker/task:1 (127.0.0.1:')
  assert 'Restart all worker processes' in error['message']
  # The chief's last checkpoint is intact and named in the error.
  step = int(tf.train.load_variable(str(model_dir), 'global_step'))
  assert step >= 2
  assert error['checkpoint'] == str(model_dir / f'model.ckpt-{step}')

  # Restarting both workers resumes from it and ends where an uninterrupted
  # run (exact Lloyd from the same centers) ends.
  last_step = step + 3
  codes = _wait(_start_workers(tmp_path, 'again', model_dir, steps=None,
                               max_steps=last_step), 240)
  assert codes == [0, 0], (tmp_path / 'again0.log').read_text()[-3000:]
  want, losses = oracles.lloyd(points, points[:4], last_step)
  assert not np.allclose(losses[step:], losses[:3], rtol=1e-3)
  for index in range(2):
    result = np.load(tmp_path / f'again{index}.npz')
    np.testing.assert_allclose(result['losses'], losses[step:], rtol=1e-5)
    np.testing.assert_allclose(result['centers'][-1], want, rtol=1e-5,
                               atol=1e-4)
  assert tf.train.load_variable(str(model_dir), 'global_step') == last_step
  np.testing.assert_allclose(tf.train.load_variable(str(model_dir),
                                                    'clusters'),
                             want, rtol=1e-5, atol=1e-4)
