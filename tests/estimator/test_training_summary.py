"""`KMeansClustering.training_summary` and its TensorBoard record, against
numpy oracles."""

import dataclasses
import glob

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import StopAtStepHook

import oracles


def data(seed=0, n=150):
  rng = np.random.default_rng(seed)
  centers = np.array([[0., 0.], [20., 0.], [0., 20.]])
  return (centers[rng.integers(0, 3, n)] +
          rng.normal(0, 2, (n, 2))).astype(np.float32)


# The first three near the blobs, the last far from every point: empty.
INIT = np.array([[1., 1.], [19., 1.], [1., 19.], [500., 500.]], np.float32)


def lloyd_history(points, init, steps):
  """Per step (float64): (loss, cluster sizes) before the step's update."""
  centers, history = np.asarray(init, np.float64), []
  for _ in range(steps):
    d = oracles.distances(points, centers)
    labels = d.argmin(1)
    history.append((d.min(1).sum(), np.bincount(labels,
                                                minlength=len(centers))))
    centers = oracles.lloyd(points, centers, 1)[0]
  return history


def events(model_dir):
  """{tag: {step: value}} of every summary in model_dir's event files."""
  found = {}
  for path in glob.glob(f'{model_dir}/events.out.tfevents*'):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        found.setdefault(value.tag, {})[event.step] = (
            tf.make_ndarray(value.tensor),
            value.metadata.plugin_data.plugin_name)
  return found


def full_batch(tmp_path, **kwargs):
  return KMeansClustering(4, model_dir=str(tmp_path), initial_clusters=INIT,
                          use_mini_batch=False, **kwargs)


def test_full_batch_summary_equals_the_numpy_oracle(tmp_path):
  points = data()
  kmeans = full_batch(tmp_path)
  assert kmeans.training_summary is None
  kmeans.train(lambda: points, steps=5)
  summary = kmeans.training_summary
  loss, sizes = lloyd_history(points, INIT, 5)[-1]
  assert (summary.steps, summary.global_step) == (5, 5)
  assert summary.stopped_by == 'step_limit' and not summary.converged
  assert summary.loss == pytest.approx(loss, rel=1e-5)
  assert summary.cluster_sizes == tuple(sizes)
  assert sizes[3] == 0 and summary.empty_clusters == 1
  assert summary.relocated_clusters == 0 and summary.relocated_total == 0


def test_a_second_call_counts_its_own_steps(tmp_path):
  points = data(1)
  kmeans = full_batch(tmp_path)
  kmeans.train(lambda: points, steps=2)
  kmeans.train(lambda: points, steps=3)
  summary = kmeans.training_summary
  assert (summary.steps, summary.global_step) == (3, 5)
  loss, sizes = lloyd_history(points, INIT, 5)[-1]
  assert summary.loss == pytest.approx(loss, rel=1e-5)
  assert summary.cluster_sizes == tuple(sizes)


def test_relative_tolerance_met_is_converged(tmp_path):
  points = data(2)
  tolerance = 1e-3
  losses = [loss for loss, _ in lloyd_history(points, INIT, 30)]
  # The oracle's first step whose relative change is below the tolerance.
  want = next(i + 1 for i in range(1, 30)
              if abs(losses[i] - losses[i - 1]) / (1 + abs(losses[i - 1]))
              < tolerance)
  kmeans = full_batch(tmp_path, relative_tolerance=tolerance)
  kmeans.train(lambda: points, steps=30)
  summary = kmeans.training_summary
  assert want < 30
  assert summary.converged and summary.stopped_by == 'relative_tolerance'
  assert summary.steps == want
  assert summary.loss == pytest.approx(losses[want - 1], rel=1e-5)


