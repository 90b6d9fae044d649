"""The library's exception classes, and the channel out of compiled checks.

Every error the library raises on purpose is one of the classes below (or a
plain `ValueError`/`TypeError` where no caller needs to tell it apart). Each
derives from the built-in class a caller would catch for it (`ValueError`,
`TypeError`, `FloatingPointError`, `OSError`, `RuntimeError`), so existing
`except` clauses keep working, and from the mixin `KMeansError`, so that
`except errors.KMeansError` catches every one of them. The fields
(`argument`, `received`, `kind`, ...) say what was wrong; code that reacts to
an error reads them (or its class), never its message text.

Checks inside compiled code (an `Assert` in a `tf.data` pipeline, a
`tf.function` or a served signature) can only fail with a TensorFlow op
error. `graph_check` builds such an `Assert` and registers the typed error it
stands for under an id that the `Assert` carries in its data;
`translate` (or the `translated()` context manager) maps the op error back
to that typed error by the id: a registry lookup, not a search for
sentences. `KMeans` (the tf.Module) lets the op errors through, as
TensorFlow code does; the estimator, the file readers and the CLI
translate them.

The classes are public through `kmeans_estimator.errors` (they are not in
`kmeans_estimator.__all__`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional
from typing import Sequence, TypeVar, Union

import tensorflow as tf

_MISSING = object()


class KMeansError(Exception):
  """Mixin base of every exception class of this library.

  Never raised on its own: each subclass also derives from the built-in
  class that says what went wrong (`ValueError`, `TypeError`, ...).
  """

  # Raised while a tf.function traces, an error passes through AutoGraph as
  # it is: AutoGraph would otherwise re-create it from its message alone
  # (losing its fields) or replace it by a StagingError, which is no
  # ValueError.
  ag_pass_through = True


# A field of a message template: `{name}` is an argument's name, `{name=}`
# the clause that shows what the argument received ("name=value").
_FIELD_RE = re.compile(r'\{(\w+)(=?)\}')


def _received_clause(name, value):
  return f'{name}={value!r}'


def render(
    template: str,
    values: Mapping[str, Any],
    name: Optional[Callable[[str], str]] = None,
    received: Optional[Callable[[str, Any], str]] = None,
) -> str:
  """Fills a message template (see `InvalidArgumentError.from_template`).

  Args:
    template: the message, with `{arg}` where the name of argument `arg`
      goes and `{arg=}` where the clause showing its value goes. Braces
      around other text are left as they are.
    values: {argument name: value received}.
    name: callable(arg) -> how to spell the name of `arg` (default: as
      it is).
    received: callable(arg, value) -> the clause showing the value (default
      "arg=repr(value)").

  Returns:
    The message.
  """
  name = name or (lambda argument: argument)
  received = received or _received_clause

  def field(match):
    argument, with_value = match.groups()
    if argument not in values:
      return match.group(0)
    if with_value:
      return received(argument, values[argument])
    return name(argument)

  return _FIELD_RE.sub(field, template)


_E = TypeVar('_E', bound='_ArgumentError')


class _ArgumentError(KMeansError):
  """Fields and rendering shared by the two argument errors."""

  def __init__(self,
               message: str,
               argument: Optional[str] = None,
               received: Any = _MISSING,
               *,
               template: Optional[str] = None,
               values: Optional[Mapping[str, Any]] = None) -> None:
    super().__init__(message)
    self.argument = argument
    self.has_received = received is not _MISSING
    self.received = None if received is _MISSING else received
    self.template = template
    self.values = dict(values or {})

  @classmethod
  def from_template(cls: type[_E], template: str, argument: str,
                    received: Any = _MISSING, **values: Any) -> _E:
    """The error with the message `render(template, values)`.

    `values` are the other arguments the message names or shows (their
    values); `argument` and `received` are the one at fault. An entry
    point that spells arguments otherwise (the CLI's flags) re-renders the
    message with `render_message` instead of editing its text.
    """
    if received is not _MISSING:
      values = {argument: received, **values}
    return cls(message=render(template, values), argument=argument,
               received=received, template=template, values=values)

  def render_message(
      self,
      name: Optional[Callable[[str], str]] = None,
      received: Optional[Callable[[str, Any], str]] = None,
  ) -> str:
    """The message with the arguments spelled by `name(arg)` and their
    values shown by `received(arg, value)` (see `render`); the message as
    it is for an error made without a template."""
    if self.template is None:
      return str(self)
    return render(self.template, self.values, name, received)


class InvalidArgumentError(_ArgumentError, ValueError):
  """An argument's value is not valid (a `ValueError`).

  Raised by the option checks (`kmeans_estimator.config`), the constructors
  of `KMeansClustering`, `KMeans` and `RunConfig`, the methods' checks and
  the file readers' options, before anything runs or is written.

  Attributes:
    argument: the name of the constructor's or method's argument at fault
      (as the caller spells it, e.g. 'num_clusters'); None when the error
      concerns no single argument.
    received: the value received, when the check had it (`has_received`
      says whether it did).
    has_received: whether the check had the value (`received` is None
      otherwise).
    template: the message's template (see `from_template` and
      `render_message`), or None for a message given as it is.
    values: dict of the values the template names; {} without a template.
  """


class InvalidArgumentTypeError(_ArgumentError, TypeError):
  """An argument has the wrong type (a `TypeError`); the twin of
  `InvalidArgumentError`, with the same fields. Raised by the same checks,
  before anything runs or is written."""


class SizeError(InvalidArgumentError):
  """An argument asks for more than the machine or TensorFlow can hold.

  Raised before anything runs or is written, with the argument's name in
  `argument` and in the message, rather than an out-of-memory kill or an
  opaque TensorFlow error minutes later. (Also importable as
  `kmeans_estimator.config.SizeError`.)
  """

  def __init__(self,
               argument: str,
               message: str,
               received: Any = _MISSING,
               *,
               template: Optional[str] = None,
               values: Optional[Mapping[str, Any]] = None) -> None:
    super().__init__(message, argument=argument, received=received,
                     template=template, values=values)


class SparseInputError(InvalidArgumentError):
  """Sparse points (a `tf.SparseTensor` or scipy.sparse matrix) in a mode
  or form that does not take them yet (a `ValueError`). `argument` names
  the option or argument to change (e.g. 'use_mini_batch'); the message
  says what to use instead. Raised before anything is written; sparse
  points are never densified behind the caller's back."""


