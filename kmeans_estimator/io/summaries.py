"""TensorBoard event files in `model_dir`: the writer and the per-step scalars.

Training logs each summarised step's loss and cluster counts as TensorBoard
scalars; the end-of-call `TrainingSummary` record is written by
`estimator.training_summary.write` with the same writer. TensorFlow alone
(no tensorboard package) writes the records, with the metadata TensorBoard's
scalars plugin expects.
"""

import uuid

import tensorflow as tf

from tensorflow.core.framework import summary_pb2  # pylint: disable=g-bad-import-order

# What TensorBoard's scalars plugin expects on a scalar summary.
SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'),
    data_class=summary_pb2.DATA_CLASS_SCALAR)


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
  with writer.as_default():
    for step, loss, empty, relocated in summaries:
      # tf.summary.scalar lives in the optional tensorboard package; this
      # writes the same record with TensorFlow alone.
      tf.summary.write('loss', tf.constant(loss, tf.float32), step=step,
                       metadata=SCALAR_METADATA)
      tf.summary.write('empty_clusters', tf.constant(empty, tf.float32),
                       step=step, metadata=SCALAR_METADATA)
      if relocated is not None:
        tf.summary.write('relocated_clusters',
                         tf.constant(relocated, tf.float32), step=step,
                         metadata=SCALAR_METADATA)
  writer.flush()
