"""Data given directly where an input_fn goes, and where training resumes.

The estimator's methods take the data itself where an `input_fn` goes (an
array, list of rows, Tensor, dict of features or `tf.data.Dataset`, with an
optional `batch_size`); `as_input_fn` turns it into an input_fn, in this one
place. Data given directly with a `batch_size` are read as consecutive
slices of that many rows (`DirectData`), and mini-batch training over them
resumes at the slice where the last step stopped (`DirectData.resumed`).
"""

import collections.abc

import numpy as np
import tensorflow as tf

from kmeans_estimator import errors
from kmeans_estimator import config as options
from kmeans_estimator.data import checks
from kmeans_estimator.data import datasets
from kmeans_estimator.data import sparse
from kmeans_estimator.data import tensors

# The data a method takes directly, where an input_fn goes.
_DIRECT_TYPES = (np.ndarray, list, tf.Tensor, tf.Variable, tf.SparseTensor,
                 tf.RaggedTensor, collections.abc.Mapping)
_NOT_INPUT_MESSAGE = (
    '`input_fn` must be a callable returning the data, or the data itself: '
    'a numpy array (or list of rows) of shape (n, d), a Tensor, a dict of '
    'features or a tf.data.Dataset.')


def as_input_fn(data, batch_size=None, repeat=False):
  """An input_fn for what a method received where an input_fn goes.

  A callable is an input_fn already and is returned as it is. Data given
  directly become an input_fn returning:
  - an array, list of rows, Tensor or dict of features, with `batch_size`
    None: the data themselves, all of it in one batch (a full-batch step is
    one Lloyd iteration over it, as with an input_fn returning the array);
  - the same with `batch_size`: a dataset of consecutive slices of
    `batch_size` rows (the last one shorter), in order, sliced from one
    tensor (faster than `from_tensor_slices(x).batch(b)`, which gathers row
    by row); endless when `repeat`;
  - a `tf.data.Dataset`: the dataset as it is, or `dataset.batch(batch_size)`
    when `batch_size` is given (for a dataset of single rows).

  Args:
    data: an input_fn, or the data (see above).
    batch_size: None, or a positive int; only for data given directly.
    repeat: whether sliced arrays repeat without end (mini-batch training
      for a given number of steps cycles through the data).

  Returns:
    A callable returning the data, as an input_fn does.

  Raises:
    TypeError: `data` is none of the supported kinds, or `batch_size` is
      not a positive integer.
    ValueError: `batch_size` with an input_fn or a dataset of batches; a
      dataset of single rows without `batch_size`; dict features of
      different lengths.
  """
  batch_size = options.check_positive_int('batch_size', batch_size,
                                          allow_none=True,
                                          maximum=options.INT64_MAX)
  if isinstance(data, tf.data.Dataset):
    return datasets.dataset_input_fn(data, batch_size)
  if callable(data):
    if batch_size is not None:
      raise errors.InvalidArgumentError(
          '`batch_size` applies to data given directly (an array, Tensor, '
          'dict of features or Dataset); an input_fn batches its own data. '
          f'Received: batch_size={batch_size} with input_fn={data!r}',
          'batch_size', batch_size)
    return data
  if sparse.is_scipy_sparse(data):
    return DirectData(data, batch_size, repeat)
  if not isinstance(data, _DIRECT_TYPES) and not hasattr(data, '__array__'):
    shown = ' '.join(repr(data).split())
    if len(shown) > 80:
      shown = shown[:77] + '...'
    raise errors.InvalidArgumentTypeError(
        f'{_NOT_INPUT_MESSAGE} Received: input_fn={shown} (type '
        f'{type(data).__name__})', 'input_fn', data)
  if isinstance(data, collections.abc.Mapping):
    data = dict(data)
  elif isinstance(data, list) or not isinstance(data, _DIRECT_TYPES):
    try:
      data = np.asarray(data)  # A list of rows, or an array-like (pandas).
    except ValueError as error:
      raise errors.InvalidInputError(
          'The data must be rectangular: rows of shape (n, d), every row of '
          f'the same length ({error}).', kind='shape') from None
  return DirectData(data, batch_size, repeat)


