"""kmeans_estimator: k-means as an Estimator on TensorFlow 2.16+.

The successor of the `KMeans` Estimator that TensorFlow 2.16 removed with
`tf.estimator`: switch by changing the import, keep your `model_dir`.
"""

from kmeans_estimator.model import KMeans
from kmeans_estimator.estimator.kmeans_clustering import KMeansClustering
from kmeans_estimator.io.export import build_parsing_serving_input_receiver_fn
from kmeans_estimator.io.export import build_raw_serving_input_receiver_fn
from kmeans_estimator.io.export import ServingInputReceiver
from kmeans_estimator.estimator.hooks import SessionRunArgs
from kmeans_estimator.estimator.hooks import SessionRunContext
from kmeans_estimator.estimator.hooks import SessionRunHook
from kmeans_estimator.estimator.hooks import SessionRunValues
from kmeans_estimator.estimator.hooks import StopAtStepHook
from kmeans_estimator.estimator.model_fn import EstimatorSpec
from kmeans_estimator.estimator.model_fn import ModeKeys
from kmeans_estimator.estimator.run_config import RunConfig
from kmeans_estimator.estimator.training_summary import TrainingSummary

__version__ = '0.1.0'

__all__ = [
    'EstimatorSpec',
    'KMeans',
    'KMeansClustering',
    'ModeKeys',
    'RunConfig',
    'ServingInputReceiver',
    'SessionRunArgs',
    'SessionRunContext',
    'SessionRunHook',
    'SessionRunValues',
    'StopAtStepHook',
    'TrainingSummary',
    'build_parsing_serving_input_receiver_fn',
    'build_raw_serving_input_receiver_fn',
]
