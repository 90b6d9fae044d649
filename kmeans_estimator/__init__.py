"""kmeans_estimator: k-means as an Estimator on TensorFlow 2.16+.

The successor of the `KMeans` Estimator that TensorFlow 2.16 removed with
`tf.estimator`: switch by changing the import, keep your `model_dir`.

The public names are imported on first use (PEP 562): `import
kmeans_estimator` and `kmeans_estimator.__version__` do not import
TensorFlow, so the command line answers `--help` and `--version` at once;
`kmeans_estimator.KMeansClustering` or `from kmeans_estimator import
KMeansClustering` imports it then, and gives the same object every time.
"""

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  # The same names, for type checkers and the API reference (griffe), which
  # read the source and do not run `__getattr__`.
  from kmeans_estimator.estimator.hooks import SessionRunArgs
  from kmeans_estimator.estimator.hooks import SessionRunContext
  from kmeans_estimator.estimator.hooks import SessionRunHook
  from kmeans_estimator.estimator.hooks import SessionRunValues
  from kmeans_estimator.estimator.hooks import StopAtStepHook
  from kmeans_estimator.estimator.kmeans_clustering import KMeansClustering
  from kmeans_estimator.estimator.model_fn import EstimatorSpec
  from kmeans_estimator.estimator.model_fn import ModeKeys
  from kmeans_estimator.estimator.run_config import RunConfig
  from kmeans_estimator.estimator.training_summary import TrainingSummary
  from kmeans_estimator.io.export import ServingInputReceiver
  from kmeans_estimator.io.export import build_parsing_serving_input_receiver_fn
  from kmeans_estimator.io.export import build_raw_serving_input_receiver_fn
  from kmeans_estimator.model import KMeans

# Where each public name lives; `__getattr__` imports it from there.
_PUBLIC = {
    'KMeans': 'kmeans_estimator.model',
    'KMeansClustering': 'kmeans_estimator.estimator.kmeans_clustering',
    'build_parsing_serving_input_receiver_fn': 'kmeans_estimator.io.export',
    'build_raw_serving_input_receiver_fn': 'kmeans_estimator.io.export',
    'ServingInputReceiver': 'kmeans_estimator.io.export',
    'SessionRunArgs': 'kmeans_estimator.estimator.hooks',
    'SessionRunContext': 'kmeans_estimator.estimator.hooks',
    'SessionRunHook': 'kmeans_estimator.estimator.hooks',
    'SessionRunValues': 'kmeans_estimator.estimator.hooks',
    'StopAtStepHook': 'kmeans_estimator.estimator.hooks',
    'EstimatorSpec': 'kmeans_estimator.estimator.model_fn',
    'ModeKeys': 'kmeans_estimator.estimator.model_fn',
    'RunConfig': 'kmeans_estimator.estimator.run_config',
    'TrainingSummary': 'kmeans_estimator.estimator.training_summary',
}


def _installed_version():
  """The installed distribution's version, from its metadata.

  Running from a source tree that was never installed (no metadata) gives
  '0+unknown': a valid PEP 440 version that says it is not a release.
  """
  try:
    return _metadata.version('kmeans_estimator')
  except _metadata.PackageNotFoundError:
    return '0+unknown'


__version__ = _installed_version()

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


def __getattr__(name):
  """Imports a public name on first use and keeps it in the module."""
  module = _PUBLIC.get(name)
  if module is None:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  value = getattr(importlib.import_module(module), name)
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(__all__))