class DirectData:
  """The input_fn of data given directly (not a Dataset; see `as_input_fn`).

  Calling it returns the data themselves, or with `batch_size` a dataset of
  consecutive slices of `batch_size` rows (the last one shorter), in order,
  starting at slice `first_batch`: to the end of the data, or without end
  when `repeat` (cycling through the data). Prediction and evaluation read
  `data` themselves instead, in chunks of rows
  (`read_points(in_chunks=True, batch_rows=batch_size)`), so that the
  batches are not sliced from a whole copy of the data.

  Where mini-batch training resumes (`resumed`): it reads one slice per
  step, so a model at `global_step` g that was trained on these data with
  this `batch_size` stopped before slice g mod (number of slices). Training
  resumes there, so that `train(steps=a)` then `train(steps=b)`, or a run
  killed and resumed from its checkpoint, reads the slices that one
  `train(steps=a + b)` reads. Without `repeat` (train without steps or
  max_steps) it reads from there to the end of the data, the rest of the
  pass. The position is derived from `global_step` alone (nothing more is
  saved, so checkpoints keep the legacy variables and older checkpoints
  resume the same way); it is right when every step in the model_dir was
  a mini-batch step on these data with this `batch_size`. A
  `tf.data.Dataset` or an input_fn is read from its start on every call:
  the library cannot know where the user's pipeline stands (an input_fn
  can skip `global_step` batches itself).

  Attributes:
    data: the data as given (an array, Tensor or dict of features).
    batch_size: positive int, or None for the data whole.
    num_batches: int, slices per pass over the data (0 without batch_size).
    first_batch: int in [0, num_batches), the slice read first.
  """

  def __init__(self, data, batch_size=None, repeat=False, first_batch=0):
    self.data = data
    self.batch_size = batch_size
    self.repeat = repeat
    self.first_batch = first_batch
    self.num_batches = 0
    if batch_size is not None:
      first = next(iter(data.values()), None) if isinstance(data, dict) else (
          data)
      shape = (tuple(first.shape) if sparse.is_sparse_input(first) else
               np.shape(first) if first is not None else ())
      rows = int(shape[0]) if shape and shape[0] is not None else 0
      self.num_batches = -(-rows // batch_size)

  def resumed(self, global_step):
    """This input_fn starting where mini-batch training at `global_step`
    stopped (see the class docstring); itself without `batch_size`."""
    if not self.num_batches:
      return self
    return DirectData(self.data, self.batch_size, self.repeat,
                      int(global_step) % self.num_batches)

  def __call__(self):
    if self.batch_size is None:
      return self.data
    return slices(self.data, self.batch_size, self.repeat, self.first_batch)

  def unbatched(self):
    """The data themselves (an input_fn)."""
    return self.data


def slices(data, batch_size, repeat, first_batch=0):
  """A dataset of consecutive `batch_size`-row slices of `data`, from
  slice `first_batch` on."""
  if sparse.has_sparse_features(data):
    return sparse.slices(data, batch_size, repeat, first_batch)
  named = data if isinstance(data, dict) else {None: data}
  columns = {}
  for name, value in named.items():
    what = 'the features' if name is None else f'feature {name!r}'
    value = tensors.to_tensor(value, what)
    checks.check_dense_numeric(value, what)
    if value.shape.rank == 0:
      checks.check_rank(value.shape)
    columns[name] = tf.convert_to_tensor(value)
  lengths = {name: int(tensor.shape[0]) for name, tensor in columns.items()}
  if len(set(lengths.values())) > 1:
    raise errors.InvalidInputError(
        f'The features have different numbers of rows: {lengths}; give every '
        'feature one row per point.', kind='rows')
  num_points = next(iter(lengths.values()))

  def batch(start):
    sliced = {name: tensor[start:start + batch_size]
              for name, tensor in columns.items()}
    return sliced if isinstance(data, dict) else sliced[None]

  starts = tf.data.Dataset.range(0, num_points, batch_size)
  if repeat:
    starts = starts.repeat()
  if first_batch:
    starts = starts.skip(first_batch)
  return starts.map(tf.autograph.experimental.do_not_convert(batch))
