"""`training.TrainingLoop` on its own: a fake core and scripted step
statistics, so each between-steps behaviour is checked without TensorFlow
steps (stop reasons, checkpoint cadence, per-step checks)."""

import dataclasses
import itertools
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import RunConfig
from kmeans_estimator import constants
from kmeans_estimator.estimator import hooks as hooks_lib
from kmeans_estimator.estimator import training
from kmeans_estimator.estimator import training_summary as summary_lib


@dataclasses.dataclass
class FakeCore:
  use_mini_batch: bool = False
  empty_cluster: str = constants.KEEP_EMPTY
  dtype: tf.DType = tf.float32
  clusters: object = None


def stats(loss, num_points=4):
  return {'loss': np.float32(loss), 'num_points': np.int64(num_points),
          'empty_clusters': np.int32(0), 'relocated_clusters': np.int32(0),
          'cluster_sizes': np.array([num_points, 0])}


class Listener:

  def __init__(self, stop_at=None):
    self.events, self._stop_at = [], stop_at

  def begin(self):
    self.events.append('begin')

  def before_save(self, session, global_step):
    del session
    self.events.append(('before_save', global_step))

  def after_save(self, session, global_step):
    del session
    self.events.append(('after_save', global_step))
    return global_step == self._stop_at

  def end(self, session, global_step):
    del session
    self.events.append(('end', global_step))


class StopAt(hooks_lib.SessionRunHook):

  def __init__(self, step):
    self._step = step

  def before_run(self, run_context):
    return hooks_lib.SessionRunArgs('global_step')

  def after_run(self, run_context, run_values):
    if run_values.results >= self._step:
      run_context.request_stop()


def run_loop(tmp_path, losses, *, global_step=0, last_step=None, hooks=(),
             listeners=(), relative_tolerance=None, config=None, core=None):
  """Runs the loop over one scripted step per loss; returns (summary, the
  global steps saved)."""
  saved = []
  loop = training.TrainingLoop(
      core or FakeCore(), config or RunConfig(save_checkpoints_secs=None),
      relative_tolerance, None, global_step, save=saved.append,
      keep_best_restart=lambda data: None,
      summary_writer=lambda: tf.summary.create_file_writer(str(tmp_path)),
      chief=True)
  summary = loop.run(hooks_lib.HookRunner(hooks), list(listeners), last_step,
                     iter(losses), lambda loss: stats(loss))
  return summary, saved


def test_stops_at_last_step_and_checkpoints_the_last_step(tmp_path):
  summary, saved = run_loop(tmp_path, [5., 4., 3., 2., 1.], global_step=10,
                            last_step=13)
  assert (summary.steps, summary.global_step) == (3, 13)
  assert summary.stopped_by == summary_lib.STEP_LIMIT
  assert summary.loss == 3.
  assert saved == [13]


def test_end_of_input_stops_when_no_step_limit(tmp_path):
  summary, saved = run_loop(tmp_path, [5., 4.])
  assert summary.stopped_by == summary_lib.END_OF_INPUT
  assert saved == [2]


def test_checkpoints_every_save_checkpoints_steps_and_once_at_the_end(
    tmp_path):
  listener = Listener()
  _, saved = run_loop(tmp_path, [9., 8., 7., 6., 5.], listeners=[listener],
                      config=RunConfig(save_checkpoints_steps=2))
  assert saved == [2, 4, 5]
  assert listener.events == [
      'begin', ('before_save', 2), ('after_save', 2), ('before_save', 4),
      ('after_save', 4), ('before_save', 5), ('after_save', 5), ('end', 5)]


def test_relative_tolerance_stops_with_converged(tmp_path):
  summary, _ = run_loop(tmp_path, [10., 5., 4.999, 1.],
                        relative_tolerance=1e-3)
  assert summary.stopped_by == summary_lib.RELATIVE_TOLERANCE
  assert summary.converged and summary.steps == 3


def test_relative_tolerance_overrides_a_hook_stop_of_the_same_step(
    tmp_path):
  summary, _ = run_loop(tmp_path, [10., 10., 1.], hooks=[StopAt(2)],
                        relative_tolerance=1e-3)
  assert summary.stopped_by == summary_lib.RELATIVE_TOLERANCE
  assert summary.steps == 2


def test_hook_stop(tmp_path):
  summary, saved = run_loop(tmp_path, [10., 9., 8., 7.], hooks=[StopAt(2)])
  assert (summary.stopped_by, summary.steps, saved) == (
      summary_lib.HOOK, 2, [2])


def test_saving_listener_stop_is_the_reason_only_without_another(tmp_path):
  config = RunConfig(save_checkpoints_steps=2)
  summary, _ = run_loop(tmp_path, [10., 9., 8., 7.], config=config,
                        listeners=[Listener(stop_at=2)])
  assert (summary.stopped_by, summary.steps) == (
      summary_lib.SAVING_LISTENER, 2)
  summary, _ = run_loop(tmp_path, [10., 9., 8., 7.], config=config,
                        listeners=[Listener(stop_at=2)], hooks=[StopAt(2)])
  assert summary.stopped_by == summary_lib.HOOK


@pytest.mark.parametrize('loss', [math.nan, math.inf])
def test_non_finite_loss_is_a_floating_point_error_naming_the_step(
    tmp_path, loss):
  with pytest.raises(FloatingPointError, match='at step 2; the data likely '
                     'overflow float32'):
    run_loop(tmp_path, [1., loss])


def test_no_steps_is_the_no_training_data_error(tmp_path):
  with pytest.raises(ValueError, match='no points to train on'):
    run_loop(tmp_path, [])


