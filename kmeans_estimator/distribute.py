"""Training on a `tf.distribute` strategy: data parallel k-means.

Every replica computes per-cluster sums, counts and loss on its share of the
data; one all-reduce per step adds them up; every replica then moves the
centers identically (the core's variables keep the first replica's value,
which all replicas agree on). So the centers after each step equal, to float
rounding, those of one process on the same data from the same centers.

How the data are shared: `input_fn` is called on each worker (input
pipeline). If it takes an `input_context` argument it receives the
`tf.distribute.InputContext` and shards its files itself; otherwise the
dataset is sharded here by batch (`Dataset.shard`), and a Tensor or array
(all the data) by row. On each worker the batches are then dealt to its
replicas in turn. Each point therefore counts exactly once per full-batch
step. An endless dataset keeps its legacy meaning per replica: each step
takes one element on every replica (shard it through `input_context`).

Initialisation happens on the first replica's batch and is broadcast, with
the global step, to every replica before the first step, so workers that
restored or initialised differently still train identically. Only the chief
writes checkpoints and summaries.

A lost worker (killed, crashed, or silent) fails `train` and `evaluate` on
every other worker within a bounded time with a `WorkerFailedError` naming
it; restarting all workers resumes from the chief's last checkpoint (see
`WorkerFailedError` and `peer_failures`).
"""

import contextlib
import math
import re

import tensorflow as tf

from kmeans_estimator.io import checkpoints
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.ops import initializers

# What a collective raises when a peer dies or stops answering in time.
_PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                  tf.errors.AbortedError, tf.errors.CancelledError)
# A task as TensorFlow names it in its messages: '/job:worker/task:1' or
# '/job:worker/replica:0/task:1'.
_TASK_RE = re.compile(r'/job:([\w-]+)/(?:replica:\d+/)?task:(\d+)')
# The most of TensorFlow's message quoted in a `WorkerFailedError`.
_MAX_QUOTED_CHARS = 300


# Defined in `errors`; importable from here as before.
WorkerFailedError = errors.WorkerFailedError


