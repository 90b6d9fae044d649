"""The k-means options: `KMeansConfig` and `EstimatorConfig`, and their checks.

A config is a frozen dataclass that holds every option, checks each one and
every rule between them once, when it is made (and again in `replace`), and
computes the values derived from them in one place. `KMeans` and
`KMeansClustering` build one and read their options from it.

The checks are pure Python on Python values; each error names the argument,
what it received and what would be valid. They raise
`errors.InvalidArgumentError` (a ValueError), `errors.InvalidArgumentTypeError`
(a TypeError) or `errors.SizeError`, whose `argument` is the argument at
fault.
"""

import dataclasses
import numbers
import os
from typing import Any, Iterable, Literal, Optional, Union, overload

import numpy as np

import tensorflow as tf

from kmeans_estimator import algorithms
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.ops import numerics

# The largest values TensorFlow's int32 and int64 shapes, indices and
# counters hold.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


# Defined in `errors`; importable from here as before.
SizeError = errors.SizeError
_invalid = errors.InvalidArgumentError.from_template
_invalid_type = errors.InvalidArgumentTypeError.from_template
_too_large = errors.SizeError.from_template


def check_positive_int(name, value, allow_none=False, maximum=None):
  """Returns `value` as an int, or raises if it is not a positive integer
  (at most `maximum`, when given: a SizeError names the limit)."""
  if value is None and allow_none:
    return None
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, numbers.Integral):
    raise _invalid_type(
        '`{%s}` must be a positive integer. Received: {%s=}' % (name, name),
        name, value)
  if value < 1:
    raise _invalid(
        '`{%s}` must be a positive integer. Received: {%s=}' % (name, name),
        name, value)
  if maximum is not None and value > maximum:
    raise _too_large(
        f'`{{{name}}}` must be a positive integer at most {maximum}'
        f'{_limit_reason(maximum)}. Received: {{{name}=}}', name, value)
  return int(value)


def _limit_reason(maximum):
  if maximum == INT32_MAX:
    return ' (2**31 - 1, the largest int32 TensorFlow indexes with)'
  if maximum == INT64_MAX:
    return ' (2**63 - 1, the largest int64)'
  return ''


def check_bool(name, value):
  """Returns `value` as a Python bool; only bool and numpy bool are taken.

  A string such as 'no' is truthy, so taking any value by its truth would
  turn `use_mini_batch='no'` into mini-batch training: anything else is a
  TypeError naming the argument.
  """
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise _invalid_type(
      f'`{{{name}}}` must be a bool (True or False). Received: {{{name}=}} '
      f'(type {type(value).__name__})', name, value)


@overload
def check_path(name: str, value: Any, allow_none: Literal[False] = ...) -> str:
  ...


@overload
def check_path(name: str, value: Any, allow_none: bool) -> Optional[str]:
  ...


def check_path(name: str, value: Any,
               allow_none: bool = False) -> Optional[str]:
  """Returns the path `value` as a str, with a leading `~` expanded.

  Takes a str or an `os.PathLike` whose path is a str (`pathlib.Path`).
  Bytes, numbers and other objects are a TypeError naming the argument:
  their `str()` (such as "b'/some/dir'" or '123') would quietly name
  another directory, relative to the working directory. URLs such as
  'gs://bucket/dir' are kept as they are.
  """
  if value is None and allow_none:
    return None
  path = os.fspath(value) if isinstance(value, os.PathLike) else value
  if not isinstance(path, str) or not path:
    raise _invalid_type(
        f'`{{{name}}}` must be a non-empty path: a str or a pathlib.Path. '
        f'Received: {{{name}=}} (type {type(value).__name__})' + (
            '; decode bytes with os.fsdecode()'
            if isinstance(path, bytes) else ''), name, value)
  return os.path.expanduser(path)


# Where a cgroup (a container's, a systemd unit's) caps this process's
# memory: cgroup v2, then v1, as seen from inside the container.
_CGROUP_LIMIT_FILES = ('/sys/fs/cgroup/memory.max',
                       '/sys/fs/cgroup/memory/memory.limit_in_bytes')