class InitialClustersError(InvalidArgumentError):
  """The centers that `initial_clusters` gave (an array, or what a callable
  returned) are unusable: NaN or Inf, too large in magnitude, of the wrong
  shape. `argument` is 'initial_clusters'. Raised when the model is made
  (arrays) or at the first training step (a callable's output)."""

  def __init__(self, message: str, argument: str = 'initial_clusters',
               received: Any = _MISSING, **kwargs: Any) -> None:
    super().__init__(message, argument=argument, received=received, **kwargs)


class InvalidInputError(KMeansError, ValueError):
  """The data are bad: the points, the weights or their shapes.

  Raised while the input is read (by `train`, `evaluate`, `predict`, the
  file readers and the CLI), before anything is written.

  Attributes:
    kind: what is wrong, one of `INPUT_KINDS`:
      'non_finite': a point holds NaN or Inf;
      'width': rows of the wrong width for the model;
      'weights': sample weights that are NaN, Inf, negative, or not one per
        point;
      'rows': the features of a dict have different numbers of rows;
      'too_few_points': fewer points than an initialisation needs;
      'empty': no points at all;
      'endless': an endless dataset where the call needs a finite one;
      'shape': features that are not batches of rows (rank other than 2);
      'file': an input file cannot be used (missing, of an unknown format,
        a CSV line or cell, a TFRecord record, a damaged .npy file).
    argument: the argument that carried the data ('input_fn'), or None.
  """

  def __init__(self, message: str, kind: str,
               argument: Optional[str] = 'input_fn') -> None:
    super().__init__(message)
    self.kind = kind
    self.argument = argument


INPUT_KINDS = ('non_finite', 'width', 'weights', 'rows', 'too_few_points',
               'empty', 'endless', 'shape', 'file')


class DistanceOverflowError(KMeansError, FloatingPointError):
  """Finite points gave Inf or NaN distances: their magnitudes overflow the
  dtype. Raised by `train`, `evaluate` and `predict`; nothing is written.

  Attributes:
    dtype: the name of the computation's dtype ('float32' or 'float64').
  """

  def __init__(self, message: str, dtype: Optional[str] = None) -> None:
    super().__init__(message)
    self.dtype = dtype


