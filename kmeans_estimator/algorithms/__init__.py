"""The k-means variants, one module each, and their registry.

A new variant is one module defining an `ALGORITHM` (`base.Algorithm`: its
pure `init_state` and `step` and what it needs) plus one entry in
`REGISTRY`; `config.check_algorithm` and the estimator read the rest from
the entry.
"""

from typing import NamedTuple, Optional

from kmeans_estimator import errors
from kmeans_estimator.algorithms import base
from kmeans_estimator.algorithms import hamerly
from kmeans_estimator.algorithms import lloyd
from kmeans_estimator.algorithms import minibatch
from kmeans_estimator.algorithms import yinyang
from kmeans_estimator.algorithms.base import Algorithm
from kmeans_estimator.algorithms.base import Options

REGISTRY = {
    algorithm.name: algorithm
    for algorithm in (lloyd.ALGORITHM, hamerly.ALGORITHM, yinyang.ALGORITHM,
                      minibatch.ALGORITHM)
}
MINIBATCH = minibatch.ALGORITHM.name


class UnknownAlgorithmError(errors.InvalidArgumentError):
  """An `algorithm` name that is not in the registry (a ValueError)."""


def names():
  """The values the `algorithm` option accepts, in registry order: the
  full-batch variants (the mini-batch step is chosen by use_mini_batch)."""
  return [name for name, algorithm in REGISTRY.items()
          if not algorithm.mini_batch]


def get(name):
  """The registered `Algorithm` called `name`.

  Raises:
    UnknownAlgorithmError: `name` is not registered (the message lists the
      accepted names).
  """
  if name not in REGISTRY or REGISTRY[name].mini_batch:
    raise UnknownAlgorithmError.from_template(
        f'`{{algorithm}}` must be one of {names()}. Received: {{algorithm=}}',
        'algorithm', name)
  return REGISTRY[name]


class Choice(NamedTuple):
  """What a training run executes.

  Attributes:
    algorithm: the `Algorithm` that runs.
    carried: whether its steps carry their state over the same in-memory
      points (`Algorithm.make_step`); False: each step is the core's
      `step` (a mini-batch step, or a full-batch step over batches).
    warning: None, or why the algorithm asked for is not the one that runs.
  """
  algorithm: Algorithm
  carried: bool
  warning: Optional[str] = None


def check_sparse(name, use_mini_batch):
  """Raises `errors.SparseInputError` unless the variant a training run
  with these options executes takes sparse points
  (`Algorithm.supports_sparse`); sparse points are never densified."""
  algorithm = REGISTRY[MINIBATCH] if use_mini_batch else get(name)
  if not algorithm.supports_sparse:
    accepted = [other for other in names() if REGISTRY[other].supports_sparse]
    raise errors.SparseInputError.from_template(
        f'This `{{algorithm}}` does not take sparse points yet '
        f'(a SparseTensor or scipy.sparse matrix). Received: '
        f'{{algorithm=}}; use algorithm={accepted[0]!r} for sparse '
        'data.', 'algorithm', name)


def choose(name, use_mini_batch, in_memory, num_restarts=1):
  """The one place where the variant a training run executes is chosen.

  Policy: use_mini_batch=True runs the mini-batch step. Otherwise `name`
  runs, with its state carried from step to step when the data are in
  memory and num_restarts is 1 (restarts share the uncarried Lloyd passes
  of `KMeans.full_batch_step`); a variant that needs the data in memory
  (`Algorithm.needs_whole_data`) given a dataset of batches, or a
  distributed run, runs its `fallback` instead, with a warning.

  Args:
    name: the `algorithm` option (checked by `config.check_algorithm`).
    use_mini_batch: the option of that name.
    in_memory: whether every step sees all the data as one Tensor.
    num_restarts: R.

  Returns:
    `Choice`.
  """
  if use_mini_batch:
    return Choice(REGISTRY[MINIBATCH], carried=False)
  algorithm, warning = get(name), None
  if algorithm.needs_whole_data and not in_memory:
    fallback = get(algorithm.fallback)
    warning = (f'algorithm={name!r} needs the data in memory (a Tensor or '
               'array); this dataset of batches is trained with '
               f'algorithm={fallback.name!r}.')
    algorithm = fallback
  return Choice(algorithm, carried=in_memory and num_restarts == 1,
                warning=warning)