def memory_bytes():
  """The memory this process may use in bytes, or None where unknown.

  The least of the machine's physical memory, the process's address-space
  and data-segment limits (`ulimit -v`, `ulimit -d`) and its cgroup's
  memory limit (a container's): beyond any of them an allocation fails or
  the process is killed.
  """
  limits = []
  try:
    limits.append(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
  except (AttributeError, OSError, ValueError):
    pass
  try:
    import resource  # pylint: disable=g-import-not-at-top
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
      soft, _ = resource.getrlimit(which)
      if soft != resource.RLIM_INFINITY and soft > 0:
        limits.append(soft)
  except (ImportError, AttributeError, OSError, ValueError):
    pass  # No resource module (Windows) or no such limit.
  for path in _CGROUP_LIMIT_FILES:
    try:
      with open(path, encoding='ascii') as f:
        text = f.read().strip()
    except (OSError, ValueError):
      continue
    if text.isdigit() and 0 < int(text) < 2**62:  # 'max' or a huge value
      limits.append(int(text))  # means no limit.
  return min(limits, default=None)


def _human(num_bytes):
  for unit in ('bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
    if num_bytes < 1024 or unit == 'PiB':
      break
    num_bytes /= 1024
  return f'{num_bytes:.0f} {unit}' if unit == 'bytes' else (
      f'{num_bytes:.1f} {unit}')


def check_memory(name, value, num_bytes, what, fix):
  """Raises a SizeError if `num_bytes` exceed the memory this process has.

  Policy: a request whose tensors alone need more than the memory this
  process may use (`memory_bytes`: the machine's, or a lower ulimit or
  cgroup limit) can only end in an out-of-memory kill or error, after a
  long wait; it is refused up front, naming the argument `name`, what needs
  the memory (`what`) and `fix`. Requests below that are left to run (the
  limit is a sanity bound, not a promise that they fit beside other work).
  Where the memory size is unknown nothing is checked.
  """
  memory = memory_bytes()
  if memory is not None and num_bytes > memory:
    raise _too_large(
        f'`{{{name}}}` is too large: {what} need {_human(num_bytes)}, more '
        f'than the {_human(memory)} of memory this process may use (the '
        "machine's, or a lower ulimit or cgroup limit). Received: "
        f'{{{name}=}}; {fix}.', name, value)


def check_int(name, value):
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, numbers.Integral):
    raise _invalid_type(
        '`{%s}` must be an integer. Received: {%s=}' % (name, name), name,
        value)
  return int(value)


def check_kmeans_plus_plus_num_retries(num_retries):
  """An int; 1 + num_retries candidates per center must fit an int32
  (negative values mean 2 + log k)."""
  num_retries = check_int('kmeans_plus_plus_num_retries', num_retries)
  if num_retries >= INT32_MAX:
    raise _too_large(
        '`{kmeans_plus_plus_num_retries}` must be an integer below 2**31 - 1 '
        '(1 + num_retries candidates per center are drawn at once). '
        'Received: {kmeans_plus_plus_num_retries=}; the default is 2, and a '
        'negative value means 2 + log k.', 'kmeans_plus_plus_num_retries',
        num_retries)
  return num_retries


def check_index_sizes(num_clusters, initial_clusters, kmc2_chain_length,
                      kmeans_parallel_rounds, kmeans_parallel_oversampling,
                      num_restarts):
  """Checks the sizes that the options alone fix against int32 limits.

  TensorFlow indexes the rows of a tensor, and many kernels its entries,
  with int32; so are counted the centers of all restarts (R x k), the
  chain's distances of 'kmc2' (kmc2_chain_length x k) and the candidates
  of 'kmeans_parallel' (1 + rounds x round(oversampling x k)). Sizes that
  also depend on the data are checked when it is read
  (`KMeans.check_sizes`).
  """
  if not isinstance(initial_clusters, str):
    initial_clusters = None  # An array or a callable: no sampling sizes.
  if num_restarts * num_clusters > INT32_MAX:
    raise _too_large(
        f'num_restarts={num_restarts} x num_clusters={num_clusters} centers '
        'must number at most 2**31 - 1; lower {num_restarts}.',
        'num_restarts', num_restarts)
  if initial_clusters == constants.KMC2_INIT and (
      kmc2_chain_length * num_clusters > INT32_MAX):
    raise _too_large(
        '`{kmc2_chain_length}` x {num_clusters} (the chain\'s distances to '
        'the centers) must be at most 2**31 - 1. Received: '
        '{kmc2_chain_length=}, num_clusters=%d; lower {kmc2_chain_length} '
        '(the default is 200).' % num_clusters, 'kmc2_chain_length',
        kmc2_chain_length, num_clusters=num_clusters)
  if initial_clusters == constants.KMEANS_PARALLEL_INIT:
    per_round = kmeans_parallel_oversampling * num_clusters
    if per_round * kmeans_parallel_rounds + 1 > INT32_MAX:
      name, _ = kmeans_parallel_culprit(kmeans_parallel_rounds,
                                        kmeans_parallel_oversampling)
      raise _too_large(
          '{kmeans_parallel_oversampling} x {num_clusters} x '
          '{kmeans_parallel_rounds} (the candidates of kmeans_parallel) must '
          'be below 2**31 - 1. Received: {kmeans_parallel_oversampling=}, '
          'num_clusters=%d, kmeans_parallel_rounds=%d; lower {%s} (the '
          'default is %s).' % (num_clusters, kmeans_parallel_rounds, name,
                               _KMEANS_PARALLEL_DEFAULTS[name]),
          name, kmeans_parallel_oversampling if
          name == 'kmeans_parallel_oversampling' else kmeans_parallel_rounds,
          num_clusters=num_clusters,
          kmeans_parallel_rounds=kmeans_parallel_rounds,
          kmeans_parallel_oversampling=kmeans_parallel_oversampling)


# The defaults of KMeansClustering's kmeans_parallel arguments.
_KMEANS_PARALLEL_DEFAULTS = {'kmeans_parallel_rounds': 5,
                             'kmeans_parallel_oversampling': 0.5}


def kmeans_parallel_culprit(rounds, oversampling):
  """(name, value) of the kmeans_parallel argument most above its default.

  The candidates of 'kmeans_parallel' grow with the product of rounds and
  oversampling; an error about their number names the argument that was
  raised the most (relative to its default), as the one to lower.
  """
  if (rounds / _KMEANS_PARALLEL_DEFAULTS['kmeans_parallel_rounds'] >
      oversampling / _KMEANS_PARALLEL_DEFAULTS['kmeans_parallel_oversampling']):
    return 'kmeans_parallel_rounds', rounds
  return 'kmeans_parallel_oversampling', oversampling


def check_distance_metric(distance_metric):
  if distance_metric not in constants.DISTANCE_METRICS:
    raise _invalid(
        '`{distance_metric}` must be one of '
        f'{list(constants.DISTANCE_METRICS)}. Received: {{distance_metric=}}',
        'distance_metric', distance_metric)
  return distance_metric


def check_algorithm(algorithm, distance_metric, use_mini_batch):
  """Checks `algorithm` and what it needs of the other options.

  The accepted names and each variant's needs (its metrics; full batch or
  not) come from the registry, `algorithms.REGISTRY`.

  Raises:
    errors.InvalidArgumentError: an unregistered name (the message lists
      the accepted ones), or options the variant does not support.
  """
  variant = algorithms.get(algorithm)
  if distance_metric not in variant.metrics or (
      use_mini_batch and variant.full_batch_only):
    metrics = ' or '.join(repr(m) for m in variant.metrics)
    raise _invalid(
        f'algorithm={algorithm!r} needs use_mini_batch=False and '
        f'distance_metric={metrics}. Received: {{use_mini_batch=}}, '
        f'distance_metric={distance_metric!r}; use algorithm=\'lloyd\' '
        'for the others.', 'algorithm', algorithm,
        use_mini_batch=use_mini_batch)
  return algorithm


def check_empty_cluster(empty_cluster, use_mini_batch,
                        mini_batch_steps_per_iteration):
  """Checks `empty_cluster` and what it needs of the mini-batch options."""
  if empty_cluster not in constants.EMPTY_CLUSTER_POLICIES:
    raise _invalid(
        '`{empty_cluster}` must be one of '
        f'{list(constants.EMPTY_CLUSTER_POLICIES)}. '
        'Received: {empty_cluster=}', 'empty_cluster', empty_cluster)
  if (empty_cluster == constants.FARTHEST_POINT and use_mini_batch and
      mini_batch_steps_per_iteration != 1):
    raise _invalid(
        "empty_cluster='farthest_point' with use_mini_batch=True needs "
        'mini_batch_steps_per_iteration=1: the per-cluster counts that tell '
        'a dead center from one that missed a batch are reset every '
        'iteration otherwise. Received: {mini_batch_steps_per_iteration=}; '
        "use empty_cluster='keep' or mini_batch_steps_per_iteration=1.",
        'empty_cluster', empty_cluster,
        mini_batch_steps_per_iteration=mini_batch_steps_per_iteration)
  return empty_cluster


def check_num_restarts(num_restarts, use_mini_batch, empty_cluster,
                       initial_clusters):
  """Checks `num_restarts` and what restarts need of the other options.

  Restarts share full-batch Lloyd passes and start from centers drawn at
  random, so R > 1 needs use_mini_batch=False, empty_cluster='keep' and an
  initialisation method named by a string.
  """
  num_restarts = check_positive_int('num_restarts', num_restarts)
  if num_restarts == 1:
    return num_restarts
  if use_mini_batch:
    raise _invalid(
        f'num_restarts={num_restarts} needs use_mini_batch=False: the '
        'restarts share the passes of full-batch Lloyd steps. Received: '
        '{use_mini_batch=}; pass use_mini_batch=False, or num_restarts=1 '
        'for mini-batch training.', 'num_restarts', num_restarts,
        use_mini_batch=True)
  if empty_cluster == constants.FARTHEST_POINT:
    raise errors.InvalidArgumentError(
        f"num_restarts={num_restarts} does not support empty_cluster="
        f"'farthest_point'; use empty_cluster='keep', or num_restarts=1.",
        'num_restarts', num_restarts)
  given_centers = not isinstance(initial_clusters, str)  # Array, callable.
  if given_centers:
    raise errors.InvalidArgumentError(
        f'num_restarts={num_restarts} needs initial centers drawn at random, '
        f'one of {list(constants.INIT_METHODS)}: initial_clusters given as '
        'an array or a callable would start every restart from the same '
        'centers. Use num_restarts=1 with them.', 'num_restarts',
        num_restarts)
  return num_restarts


def check_initial_clusters_name(initial_clusters):
  """Checks a string `initial_clusters`; other kinds are checked elsewhere."""
  if initial_clusters not in constants.INIT_METHODS:
    raise _invalid(
        f'`{{initial_clusters}}` must be one of '
        f'{list(constants.INIT_METHODS)}, an array of shape (num_clusters, '
        'd), or a callable f(inputs, k). Received: {initial_clusters=}',
        'initial_clusters', initial_clusters)
  return initial_clusters


def check_positive_number(name, value):
  """Returns `value` as a float, or raises if it is not a number > 0."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or
      not value > 0 or value == float('inf')):
    raise _invalid(
        '`{%s}` must be a finite number > 0. Received: {%s=}' % (name, name),
        name, value)
  try:
    return float(value)
  except OverflowError:  # An int beyond the largest float.
    raise _too_large(
        '`{%s}` must be a finite number > 0 that a float holds. Received: '
        '{%s=}' % (name, name), name, value) from None


def check_relative_tolerance(relative_tolerance):
  if relative_tolerance is None:
    return None
  if (isinstance(relative_tolerance, bool) or
      not isinstance(relative_tolerance, numbers.Real) or
      not relative_tolerance >= 0):
    raise _invalid(
        '`{relative_tolerance}` must be None or a number >= 0. Received: '
        '{relative_tolerance=}', 'relative_tolerance', relative_tolerance)
  try:
    return float(relative_tolerance)
  except OverflowError:  # An int beyond the largest float: as large as inf.
    return float('inf')


def check_initial_centers_shape(shape, num_clusters, num_features=None):
  """Checks the shape of explicitly given initial centers."""
  if len(shape) != 2 or shape[0] != num_clusters or (
      num_features is not None and shape[1] is not None and
      shape[1] != num_features):
    wanted = f'({num_clusters}, {num_features if num_features else "d"})'
    raise errors.InitialClustersError(
        f'`initial_clusters` must have shape {wanted} (num_clusters rows of '
        f'the data\'s width). Received: initial_clusters with shape '
        f'{tuple(shape)}')


def check_dtype(dtype):
  """Returns `dtype` as a `tf.DType`: float32 or float64.

  Half precision (float16, bfloat16) is refused rather than computed with:
  its per-cluster sums overflow at 65504 and its counts stop growing at 2048
  (256 in bfloat16), so steps would quietly give wrong centers. Points of any
  numeric dtype, half precision included, are accepted and cast to the
  model's dtype.
  """
  try:
    as_dtype = tf.as_dtype(dtype)
  except TypeError:
    as_dtype = None
  if as_dtype not in (tf.float32, tf.float64):
    reason = ''
    if as_dtype is not None and as_dtype.is_floating:
      reason = (' Half precision cannot hold the per-cluster sums and '
                'counts; give points of any dtype (float16 too) to a '
                'float32 model, they are cast to it.')
    raise _invalid_type(
        '`{dtype}` must be a floating point dtype of 32 or 64 bits: '
        'tf.float32 or tf.float64.' + reason + ' Received: {dtype=}',
        'dtype', dtype)
  return as_dtype


def overflow_text(dtype):
  """'<limit> or more, whose ...': why centers of `dtype` with values of
  that magnitude are refused, and the fix (see `numerics.overflow_advice`)."""
  limit, widen = numerics.overflow_advice(dtype)
  return (f'{limit} or more, whose squared distances '
          f'overflow {tf.as_dtype(dtype).name}; give centers on the scale of '
          'the points' + (' (or use dtype=tf.float64)' if widen else ''))


def check_initial_centers(initial_clusters, num_clusters, num_features,
                          dtype):
  """Returns centers given as an array as a read-only numpy copy (k, d).

  They must be numeric, of shape (num_clusters, num_features) (any width
  when `num_features` is None), finite, and below the magnitude whose
  squared distances overflow `dtype`. The copy keeps the config frozen: a
  later change to the caller's array changes nothing.
  """
  given = np.asarray(initial_clusters)
  if not np.issubdtype(given.dtype, np.number):
    raise errors.InvalidArgumentTypeError(
        '`initial_clusters` must be numeric when given as an array. '
        f'Received: dtype {given.dtype}', 'initial_clusters')
  check_initial_centers_shape(given.shape, num_clusters, num_features)
  if not np.all(np.isfinite(given)):
    raise errors.InitialClustersError(
        '`initial_clusters` contains NaN or Inf values; give finite centers.')
  largest = float(np.max(np.abs(given), initial=0))
  if largest >= numerics.overflow_limit(dtype):
    raise errors.InitialClustersError(
        '`initial_clusters` has values of magnitude '
        f'{overflow_text(dtype)}. Received: '
        f'initial_clusters with a value of magnitude {largest:.3g}')
  given = np.array(given)
  given.flags.writeable = False
  return given


def check_restarts_algorithm(num_restarts, algorithm):
  """Restarts (num_restarts > 1) share Lloyd passes: they need a variant
  that supports them (`Algorithm.supports_restarts` in the registry)."""
  if num_restarts > 1 and not algorithms.get(algorithm).supports_restarts:
    raise _invalid(
        f'num_restarts={num_restarts} needs algorithm=\'lloyd\': the restarts '
        "share Lloyd passes over the data. Received: {algorithm=}; use "
        "algorithm='lloyd', or num_restarts=1.", 'algorithm', algorithm)


def check_sample_weights(empty_cluster, weight_column=None):
  """Refuses sample weights with empty_cluster='farthest_point'.

  Policy: the far points that empty clusters move to have no weighted form,
  so 'farthest_point' takes no weights. The estimator refuses a
  `weight_column` (its name, given as `weight_column`) when it is built;
  `KMeans` refuses weights given to a step (`weight_column` None) when the
  step is called.
  """
  if empty_cluster != constants.FARTHEST_POINT:
    return
  if weight_column is not None:
    raise _invalid(
        "empty_cluster='farthest_point' does not support `weight_column`; "
        "use empty_cluster='keep'. Received: {weight_column=}",
        'weight_column', weight_column)
  raise errors.InvalidArgumentError(
      "empty_cluster='farthest_point' does not support sample weights; "
      "use empty_cluster='keep' with weights.", 'weights')


def check_replicas(empty_cluster, num_restarts, replicas=None):
  """Refuses the options that have no form over several replicas.

  Policy: empty_cluster='farthest_point' would need the far points gathered
  from every replica, and num_restarts > 1 keeps its restarts' statistics
  on one device; both are refused under a tf.distribute strategy. The
  estimator refuses them when it is built with
  `RunConfig(train_distribute=...)` (`replicas` None); `KMeans` refuses
  them when a step runs inside `strategy.run` with `replicas` > 1.
  """
  if replicas is not None and replicas <= 1:
    return
  if empty_cluster == constants.FARTHEST_POINT:
    if replicas is None:
      raise errors.InvalidArgumentError(
          "empty_cluster='farthest_point' is not supported with "
          'RunConfig(train_distribute=...): the far points would have to be '
          "gathered from every replica. Use empty_cluster='keep', or train "
          'without a strategy.', 'empty_cluster', empty_cluster)
    raise errors.InvalidArgumentError(
        "empty_cluster='farthest_point' is not supported inside "
        f"strategy.run with {replicas} replicas; use empty_cluster='keep'.",
        'empty_cluster', empty_cluster)
  if num_restarts > 1:
    if replicas is None:
      raise errors.InvalidArgumentError(
          f'num_restarts={num_restarts} is not supported with '
          'RunConfig(train_distribute=...); train without a strategy, or '
          'with num_restarts=1.', 'num_restarts', num_restarts)
    raise errors.InvalidArgumentError(
        f'num_restarts={num_restarts} is not supported inside '
        f'strategy.run with {replicas} replicas; use num_restarts=1.',
        'num_restarts', num_restarts)


def column_name(column):
  """The feature name of a column: a name, or an object with `.key`."""
  return getattr(column, 'key', column)


def check_weight_column(weight_column, feature_columns, empty_cluster,
                        distributed):
  """`weight_column` as a feature name (or None), checked against the rest
  (`distributed`: whether a RunConfig strategy trains or evaluates)."""
  if weight_column is None:
    return None
  name = column_name(weight_column)
  if not isinstance(name, str) or not name:
    raise _invalid_type(
        '`{weight_column}` must be the name of the feature holding the '
        'sample weights (a string, or a column with a `.key`). Received: '
        '{weight_column=}', 'weight_column', weight_column)
  if feature_columns is not None and name in [
      column_name(column) for column in feature_columns]:
    raise errors.InvalidArgumentError(
        f'`weight_column`={name!r} is also in `feature_columns`; the weights '
        'are not a point feature. Remove it from feature_columns.',
        'weight_column', name)
  check_sample_weights(empty_cluster, name)
  if distributed:
    raise _invalid(
        '`weight_column` is not supported with RunConfig(train_distribute=...'
        ') or eval_distribute; train without a strategy, or drop '
        'weight_column. Received: {weight_column=}', 'weight_column', name)
  return name


# The options that do not change a compiled graph (see `graph_key`).
_NOT_IN_GRAPH_KEY = ('num_clusters', 'num_features', 'random_seed')
# The options only initialisation reads: the graphs of the steps, of
# evaluation and of prediction do not depend on them (see
# `KMeans.graph_options`).
INITIALIZER_FIELDS = ('initial_clusters', 'kmeans_plus_plus_num_retries',
                      'kmc2_chain_length', 'kmeans_parallel_rounds',
                      'kmeans_parallel_oversampling')


@dataclasses.dataclass(frozen=True, eq=False)
class KMeansConfig:
  """Every option of the `KMeans` core, checked once, immutable.

  Each field is an argument of `KMeans`, plus `algorithm` (a name of
  `algorithms.names()`, the full-batch step the estimator runs); the
  methods named below are `KMeans`'s. Making a config checks every field
  and every rule between fields, in the order `KMeans` always checked
  them, so a bad call raises the same error as before; `replace(**changes)` makes a new config and checks it
  again. Fields hold the values as given, in canonical types (ints, floats,
  a `tf.DType`; `initial_clusters` exactly as given); what follows from
  them is a property (`given_centers`, `known_num_features`,
  `mini_batch_initial_count`, `kmeans_parallel_per_round`, `graph_key`).

  Configs compare by identity (an `initial_clusters` array has no single
  truth value); compare their `graph_key`s or fields instead.

  Attributes:
    num_clusters: positive int k.
    num_features: int d, or None to take it from the first points seen.
    initial_clusters: 'random', 'kmeans_plus_plus', 'kmc2',
      'kmeans_parallel' (k-means||: a few sampling rounds over all the data,
      see `initialize_from_dataset`), an array of shape (k, d), or a callable
      f(points, k) returning up to k centers (called on successive batches
      until k are chosen).
    distance_metric: 'squared_euclidean' or 'cosine'.
    use_mini_batch: False for exact Lloyd steps (`full_batch_step`), True for
      mini-batch steps (`train_step`).
    mini_batch_steps_per_iteration: with mini-batch, the centers used for
      assignment are refreshed from the updated copy every this many steps
      (the legacy two-copy scheme); 1 updates them every step. It also sets
      where the per-cluster counts n of the mini-batch rule start, as the
      legacy estimator did: at 1 with 1 step per iteration (the initial
      center weighs like one point: its first batch of m points moves it by
      m / (1 + m) of the way to their mean), at 0 otherwise (and at every
      refresh, when the counts are reset: the first batch of an iteration
      puts a center on its points' mean). Counts restored from a checkpoint
      are used as saved.
    random_seed: int driving all randomness (stateless ops).
    kmeans_plus_plus_num_retries: extra candidates per k-means++ center;
      negative means 2 + log(k).
    kmc2_chain_length: Markov chain length per center for 'kmc2'.
    kmeans_parallel_rounds: sampling rounds (passes over the data) of
      'kmeans_parallel'.
    kmeans_parallel_oversampling: candidates drawn per round of
      'kmeans_parallel', as a multiple of num_clusters (Bahmani et al.'s
      l / k).
    dtype: tf.float32 or tf.float64, the dtype of the centers and the
      computation. Half precision is refused (see `check_dtype`);
      points of any numeric dtype are cast to this one.
    chunk_elements: the most point-to-center distances held at once when only
      the nearest center is needed.
    empty_cluster: what a step does with a cluster that no point is nearest
      to. 'keep' (the legacy behaviour): it keeps its center.
      'farthest_point' (scikit-learn's policy): it moves to one of the points
      farthest from their own centers, which leaves its old cluster (see
      `updates.relocate_empty_clusters`). In mini-batch steps the
      candidates are the batch's points, and only clusters that have never
      had a point (count still at its fresh value 1) are relocated: a
      cluster that merely misses one batch keeps its center and learning
      rate. Finding the far
      points costs one more distance pass, only in steps that left a
      cluster empty. Not available inside `strategy.run` with several
      replicas, nor with sample weights.
    num_restarts: positive int R, scikit-learn's `n_init`: with R > 1 the
      model keeps R independent k-means runs (restarts) and `clusters` is
      always the best one's. Restart r is initialised with the seed folded
      with r (restart 0 draws exactly what num_restarts=1 draws), all in one
      `initialize` call ('random' over batches smaller than k takes such a
      batch whole in every restart, so restarts differ in the centers drawn
      from larger batches); every `full_batch_step` then moves all R restarts
      by one Lloyd update from ONE pass over the data (the points are scored
      against all R k centers in one matrix product, see
      `distances.restart_statistics`), and `clusters` becomes, provisionally,
      the updated centers of the restart with the lowest loss before that
      update; `keep_best_restart(data)` (one more pass) makes it the
      restart whose current centers score lowest. The R
      restarts' centers are in the variable `restart_clusters` (R, k, d),
      saved under that name. R > 1 needs use_mini_batch=False,
      empty_cluster='keep' and initial_clusters named by a string (an
      array or a callable would start every restart from the same
      centers). 'kmeans_parallel' samples each restart on its own: over a
      dataset of batches (`initialize_from_dataset`) that is
      kmeans_parallel_rounds + 2 passes per restart. Not available with
      `hamerly_step`, `apply_full_batch`, `finish_parallel` or inside
      `strategy.run` with several replicas.
    weighted: whether mini-batch steps (`train_step`) will get sample
      weights. The per-cluster counts that set the mini-batch learning rate
      are then float sums of weights, in a float variable under the legacy
      name 'Variable' (int64 otherwise, as the legacy checkpoints hold it;
      restoring either kind into the other casts). Full-batch steps take
      weights either way.

  Example:

  ```python
  config = KMeansConfig(num_clusters=3, use_mini_batch=False)
  km = KMeans.from_config(config.replace(distance_metric='cosine'))
  ```
  """

  num_clusters: int
  num_features: Optional[int] = None
  initial_clusters: Any = constants.RANDOM_INIT
  distance_metric: str = constants.SQUARED_EUCLIDEAN_DISTANCE
  use_mini_batch: bool = False
  mini_batch_steps_per_iteration: int = 1
  random_seed: int = 0
  kmeans_plus_plus_num_retries: int = 2
  kmc2_chain_length: int = 200
  dtype: Any = tf.float32
  chunk_elements: int = constants.DEFAULT_CHUNK_ELEMENTS
  kmeans_parallel_rounds: int = 5
  kmeans_parallel_oversampling: float = 0.5
  empty_cluster: str = constants.KEEP_EMPTY
  weighted: bool = False
  num_restarts: int = 1
  algorithm: str = constants.LLOYD

  def _set(self, name, value):
    object.__setattr__(self, name, value)  # Frozen: only while checking.

  def __post_init__(self):
    self._set('weighted', check_bool('weighted', self.weighted))
    self._set('num_clusters', check_positive_int(
        'num_clusters', self.num_clusters, maximum=INT32_MAX))
    self._set('distance_metric', check_distance_metric(self.distance_metric))
    self._set('use_mini_batch',
              check_bool('use_mini_batch', self.use_mini_batch))
    self._set('mini_batch_steps_per_iteration', check_positive_int(
        'mini_batch_steps_per_iteration',
        self.mini_batch_steps_per_iteration, maximum=INT64_MAX))
    self._set('random_seed', check_int('random_seed', self.random_seed))
    self._set('kmeans_plus_plus_num_retries',
              check_kmeans_plus_plus_num_retries(
                  self.kmeans_plus_plus_num_retries))
    self._set('kmc2_chain_length', check_positive_int(
        'kmc2_chain_length', self.kmc2_chain_length, maximum=INT32_MAX))
    self._set('kmeans_parallel_rounds', check_positive_int(
        'kmeans_parallel_rounds', self.kmeans_parallel_rounds,
        maximum=INT32_MAX))
    self._set('kmeans_parallel_oversampling', check_positive_number(
        'kmeans_parallel_oversampling', self.kmeans_parallel_oversampling))
    self._set('dtype', check_dtype(self.dtype))
    self._set('chunk_elements', check_positive_int('chunk_elements',
                                                   self.chunk_elements))
    self._set('empty_cluster', check_empty_cluster(
        self.empty_cluster, self.use_mini_batch,
        self.mini_batch_steps_per_iteration))
    centers = None
    if isinstance(self.initial_clusters, str):
      check_initial_clusters_name(self.initial_clusters)
    elif not callable(self.initial_clusters):
      centers = check_initial_centers(self.initial_clusters,
                                      self.num_clusters, self.num_features,
                                      self.dtype)
    self._set('_given_centers', centers)
    self._set('num_restarts', check_num_restarts(
        self.num_restarts, self.use_mini_batch, self.empty_cluster,
        self.initial_clusters))
    check_index_sizes(
        self.num_clusters, self.initial_clusters, self.kmc2_chain_length,
        self.kmeans_parallel_rounds, self.kmeans_parallel_oversampling,
        self.num_restarts)
    if self.num_features is not None:
      self._set('num_features',
                check_positive_int('num_features', self.num_features))
    elif centers is not None:  # The width the centers give.
      check_positive_int('num_features', centers.shape[1])
    self._set('algorithm', check_algorithm(
        self.algorithm, self.distance_metric, self.use_mini_batch))
    check_restarts_algorithm(self.num_restarts, self.algorithm)

  def replace(self, **changes):
    """A new config with `changes`, checked again as a whole."""
    return dataclasses.replace(self, **changes)

  @property
  def given_centers(self):
    """`initial_clusters` given as an array: a read-only float copy of
    shape (k, d), or None for a method name or a callable."""
    return self._given_centers

  @property
  def known_num_features(self):
    """d: `num_features`, else the width of centers given as an array;
    None when only the data will tell."""
    if self.num_features is not None:
      return self.num_features
    if self._given_centers is not None:
      return int(self._given_centers.shape[1])
    return None

  @property
  def mini_batch_initial_count(self):
    """Where a fresh model's mini-batch counts start: the legacy rule, 1
    with mini_batch_steps_per_iteration=1, else 0 (see `KMeans`)."""
    return 1 if self.mini_batch_steps_per_iteration == 1 else 0

  @property
  def kmeans_parallel_per_round(self):
    """The candidates 'kmeans_parallel' draws per round:
    kmeans_parallel_oversampling x num_clusters, rounded, at least 1."""
    return max(1, int(round(self.kmeans_parallel_oversampling *
                            self.num_clusters)))

  @property
  def graph_key(self):
    """A hashable tuple of the options that change a compiled graph.

    Two configs with equal keys can share every traced function, so a
    process-wide cache of compiled steps is keyed by it. It holds every
    field of `KMeansConfig` as (name, value) pairs except num_clusters,
    num_features and random_seed (which a shared trace must take as
    tensors) and, for an `EstimatorConfig`, the estimator's own fields.
    `initial_clusters` enters as its method name, as the callable itself,
    or as 'array' for centers given as an array (their values go into the
    variables, never into a trace).
    """
    key = []
    for field in dataclasses.fields(KMeansConfig):
      if field.name in _NOT_IN_GRAPH_KEY:
        continue
      value = getattr(self, field.name)
      if field.name == 'initial_clusters' and self._given_centers is not None:
        value = 'array'
      key.append((field.name, value))
    return tuple(key)


@dataclasses.dataclass(frozen=True, eq=False)
class EstimatorConfig(KMeansConfig):
  """A `KMeansConfig` plus the options of `KMeansClustering` that rules
  between options involve.

  Fields beyond the core's: `relative_tolerance`; `feature_columns` (a
  tuple, or None); `weight_column` (stored as the feature's name);
  `train_distributed` and `eval_distributed`, whether the `RunConfig` has a
  train or eval strategy. `weighted` is derived: True when `weight_column`
  is given. The defaults are the estimator's (`use_mini_batch=True`).

  It is a subclass, not a wrapper around a core config: the estimator
  always checked its weight_column before the core's options and its
  strategy rules after them, and one `__post_init__` chain keeps that order
  (so a call with two faults raises the same error as before); and the
  estimator's core is built from this very object (`KMeans.from_config`),
  so nothing is checked twice.
  """

  use_mini_batch: bool = True
  weighted: bool = dataclasses.field(init=False, default=False)
  relative_tolerance: Optional[float] = None
  # Given as a name or an iterable of names and columns; kept as a tuple.
  feature_columns: Optional[Union[str, Iterable[Any]]] = None
  # Given as a name or a column with `.key`; kept as the name.
  weight_column: Optional[Any] = None
  train_distributed: bool = False
  eval_distributed: bool = False

  def __post_init__(self):
    self._set('train_distributed',
              check_bool('train_distributed', self.train_distributed))
    self._set('eval_distributed',
              check_bool('eval_distributed', self.eval_distributed))
    self._set('relative_tolerance',
              check_relative_tolerance(self.relative_tolerance))
    feature_columns = self.feature_columns
    if feature_columns is not None and isinstance(feature_columns, str):
      feature_columns = [feature_columns]
    self._set('feature_columns', None if feature_columns is None else
              tuple(feature_columns))
    self._set('weight_column', check_weight_column(
        self.weight_column, self.feature_columns, self.empty_cluster,
        self.train_distributed or self.eval_distributed))
    self._set('weighted', self.weight_column is not None)
    super().__post_init__()
    if self.train_distributed:
      check_replicas(self.empty_cluster, self.num_restarts)