class WorkerFailedError(KMeansError, RuntimeError):
  """Raised on the surviving workers when a worker of the run is lost.

  A synchronous run (`MultiWorkerMirroredStrategy`) cannot go on without
  every worker: each step's all-reduce waits for all of them. When one dies
  or stops answering, TensorFlow aborts the collectives of the others, and
  `train` (or `evaluate`) raises this error instead of TensorFlow's, on
  every surviving worker, within a bounded time (see
  `distribute.peer_failures`). (Also importable as
  `kmeans_estimator.distribute.WorkerFailedError`.)

  Recovery: restart all worker processes, the survivors too (TensorFlow's
  collectives cannot be used again in a process where they were aborted),
  with the same `TF_CONFIG` and the same command. They resume from the
  chief's last checkpoint in `model_dir`; the steps since it are done again,
  and a run with `max_steps` ends where an uninterrupted one would (`steps`
  counts from the checkpoint, so it would train the lost steps on top).

  Attributes:
    lost_tasks: the tasks TensorFlow named as failed, e.g.
      `('/job:worker/task:1',)`; empty when it did not say which.
    model_dir: the model directory to resume from.
    checkpoint: the prefix of the last checkpoint this worker sees in
      `model_dir`, or None.
  """

  def __init__(self,
               message: str,
               lost_tasks: Iterable[str] = (),
               model_dir: Optional[str] = None,
               checkpoint: Optional[str] = None) -> None:
    super().__init__(message)
    self.lost_tasks = tuple(lost_tasks)
    self.model_dir = model_dir
    self.checkpoint = checkpoint


class CheckpointWriteError(KMeansError, OSError):
  """Raised when a checkpoint cannot be written to `model_dir`.

  It derives from `OSError` because the cause is always the file system: the
  directory cannot be created, is not writable, is full, or a file that the
  checkpoint needs is in the way. Previously saved checkpoints are left
  intact. (Also importable as `kmeans_estimator.io.checkpoints.
  CheckpointWriteError`.)
  """


class CheckpointExistsError(CheckpointWriteError):
  """Raised when the checkpoint of a step to save already exists.

  Checkpoints are never overwritten. Nothing was written. (Also importable
  as `kmeans_estimator.io.checkpoints.CheckpointExistsError`.)
  """


class ModelDirLockedError(KMeansError, OSError):
  """Raised when another trainer holds the lock on `model_dir`.

  It derives from `OSError` (like `BlockingIOError`, which `flock` raises):
  the resource is busy. Nothing was written to `model_dir`. (Also
  importable as `kmeans_estimator.io.locking.ModelDirLockedError`.)
  """



class KerasBackendError(KMeansError, RuntimeError):
  """Keras runs another backend than TensorFlow, which
  `kmeans_estimator.keras` needs (its maths are TensorFlow ops).

  Raised by `KMeansLayer` and `kmeans_loss` before anything runs. The fix:
  set the environment variable KERAS_BACKEND=tensorflow before Keras is
  first imported.

  Attributes:
    backend: the name of the backend Keras runs ('jax', 'torch', ...).
  """

  def __init__(self, message: str, backend: Optional[str] = None) -> None:
    super().__init__(message)
    self.backend = backend


class NotAdaptedError(KMeansError, RuntimeError):
  """A `KMeansLayer` was called before it had centers.

  Raised when the layer is called (eagerly, or while a model or tf.data
  function traces it), before anything runs. A layer gets its centers from
  `adapt`, from `initial_clusters` given as an array
  (`KMeansLayer.from_centers`), from `KMeansLayer.from_model_dir`, or from
  saved weights; calling it before would map every point to cluster 0 of
  all-zero centers.
  """

# ------------------------------------------------------------ graph checks
# What an Assert built by `graph_check` carries after its message, so that
# `translate` finds the check's id (and, for a message computed in the
# graph, the message in web-safe base64, which no error formatting escapes).
_CHECK_TAG = 'kmeans_estimator.check:'
_CHECK_RE = re.compile(
    re.escape(_CHECK_TAG) + r'([0-9a-f]{16})(?::([A-Za-z0-9_-]*))?')


