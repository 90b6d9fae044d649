"""Reading what an input_fn returns: one adapter per kind of input.

An `input_fn` may return a `tf.data.Dataset` of batches, a Tensor, a numpy
array, a dict of features, or a `(features, labels)` tuple (labels are
ignored), as Estimator's did. `read_points` hands each to the adapter for
its kind and returns the `base.Points` it makes:
- a dataset: `datasets.StreamPoints` (kind `STREAM`, or `ENDLESS`);
- data given whole (a Tensor, array or dict of them), read for training:
  `arrays.TensorPoints` (kind `IN_MEMORY`), one batch of all the data;
- the same read for prediction or evaluation (`in_chunks`):
  `arrays.RowPoints` (kind `ROWS`), a chunk of rows at a time; with a
  `batch_size`, in batches of that many rows;
- sparse points (a `tf.SparseTensor` or scipy.sparse matrix, alone or as
  the one point feature of a dict; a finite dataset of SparseTensors):
  `sparse.SparsePoints` (kind `IN_MEMORY`), held once in CSR form
  (`ops.sparse.CsrPoints`), never densified.
Every kind gives float points (n, d) in the computation's dtype (see
`features`), weighted or not, and the same checks with the same messages
(see `checks`): NaN or Inf anywhere is an error, raised while the batch is
read (or, for a Tensor or array read with `check_finite=False`, by the
caller's compiled step, which finds it without a pass of its own).

With a `weight_column` (sample weights), the features must be a dict; that
feature is taken out of the points and becomes each point's weight. Weights
must be finite and >= 0 (checked while the batch is read, like NaN points)
with a positive total (checked here for a Tensor or array, by the estimator
for a dataset).
"""

import inspect
from typing import Optional

import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator.data import arrays
from kmeans_estimator.data import datasets
from kmeans_estimator.data import direct
from kmeans_estimator.data import sparse


def takes_argument(input_fn, name):
  """Whether `input_fn` declares a parameter called `name`."""
  try:
    return name in inspect.signature(input_fn).parameters
  except (TypeError, ValueError):
    return False


def call_input_fn(input_fn, mode, config, params=None, input_context=None):
  """Calls `input_fn`, passing `params`, `config`, `mode` and `input_context`
  (a `tf.distribute.InputContext`) if it takes them."""
  if not callable(input_fn):
    raise errors.InvalidArgumentTypeError(
        '`input_fn` must be a callable returning the data (a Dataset, '
        f'Tensor, array or dict of features). Received: input_fn={input_fn!r}',
        'input_fn', input_fn)
  available = {'params': params or {}, 'config': config, 'mode': mode,
               'input_context': input_context}
  kwargs = {name: value for name, value in available.items()
            if takes_argument(input_fn, name)}
  return input_fn(**kwargs)


def read_points(raw, feature_columns=None, dtype=tf.float32,
                num_features: Optional[int] = None, weight_column=None,
                read_weights=True, check_finite=True, in_chunks=False,
                batch_rows=None):
  """Reads what an input_fn returned with the adapter for its kind.

  Args:
    raw: the input_fn's return value.
    feature_columns: None, or the feature names (or columns with `.key`) to
      take from dict features, in order.
    dtype: the float dtype of the computation.
    num_features: the width the model expects, if known.
    weight_column: None, or the name of the dict feature holding sample
      weights; it is never a point feature.
    read_weights: whether to read the weights (False for prediction, which
      only leaves the weight feature out, and does not need it).
    check_finite: whether to check a Tensor or array for NaN and Inf here
      (a pass over all the data). False leaves it to the caller, whose
      compiled step must then fail on such points (`Points.checked` is
      False); batches of a dataset are always checked as they are read.
    in_chunks: for prediction and evaluation: data given whole are not
      converted whole but read a chunk of rows at a time
      (`arrays.RowPoints`; see `Points.chunked_batches`), where their rows
      can be sliced. A NaN or Inf in them is then found as its chunk is read
      (with `check_finite`, by the caller; or by the caller's step).
    batch_rows: with `in_chunks`, the rows of each batch (the `batch_size`
      of data given directly), or None for one batch of all of them.

  Returns:
    A `base.Points` (weighted when `weight_column` and `read_weights`):
    `datasets.StreamPoints` for a dataset, `arrays.RowPoints` for data
    given whole read `in_chunks`, else `arrays.TensorPoints`.

  Raises:
    TypeError: non-numeric or ragged features, or a non-callable.
    SparseInputError: sparse features in a form not read yet (see
      `sparse`).
    ValueError: wrong rank, empty or zero-width data, a width other than
      `num_features`, NaN/Inf in a Tensor or array; with weights, non-dict
      features, a missing weight feature, or weights of a Tensor or array
      that are not finite and >= 0 with a positive total.
  """
  if isinstance(raw, tuple) and len(raw) == 2 and not isinstance(
      raw[0], (int, float)):
    raw = raw[0]
  weighted = weight_column is not None and read_weights
  if isinstance(raw, tf.data.Dataset) and sparse.is_sparse_dataset(raw):
    return sparse.read_dataset(raw, dtype, num_features, weighted,
                               feature_columns, weight_column)
  if sparse.has_sparse_features(raw):
    points = sparse.read_sparse(raw, feature_columns, dtype, num_features,
                                weight_column, weighted,
                                batch_rows if in_chunks else None)
    if points is not None:
      return points
  if in_chunks and not isinstance(raw, tf.data.Dataset):
    points = arrays.read_rows(raw, feature_columns, dtype, num_features,
                              weight_column, weighted, check_finite,
                              batch_rows)
    if points is not None:
      return points
    if batch_rows is not None:
      # Rows that cannot be sliced as they are: tf.data slices them.
      raw = direct.slices(raw, batch_rows, repeat=False)
  if isinstance(raw, tf.data.Dataset):
    return datasets.read_dataset(raw, feature_columns, dtype, num_features,
                                 weight_column, weighted)
  return arrays.read_whole(raw, feature_columns, dtype, num_features,
                           weight_column, weighted, check_finite)
