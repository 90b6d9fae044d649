"""Several carried steps per compiled call change nothing users see.

Each case trains twice from the same start: one step per call
(`training.STEPS_PER_CALL = 1`, the path hooks take) and many steps per call;
the centers, global step, checkpoints (which steps, and their centers),
TensorBoard summaries, `TrainingSummary`, log lines (but their steps/sec)
and errors must be the same, bit for bit.
"""

import glob
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import model as kmeans_lib
from kmeans_estimator.estimator import compiled
from kmeans_estimator.estimator import training

import oracles


@pytest.fixture(autouse=True)
def fresh_compiled_functions():
  """A monkeypatched step must not be left in the process-wide cache."""
  compiled.clear()
  yield
  compiled.clear()


def points(n=600, seed=0):
  """Uniform points: Lloyd's steps keep moving the centers for a while, so
  a checkpoint holding another step's centers would show."""
  return np.random.default_rng(seed).uniform(0, 1, (n, 2)).astype(np.float32)


class Calls:
  """Records (steps asked, steps run) of each call of several steps."""

  def __init__(self, monkeypatch):
    self.calls = []
    run = training.CarriedSteps.run

    def recording_run(steps, data, num_steps, *args):
      results = run(steps, data, num_steps, *args)
      self.calls.append((num_steps, len(results)))
      return results

    monkeypatch.setattr(training.CarriedSteps, 'run', recording_run)


class Listener:
  """A saving listener recording the steps saved; stops after `stop_at`."""

  def __init__(self, stop_at=None):
    self.saved, self._stop_at = [], stop_at

  def begin(self):
    pass

  def before_save(self, session, global_step):
    del session, global_step

  def after_save(self, session, global_step):
    del session
    self.saved.append(global_step)
    return global_step == self._stop_at

  def end(self, session, global_step):
    del session, global_step


def events(model_dir):
  """{tag: {step: value}} of every summary in model_dir's event files."""
  found = {}
  for path in glob.glob(f'{model_dir}/events.out.tfevents*'):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        found.setdefault(value.tag, {})[event.step] = tf.make_ndarray(
            value.tensor).tolist()
  return found


def checkpoints(model_dir):
  """{step: centers} of the checkpoints kept in model_dir."""
  state = tf.train.get_checkpoint_state(model_dir)
  return {int(path.rsplit('-', 1)[1]): tf.train.load_variable(path,
                                                              'clusters')
          for path in state.all_model_checkpoint_paths}


def trained(tmp_path, monkeypatch, caplog, per_call, data, train_calls,
            **options):
  """Trains a fresh estimator with `per_call` steps per call through
  `train_calls` (kwargs of each train()); returns what users can see."""
  monkeypatch.setattr(training, 'STEPS_PER_CALL', per_call)
  # Calls as long as STEPS_PER_CALL allows, whatever the machine's speed.
  monkeypatch.setattr(training, 'CALL_SECONDS', 1e9)
  model_dir = str(tmp_path / f'per_call_{per_call}')
  options.setdefault('config', RunConfig(
      save_checkpoints_steps=3, save_summary_steps=2, log_step_count_steps=4))
  kmeans = KMeansClustering(model_dir=model_dir, **options)
  caplog.clear()
  summaries, error = [], None
  with caplog.at_level('INFO'), caplog.at_level('INFO', logger='absl'):
    try:
      for kwargs in train_calls:
        kmeans.train(data, **kwargs)
        summaries.append(kmeans.training_summary)
    except (FloatingPointError, ValueError) as e:
      error = (type(e), str(e))
  logs = [re.sub(r' \([\d.]+ steps/sec\)', '', record.getMessage()).replace(
      model_dir, 'model_dir') for record in caplog.records]
  return dict(centers=kmeans.get_variable_value('clusters'),
              global_step=kmeans.get_variable_value('global_step'),
              summaries=summaries, error=error, logs=logs,
              checkpoints=checkpoints(model_dir), events=events(model_dir))


def assert_same(one, many):
  assert any(line.startswith('loss = ') for line in one['logs'])
  assert any(line.startswith('Saving checkpoints') for line in one['logs'])
  np.testing.assert_array_equal(many.pop('centers'), one.pop('centers'))
  one_checkpoints, many_checkpoints = (one.pop('checkpoints'),
                                       many.pop('checkpoints'))
  assert sorted(many_checkpoints) == sorted(one_checkpoints)
  for step, centers in one_checkpoints.items():
    np.testing.assert_array_equal(many_checkpoints[step], centers)
  assert many == one
  return one_checkpoints


def assert_moving(checkpoints):
  """The centers of the first two checkpoints kept differ: the case tells
  the steps' centers apart."""
  first, second = sorted(checkpoints)[:2]
  assert not np.array_equal(checkpoints[first], checkpoints[second])


def weighted_data():
  x = points(seed=1)
  weights = np.random.default_rng(1).integers(0, 4, len(x)).astype(
      np.float32)
  return {'x': x, 'w': weights}


