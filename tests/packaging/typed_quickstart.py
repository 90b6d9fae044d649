"""The README quickstart as a user with a type checker writes it.

Not a test module: `test_mypy.py` type-checks it with mypy (and
`.ci/wheel_check` does, against the installed wheel, then runs it). Every
annotation below is what the library's own annotations promise.
"""

from __future__ import annotations

import tempfile
from typing import Any, Iterator, Optional

import numpy as np

import kmeans_estimator
from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import StopAtStepHook
from kmeans_estimator import TrainingSummary
from kmeans_estimator import errors


def input_fn() -> np.ndarray:
  return points


points: np.ndarray = np.random.default_rng(0).uniform(
    0, 1000, (100, 2)).astype('float32')
config = RunConfig(save_checkpoints_steps=10, keep_checkpoint_max=2)
kmeans = KMeansClustering(num_clusters=5, use_mini_batch=False,
                          initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT,
                          seed=0, model_dir=tempfile.mkdtemp(), config=config)
trained: KMeansClustering = kmeans.train(
    lambda: points, steps=20, hooks=[StopAtStepHook(num_steps=20)])
summary: Optional[TrainingSummary] = kmeans.training_summary
if summary is not None:
  steps_run: int = summary.steps
centers: np.ndarray = kmeans.cluster_centers()
metrics: dict[str, Any] = kmeans.evaluate(lambda: points)
score: float = kmeans.score(points, batch_size=50)
first_labels: list[np.int64] = list(kmeans.predict_cluster_index(input_fn))[:10]
distances: Iterator[np.ndarray] = kmeans.transform(points)
for prediction in kmeans.predict(points, top_k=2):
  nearest: Any = prediction['top_k_cluster_indices']
checkpoint: Optional[str] = kmeans.latest_checkpoint()
names: list[str] = kmeans.get_variable_names()
model_dir: str = kmeans.model_dir
export_dir: bytes = kmeans.export_saved_model(tempfile.mkdtemp())
try:
  KMeansClustering(num_clusters=0)
except errors.InvalidArgumentError as error:
  argument: Optional[str] = error.argument
print(kmeans_estimator.__version__, centers.shape, metrics['inertia'], score)
