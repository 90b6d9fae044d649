"""Export a trained model, reload it in a fresh process, call every signature.

The serving process imports only TensorFlow: what it needs is inside the
SavedModel (centers, metadata, signatures). It calls every signature the
SavedModel has, whatever their names, and prints what they return; this
script then checks each against numpy, computed from the trained centers. A
signature with no numpy check here fails the run, so a new signature cannot
go unchecked.

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

_EXPORT_DIR_BASE = flags.DEFINE_string(
    'export_dir_base', None, 'Where to export (default: a temporary folder).')
_NUM_POINTS = flags.DEFINE_integer('num_points', 300, 'Training points.')
_TOP_K = flags.DEFINE_integer(
    'top_k', 2, 'Also export the top_k signature, the nearest this many '
    'centers of each point; 0 exports without it.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the data and the model.')

# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})
NUM_CLUSTERS = 4
# Served squared distances may differ from exact ones by this times |x|^2 +
# |c|^2 (float32 rounding of the expanded form; see `numpy_outputs`).
SQUARED_TOLERANCE = 1e-6

# Runs in a new interpreter that never imports kmeans_estimator. Every
# signature is called: with the points if it takes inputs (the default
# receiver's one input, 'input'), without if it takes none.
_SERVER = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    points = tf.constant(np.load(sys.argv[2]))
    out = {'distance_metric': served.distance_metric.numpy().decode(),
           'num_clusters': int(served.num_clusters.numpy()),
           'num_features': int(served.num_features.numpy()),
           'global_step': int(served.global_step.numpy()),
           'signatures': {}}
    for name, signature in sorted(served.signatures.items()):
      takes_input = bool(signature.structured_input_signature[1])
      result = signature(input=points) if takes_input else signature()
      out['signatures'][name] = {key: value.numpy().tolist()
                                 for key, value in result.items()}
    out['kmeans_estimator_imported'] = any(
        m.startswith('kmeans_estimator') for m in sys.modules)
    print(json.dumps(out))
''')


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def numpy_outputs(queries, centers, top_k):
  """What each signature should return, by numpy in float64.

  The exported model computes squared distances in float32 as |x|^2 - 2 x.c
  + |c|^2, whose rounding grows with the norms, so a served squared distance
  may differ from the exact one by up to `SQUARED_TOLERANCE` * (|x|^2 +
  |c|^2), and its square root by what that becomes after the root.

  Args:
    queries: float array (n, d).
    centers: float array (k, d), the trained centers.
    top_k: m, the top_k signature's number of centers (0: no top_k).

  Returns:
    dict: signature name -> ({output key: (array, tolerance)}, what it is),
    where tolerance is None for an exact match, else an array of the
    largest allowed absolute differences.
  """
  x, c = queries.astype(np.float64), centers.astype(np.float64)
  squared = ((x[:, None, :] - c[None]) ** 2).sum(axis=2)
  tolerance = SQUARED_TOLERANCE * ((x ** 2).sum(axis=1)[:, None] +
                                   (c ** 2).sum(axis=1)[None])
  root = np.sqrt(squared)
  # |sqrt(a) - sqrt(b)| <= min(sqrt(|a - b|), |a - b| / sqrt(b)).
  root_tolerance = np.minimum(np.sqrt(tolerance),
                              tolerance / np.maximum(root, 1e-300))
  nearest = squared.argmin(axis=1)
  expected = {
      'serving_default': ({'output': (nearest, None)}, 'nearest center'),
      'cluster_index': ({'output': (nearest, None)}, 'nearest center'),
      'all_distances': ({'output': (squared, tolerance)},
                        'squared distances'),
      'transform': ({'output': (root, root_tolerance)},
                    'Euclidean distances'),
      'cluster_centers': ({'output': (centers, None)}, 'the trained centers'),
  }
  if top_k:
    order = np.argsort(squared, axis=1, kind='stable')[:, :top_k]
    expected['top_k'] = (
        {'top_k_cluster_indices': (order, None),
         'top_k_distances': (np.take_along_axis(squared, order, axis=1),
                             np.take_along_axis(tolerance, order, axis=1))},
        f'the {top_k} nearest centers, squared distances')
  return expected


def same(served, want, tolerance):
  """Whether a served output equals numpy's: exactly, or within
  `tolerance` (an array of the shape of `want`)."""
  served = np.asarray(served)
  if served.shape != want.shape:
    return False
  if tolerance is None:
    return np.array_equal(served, want)
  return bool(np.all(np.abs(served - want) <= tolerance))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  # Imported here, after the flags, so that --help does not load TensorFlow.
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(_SEED.value)
  true_centers = rng.uniform(0, 100, size=(NUM_CLUSTERS, 2))
  points = (true_centers[rng.integers(NUM_CLUSTERS, size=_NUM_POINTS.value)] +
            rng.normal(0, 4, size=(_NUM_POINTS.value, 2))).astype(np.float32)
  kmeans = KMeansClustering(
      num_clusters=NUM_CLUSTERS, use_mini_batch=False, seed=_SEED.value,
      initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT)
  kmeans.train(lambda: points, steps=10)

  export_dir_base = _EXPORT_DIR_BASE.value or tempfile.mkdtemp()
  top_k = _TOP_K.value or None
  export_dir = kmeans.export_saved_model(export_dir_base,
                                         top_k=top_k).decode()
  print(f'Exported to {export_dir}')

  queries = points[:8]
  queries_path = os.path.join(export_dir_base, 'queries.npy')
  np.save(queries_path, queries)
  result = subprocess.run(
      [sys.executable, '-c', _SERVER, export_dir, queries_path],
      capture_output=True, text=True, check=True)
  served = json.loads(result.stdout.strip().splitlines()[-1])
  signatures = served['signatures']

  print('Signatures:', ', '.join(signatures))
  print(f"Metadata: distance_metric={served['distance_metric']}, "
        f"k={served['num_clusters']}, d={served['num_features']}, "
        f"global_step={served['global_step']}")
  print('serving_default:', signatures['serving_default']['output'])
  print('transform (first row):',
        np.round(signatures['transform']['output'][0], 3))

  expected = numpy_outputs(queries, kmeans.cluster_centers(), _TOP_K.value)
  checks = {'serving process imported only TensorFlow':
                not served['kmeans_estimator_imported']}
  for name, outputs in signatures.items():
    if name not in expected:
      checks[f'{name}: no numpy check for this signature; add one to '
             'numpy_outputs'] = False
      continue
    want, what = expected[name]
    checks[f'{name} == numpy ({what}): {", ".join(sorted(outputs))}'] = (
        sorted(outputs) == sorted(want) and
        all(same(outputs[key], *want[key]) for key in want))
  for what, ok in checks.items():
    print(f"{'OK  ' if ok else 'FAIL'} {what}")
  if not all(checks.values()):
    raise SystemExit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