def test_full_batch_step_over_no_points_is_the_no_training_data_error(
    tmp_path):
  loop = training.TrainingLoop(
      FakeCore(), RunConfig(), None, None, 0, save=lambda step: None,
      keep_best_restart=lambda data: None, summary_writer=None, chief=True)
  with pytest.raises(ValueError, match='no points to train on'):
    loop.run(hooks_lib.HookRunner(()), [], None, [0.],
             lambda loss: stats(loss, num_points=0))


class ScriptedSteps:
  """A `steps_fn` returning the next scripted losses' stats, as many as
  asked; records how many each call asked for."""

  def __init__(self, losses):
    self.losses, self.asked = list(losses), []

  def __call__(self, data, num_steps, previous_loss, relative_tolerance):
    del data, previous_loss, relative_tolerance
    self.asked.append(num_steps)
    taken, self.losses = self.losses[:num_steps], self.losses[num_steps:]
    return [stats(loss) for loss in taken]


def run_loop_in_calls(tmp_path, monkeypatch, losses, *, global_step=0,
                      last_step=None, config=None):
  """`run_loop` with several steps per call, each call as long as
  STEPS_PER_CALL allows; returns (summary, the global steps saved, the
  steps each call asked for)."""
  monkeypatch.setattr(training, 'CALL_SECONDS', 1e9)
  saved, steps_fn = [], ScriptedSteps(losses)
  loop = training.TrainingLoop(
      FakeCore(), config or RunConfig(save_checkpoints_secs=None), None,
      None, global_step, save=saved.append,
      keep_best_restart=lambda data: None,
      summary_writer=lambda: tf.summary.create_file_writer(str(tmp_path)),
      chief=True)
  summary = loop.run(hooks_lib.HookRunner(()), [], last_step,
                     itertools.repeat('data'), None, steps_fn)
  return summary, saved, steps_fn.asked


def test_calls_of_several_steps_end_at_checkpoint_boundaries_and_the_budget(
    tmp_path, monkeypatch):
  losses = [float(10 - i) for i in range(10)]
  config = RunConfig(save_checkpoints_steps=4)
  summary, saved, asked = run_loop_in_calls(
      tmp_path, monkeypatch, losses, global_step=1, last_step=11,
      config=config)
  # The first call runs one step; its time sets the next calls' length.
  assert asked == [1, 2, 4, 3]
  assert saved == [4, 8, 11]
  assert summary == run_loop(tmp_path, losses, global_step=1, last_step=11,
                             config=config)[0]


def test_time_based_checkpoints_are_looked_at_after_a_call_s_last_step(
    tmp_path, monkeypatch):
  losses = [float(10 - i) for i in range(7)]
  # Due whenever looked at.
  config = RunConfig(save_checkpoints_secs=1e-9)
  _, saved, asked = run_loop_in_calls(tmp_path, monkeypatch, losses,
                                      last_step=7, config=config)
  assert asked == [1, 6]
  assert saved == [1, 7]
  # One step per call: after every step.
  assert run_loop(tmp_path, losses, last_step=7, config=config)[1] == [
      1, 2, 3, 4, 5, 6, 7]


def test_one_step_per_call_when_steps_per_call_is_1(tmp_path, monkeypatch):
  monkeypatch.setattr(training, 'STEPS_PER_CALL', 1)
  steps_fn = ScriptedSteps([3., 2.])
  loop = training.TrainingLoop(
      FakeCore(), RunConfig(save_checkpoints_secs=None), None, None, 0,
      save=lambda step: None, keep_best_restart=lambda data: None,
      summary_writer=lambda: tf.summary.create_file_writer(str(tmp_path)),
      chief=True)
  summary = loop.run(hooks_lib.HookRunner(()), [], 2, iter([3., 2.]),
                     lambda loss: stats(loss), steps_fn)
  assert summary.steps == 2 and steps_fn.asked == []


class FakeClock:
  """A clock that moves only when a scripted step runs."""

  def __init__(self):
    self.now = 1000.

  def __call__(self):
    return self.now


@pytest.mark.parametrize('per_call', [100, 1])
def test_logged_steps_per_sec_is_steps_run_over_their_wall_time(
    tmp_path, monkeypatch, caplog, per_call):
  # Every step takes 0.01 s of the fake clock: 100 steps/sec, whether the
  # steps run 100 per call (figures replayed after the call) or one by one.
  monkeypatch.setattr(training, 'CALL_SECONDS', 1e9)
  monkeypatch.setattr(training, 'STEPS_PER_CALL', per_call)
  clock = FakeClock()
  losses = [float(300 - i) for i in range(250)]
  steps_fn = ScriptedSteps(losses)

  def timed_steps(*args):
    taken = steps_fn(*args)
    clock.now += 0.01 * len(taken)
    return taken

  def timed_step(loss):
    clock.now += 0.01
    return stats(loss)

  loop = training.TrainingLoop(
      FakeCore(), RunConfig(save_checkpoints_secs=None,
                            log_step_count_steps=10), None, None, 0,
      save=lambda step: None, keep_best_restart=lambda data: None,
      summary_writer=lambda: tf.summary.create_file_writer(str(tmp_path)),
      chief=True, clock=clock)
  with caplog.at_level('INFO', logger='absl'):
    loop.run(hooks_lib.HookRunner(()), [], 250, iter(losses), timed_step,
             timed_steps if per_call > 1 else None)
  rates = [float(rate) for rate in re.findall(
      r'step = \d+, .*\(([\d.]+) steps/sec\)',
      '\n'.join(record.getMessage() for record in caplog.records))]
  assert len(rates) == 25, rates  # Steps 10, 20, ..., 250.
  np.testing.assert_allclose(rates, 100., rtol=1e-6)
