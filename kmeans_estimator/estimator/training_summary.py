"""What one `train` call did: `TrainingSummary`, and its TensorBoard record.

scikit-learn leaves `n_iter_` and `inertia_` on a fitted model; the legacy
Estimator left only log lines. After `KMeansClustering.train` the estimator
holds a `TrainingSummary` (`estimator.training_summary`), and the same
figures are written to `model_dir` as TensorBoard summaries at the final
global step, which is how they outlive the process: a new estimator on the
same `model_dir` starts with no summary of its own, and the event files keep
every past call's figures (no new file format beside the checkpoints).

TensorFlow alone (no tensorboard package) writes the records, with the
metadata TensorBoard's scalars and histograms plugins expect.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from kmeans_estimator.io import summaries

from tensorflow.core.framework import summary_pb2  # pylint: disable=g-bad-import-order

# Why `train` stopped.
STEP_LIMIT = 'step_limit'  # `steps` more steps, or `max_steps` in total.
RELATIVE_TOLERANCE = 'relative_tolerance'
HOOK = 'hook'  # a hook's `request_stop()`
SAVING_LISTENER = 'saving_listener'  # `after_save` returned True
END_OF_INPUT = 'end_of_input'  # finite input read once, or exhausted
STOP_REASONS = (STEP_LIMIT, RELATIVE_TOLERANCE, HOOK, SAVING_LISTENER,
                END_OF_INPUT)

# The TensorBoard tags of the summary, written at the final global step.
TAG_PREFIX = 'training_summary/'
CLUSTER_SIZES_TAG = TAG_PREFIX + 'cluster_sizes'

SCALAR_METADATA = summaries.SCALAR_METADATA
# TensorBoard's histograms plugin reads a (buckets, 3) tensor of
# [left edge, right edge, count] rows.
HISTOGRAM_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name='histograms'),
    data_class=summary_pb2.DATA_CLASS_TENSOR)
_SCALAR_METADATA_BYTES = SCALAR_METADATA.SerializeToString()
_HISTOGRAM_METADATA_BYTES = HISTOGRAM_METADATA.SerializeToString()


@dataclasses.dataclass(frozen=True)
class TrainingSummary:
  """What one `KMeansClustering.train` call did (immutable).

  The figures of the last step are those its own log line and hooks saw:
  for a full-batch step, all the data against the centers before the step's
  update; for a mini-batch step, the last batch.

  Attributes:
    steps: training steps run in this call (sklearn's `n_iter_` for the
      call); 0 when `max_steps` was already reached.
    global_step: the global step after the call.
    stopped_by: why training stopped: 'step_limit' (`steps` or `max_steps`
      reached), 'relative_tolerance', 'hook', 'saving_listener' or
      'end_of_input' (finite input read once, or exhausted).
    converged: whether `relative_tolerance` was met (False without one).
    loss: the last step's loss, the sum of distances to the nearest center
      before its update (its batch's, in mini-batch mode); None if no step
      ran.
    cluster_sizes: tuple of k ints, the points each center's last update
      used: for full batch, every point's nearest center; for mini-batch,
      the last batch's points (the accumulated counts behind the learning
      rates are the checkpoint variable 'Variable'). After any relocation of
      empty clusters. None if no step ran.
    empty_clusters: clusters the last step's assignment left empty (before
      any relocation); for mini-batch, clusters with no point of the last
      batch. None if no step ran.
    relocated_clusters: empty clusters the last step moved to a far point
      (empty_cluster='farthest_point'; always 0 with 'keep').
    relocated_total: empty clusters moved to a far point over the whole call.
  """

  steps: int
  global_step: int
  stopped_by: str
  converged: bool
  loss: Optional[float] = None
  cluster_sizes: Optional[tuple[int, ...]] = None
  empty_clusters: Optional[int] = None
  relocated_clusters: Optional[int] = None
  relocated_total: int = 0

  def as_dict(self) -> dict[str, Any]:
    """The fields as a plain dict (JSON-ready)."""
    return dataclasses.asdict(self)


def write(writer, summary):
  """Writes `summary` as TensorBoard summaries at `summary.global_step`.

  Scalars 'training_summary/steps', '.../converged' (0 or 1), and, when a
  step ran, '.../loss', '.../empty_clusters', '.../relocated_clusters',
  '.../relocated_total', and the histogram '.../cluster_sizes': bucket j is
  [j, j + 1) with the size of cluster j as its count, i.e. the histogram of
  the points' cluster indices.

  Args:
    writer: a `tf.summary` writer.
    summary: a `TrainingSummary`.
  """
  scalars = {'steps': summary.steps, 'converged': int(summary.converged)}
  if summary.loss is not None:
    scalars.update(loss=summary.loss, empty_clusters=summary.empty_clusters,
                   relocated_clusters=summary.relocated_clusters,
                   relocated_total=summary.relocated_total)
  step = summary.global_step
  records = [(TAG_PREFIX + name, step, np.float32(value),
              _SCALAR_METADATA_BYTES) for name, value in scalars.items()]
  if summary.cluster_sizes is not None:
    records.append((CLUSTER_SIZES_TAG, step,
                    cluster_size_buckets(summary.cluster_sizes),
                    _HISTOGRAM_METADATA_BYTES))
  summaries.write_records(writer, records)
  writer.flush()


def cluster_size_buckets(cluster_sizes):
  """float64 array (k, 3): rows [j, j + 1, size of cluster j]."""
  sizes = np.asarray(cluster_sizes, np.float64)
  index = np.arange(len(sizes), dtype=np.float64)
  return np.stack([index, index + 1, sizes], axis=1)