def test_why_training_stopped(tmp_path):
  points = data(3)
  kmeans = full_batch(tmp_path / 'a')
  kmeans.train(lambda: points)  # Finite input read once: one step.
  assert (kmeans.training_summary.stopped_by,
          kmeans.training_summary.steps) == ('end_of_input', 1)
  kmeans.train(lambda: points, steps=10, hooks=[StopAtStepHook(num_steps=2)])
  assert (kmeans.training_summary.stopped_by,
          kmeans.training_summary.steps) == ('hook', 2)
  kmeans.train(lambda: points, max_steps=3)
  assert (kmeans.training_summary.stopped_by,
          kmeans.training_summary.steps) == ('step_limit', 0)
  assert kmeans.training_summary.global_step == 3
  assert kmeans.training_summary.loss is None
  assert kmeans.training_summary.cluster_sizes is None


def test_mini_batch_sizes_are_the_last_batch_counts(tmp_path):
  points = data(4, n=120)
  batches = [points[i:i + 40] for i in range(0, 120, 40)]
  kmeans = KMeansClustering(4, model_dir=str(tmp_path), initial_clusters=INIT,
                            use_mini_batch=True)
  kmeans.train(lambda: tf.data.Dataset.from_tensor_slices(points).batch(40))
  # Mini-batch steps in numpy: x <- x + (s - m x) / (n + m).
  # Counts start at 1 (the legacy rule for one step per iteration).
  centers, totals = INIT.astype(np.float64), np.ones(4)
  for batch in batches:
    d = oracles.distances(batch, centers)
    labels = d.argmin(1)
    loss, counts = d.min(1).sum(), np.bincount(labels, minlength=4)
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, batch)
    centers += np.where((totals + counts)[:, None] > 0,
                        (sums - counts[:, None] * centers) /
                        np.maximum(totals + counts, 1)[:, None], 0)
    totals += counts
  summary = kmeans.training_summary
  assert (summary.steps, summary.stopped_by) == (3, 'end_of_input')
  assert summary.cluster_sizes == tuple(counts)
  assert summary.empty_clusters == np.sum(counts == 0) >= 1
  assert summary.loss == pytest.approx(loss, rel=1e-5)
  # The accumulated counts are the checkpoint's.
  np.testing.assert_array_equal(kmeans.get_variable_value('Variable'), totals)


def test_a_failed_train_leaves_no_summary_and_model_dir_as_it_was(tmp_path):
  points = data(5)
  kmeans = full_batch(tmp_path)
  kmeans.train(lambda: points, steps=1)
  before = oracles.snapshot(tmp_path)
  bad = points.copy()
  bad[3, 0] = np.nan
  with pytest.raises(ValueError, match='NaN or Inf'):
    kmeans.train(lambda: bad, steps=1)
  assert kmeans.training_summary is None
  assert oracles.snapshot(tmp_path) == before


def test_the_summary_is_immutable_and_converts_to_a_dict(tmp_path):
  kmeans = full_batch(tmp_path)
  kmeans.train(lambda: data(6), steps=1)
  summary = kmeans.training_summary
  with pytest.raises(dataclasses.FrozenInstanceError):
    summary.steps = 3
  as_dict = summary.as_dict()
  assert as_dict['steps'] == 1 and as_dict['global_step'] == 1
  assert set(as_dict) == {
      'steps', 'global_step', 'stopped_by', 'converged', 'loss',
      'cluster_sizes', 'empty_clusters', 'relocated_clusters',
      'relocated_total'}


def test_tensorboard_holds_the_summary_and_per_step_counts(tmp_path):
  points = data(7)
  kmeans = full_batch(tmp_path, config=RunConfig(save_summary_steps=1))
  kmeans.train(lambda: points, steps=4)
  summary = kmeans.training_summary
  found = events(tmp_path)
  history = lloyd_history(points, INIT, 4)
  # Per step: the empty clusters, beside the loss; no relocation tag with
  # empty_cluster='keep'.
  assert sorted(found['empty_clusters']) == [1, 2, 3, 4]
  for step, (_, sizes) in enumerate(history, start=1):
    value, plugin = found['empty_clusters'][step]
    assert (value, plugin) == (np.sum(sizes == 0), 'scalars')
  assert 'relocated_clusters' not in found
  # The summary, at the final global step.
  scalars = {tag.split('/')[1]: values[4][0] for tag, values in found.items()
             if tag.startswith('training_summary/') and
             not tag.endswith('cluster_sizes')}
  assert scalars == pytest.approx({
      'steps': 4, 'converged': 0, 'loss': summary.loss,
      'empty_clusters': 1, 'relocated_clusters': 0, 'relocated_total': 0})
  assert all(values[4][1] == 'scalars' for tag, values in found.items()
             if tag.startswith('training_summary/') and
             not tag.endswith('cluster_sizes'))
  buckets, plugin = found['training_summary/cluster_sizes'][4]
  assert plugin == 'histograms'
  np.testing.assert_array_equal(
      buckets, [[j, j + 1, size] for j, size in enumerate(history[-1][1])])