def _cluster(strategy):
  """({task name: address} of the cluster, this task's name); empty without
  a cluster (one machine)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  try:
    spec = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, resolver.task_id
  except (AttributeError, TypeError, ValueError):
    return {}, None
  me = (f'/job:{task_type}/task:{task_id}'
        if task_type is not None and task_id is not None else None)
  addresses = {}
  for job, tasks in spec.items():
    if isinstance(tasks, dict):
      tasks = [tasks[i] for i in sorted(tasks)]
    for index, address in enumerate(tasks):
      addresses[f'/job:{job}/task:{index}'] = address
  return addresses, me


def _lost_tasks(message, addresses, me):
  """The tasks other than `me` that TensorFlow's `message` names (by task or
  by address), in cluster order. The message only words the error; nothing
  else depends on it."""
  named = {f'/job:{job}/task:{index}'
           for job, index in _TASK_RE.findall(message)}
  named.update(task for task, address in addresses.items()
               if re.search(r'(?<![\w.])' + re.escape(address) + r'(?!\d)',
                            message))
  named.discard(me)
  order = list(addresses)
  return sorted(named, key=lambda t: (order.index(t) if t in order else
                                      len(order), t))


def worker_failed_error(error, strategy, model_dir):
  """The `WorkerFailedError` for TensorFlow's `error` (a peer failure).

  The message names the lost worker(s) when TensorFlow's message does (by
  task name or address), this worker, the checkpoint to resume from, and
  what to do.
  """
  addresses, me = _cluster(strategy)
  lost = _lost_tasks(error.message, addresses, me)

  def describe(task):
    return f'{task} ({addresses[task]})' if task in addresses else task

  if lost:
    who = ('Worker ' if len(lost) == 1 else 'Workers ') + ', '.join(
        describe(t) for t in lost) + ' of the distributed run'
  else:
    who = ('A worker of the distributed run (TensorFlow did not say which; '
           'the cluster is ' + ', '.join(describe(t) for t in addresses) +
           ')') if addresses else 'A worker of the distributed run'
  this = f' ({describe(me)})' if me else ''
  try:
    checkpoint = checkpoints.latest_checkpoint(model_dir)
  except (tf.errors.OpError, OSError, ValueError):
    checkpoint = None  # Unreadable here (e.g. not shared): said below.
  if checkpoint:
    resume = (f"they resume from the chief's last checkpoint, "
              f'{checkpoint!r}')
  else:
    resume = (f'this worker sees no checkpoint in model_dir={model_dir!r}, '
              'so unless the chief saved one there they start over')
  # TensorFlow's first lines, without its graph noise; the whole error is
  # the cause.
  said = errors.tensorflow_text(error, lines=2)
  if len(said) > _MAX_QUOTED_CHARS:
    said = said[:_MAX_QUOTED_CHARS - 3] + '...'
  message = (
      f'{who} failed or stopped responding ({type(error).__name__}), so '
      f'this worker{this} stops too: a synchronous run needs every worker. '
      'Restart all worker processes, this one included, with the same '
      f'TF_CONFIG and command: {resume}. TensorFlow said: {said}')
  return WorkerFailedError(message, lost_tasks=lost, model_dir=model_dir,
                           checkpoint=checkpoint)


@contextlib.contextmanager
def peer_failures(strategy, model_dir):
  """Turns a lost peer into one `WorkerFailedError` (see there).

  The bound on the wait is TensorFlow's: `MultiWorkerMirroredStrategy` runs
  a coordination service whose heartbeats declare a silent worker dead
  (a dead worker's closed port fails its peers sooner), and a collective
  fails once it has waited the strategy's
  `CommunicationOptions(timeout_seconds=...)`, when that is set. Either
  aborts the collectives of every survivor, which then raise here rather
  than hang. Without a strategy the block runs unchanged.
  """
  if strategy is None:
    yield
    return
  try:
    yield
  except _PEER_FAILURES as error:
    raise worker_failed_error(error, strategy, model_dir) from error


def is_chief(strategy):
  """Whether this process writes checkpoints (True without a strategy)."""
  if strategy is None:
    return True
  return bool(getattr(strategy.extended, 'should_checkpoint', True))


def shard_points(points, context, sharded_by_input_fn):
  """This pipeline's share of `points` (an `inputs.Points`), as batches.

  Args:
    points: `inputs.Points` read on this worker.
    context: `tf.distribute.InputContext`.
    sharded_by_input_fn: whether the input_fn sharded by `context` itself.

  Returns:
    `tf.data.Dataset` of float Tensors (n, d), dealt to the local replicas
    in turn by the strategy.
  """
  pipelines = context.num_input_pipelines
  local_replicas = max(context.num_replicas_in_sync // pipelines, 1)
  if points.whole:
    whole = points.batch.points
    if pipelines > 1 and not sharded_by_input_fn:
      whole = whole[context.input_pipeline_id::pipelines]
    rows = max(math.ceil(int(whole.shape[0]) / local_replicas), 1)
    return tf.data.Dataset.from_tensor_slices(whole).batch(rows)
  dataset = points.dataset
  if pipelines > 1 and not sharded_by_input_fn:
    dataset = dataset.shard(pipelines, context.input_pipeline_id)
  return dataset


def evaluations(strategy, core, compile_fn, dataset_fn):
  """Yields each distributed evaluation step's figures, summed over replicas.

  Args:
    strategy: the `tf.distribute.Strategy`; the core was built in its scope.
    core: the `KMeans` core.
    compile_fn: callable(name, fn) returning the compiled (cached) `fn`.
    dataset_fn: callable(`InputContext`) -> this pipeline's dataset.

  Yields:
    dicts with 'score' (sum of distances to the nearest center),
    'num_points' and 'num_batches' (non-empty replica batches).
  """
  def replica_fn(batch):
    _, nearest = core.nearest(batch)
    num_points = tf.size(nearest, tf.int64)
    return {'score': tf.reduce_sum(nearest), 'num_points': num_points,
            'num_batches': tf.minimum(num_points, 1)}

  step = compile_fn(('distributed', 'evaluate'),
                    lambda batch: strategy.run(replica_fn, args=(batch,)))
  for batch in strategy.distribute_datasets_from_function(dataset_fn):
    yield {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
           for name, value in step(batch).items()}


class Trainer:
  """Runs the core's training steps on a strategy's replicas.

  Args:
    strategy: a `tf.distribute.Strategy`; the core was built in its scope.
    core: the `KMeans` core.
    compile_fn: callable(name, fn) returning the compiled (cached) `fn`.
    dataset_fn: callable(`InputContext`) -> this pipeline's dataset of
      batches (see `shard_points`).
  """

  def __init__(self, strategy, core, compile_fn, dataset_fn):
    self._strategy = strategy
    self._core = core
    self._compile = compile_fn
    self._dataset = strategy.distribute_datasets_from_function(dataset_fn)

  def _first_replica_value(self, per_replica):
    return tf.nest.map_structure(
        lambda v: self._strategy.experimental_local_results(v)[0],
        per_replica)

  def _run(self, name, fn, *args):
    strategy = self._strategy
    compiled = self._compile(('distributed', name),
                             lambda *a: strategy.run(fn, args=a))
    return compiled(*args)

  def initialize(self, global_step):
    """Initialises from the first replica's batches and broadcasts the state.

    Returns:
      The global step every replica agrees on (the first replica's).
    """
    core = self._core
    # read_value(): bool() of a distributed variable is not its value.
    if not bool(core.initialized.read_value()) and (
        core.initial_clusters == constants.KMEANS_PARALLEL_INIT):
      self._initialize_parallel()
    elif not bool(core.initialized.read_value()):
      for batch in self._dataset:
        local = self._strategy.experimental_local_results(batch)[0]
        if int(local.shape[0]) and bool(
            self._compile('initialize', core.initialize)(local)):
          break
    self._run('broadcast', core.broadcast_state)

    def first_replica_step(step):
      context = tf.distribute.get_replica_context()
      mine = tf.where(tf.equal(context.replica_id_in_sync_group, 0), step,
                      tf.zeros_like(step))
      return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)

    step = self._run('broadcast_step', first_replica_step,
                     tf.constant(global_step, tf.int64))
    return int(self._first_replica_value(step))

  def _initialize_parallel(self):
    """k-means|| over every replica's batches (see `StreamedSampler`).

    Each replica draws from its own batches with its own seed; after each
    pass the replicas' reservoirs are merged (all-gather, then the largest
    keys) and their counts and weights summed, so every replica holds the
    same candidates. The first replica's are reduced to the centers, which
    `initialize` then broadcasts.
    """
    core = self._core
    sampler = core.streamed_sampler()

    def replica_seed():
      context = tf.distribute.get_replica_context()
      return initializers.fold_seed(sampler.seed,
                                    context.replica_id_in_sync_group)

    def merged(keys, rows):
      context = tf.distribute.get_replica_context()
      top = tf.math.top_k(context.all_gather(keys, axis=0),
                          k=tf.shape(keys)[0])
      return top.values, tf.gather(context.all_gather(rows, axis=0),
                                   top.indices)

    def summed(value):
      return tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, tf.cast(value, tf.float64))

    def one_pass(name, update, state, *extra):
      for i, batch in enumerate(self._dataset):
        state = self._run(('kmeans_parallel', name), update, batch,
                          tf.constant(i), state, *extra)
      return state

    def first_update(batch, i, state):
      return sampler.first_update(core.prepare(batch), i, state,
                                  replica_seed())

    def first_merge(keys, rows, count):
      return (*merged(keys, rows), summed(count))

    state = self._run(('kmeans_parallel', 'first_state'),
                      sampler.first_state)
    _, first, count = self._run(('kmeans_parallel', 'first_merge'),
                                first_merge, *one_pass('first', first_update,
                                                       state))
    candidates = first
    for r in range(1, sampler.rounds + 1):

      def round_update(batch, i, state, so_far, r=r):
        return sampler.round_update(core.prepare(batch), i, state, r,
                                    so_far, replica_seed())

      state = self._run(('kmeans_parallel', 'reservoir'),
                        lambda: sampler.reservoir(sampler.oversampling))
      keys, rows = self._run(
          ('kmeans_parallel', 'merge'), merged,
          *one_pass(f'round{r}', round_update, state, candidates))
      # Named per round: the candidates grow, so each round traces anew.
      candidates = self._run(
          ('kmeans_parallel', f'append{r}'),
          lambda so_far, keys, rows, first: tf.concat(
              [so_far, sampler.round_candidates(keys, rows, first)], axis=0),
          candidates, keys, rows, first)

    def weigh_update(batch, _, totals, candidates):
      return sampler.weigh_update(core.prepare(batch), totals, candidates)

    totals = self._run(('kmeans_parallel', 'totals'),
                       lambda: tf.zeros([sampler.size], sampler.dtype))
    weights = self._run(('kmeans_parallel', 'sum'), summed,
                        one_pass('weigh', weigh_update, totals, candidates))
    local = self._first_replica_value((candidates, weights, count))
    self._compile('finish_parallel', core.finish_parallel)(
        local[0], tf.cast(local[1], sampler.dtype), local[2])

  def _full_batch_pass(self, _):
    """One Lloyd step over every batch of every replica."""
    core = self._core
    totals = None
    for batch in self._dataset:
      stats = self._run('statistics', core.statistics, batch)
      totals = stats if totals is None else self._run(
          'add', lambda a, b: tuple(x + y for x, y in zip(a, b)), totals,
          stats)
    if totals is None:
      totals = self._run('empty', lambda: (
          tf.zeros([core.num_clusters, core.num_features], core.dtype),
          tf.zeros([core.num_clusters], core.dtype),
          tf.zeros([], core.dtype)))
    return self._first_replica_value(
        self._run('apply_full_batch', core.apply_full_batch, *totals))

  def _element_step(self, batch):
    """One step from one element per replica (mini-batch, endless input)."""
    return self._first_replica_value(
        self._run('step', self._core.step, batch))

  def steps(self, points, finite_by_default, chosen):
    """(step inputs, step function) for the estimator's training loop.

    Mirrors the single-process meaning of a step (see `KMeansClustering`).

    Args:
      points: `inputs.Points` read on this worker.
      finite_by_default: whether training without steps makes one pass.
      chosen: `algorithms.Choice`, the estimator's choice of the variant
        (over sharded batches: a full-batch Lloyd pass or mini-batch
        steps).
    """
    if chosen.algorithm.mini_batch or points.endless:
      def elements():
        while True:
          yield from self._dataset
          if finite_by_default or not points.whole:
            return
      return elements(), self._element_step

    def passes():
      while True:
        yield None
        if finite_by_default:
          return
    return passes(), self._full_batch_pass
