"""The two types every reader of data hands out: `Batch` and `Points`.

A `Batch` is one batch of points with its sample weights, or None for
unweighted data: the single form in which the estimator passes a batch to
its compiled steps, so that no caller tests for a tuple to learn whether
there are weights.

`Points` is the common interface of the input adapters (Keras 3's
`DataAdapter`s are the model): whatever the input was (an array, a Tensor,
a dict of features, a `tf.data.Dataset`, an input_fn returning one of them,
data given directly with a `batch_size`), the reader returns one `Points`
whose `kind` says how the data are held, and whose methods give them in the
forms the estimator needs (`batches`, `step_inputs`, `chunked_batches`,
`dataset`). The branching on how the data are held lives in the adapters
(`arrays.TensorPoints`, `arrays.RowPoints`, `datasets.StreamPoints`), not in
their callers.
"""

from typing import NamedTuple, Optional

import tensorflow as tf

from kmeans_estimator.ops import sparse as sparse_lib

# `Points.kind`: how the data are held.
# All the data, one float Tensor (n, d) in memory: one batch.
IN_MEMORY = 'in_memory'
# Data given whole (an array, Tensor or dict of them) for prediction and
# evaluation, read a chunk of rows at a time and never converted whole.
ROWS = 'rows'
# A finite dataset of batches.
STREAM = 'stream'
# A dataset whose cardinality is INFINITE: one element per step (legacy).
ENDLESS = 'endless'
KINDS = (IN_MEMORY, ROWS, STREAM, ENDLESS)


class Batch(NamedTuple):
  """One batch of points and their sample weights.

  Attributes:
    points: float Tensor of shape (n, d), or float `ops.sparse.CsrPoints`
      (n, d) (sparse data, `data.sparse`). (Where a full-batch step reads a
      whole stream, the step's argument is that `tf.data.Dataset` itself,
      held in `points` by `Batch.of`.)
    weights: float Tensor of shape (n,), the points' sample weights, or
      None when the data are unweighted (every point weighs 1).
  """
  points: tf.Tensor
  weights: Optional[tf.Tensor] = None

  @classmethod
  def of(cls, element):
    """`element` as a `Batch`: itself if it is one; a `(points, weights)`
    pair (a weighted dataset's element, the form `KMeans`'s public methods
    take) as its two parts; anything else as unweighted points."""
    if isinstance(element, cls):
      return element
    if isinstance(element, tuple):
      return cls(*element)
    return cls(element)

  @property
  def num_points(self):
    """n, a Python int (the static first dimension of `points`)."""
    return int(sparse_lib.num_rows(self.points))

  def rows(self, start, stop):
    """The batch of rows [start, stop)."""
    return Batch(sparse_lib.rows(self.points, start, stop),
                 None if self.weights is None else self.weights[start:stop])

  def element(self):
    """The batch as a dataset element: `points`, or the `(points,
    weights)` pair when weighted (what `KMeans.initialize_from_dataset` and
    `KMeans.statistics` read)."""
    return self.points if self.weights is None else tuple(self)


def row_chunks(batch, rows):
  """(chunk, last) for the chunks of at most `rows` consecutive rows of a
  `Batch`, in order; `last` says whether the chunk ends the batch."""
  n = batch.num_points
  if n <= rows:
    yield batch, True
    return
  for start in range(0, n, rows):
    yield batch.rows(start, start + rows), start + rows >= n


class Points:
  """The points an input holds, read by one adapter per kind of input.

  Attributes:
    kind: how the data are held: `IN_MEMORY` (one Tensor, all the data),
      `ROWS` (data given whole, read a chunk of rows at a time), `STREAM`
      (a finite dataset of batches) or `ENDLESS` (an endless dataset).
    num_features: d, a Python int.
    weighted: whether the batches carry sample weights (`Batch.weights`).
    checked: whether NaN and Inf are already ruled out (always, except for
      a Tensor or array read with `check_finite=False`, whose caller's
      compiled step must then fail on them).
    unscreened: for a stream, the dataset of its batches without the NaN
      and Inf check; None for data given whole (see
      `datasets.StreamPoints`).
  """
  kind: str
  num_features: int
  weighted: bool = False
  checked: bool = True
  unscreened: Optional[tf.data.Dataset] = None
  # Whether the points are sparse (`ops.sparse.CsrPoints`, read by
  # `data.sparse`).
  sparse: bool = False

  @property
  def endless(self):
    """Whether the data never end (`kind == ENDLESS`)."""
    return self.kind == ENDLESS

  @property
  def whole(self):
    """Whether all the data are one batch (data given whole, without a
    `batch_size`)."""
    return self.kind == IN_MEMORY

  @property
  def num_points(self):
    """n when all the points are in memory as one batch, else None."""
    return None

  @property
  def dataset(self):
    """`tf.data.Dataset` of the batches as dataset elements (see
    `Batch.element`), for the readers that need one (`kmeans_parallel`
    over a stream, a distributed run)."""
    raise TypeError(f'Points of kind {self.kind!r} are read in chunks, '
                    'by chunked_batches.')

  def batches(self):
    """Iterates the batches, as `Batch`es, in order."""
    raise TypeError(f'Points of kind {self.kind!r} are read in chunks, '
                    'by chunked_batches.')

  def chunked_batches(self, rows):
    """Iterates the batches, each as (its rows, an iterator of its chunks).

    Every chunk has at most `rows` rows, consecutive and in order, and
    comes as `(chunk, last)`: the chunk (a `Batch`) and whether it ends its
    batch. A batch already in memory is sliced (`row_chunks`).
    """
    for batch in self.batches():
      yield batch.num_points, row_chunks(batch, rows)

  def step_inputs(self, mini_batch, finite_by_default, unscreened=False):
    """Yields the argument of each training step, in order.

    Args:
      mini_batch: whether a step reads one batch (mini-batch training)
        rather than all the data (full-batch Lloyd).
      finite_by_default: whether training stops after one pass (neither
        `steps` nor `max_steps` given); otherwise the inputs go on until
        the training loop stops.
      unscreened: whether a full-batch step over a finite stream reads
        `unscreened` (its caller then finds NaN and Inf by the loss).
    """
    raise TypeError(f'Points of kind {self.kind!r} are not read for '
                    'training.')

  def all_finite(self):
    """Whether the points hold no NaN and no Inf (a pass over them, for
    points read with `checked` False; a stream, always checked as it is
    read, answers True)."""
    return True