class _Check:
  """A registered check: the typed error its failure stands for."""

  __slots__ = ('error_class', 'message', 'suffix', 'fields')

  def __init__(self, error_class, message, suffix, fields):
    self.error_class = error_class
    self.message = message  # None: computed in the graph, carried encoded.
    self.suffix = suffix
    self.fields = fields

  def error(self, message=None):
    text = self.message if message is None else message
    return self.error_class(text + self.suffix, **self.fields)


_CHECKS: dict[str, _Check] = {}
_CHECKS_LOCK = threading.Lock()


def _register(error_class, message, suffix, fields):
  """The id of the check (registering it): a digest of what it raises, so
  the same check traced twice, or in another process, has the same id."""
  if not (isinstance(error_class, type) and
          issubclass(error_class, KMeansError)):
    raise TypeError('`error_class` must be a subclass of errors.KMeansError. '
                    f'Received: error_class={error_class!r}')
  key = '\0'.join([error_class.__module__, error_class.__qualname__,
                   repr(message), suffix, repr(sorted(fields.items()))])
  check_id = hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]
  with _CHECKS_LOCK:
    _CHECKS.setdefault(check_id, _Check(error_class, message, suffix,
                                        dict(fields)))
  return check_id


def graph_check(
    condition: Union[tf.Tensor, bool],
    error_class: type[KMeansError],
    message: Union[str, Sequence[Union[str, tf.Tensor]]],
    *,
    suffix: str = '',
    **fields: Any,
) -> Optional[tf.Operation]:
  """An `Assert` op that, failing, stands for `error_class(message + suffix,
  **fields)`.

  The op runs wherever TensorFlow runs it (eagerly, in a `tf.function`, in
  a `tf.data` pipeline, in a served SavedModel); it fails with
  `tf.errors.InvalidArgumentError` whose text shows `message` followed by
  the check's tag. `translate` turns that op error into the typed error.
  Make the op a control dependency of what must wait for the check.

  Args:
    condition: bool scalar Tensor (or Python bool): what must hold.
    error_class: a subclass of `KMeansError` to raise for a failure.
    message: the message, as a str; or a sequence of str and string
      scalar Tensors, joined in the graph (for messages with runtime values
      such as a file's line number).
    suffix: text appended to the message of the raised error only (not
      shown by the op), e.g. where the problem was found.
    **fields: keyword arguments of `error_class` besides the message
      (Python values, e.g. `kind='non_finite'`).

  Returns:
    The `Assert` op (in eager mode, None once the check passed).
  """
  if isinstance(message, str):
    check_id = _register(error_class, message, suffix, fields)
    data = [message, _CHECK_TAG + check_id]
  else:
    check_id = _register(error_class, None, suffix, fields)
    text = tf.strings.join(list(message))
    data = [text, tf.strings.join([_CHECK_TAG, check_id, ':',
                                   tf.io.encode_base64(text)])]
  return tf.debugging.Assert(condition, data, summarize=1)


def tagged_message(error_class: type[KMeansError], message: str, *,
                   suffix: str = '', **fields: Any) -> str:
  """`message` followed by the tag of a check standing for
  `error_class(message + suffix, **fields)`.

  For Python code that runs inside a pipeline (`tf.numpy_function`): raise
  any exception with this message, and `translate` finds the typed error in
  the op error TensorFlow wraps it in.
  """
  check_id = _register(error_class, message, suffix, fields)
  return f'{message} [{_CHECK_TAG}{check_id}]'


def translate(error: BaseException) -> Optional[KMeansError]:
  """The typed error of the failed `graph_check` in an op error, or None.

  Args:
    error: a `tf.errors.OpError` (or any exception) raised while compiled
      code or a pipeline ran.

  Returns:
    A new instance of the registered `error_class`, with the check's message
    and fields; None when `error` came from no registered check (a
    TensorFlow error of its own, or a check of another process).
  """
  text = getattr(error, 'message', None)
  if not isinstance(text, str):
    text = str(error)
  match = _CHECK_RE.search(text)
  if match is None:
    return None
  check = _CHECKS.get(match.group(1))
  if check is None:
    return None
  if check.message is not None:
    return check.error()
  encoded = match.group(2) or ''
  try:
    message = base64.urlsafe_b64decode(
        encoded + '=' * (-len(encoded) % 4)).decode('utf-8', 'replace')
  except ValueError:
    return None
  return check.error(message)


