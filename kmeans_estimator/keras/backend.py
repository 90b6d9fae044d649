"""The check that Keras runs the TensorFlow backend."""

from __future__ import annotations

import keras

from kmeans_estimator import errors

BACKEND = 'tensorflow'


def check_backend(what: str) -> None:
  """Raises `errors.KerasBackendError` unless Keras runs TensorFlow.

  Args:
    what: the name of the caller, for the message ('KMeansLayer').
  """
  backend = keras.backend.backend()
  if backend != BACKEND:
    raise errors.KerasBackendError(
        f'{what} needs the TensorFlow backend of Keras, but Keras runs the '
        f'{backend!r} backend. Set the environment variable '
        'KERAS_BACKEND=tensorflow before Keras is first imported (or '
        'keras.config.set_backend("tensorflow") followed by a restart of '
        f'the process). Received: backend={backend!r}', backend)
