"""One worker of a MultiWorkerMirroredStrategy run, started by the tests.

  python _distributed_worker.py CONFIG_JSON

CONFIG_JSON holds: tf_config (this worker's TF_CONFIG), model_dir, data
(path of an .npy of points), initial (path of an .npy of initial centers),
metric, mini_batch, batch_size, steps, max_steps, save_checkpoints_steps,
timeout (collective timeout, seconds, or null for none), output (where to
write the results as .npz), step_delay (seconds to sleep after each step, so
that a test can kill a worker mid-run).

A `WorkerFailedError` is also written to OUTPUT.error.json (its class,
lost_tasks and checkpoint) before it propagates, so that a test can check
what the survivor of a lost worker reported.
"""

import json
import os
import sys
import time


def main(config_path):
  with open(config_path) as f:
    config = json.load(f)
  os.environ['TF_CONFIG'] = json.dumps(config['tf_config'])
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import RunConfig  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import SessionRunArgs  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import SessionRunHook  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import distribute  # pylint: disable=g-import-not-at-top

  strategy = tf.distribute.MultiWorkerMirroredStrategy(
      communication_options=tf.distribute.experimental.CommunicationOptions(
          timeout_seconds=config['timeout']))
  points = np.load(config['data'])

  class Record(SessionRunHook):
    """Records each step's loss and this worker's own centers."""
    losses, centers = [], []

    def before_run(self, run_context):
      return SessionRunArgs({'loss': 'loss', 'clusters': 'clusters'})

    def after_run(self, run_context, run_values):
      self.losses.append(float(run_values.results['loss']))
      self.centers.append(run_values.results['clusters'])
      print('step done', flush=True)
      time.sleep(config['step_delay'])

  def input_fn():
    return tf.data.Dataset.from_tensor_slices(points).batch(
        config['batch_size'])

  kmeans = KMeansClustering(
      num_clusters=len(np.load(config['initial'])),
      initial_clusters=np.load(config['initial']),
      distance_metric=config['metric'], use_mini_batch=config['mini_batch'],
      model_dir=config['model_dir'],
      config=RunConfig(
          train_distribute=strategy,
          save_checkpoints_steps=config['save_checkpoints_steps']))
  try:
    kmeans.train(input_fn, steps=config['steps'],
                 max_steps=config.get('max_steps'), hooks=[Record()])
  except distribute.WorkerFailedError as error:
    with open(config['output'] + '.error.json', 'w') as f:
      json.dump({'type': type(error).__name__,
                 'lost_tasks': list(error.lost_tasks),
                 'checkpoint': error.checkpoint, 'message': str(error)}, f)
    raise
  np.savez(config['output'], centers=np.array(Record.centers),
           losses=np.array(Record.losses))


if __name__ == '__main__':
  main(sys.argv[1])