def test_relocations_are_written_per_step(tmp_path):
  points = data(8)
  kmeans = full_batch(tmp_path, empty_cluster='farthest_point',
                      config=RunConfig(save_summary_steps=1))
  kmeans.train(lambda: points, steps=3)
  found = events(tmp_path)
  relocated = [oracles.relocating_lloyd_step(points, INIT)[2]]
  centers = oracles.relocating_lloyd_step(points, INIT)[0]
  for _ in range(2):
    centers, _, count = oracles.relocating_lloyd_step(points, centers)
    relocated.append(count)
  assert relocated == [1, 0, 0]
  assert [found['relocated_clusters'][s][0] for s in (1, 2, 3)] == relocated
  assert [found['empty_clusters'][s][0] for s in (1, 2, 3)] == relocated
  summary = kmeans.training_summary
  assert summary.relocated_total == 1 and summary.empty_clusters == 0
  assert found['training_summary/relocated_total'][3][0] == 1


def test_a_new_estimator_finds_the_last_summary_in_model_dir(tmp_path):
  points = data(9)
  first = full_batch(tmp_path)
  first.train(lambda: points, steps=3)
  restarted = full_batch(tmp_path)
  assert restarted.training_summary is None  # It lives on the object ...
  found = events(tmp_path)  # ... and in model_dir's event files.
  assert found['training_summary/steps'][3][0] == 3
  assert found['training_summary/loss'][3][0] == pytest.approx(
      first.training_summary.loss)


def summary_values(model_dir):
  """[(step, serialized Summary.Value)] of model_dir's event files, in
  the order they were written."""
  found = []
  for path in sorted(glob.glob(f'{model_dir}/events.out.tfevents*')):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      found += [(event.step, value.SerializeToString())
                for value in event.summary.value]
  return found


def test_records_are_those_tf_summary_write_writes(tmp_path):
  points = data(10)
  kmeans = full_batch(tmp_path / 'ours', empty_cluster='farthest_point',
                      config=RunConfig(save_summary_steps=1))
  kmeans.train(lambda: points, steps=3)
  # The same records through the public `tf.summary.write`, one by one.
  found = summary_values(tmp_path / 'ours')
  reference = tmp_path / 'reference'
  writer = tf.summary.create_file_writer(str(reference))
  with writer.as_default():
    for step, serialized in found:
      value = tf.compat.v1.Summary.Value.FromString(serialized)
      tf.summary.write(value.tag, tf.make_ndarray(value.tensor), step=step,
                       metadata=value.metadata)
  writer.flush()
  assert summary_values(reference) == found
  tags = [tf.compat.v1.Summary.Value.FromString(serialized).tag
          for _, serialized in found]
  assert tags[:3] == ['loss', 'empty_clusters', 'relocated_clusters']
  assert tags[-7:] == [
      'training_summary/steps', 'training_summary/converged',
      'training_summary/loss', 'training_summary/empty_clusters',
      'training_summary/relocated_clusters',
      'training_summary/relocated_total', 'training_summary/cluster_sizes']


def test_record_if_false_writes_no_summary(tmp_path):
  points = data(11)
  kmeans = full_batch(tmp_path, config=RunConfig(save_summary_steps=1))
  with tf.summary.record_if(False):
    kmeans.train(lambda: points, steps=2)
  assert kmeans.training_summary.steps == 2
  assert not summary_values(tmp_path)
