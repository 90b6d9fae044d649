"""TensorBoard event files in `model_dir`: the writer and the per-step scalars.

Training logs each summarised step's loss and cluster counts as TensorBoard
scalars; the end-of-call `TrainingSummary` record is written by
`estimator.training_summary.write` with the same writer. TensorFlow alone
(no tensorboard package) writes the records, with the metadata TensorBoard's
scalars plugin expects.
"""

import uuid

import numpy as np
import tensorflow as tf

from tensorflow.core.framework import summary_pb2  # pylint: disable=g-bad-import-order
from tensorflow.python.ops import gen_summary_ops  # pylint: disable=g-bad-import-order

# What TensorBoard's scalars plugin expects on a scalar summary.
SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'),
    data_class=summary_pb2.DATA_CLASS_SCALAR)
_SCALAR_METADATA_BYTES = SCALAR_METADATA.SerializeToString()


def create_file_writer(model_dir):
  """A `tf.summary` writer of a new event file in `model_dir`.

  TensorFlow names event files by time, host and pid, and opens them
  following symlinks: a random suffix makes the name unguessable, so no link
  planted in model_dir in advance can be written through.
  """
  return tf.summary.create_file_writer(
      model_dir, filename_suffix=f'.{uuid.uuid4().hex}.v2')


def write_step_scalars(writer, summaries):
  """Writes buffered (step, loss, empty, relocated) as TensorBoard scalars.

  Tags 'loss', 'empty_clusters', and 'relocated_clusters' (only with
  empty_cluster='farthest_point', when `relocated` is not None).

  Summaries are buffered until a checkpoint is written, so that a run that
  fails early leaves `model_dir` as it was.

  Args:
    writer: a callable returning the `tf.summary` writer, called only when
      there is something to write (so that no event file is made for
      nothing).
    summaries: list of (step, loss, empty, relocated) tuples.
  """
  if not summaries:
    return
  writer = writer()
  records = []
  for step, loss, empty, relocated in summaries:
    records.append(('loss', step, np.float32(loss), _SCALAR_METADATA_BYTES))
    records.append(('empty_clusters', step, np.float32(empty),
                    _SCALAR_METADATA_BYTES))
    if relocated is not None:
      records.append(('relocated_clusters', step, np.float32(relocated),
                      _SCALAR_METADATA_BYTES))
  write_records(writer, records)
  writer.flush()


def write_records(writer, records):
  """Writes (tag, step, value, serialized metadata) records with `writer`.

  The records `tf.summary.write` would write, in order, and like it only
  when `tf.summary.record_if` allows; one check for them all and no
  per-record Python wrapping (the values are converted by the caller:
  `tf.summary.scalar` lives in the optional tensorboard package, and this
  writes the same records with TensorFlow alone).

  Args:
    writer: a `tf.summary` writer.
    records: list of (tag, int step, numpy value, bytes metadata).
  """
  with writer.as_default():
    if not bool(tf.summary.should_record_summaries()):
      return
  resource = writer._resource  # pylint: disable=protected-access
  with tf.device('cpu:0'):
    for tag, step, value, metadata in records:
      gen_summary_ops.write_summary(resource, np.int64(step), value, tag,
                                    metadata)
