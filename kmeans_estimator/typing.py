"""Type aliases for the public API's annotations, for users' annotations too.

```python
from kmeans_estimator import typing as ke_typing

def load_points() -> ke_typing.ArrayLike: ...
```

TensorFlow ships no type information, so under a type checker its names
(`tf.Tensor`, `tf.data.Dataset`, `tf.DType`, ...) are `Any`: an alias that
includes one accepts anything in that position, and the aliases document
what the library accepts rather than let a checker enforce it. The numpy,
Python and library types in them are checked as usual.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol
from typing import Sequence, Union

import numpy as np
import tensorflow as tf

from kmeans_estimator.estimator.hooks import SessionRunArgs
from kmeans_estimator.estimator.hooks import SessionRunContext
from kmeans_estimator.estimator.hooks import SessionRunValues

# Points of shape (n, d): a numpy array, a Tensor, or a list of rows.
ArrayLike = Union[np.ndarray, tf.Tensor, Sequence[Sequence[float]]]


class SparseMatrix(Protocol):
  """A scipy.sparse matrix or array of any format (CSR, CSC, COO, ...),
  described by what the library reads of it, so that scipy stays an
  optional dependency."""

  @property
  def shape(self) -> tuple[int, ...]:
    ...

  def tocsr(self) -> Any:
    ...


# Sparse points of shape (n, d), never densified: a `tf.SparseTensor` or a
# scipy.sparse matrix.
SparseLike = Union[tf.SparseTensor, SparseMatrix]

# Points (n, d), or a finite `tf.data.Dataset` of such batches or of
# (points, weights) pairs: what `KMeans`'s full-batch steps take.
PointsOrDataset = Union[ArrayLike, SparseLike, tf.data.Dataset]

# Named features, each of shape (n,) or (n, d_i), concatenated in sorted key
# order (or as `feature_columns` chooses).
FeatureDict = Mapping[str, Union[np.ndarray, tf.Tensor, SparseLike,
                                 Sequence[Any]]]

# The data themselves, in place of an input_fn.
InputData = Union[ArrayLike, SparseLike, FeatureDict, tf.data.Dataset]

# A callable returning `InputData` (or a `(features, labels)` tuple); it may
# take parameters named `params`, `config`, `mode` or `input_context`.
InputFn = Callable[..., Any]

# What the methods that read data take: an input_fn or the data.
InputFnOrData = Union[InputFn, InputData]

# `initial_clusters`: a name ('random', 'kmeans_plus_plus', 'kmc2',
# 'kmeans_parallel'), the centers (k, d), or a callable f(points, k)
# returning up to k centers.
InitialClusters = Union[str, ArrayLike, Callable[[Any, int], Any]]

# A dtype as `tf.as_dtype` takes it: tf.float32, 'float64', np.float32, ...
DTypeLike = Union[tf.dtypes.DType, str, np.dtype, type]

# A file system path: a str (URLs such as 'gs://bucket/dir' too) or a
# `pathlib.Path`.
PathLike = Union[str, os.PathLike[str]]


class KeyedColumn(Protocol):
  """A feature column: any object with the feature's name as `.key` (such
  as the legacy `tf.feature_column.numeric_column('x')`)."""

  @property
  def key(self) -> str:
    ...


# A feature named by its key, or a column that has one.
FeatureColumn = Union[str, KeyedColumn]


class HookLike(Protocol):
  """What a training or evaluation hook must have (`SessionRunHook`'s
  methods; `after_create_session` is optional and not part of it)."""

  def begin(self) -> object:
    ...

  def before_run(self, run_context: SessionRunContext) -> Optional[
      SessionRunArgs]:
    ...

  def after_run(self, run_context: SessionRunContext,
                run_values: SessionRunValues) -> object:
    ...

  def end(self, session: None) -> object:
    ...


class SavingListenerLike(Protocol):
  """What a saving listener of `KMeansClustering.train` must have
  (Estimator's `CheckpointSaverListener` methods; `session` is None, and a
  true value from `after_save` stops training)."""

  def begin(self) -> object:
    ...

  def before_save(self, session: None, global_step: int) -> object:
    ...

  def after_save(self, session: None, global_step: int) -> object:
    ...

  def end(self, session: None, global_step: int) -> object:
    ...


Hooks = Optional[Iterable[HookLike]]

__all__ = [
    'ArrayLike',
    'DTypeLike',
    'FeatureColumn',
    'FeatureDict',
    'HookLike',
    'Hooks',
    'InitialClusters',
    'InputData',
    'InputFn',
    'InputFnOrData',
    'KeyedColumn',
    'PathLike',
    'PointsOrDataset',
    'SavingListenerLike',
    'SparseLike',
    'SparseMatrix',
]
