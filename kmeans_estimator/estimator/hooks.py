"""The legacy hook protocol (`SessionRunHook`) without sessions.

Users' hooks keep their shape: `begin()`, `after_create_session(session,
coord)`, `before_run(run_context)` returning `SessionRunArgs`, `after_run(
run_context, run_values)` and `end(session)`, with
`run_context.request_stop()` to stop training. There is no TF1 session in
TF 2, so `session` and `coord` are None, and `SessionRunArgs.fetches` name
values instead of graph tensors: any of 'loss', 'global_step', 'clusters'
(also the legacy spelling 'cluster_centers'), 'num_points',
'empty_clusters', in any nest of lists, tuples and dicts.
`run_values.results` has the same structure, holding numpy values.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import tensorflow as tf


class SessionRunArgs(NamedTuple):
  """What a hook asks for before a step: names of values to fetch."""

  fetches: Any
  feed_dict: Any = None
  options: Any = None


class SessionRunValues(NamedTuple):
  """What `after_run` receives: `results` has the structure of the hook's
  `SessionRunArgs.fetches`, holding numpy values; `options` and
  `run_metadata` are None."""

  results: Any
  options: Any
  run_metadata: Any


class SessionRunContext:
  """Passed to `before_run`/`after_run`; lets a hook stop training."""

  def __init__(self, original_args: Optional[SessionRunArgs] = None,
               session: Any = None) -> None:
    self.original_args = original_args
    self.session = session
    self._stop_requested = False

  @property
  def stop_requested(self) -> bool:
    """Whether a hook called `request_stop`."""
    return self._stop_requested

  def request_stop(self) -> None:
    """Stops training (or evaluation) after the current step."""
    self._stop_requested = True


class SessionRunHook:
  """Base class for hooks that watch or stop training and evaluation.

  Override the methods you need; each default does nothing. They are
  called in this order: `begin`, `after_create_session`, then around every
  step `before_run` and `after_run`, and `end` when the loop ends.
  """

  def begin(self) -> None:
    """Called once before the first step."""

  def after_create_session(  # pylint: disable=unused-argument
      self,
      session: Any,
      coord: Any,
  ) -> None:
    """Called once after `begin`; `session` and `coord` are None."""

  def before_run(  # pylint: disable=unused-argument
      self,
      run_context: SessionRunContext,
  ) -> Optional[SessionRunArgs]:
    """Called before each step.

    Args:
      run_context: the `SessionRunContext`; `request_stop()` stops the loop.

    Returns:
      None, or `SessionRunArgs` naming the values to fetch from the step
      ('loss', 'global_step', 'clusters', 'num_points', 'empty_clusters').
    """
    return None

  def after_run(  # pylint: disable=unused-argument
      self,
      run_context: SessionRunContext,
      run_values: SessionRunValues,
  ) -> None:
    """Called after each step.

    Args:
      run_context: the `SessionRunContext`; `request_stop()` stops the loop
        after this step.
      run_values: `SessionRunValues` whose `results` hold the values that
        `before_run` asked for.
    """

  def end(self, session: Any) -> None:  # pylint: disable=unused-argument
    """Called once when the loop ends; `session` is None."""


class StopAtStepHook(SessionRunHook):
  """Stops training after `num_steps` more steps or at `last_step`."""

  def __init__(self, num_steps: Optional[int] = None,
               last_step: Optional[int] = None) -> None:
    if (num_steps is None) == (last_step is None):
      raise ValueError('Exactly one of `num_steps` and `last_step` must be '
                       f'given. Received: num_steps={num_steps!r}, '
                       f'last_step={last_step!r}')
    # num_steps counts from the first step seen (unused with last_step).
    self._num_steps = 0 if num_steps is None else num_steps
    self._last_step = last_step

  def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
    """Asks for the global step."""
    return SessionRunArgs('global_step')

  def after_run(self, run_context: SessionRunContext,
                run_values: SessionRunValues) -> None:
    """Requests a stop once the global step reaches the last step."""
    step = int(run_values.results)
    if self._last_step is None:
      # The first step seen is the one just run.
      self._last_step = step - 1 + self._num_steps
    if step >= self._last_step:
      run_context.request_stop()


_ALIASES = {'cluster_centers': 'clusters'}


def resolve_fetches(fetches, values):
  """Replaces each fetch name in a nest by its value from `values`.

  Raises:
    ValueError: a fetch is not a known name (graph tensors cannot be fetched
      in TF 2).
  """
  def lookup(name):
    if not isinstance(name, str) or _ALIASES.get(name, name) not in values:
      raise ValueError(
          'A hook asked to fetch {!r}; hooks can fetch only the names {} '
          '(TF 2 has no graph tensors to fetch).'.format(
              name, sorted(set(values) | set(_ALIASES))))
    value = values[_ALIASES.get(name, name)]
    return value.numpy() if hasattr(value, 'numpy') else value

  return tf.nest.map_structure(lookup, fetches)


class HookRunner:
  """Drives a list of hooks around training or evaluation steps."""

  def __init__(self, hooks):
    self._hooks = list(hooks or ())
    for hook in self._hooks:
      if not isinstance(hook, SessionRunHook) and not all(
          hasattr(hook, name) for name in ('begin', 'before_run', 'after_run',
                                           'end')):
        raise TypeError('`hooks` must be SessionRunHook-like objects with '
                        'begin, before_run, after_run and end. Received: '
                        f'{hook!r}')
    self._requests = []

  def __bool__(self):
    return bool(self._hooks)

  def begin(self):
    for hook in self._hooks:
      hook.begin()
    for hook in self._hooks:
      if hasattr(hook, 'after_create_session'):
        hook.after_create_session(None, None)

  def before_run(self):
    context = SessionRunContext()
    self._requests = [hook.before_run(context) for hook in self._hooks]
    return context

  def after_run(self, context, values):
    """Calls after_run with the fetched values; returns True to stop."""
    for hook, request in zip(self._hooks, self._requests):
      results = None
      if request is not None and request.fetches is not None:
        results = resolve_fetches(request.fetches, values)
      hook.after_run(context, SessionRunValues(results, None, None))
    return context.stop_requested

  def end(self):
    for hook in self._hooks:
      hook.end(None)


def fetchable_values(loss, global_step, clusters, num_points,
                     empty_clusters=0):
  """The values hooks may fetch by name after a step or an evaluated batch
  (see the module docstring)."""
  return {'loss': loss, 'global_step': global_step, 'clusters': clusters,
          'num_points': num_points, 'empty_clusters': empty_clusters}