@contextlib.contextmanager
def translated(
    op_errors: tuple[type[BaseException], ...] = (
        tf.errors.InvalidArgumentError,),
) -> Iterator[None]:
  """Re-raises an op error of `op_errors` from a `graph_check` as its typed
  error (with no chained traceback); other errors pass unchanged."""
  try:
    yield
  except op_errors as error:
    typed = translate(error)
    if typed is None:
      raise
    raise typed from None


# ------------------------------------------------- TensorFlow's own errors
# TensorFlow's tf.io.parse_example raises InvalidArgumentError for a
# record that lacks a feature or has another width or type, with nothing
# but its text to tell these apart from other errors. These fragments of
# TensorFlow's text are recognised here, the one place that reads error
# messages.
_RECORD_MISMATCH_FRAGMENTS = (
    'is required but could not be found', "Can't parse serialized Example",
    'values != expected', "Data types don't match")


# TensorFlow's decorations of an op error's text, which say where in its
# graphs the error arose, not what went wrong: a '{{function_node ...}}' or
# '{{node ...}}' prefix, '\t [[{{node Assert/Assert}}]]' lines, the eager
# op's ' [Op:IteratorGetNext] name: ' suffix, tf.data's 'Error in
# user-defined function passed to MapDataset:3 transformation with iterator:
# Iterator::Root::ParallelMapV2: ' prefix, and a graph's 'Graph execution
# error:' / 'Detected at node ... defined at (most recent call last):'
# header with its '  File "...", line N, in f' lines.
_GRAPH_NOISE_RES = (
    re.compile(r'\{\{(?:function_)?node [^}]*\}\}\s*'),
    re.compile(r'\s*\[Op:[^\]]*\](?:\s*name:.*)?'),
    re.compile(r'Error in user-defined function passed to \S+ '
               r'transformation with iterator: \S+: '),
    re.compile(r'\b\w*Iterator::[\w:]*: '),
)
_GRAPH_NOISE_LINE_RE = re.compile(
    r'\s*(\[\[|Graph execution error:\s*$|Detected at node .* defined at '
    r'\(most recent call last\):|File ".*", line \d+)')


def tensorflow_text(error: Union[BaseException, str],
                    lines: int = 1) -> str:
  """TensorFlow's own words in an op error, without its graph noise.

  For a library message that quotes TensorFlow (a corrupted file, an
  unreadable checkpoint, a lost worker): the first `lines` lines of the
  error's message that say something, joined by spaces, with the
  '{{function_node ...}}' / '{{node ...}}' prefixes, the '[[{{node ...}}]]'
  lines, the '[Op:...] name:' suffix, tf.data's 'Error in user-defined
  function ... Iterator::...: ' prefix and a graph error's 'Detected at
  node' traceback removed (see `_GRAPH_NOISE_RES`).

  Args:
    error: a `tf.errors.OpError`, another exception, or a message (str).
    lines: how many lines to keep (those left once the noise is gone).

  Returns:
    str, possibly empty.
  """
  text = error if isinstance(error, str) else getattr(error, 'message',
                                                       None)
  if not isinstance(text, str):
    text = str(error)
  kept = []
  for line in text.splitlines():
    if _GRAPH_NOISE_LINE_RE.match(line):
      continue
    for noise in _GRAPH_NOISE_RES:
      line = noise.sub('', line)
    line = ' '.join(line.split())
    if line:
      kept.append(line)
  return ' '.join(kept[:lines])


def record_mismatch_detail(error: BaseException) -> Optional[str]:
  """TensorFlow's words about a record that `tf.io.parse_example` refused
  (after the iterator's name), or None if `error` is not such a refusal."""
  text = getattr(error, 'message', str(error))
  for fragment in _RECORD_MISMATCH_FRAGMENTS:
    if fragment in text:
      line = next(line for line in text.split('\n') if fragment in line)
      return tensorflow_text(re.split(r'Iterator::[\w:]*: ', line)[-1])
  return None
