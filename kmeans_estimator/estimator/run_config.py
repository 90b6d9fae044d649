"""`RunConfig`: where and how often an estimator writes, as Estimator users know it."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Optional

import tensorflow as tf

from kmeans_estimator import config as options
from kmeans_estimator import errors

_DEFAULT_CHECKPOINT_SECS = 600


def _check_optional_count(name, value, minimum):
  if value is None:
    return
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
      value < minimum):
    raise errors.InvalidArgumentError.from_template(
        f'`{{{name}}}` must be None or an integer >= {minimum}. Received: '
        f'{{{name}=}}', name, value)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Immutable run configuration; `replace(**kw)` returns a changed copy.

  Attributes:
    model_dir: directory for checkpoints and summaries, a str or
      `os.PathLike` (kept as a str, a leading `~` expanded); None lets the
      estimator choose.
    tf_random_seed: seed used when the estimator is given no `seed`.
    save_summary_steps: write the loss summary every this many steps.
    save_checkpoints_steps: checkpoint every this many steps (exclusive with
      `save_checkpoints_secs`).
    save_checkpoints_secs: checkpoint when this many seconds have passed
      since the last one (default 600, as Estimator; None when steps are set).
    keep_checkpoint_max: checkpoints to keep; 0 or None keeps all.
    log_step_count_steps: log loss and steps/sec every this many steps.
    train_distribute: a `tf.distribute.Strategy` to train on
      (`MirroredStrategy`, `MultiWorkerMirroredStrategy`, ...); None trains
      in this process on its default device.
    eval_distribute: a `tf.distribute.Strategy` for `evaluate`; None
      evaluates in this process.
  """

  model_dir: Optional[str] = None
  tf_random_seed: Optional[int] = None
  save_summary_steps: int = 100
  save_checkpoints_steps: Optional[int] = None
  save_checkpoints_secs: Optional[float] = _DEFAULT_CHECKPOINT_SECS
  keep_checkpoint_max: Optional[int] = 5
  log_step_count_steps: int = 100
  train_distribute: Optional[Any] = None
  eval_distribute: Optional[Any] = None

  def __post_init__(self) -> None:
    if (self.save_checkpoints_steps is not None and
        self.save_checkpoints_secs is not None):
      if self.save_checkpoints_secs == _DEFAULT_CHECKPOINT_SECS:
        # Steps were asked for: drop the default time-based schedule.
        object.__setattr__(self, 'save_checkpoints_secs', None)
      else:
        raise ValueError(
            '`save_checkpoints_steps` and `save_checkpoints_secs` cannot both '
            'be set; choose one. Received: save_checkpoints_steps='
            f'{self.save_checkpoints_steps!r}, save_checkpoints_secs='
            f'{self.save_checkpoints_secs!r}')
    # A str or os.PathLike, `~` expanded; bytes or numbers are a TypeError.
    object.__setattr__(self, 'model_dir', options.check_path(
        'model_dir', self.model_dir, allow_none=True))
    _check_optional_count('save_summary_steps', self.save_summary_steps, 1)
    _check_optional_count('save_checkpoints_steps',
                          self.save_checkpoints_steps, 1)
    _check_optional_count('keep_checkpoint_max', self.keep_checkpoint_max, 0)
    _check_optional_count('log_step_count_steps', self.log_step_count_steps,
                          1)
    if self.tf_random_seed is not None and (
        isinstance(self.tf_random_seed, bool) or
        not isinstance(self.tf_random_seed, numbers.Integral)):
      raise ValueError('`tf_random_seed` must be None or an integer. '
                       f'Received: tf_random_seed={self.tf_random_seed!r}')
    for name in ('train_distribute', 'eval_distribute'):
      strategy = getattr(self, name)
      if strategy is not None and not isinstance(strategy,
                                                 tf.distribute.Strategy):
        raise TypeError(
            f'`{name}` must be None or a tf.distribute.Strategy such as '
            f'tf.distribute.MirroredStrategy(). Received: {name}={strategy!r}')
    secs = self.save_checkpoints_secs
    if secs is not None and (isinstance(secs, bool) or
                             not isinstance(secs, numbers.Real) or secs <= 0):
      raise ValueError('`save_checkpoints_secs` must be None or a number > 0. '
                       f'Received: save_checkpoints_secs={secs!r}')

  def replace(self, **kwargs: Any) -> RunConfig:
    """Returns a copy with the given fields changed, validated again."""
    unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(self)})
    if unknown:
      raise ValueError(
          f'RunConfig has no field(s) {unknown}; valid fields are '
          f'{[f.name for f in dataclasses.fields(self)]}.')
    if 'save_checkpoints_steps' in kwargs and kwargs[
        'save_checkpoints_steps'] is not None and 'save_checkpoints_secs' not in kwargs:
      kwargs['save_checkpoints_secs'] = None
    if 'save_checkpoints_secs' in kwargs and kwargs[
        'save_checkpoints_secs'] is not None and 'save_checkpoints_steps' not in kwargs:
      kwargs['save_checkpoints_steps'] = None
    return dataclasses.replace(self, **kwargs)
