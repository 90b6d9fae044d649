"""`ModeKeys` and `EstimatorSpec`: what a `model_fn` returns, as in Estimator."""

import dataclasses
from typing import Any, Mapping, Optional, Sequence


class ModeKeys:
  """The three modes a `model_fn` is called in (Estimator's string values)."""
  TRAIN = 'train'
  EVAL = 'eval'
  PREDICT = 'infer'


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
  """What `KMeansClustering.model_fn` returns for one mode.

  Attributes:
    mode: a `ModeKeys` value.
    predictions: dict of Tensors ('all_distances' (n, k), 'cluster_index'
      (n,)) in PREDICT mode.
    loss: float scalar Tensor, the sum over the batch of distances to the
      nearest center, in TRAIN and EVAL modes.
    train_op: in TRAIN mode, the dict of step statistics that the executed
      training step returned (there are no graph ops to run later in TF 2:
      building the spec inside the compiled step runs the step).
    eval_metric_ops: in EVAL mode, dict of Tensors summed over batches by the
      evaluation loop ('score', 'num_points').
    export_outputs: in PREDICT mode, serving signature name -> the Tensor it
      serves ('serving_default' and 'cluster_index' (n,), 'all_distances'
      and 'transform' (n, k)), for the predictions that were asked for.
    training_hooks: hooks the model adds to training.
  """

  mode: str
  predictions: Optional[Mapping[str, Any]] = None
  loss: Any = None
  train_op: Any = None
  eval_metric_ops: Optional[Mapping[str, Any]] = None
  export_outputs: Optional[Mapping[str, Any]] = None
  training_hooks: Sequence[Any] = ()
