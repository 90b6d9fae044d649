"""Export a trained model, reload it in a fresh process, call every signature.

The serving process imports only TensorFlow: what it needs is inside the
SavedModel (centers, metadata, signatures). It prints what each signature
returns, and this script checks that against `predict`, `transform` and
`cluster_centers()` of the training process.

  python examples/serve.py --export_dir_base /tmp/kmeans_export
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

from absl import app
from absl import flags
import numpy as np

from kmeans_estimator import KMeansClustering

_EXPORT_DIR_BASE = flags.DEFINE_string(
    'export_dir_base', None, 'Where to export (default: a temporary folder).')
_NUM_POINTS = flags.DEFINE_integer('num_points', 300, 'Training points.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the data and the model.')

# Runs in a new interpreter that never imports kmeans_estimator.
_SERVER = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    points = tf.constant(np.load(sys.argv[2]))
    out = {'signatures': sorted(served.signatures),
           'distance_metric': served.distance_metric.numpy().decode(),
           'num_clusters': int(served.num_clusters.numpy()),
           'num_features': int(served.num_features.numpy()),
           'global_step': int(served.global_step.numpy())}
    for name, signature in served.signatures.items():
      result = signature() if name == 'cluster_centers' else signature(
          input=points)
      out[name] = result['output'].numpy().tolist()
    out['kmeans_estimator_imported'] = any(
        m.startswith('kmeans_estimator') for m in sys.modules)
    print(json.dumps(out))
''')


def main(argv):
  del argv
  rng = np.random.default_rng(_SEED.value)
  true_centers = rng.uniform(0, 100, size=(4, 2))
  points = (true_centers[rng.integers(4, size=_NUM_POINTS.value)] +
            rng.normal(0, 4, size=(_NUM_POINTS.value, 2))).astype(np.float32)
  kmeans = KMeansClustering(
      num_clusters=4, use_mini_batch=False, seed=_SEED.value,
      initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT)
  kmeans.train(lambda: points, steps=10)

  export_dir_base = _EXPORT_DIR_BASE.value or tempfile.mkdtemp()
  export_dir = kmeans.export_saved_model(export_dir_base).decode()
  print(f'Exported to {export_dir}')

  queries = points[:8]
  queries_path = os.path.join(export_dir_base, 'queries.npy')
  np.save(queries_path, queries)
  result = subprocess.run(
      [sys.executable, '-c', _SERVER, export_dir, queries_path],
      capture_output=True, text=True, check=True)
  served = json.loads(result.stdout.strip().splitlines()[-1])

  print('Signatures:', ', '.join(served['signatures']))
  print(f"Metadata: distance_metric={served['distance_metric']}, "
        f"k={served['num_clusters']}, d={served['num_features']}, "
        f"global_step={served['global_step']}")
  print('serving_default:', served['serving_default'])
  print('transform (first row):', np.round(served['transform'][0], 3))

  want_index = list(kmeans.predict_cluster_index(lambda: queries))
  want_transform = np.stack(list(kmeans.transform(lambda: queries)))
  checks = {
      'serving process imported only TensorFlow':
          not served['kmeans_estimator_imported'],
      'serving_default == predict_cluster_index':
          served['serving_default'] == [int(i) for i in want_index],
      'cluster_index == predict_cluster_index':
          served['cluster_index'] == [int(i) for i in want_index],
      'transform == transform()':
          np.allclose(served['transform'], want_transform, rtol=1e-5,
                      atol=1e-4),
      'cluster_centers == cluster_centers()':
          np.array_equal(np.float32(served['cluster_centers']),
                         kmeans.cluster_centers()),
  }
  for what, ok in checks.items():
    print(f"{'OK  ' if ok else 'FAIL'} {what}")
  if not all(checks.values()):
    raise SystemExit(1)


if __name__ == '__main__':
  app.run(main)
