"""The process-wide cache of the estimator's compiled functions.

Every `KMeansClustering` in a process shares one `tf.function` per key, so a
second estimator (a choose-k loop, a new estimator over a trained model_dir)
runs the graphs the first one traced instead of tracing its own.

The key is `(name, core.graph_options())`: `name` says which function (the
training step, 'initialize', 'eval', ('predict', top_k, *keys), ...: every
Python choice made when its body is built, such as the predict keys and
top_k, is in the name), and `graph_options` (`config.graph_key` and the
number of features) holds every model option the graph depends on:
algorithm and mode (use_mini_batch, steps per iteration), distance metric,
dtype, the initialiser's kind and static options, empty-cluster policy,
restarts, weighted or not, chunk size. It holds neither num_clusters nor the seed: the
compiled functions take the model's variables and the seed as arguments
(`tf.function` traces a `tf.Variable` argument by its dtype and shape, not
its identity) and build a `KMeans.view` of them, whose num_clusters is
`tf.shape(clusters)[0]`; the estimator's core declares its variables with a
dynamic first dimension k (`SharedKMeans`), so one trace serves every k.
Only where the graph needs k as a Python int (a callable initial_clusters,
'kmeans_parallel', 'kmeans_plus_plus' with negative retries) is k in the
key. The traced bodies close over no estimator or model object.

Under a `tf.distribute` strategy the estimator keeps compiling per
estimator (`distribute.Trainer` steps close over the core built in the
strategy's scope; see `KMeansClustering._compile`), through `own_function`.
"""

from typing import Any

import tensorflow as tf

from kmeans_estimator import model as kmeans_lib

_CACHE: dict[Any, Any] = {}


class SharedKMeans(kmeans_lib.KMeans):
  """`KMeans` whose variables leave k dynamic, for the shared functions."""

  _DYNAMIC_NUM_CLUSTERS = True


def clear():
  """Forgets every compiled function (the next calls trace again)."""
  _CACHE.clear()


def traced_function(name, config, graph_options, body):
  """The shared `tf.function` of `body(view, *args)` under this key.

  Args:
    name: hashable, which function (see the module docstring).
    config: the `KMeansConfig` of the model it runs on (the views read
      their options from the first such config: those in the key).
    graph_options: `KMeans.graph_options()` of that model.
    body: callable(view, *args), where `view` is a `KMeans.view`; it must
      depend on nothing but its arguments and what the key names (it is
      traced for the first model of this key and run for all of them).

  Returns:
    `tf.function` of (variables, seed, *args).
  """
  key = (name, graph_options)
  function = _CACHE.get(key)
  if function is None:
    # The core writes its control flow with tf.cond / tf.while_loop, so
    # AutoGraph's source conversion (most of the tracing time) is not
    # needed.
    function = tf.function(_Traced(body, config, graph_options),
                           reduce_retracing=True, autograph=False)
    _CACHE[key] = function
  return function


def own_function(fn):
  """`tf.function` of `fn` for one estimator alone (not shared).

  `fn` is wrapped in a callable object, for the reason `_Traced` gives:
  the per-estimator functions of a distributed run are many lambdas of one
  code object (`distribute.Trainer._run`), each traced once, which
  TensorFlow would count together as one function retracing. Like the
  shared functions it is traced without AutoGraph and with
  `reduce_retracing`.
  """
  return tf.function(_Own(fn), reduce_retracing=True, autograph=False)


class _Own:
  """`fn` as a callable object of its own (see `own_function`)."""

  def __init__(self, fn):
    self._fn = fn

  def __call__(self, *args):
    return self._fn(*args)


class _Traced:
  """`body` on a view of the variables: what a shared function traces.

  A callable object rather than a closure: TensorFlow counts the traces of
  functions of the same code object together (its "triggered tf.function
  retracing" warning keeps one count per code object), and would take the
  one trace of each of many shared functions for retracing.
  """

  def __init__(self, body, config, graph_options):
    self._body = body
    self._config = config
    self._graph_options = graph_options

  def __call__(self, variables, seed, *args):
    return self._body(kmeans_lib.KMeans.view(
        self._config, self._graph_options, variables, seed), *args)


class Bound:
  """A shared compiled function bound to one model's variables and seed:
  called with the remaining arguments."""

  def __init__(self, function, core):
    self._function = function
    self._variables = core.state_variables()
    self._seed = core.seed_argument()

  def __call__(self, *args):
    return self._function(self._variables, self._seed, *args)

  def get_concrete_function(self, *args):
    """The traced graph for these arguments (Tensors or `tf.TensorSpec`s),
    as a callable of the same arguments that skips the matching of
    arguments to traces on each call."""
    variables, seed = self._variables, self._seed
    concrete = self._function.get_concrete_function(variables, seed, *args)
    return lambda *called: concrete(variables, seed, *called)

  def experimental_get_tracing_count(self):
    return self._function.experimental_get_tracing_count()


# The functions that choose initial centers: only their graphs depend on
# the initialiser's options (see `KMeans.graph_options`).
INITIALIZING = ('initialize', 'initialize_from_dataset')


def bind(name, core, body):
  """`traced_function(name, ...)` of `core`'s options, bound to `core`."""
  graph_options = core.graph_options(initializes=name in INITIALIZING)
  return Bound(traced_function(name, core.config, graph_options, body), core)


def relaxed_spec(structure):
  """`tf.TensorSpec`s of every dimension unknown, for a structure of
  Tensors (None stays None): a state whose shapes hold k then matches one
  trace for every k."""
  return tf.nest.map_structure(
      lambda t: None if t is None else tf.TensorSpec(
          [None] * t.shape.rank, t.dtype), structure)
