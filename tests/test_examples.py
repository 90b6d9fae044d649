"""The examples run as users run them."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_legacy_documentation_example_runs_with_only_the_import_changed(
    tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmp_path))
  result = subprocess.run(
      [sys.executable, str(ROOT / 'examples' / 'quickstart.py')],
      capture_output=True, text=True, timeout=300, env=env, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  scores = [float(s) for s in re.findall(r'^score: (\S+)$', out, re.M)]
  assert len(scores) == 10
  # Full-batch Lloyd: the score never goes up from one round to the next.
  assert all(b <= a * (1 + 1e-6) for a, b in zip(scores, scores[1:]))
  assert len(re.findall(r'^delta:', out, re.M)) == 9
  assert 'cluster centers:' in out
  assignments = re.findall(r'^point: .* is in cluster (\d) centered at', out,
                           re.M)
  assert len(assignments) == 100
  assert set(assignments) <= {'0', '1', '2', '3', '4'}
  # The example uses the legacy input_fn unchanged.
  source = (ROOT / 'examples' / 'quickstart.py').read_text()
  assert 'tf.compat.v1.train.limit_epochs' in source
  assert 'from kmeans_estimator import KMeansClustering as KMeans' in source
