"""k-means in Keras 3 models: `KMeansLayer` and `kmeans_loss`.

A thin shell over the core, as the estimator is another: `KMeansLayer`
trains its centers with `kmeans_estimator.model.KMeans` (`adapt`) and maps
points with the core's distance ops; `kmeans_loss` is the k-means objective
as a differentiable loss, so that any Keras optimizer can learn centers.

Not imported by `kmeans_estimator` (that would import Keras with it):

```python
from kmeans_estimator.keras import KMeansLayer, kmeans_loss
```

Keras must run its TensorFlow backend (KERAS_BACKEND=tensorflow, the
default); under another, both raise `errors.KerasBackendError`.
"""

from kmeans_estimator.keras.layer import KMeansLayer
from kmeans_estimator.keras.losses import kmeans_loss

__all__ = ['KMeansLayer', 'kmeans_loss']