CASES = {
    'lloyd': (points(), dict(num_clusters=10, seed=0)),
    'hamerly': (points(), dict(num_clusters=10, seed=0, algorithm='hamerly')),
    'yinyang': (points(), dict(num_clusters=20, seed=0, algorithm='yinyang')),
    'weighted': (weighted_data(), dict(num_clusters=10, seed=0,
                                       weight_column='w')),
    'cosine': (points() - 0.5, dict(num_clusters=10, seed=0,
                                    distance_metric='cosine')),
    'float64': (points().astype(np.float64), dict(num_clusters=10, seed=0,
                                                  dtype=tf.float64)),
    # Two centers far from every point: empty, then relocated.
    'farthest_point': (points(), dict(
        num_clusters=10, empty_cluster='farthest_point',
        initial_clusters=np.concatenate(
            [points()[:8], np.full((2, 2), 1e3, np.float32)]))),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_several_steps_per_call_give_the_results_of_one_step_per_call(
    tmp_path, monkeypatch, caplog, case):
  data, options = CASES[case]
  calls = Calls(monkeypatch)
  # A resumed call too: the second train() starts mid-way to a checkpoint.
  train_calls = [dict(steps=5), dict(steps=12)]
  one = trained(tmp_path, monkeypatch, caplog, 1, data, train_calls,
                use_mini_batch=False, **options)
  assert not calls.calls
  many = trained(tmp_path, monkeypatch, caplog, 100, data, train_calls,
                 use_mini_batch=False, **options)
  assert max(asked for asked, _ in calls.calls) > 1
  assert many['global_step'] == 17 and many['error'] is None
  assert_moving(assert_same(one, many))


def test_relative_tolerance_stops_inside_a_call_at_the_same_step(
    tmp_path, monkeypatch, caplog):
  calls = Calls(monkeypatch)
  options = dict(num_clusters=4, seed=0, use_mini_batch=False,
                 relative_tolerance=1e-4, config=RunConfig())
  one = trained(tmp_path, monkeypatch, caplog, 1, points(), [{'steps': 500}],
                **options)
  many = trained(tmp_path, monkeypatch, caplog, 100, points(),
                 [{'steps': 500}], **options)
  (summary,) = many['summaries']
  assert summary.stopped_by == 'relative_tolerance' and summary.steps > 2
  # The graph stopped before the steps asked: inside a call.
  assert calls.calls[-1][1] < calls.calls[-1][0]
  assert_same(one, many)


def test_a_saving_listener_stops_at_the_same_checkpoint(
    tmp_path, monkeypatch, caplog):
  results = []
  for per_call in (1, 100):
    listener = Listener(stop_at=6)
    results.append(trained(tmp_path, monkeypatch, caplog, per_call, points(),
                           [dict(steps=40, saving_listeners=[listener])],
                           num_clusters=10, seed=0, use_mini_batch=False))
    assert listener.saved == [3, 6]
  assert results[1]['summaries'][0].stopped_by == 'saving_listener'
  assert_moving(assert_same(*results))


def test_a_non_finite_loss_fails_at_the_same_step(
    tmp_path, monkeypatch, caplog):
  # The loss of the 8th step of the process is NaN.
  taken = tf.Variable(0)
  carried_step = kmeans_lib.KMeans.carried_step

  def failing_step(core, *args):
    stats, state = carried_step(core, *args)
    taken.assign_add(1)
    stats['loss'] = tf.where(taken == 8, tf.constant(math.nan, stats[
        'loss'].dtype), stats['loss'])
    return stats, state

  monkeypatch.setattr(kmeans_lib.KMeans, 'carried_step', failing_step)
  results = []
  for per_call in (1, 100):
    taken.assign(0)
    compiled.clear()
    results.append(trained(tmp_path, monkeypatch, caplog, per_call, points(),
                           [dict(steps=30)], num_clusters=10, seed=0,
                           use_mini_batch=False))
  error_type, message = results[1]['error']
  assert issubclass(error_type, FloatingPointError)
  assert 'The loss became nan at step 8' in message
  # The checkpoint of step 6 is the last one written; nothing after it.
  assert sorted(results[1]['checkpoints']) == [3, 6]
  assert_same(*results)


def test_hooks_run_one_step_per_call(tmp_path, monkeypatch):
  calls = Calls(monkeypatch)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), seed=0,
                            use_mini_batch=False)
  kmeans.train(points(), steps=5, hooks=[_NoOpHook()])
  assert not calls.calls
  assert kmeans.get_variable_value('global_step') == 5


class _NoOpHook:

  def begin(self):
    pass

  def before_run(self, run_context):
    del run_context

  def after_run(self, run_context, run_values):
    del run_context, run_values

  def end(self, session):
    del session


def test_a_train_with_steps_over_an_array_runs_several_steps_per_call(
    tmp_path, monkeypatch):
  calls = Calls(monkeypatch)
  monkeypatch.setattr(training, 'CALL_SECONDS', 1e9)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), seed=0,
                            use_mini_batch=False)
  kmeans.train(points(), steps=50)
  # The first call's time sets the next call's number of steps.
  assert calls.calls == [(1, 1), (49, 49)]
  assert os.path.exists(str(tmp_path / 'checkpoint'))
