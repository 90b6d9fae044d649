"""Mistakes a type checker must report from kmeans_estimator's annotations.

Not a test module: `test_mypy.py` runs mypy on it and expects an error on
exactly the lines marked `# error`, which proves the annotations are seen
(a name typed Any would let every one of them through).
"""

from __future__ import annotations

import numpy as np

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import build_raw_serving_input_receiver_fn
from kmeans_estimator import errors

points = np.zeros((10, 2), np.float32)
kmeans = KMeansClustering(num_clusters='5')  # error
kmeans.train(points, steps='20')  # error
kmeans.train(points, batch_size=None, max_steps=1.5)  # error
centers: str = kmeans.cluster_centers()  # error
score: str = kmeans.score(points)  # error
kmeans.predict(points, top_k='3')  # error
kmeans.export_saved_model(export_dir_base=3)  # error
RunConfig().replace(model_dir='x').save_summary_step  # error
KMeans(num_clusters=3, num_features='2')  # error
build_raw_serving_input_receiver_fn(points, default_batch_size='1')  # error
errors.InvalidInputError('message', kind=1)  # error
kmeans.train(points, hooks=[object()])  # error
