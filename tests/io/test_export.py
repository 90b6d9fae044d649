"""SavedModel export: what TensorFlow's own tools see and serve.

Evidence: a fresh Python process that never imports kmeans_estimator loads
each export and calls every signature (the oracle is `predict`, `transform`
and `cluster_centers()` in the training process, and numpy); the real
`saved_model_cli` lists and runs the signatures; TFLite converts the export
and its interpreter gives the same cluster indices.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import KMeansClustering

import oracles
from helpers import saved_model_cli

SIGNATURES = ('serving_default', 'cluster_index', 'all_distances',
              'transform', 'cluster_centers')


def blobs(seed, n=120, d=3, k=4):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 100, size=(k, d))
  points = centers[rng.integers(k, size=n)] + rng.normal(0, 5, size=(n, d))
  return points.astype(np.float32)


def train(model_dir, points, metric, use_mini_batch=False, steps=5, **kwargs):
  kmeans = KMeansClustering(4, model_dir=str(model_dir), seed=1,
                            distance_metric=metric,
                            use_mini_batch=use_mini_batch, **kwargs)
  kmeans.train(lambda: points, steps=steps)
  return kmeans


def expected(kmeans, points_fn):
  """What the training process itself says, for every signature."""
  index = np.array(list(kmeans.predict_cluster_index(points_fn)))
  distances = np.stack([p['all_distances'] for p in kmeans.predict(points_fn)])
  return {
      'serving_default': index,
      'cluster_index': index,
      'all_distances': distances,
      'transform': np.stack(list(kmeans.transform(points_fn))),
      'cluster_centers': kmeans.cluster_centers(),
  }


def run_fresh_python(script, *args):
  """Runs `script` in a new interpreter; returns its JSON output."""
  result = subprocess.run([sys.executable, '-c', script, *args],
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


# A process that knows nothing of this library: it loads each export with
# tf.saved_model.load and calls every signature on the inputs given.
_SERVE_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    jobs = json.loads(open(sys.argv[1]).read())
    results = {}
    for name, job in jobs.items():
      loaded = tf.saved_model.load(job['export_dir'])
      inputs = {key: tf.constant(np.load(path)) for key, path in
                job['inputs'].items()}
      out = {}
      for signature, function in loaded.signatures.items():
        args = {} if signature == 'cluster_centers' else inputs
        result = function(**args)
        path = job['export_dir'] + '.' + signature + '.npy'
        np.save(path, result['output'].numpy())
        out[signature] = [path, sorted(result)]
      out['metadata'] = {
          'distance_metric': loaded.distance_metric.numpy().decode(),
          'num_clusters': int(loaded.num_clusters.numpy()),
          'num_features': int(loaded.num_features.numpy()),
          'global_step': int(loaded.global_step.numpy()),
          'clusters': loaded.clusters.numpy().tolist(),
      }
      results[name] = out
    results['imported'] = sorted(m for m in sys.modules
                                 if m.startswith('kmeans_estimator'))
    print(json.dumps(results))
''')


def _example(features):
  return tf.train.Example(features=tf.train.Features(feature={
      name: tf.train.Feature(float_list=tf.train.FloatList(value=values))
      for name, values in features.items()})).SerializeToString()


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
  """Trained models, their exports, and what the training process predicts."""
  root = tmp_path_factory.mktemp('exports')
  points = blobs(seed=0)
  new_points = blobs(seed=1, n=37)
  np.save(root / 'points.npy', new_points)
  cases = {}
  for metric in (oracles.SQUARED_EUCLIDEAN, oracles.COSINE):
    for mini_batch in (False, True):
      name = f'{metric}_{"mini" if mini_batch else "full"}'
      kmeans = train(root / name, points, metric, mini_batch)
      cases[name] = dict(
          kmeans=kmeans,
          export_dir=kmeans.export_saved_model(root / 'export' / name),
          inputs={'input': str(root / 'points.npy')},
          expected=expected(kmeans, lambda: new_points))

  # A model trained on dict features, served with one input per feature.
  def features(p):
    return {'a': p[:, :1], 'b': p[:, 1:]}
  kmeans = train(root / 'dict', features(points), oracles.SQUARED_EUCLIDEAN)
  receiver_fn = kmeans_estimator.build_raw_serving_input_receiver_fn(
      {'a': tf.TensorSpec([None, 1], tf.float32),
       'b': tf.TensorSpec([None, 2], tf.float32)})
  np.save(root / 'a.npy', new_points[:, :1])
  np.save(root / 'b.npy', new_points[:, 1:])
  cases['dict'] = dict(
      kmeans=kmeans,
      export_dir=kmeans.export_saved_model(root / 'export' / 'dict',
                                           receiver_fn),
      inputs={'a': str(root / 'a.npy'), 'b': str(root / 'b.npy')},
      expected=expected(kmeans, lambda: features(new_points)))

  # The same model served from serialized tf.Examples.
  parsing_fn = kmeans_estimator.build_parsing_serving_input_receiver_fn(
      {'a': tf.io.FixedLenFeature([1], tf.float32),
       'b': tf.io.FixedLenFeature([2], tf.float32)})
  serialized = np.array([_example({'a': p[:1], 'b': p[1:]})
                         for p in new_points], dtype=object)
  np.save(root / 'examples.npy', serialized.astype(bytes))
  cases['parsing'] = dict(
      kmeans=kmeans,
      export_dir=kmeans.export_saved_model(root / 'export' / 'parsing',
                                           parsing_fn),
      inputs={'examples': str(root / 'examples.npy')},
      expected=cases['dict']['expected'])

  jobs = {name: {'export_dir': case['export_dir'].decode(),
                 'inputs': case['inputs']} for name, case in cases.items()}
  (root / 'jobs.json').write_text(json.dumps(jobs))
  return dict(cases=cases, points=new_points, root=root)


@pytest.fixture(scope='module')
def fresh_served(exports):
  """What a new interpreter serves from each of the exports."""
  return run_fresh_python(_SERVE_SCRIPT, str(exports['root'] / 'jobs.json'))


CASES = ('squared_euclidean_full', 'squared_euclidean_mini', 'cosine_full',
         'cosine_mini', 'dict', 'parsing')


@pytest.mark.slow
def test_the_serving_process_never_imports_the_library(fresh_served):
  assert fresh_served['imported'] == []


@pytest.mark.parametrize('case', CASES)
@pytest.mark.slow
def test_fresh_process_serves_what_predict_gives(exports, fresh_served, case):
  served = fresh_served[case]
  want = exports['cases'][case]['expected']
  assert sorted(s for s in served if s != 'metadata') == sorted(SIGNATURES)
  for signature in SIGNATURES:
    path, keys = served[signature]
    assert keys == ['output']
    got = np.load(path)
    if signature in ('serving_default', 'cluster_index'):
      assert got.dtype == np.int64
      np.testing.assert_array_equal(got, want[signature])
    else:
      np.testing.assert_allclose(got, want[signature], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('case', CASES)
@pytest.mark.slow
def test_export_carries_centers_and_metadata(exports, fresh_served, case):
  kmeans = exports['cases'][case]['kmeans']
  metadata = fresh_served[case]['metadata']
  assert metadata['distance_metric'] == kmeans.distance_metric
  assert metadata['num_clusters'] == 4
  assert metadata['num_features'] == 3
  assert metadata['global_step'] == kmeans.get_variable_value('global_step')
  np.testing.assert_array_equal(np.float32(metadata['clusters']),
                                kmeans.cluster_centers())
  # The centers are a variable inside the SavedModel itself.
  variables = os.path.join(exports['cases'][case]['export_dir'].decode(),
                           'variables', 'variables')
  names = [n for n, _ in tf.train.list_variables(variables)
           if n.startswith('clusters/')]
  assert len(names) == 1
  np.testing.assert_array_equal(tf.train.load_variable(variables, names[0]),
                                kmeans.cluster_centers())


def test_served_indices_equal_numpy_argmin(exports):
  case = exports['cases']['squared_euclidean_full']
  want = oracles.distances(exports['points'],
                           case['kmeans'].cluster_centers()).argmin(axis=1)
  np.testing.assert_array_equal(case['expected']['cluster_index'], want)


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs_the_signatures(exports):
  case = exports['cases']['squared_euclidean_full']
  export_dir = case['export_dir'].decode()
  shown = saved_model_cli('show', '--all', '--dir', export_dir)
  assert shown.returncode == 0, shown.stderr[-2000:]
  blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def|"
                           r"\Z|Concrete Functions)", shown.stdout, re.S))
  assert set(SIGNATURES) <= set(blocks)
  for name in ('serving_default', 'cluster_index', 'all_distances',
               'transform'):
    assert re.search(r"inputs\['input'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                     r"shape: \(-1, 3\)", blocks[name]), blocks[name]
  assert re.search(r"outputs\['output'\] tensor_info:\s+dtype: DT_INT64\s+"
                   r"shape: \(-1\)", blocks['serving_default'])
  assert re.search(r"outputs\['output'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                   r"shape: \(-1, 4\)", blocks['all_distances'])
  assert re.search(r"outputs\['output'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                   r"shape: \(4, 3\)", blocks['cluster_centers'])
  assert 'inputs' not in blocks['cluster_centers'].split('outputs')[0].replace(
      'The given SavedModel SignatureDef contains the following input(s):', '')

  points = exports['points'][:6]
  ran = saved_model_cli('run', '--dir', export_dir, '--tag_set', 'serve',
                         '--signature_def', 'serving_default',
                         '--input_exprs', f'input={points.tolist()!r}')
  assert ran.returncode == 0, ran.stderr[-2000:]
  printed = re.search(r'Result for output key output:\s*\[([^\]]*)\]',
                      ran.stdout)
  assert printed, ran.stdout
  np.testing.assert_array_equal(np.array(printed.group(1).split(), np.int64),
                                case['expected']['cluster_index'][:6])


def _tflite_runner(export_dir, signature):
  converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
  model = converter.convert()
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # tf.lite.Interpreter's deprecation note.
    interpreter = tf.lite.Interpreter(model_content=model)
  return interpreter.get_signature_runner(signature)


@pytest.mark.parametrize('case', ['squared_euclidean_full', 'cosine_full'])
@pytest.mark.slow
def test_tflite_interpreter_gives_the_same_indices(exports, case):
  export_dir = exports['cases'][case]['export_dir'].decode()
  want = exports['cases'][case]['expected']
  runner = _tflite_runner(export_dir, 'serving_default')
  got = runner(input=exports['points'])['output']
  np.testing.assert_array_equal(got, want['cluster_index'])
  transform = _tflite_runner(export_dir, 'transform')
  np.testing.assert_allclose(transform(input=exports['points'])['output'],
                             want['transform'], rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------ bad input
@pytest.fixture(scope='module')
def served(exports):
  case = exports['cases']['squared_euclidean_full']
  return tf.saved_model.load(case['export_dir'].decode())


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_served_non_finite_input_fails_clearly(served, exports, bad):
  points = exports['points'][:5].copy()
  points[2, 1] = bad
  for signature in ('serving_default', 'all_distances', 'transform'):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match='The input contains NaN or Inf values'):
      served.signatures[signature](input=tf.constant(points))


def test_served_wrong_width_fails_clearly(served, exports):
  # Python's binding or the graph's own check refuses it, depending on how
  # the signature is called; either way the error names the width.
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match=r'\(None, 3\)|wrong width; expected 3 features'):
    served.signatures['serving_default'](
        input=tf.constant(exports['points'][:, :2]))


def test_served_wrong_dtype_fails_clearly(served, exports):
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match='float'):
    served.signatures['serving_default'](
        input=tf.constant(exports['points'].astype(np.float64)))


def test_width_is_checked_inside_the_graph(exports, tmp_path):
  # A receiver of unknown width: TF Serving would pass any width through, so
  # the graph itself must refuse a wrong one.
  kmeans = exports['cases']['squared_euclidean_full']['kmeans']
  receiver_fn = kmeans_estimator.build_raw_serving_input_receiver_fn(
      tf.TensorSpec([None, None], tf.float32))
  export_dir = kmeans.export_saved_model(tmp_path, receiver_fn)
  loaded = tf.saved_model.load(export_dir)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='wrong width; expected 3 features'):
    loaded.signatures['serving_default'](
        input=tf.constant(exports['points'][:, :2]))
  np.testing.assert_array_equal(
      loaded.signatures['serving_default'](
          input=tf.constant(exports['points']))['output'],
      exports['cases']['squared_euclidean_full']['expected']['cluster_index'])


@pytest.mark.slow
def test_saved_model_cli_run_refuses_nan(exports, tmp_path):
  export_dir = exports['cases']['squared_euclidean_full']['export_dir']
  np.save(tmp_path / 'nan.npy', np.array([[1., np.nan, 2.]], np.float32))
  ran = saved_model_cli('run', '--dir', export_dir.decode(), '--tag_set',
                         'serve', '--signature_def', 'serving_default',
                         '--inputs', f'input={tmp_path / "nan.npy"}')
  assert ran.returncode != 0
  assert 'The input contains NaN or Inf values' in ran.stdout + ran.stderr


# ----------------------------------------------------- the export itself
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('trained')
  return train(model_dir, blobs(seed=2), oracles.SQUARED_EUCLIDEAN, steps=3)


def test_export_returns_a_new_timestamped_dir_as_bytes(trained, tmp_path):
  before = int(time.time())
  first = trained.export_saved_model(tmp_path)
  second = trained.export_saved_model(tmp_path)
  assert isinstance(first, bytes) and isinstance(second, bytes)
  assert first != second
  for path in (first, second):
    name = os.path.basename(path.decode())
    assert name.isdigit() and int(name) >= before
    assert tf.saved_model.contains_saved_model(path.decode())
  assert sorted(os.listdir(tmp_path)) == sorted(
      os.path.basename(p.decode()) for p in (first, second))


def test_export_never_overwrites_an_existing_export(trained, tmp_path,
                                                    monkeypatch):
  monkeypatch.setattr(time, 'time', lambda: 1700000000.0)
  taken = tmp_path / '1700000000'
  taken.mkdir()
  (taken / 'keep.txt').write_text('mine')
  path = trained.export_saved_model(tmp_path).decode()
  assert os.path.basename(path) == '1700000001'
  assert (taken / 'keep.txt').read_text() == 'mine'
  assert sorted(os.listdir(taken)) == ['keep.txt']


def test_failed_export_leaves_nothing_behind(trained, tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    del args, kwargs
    raise OSError('disk full')
  monkeypatch.setattr(tf.saved_model, 'save', fail)
  with pytest.raises(OSError, match='disk full'):
    trained.export_saved_model(tmp_path)
  assert os.listdir(tmp_path) == []


def test_export_writes_into_a_new_private_unpredictable_temp_dir(
    trained, tmp_path, monkeypatch):
  monkeypatch.setattr(time, 'time', lambda: 1700000000.0)
  victim = tmp_path / 'victim'
  victim.mkdir()
  base = tmp_path / 'exports'
  base.mkdir()
  # Symlinks at the names temporary exports used to have.
  for pid in (os.getpid(), os.getpid() + 1):
    (base / f'temp-1700000000-{pid}').symlink_to(victim)
  seen = []
  original = tf.saved_model.save

  def spy(obj, export_dir, **kwargs):
    parent = os.path.dirname(export_dir)
    seen.append((os.path.basename(parent), os.stat(parent).st_mode & 0o777))
    return original(obj, export_dir, **kwargs)

  monkeypatch.setattr(tf.saved_model, 'save', spy)
  path = trained.export_saved_model(base).decode()
  assert os.listdir(victim) == []
  assert os.path.basename(path) == '1700000000'
  assert not os.path.islink(path) and tf.saved_model.contains_saved_model(path)
  (temp_name, mode), = seen
  assert re.fullmatch(rf'temp-kmeans_estimator-.+-{os.getpid()}-[a-z0-9_]+',
                      temp_name)
  assert mode == 0o700  # mkdtemp: made exclusively, private.
  assert sorted(os.listdir(base)) == sorted(
      ['1700000000'] + [f'temp-1700000000-{pid}'
                        for pid in (os.getpid(), os.getpid() + 1)])


def _dead_pid():
  process = subprocess.Popen([sys.executable, '-c', ''])
  process.wait()
  return process.pid


def test_export_removes_temp_dirs_of_killed_exports_and_nothing_else(
    trained, tmp_path):
  from kmeans_estimator.io import export as export_lib  # pylint: disable=g-import-not-at-top
  base = tmp_path / 'exports'
  base.mkdir()
  host, dead = export_lib._host(), _dead_pid()  # pylint: disable=protected-access
  stale = base / f'temp-kmeans_estimator-{host}-{dead}-ab_c12'
  (stale / 'model' / 'variables').mkdir(parents=True)
  (stale / 'model' / 'saved_model.pb').write_bytes(b'half')
  victim = tmp_path / 'victim'
  victim.mkdir()
  (victim / 'keep.txt').write_text('mine')
  kept = [
      f'temp-kmeans_estimator-{host}-{os.getpid()}-live12',  # In use.
      f'temp-kmeans_estimator-elsewhere-{dead}-other1',  # Another host's.
      'temp-1700000000-1',  # Not named by this library's convention.
      'temp-notes',
  ]
  for name in kept:
    (base / name).mkdir()
    (base / name / 'file').write_text('x')
  link = f'temp-kmeans_estimator-{host}-{dead}-link12'
  (base / link).symlink_to(victim)  # A symlink is never followed.
  path = trained.export_saved_model(base).decode()
  assert sorted(os.listdir(base)) == sorted(
      kept + [link, os.path.basename(path)])
  assert (victim / 'keep.txt').read_text() == 'mine'
  assert all((base / name / 'file').read_text() == 'x' for name in kept)


def test_export_skips_symlinks_planted_at_the_next_timestamps(trained,
                                                              tmp_path):
  # Dangling links at the names the next exports would take (the time is
  # predictable) neither fail the export nor are written through.
  base = tmp_path / 'exports'
  base.mkdir()
  now = int(time.time())
  planted = [str(stamp) for stamp in range(now, now + 5)]
  for name in planted:
    (base / name).symlink_to(tmp_path / f'nowhere-{name}')
  path = trained.export_saved_model(base).decode()
  name = os.path.basename(path)
  assert name not in planted and int(name) >= now + 5
  assert not os.path.islink(path)
  assert sorted(os.listdir(base)) == sorted(planted + [name])
  assert all((base / link).is_symlink() for link in planted)
  assert not any(tmp_path.glob('nowhere-*'))
  np.testing.assert_array_equal(
      tf.saved_model.load(path).signatures['cluster_centers']()['output'],
      trained.cluster_centers())


def test_a_symlinked_export_dir_base_exports_into_its_target(trained,
                                                             tmp_path):
  # A base the user made a link to a directory is followed, as any path is.
  target = tmp_path / 'real'
  target.mkdir()
  (tmp_path / 'link').symlink_to(target)
  path = trained.export_saved_model(tmp_path / 'link').decode()
  assert os.listdir(target) == [os.path.basename(path)]
  np.testing.assert_array_equal(
      tf.saved_model.load(path).signatures['cluster_centers']()['output'],
      trained.cluster_centers())


@pytest.mark.parametrize('hostname', ['my_host', 'node-12', 'h\u00f6st'])
def test_stale_temp_dirs_are_recognised_whatever_the_host_name(
    hostname, trained, tmp_path, monkeypatch):
  from kmeans_estimator.io import export as export_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(export_lib.socket, 'gethostname', lambda: hostname)
  base = tmp_path / 'exports'
  base.mkdir()
  stale = base / (f'temp-kmeans_estimator-{export_lib._host()}-'  # pylint: disable=protected-access
                  f'{_dead_pid()}-12345678')
  stale.mkdir()
  path = trained.export_saved_model(base).decode()
  assert os.listdir(base) == [os.path.basename(path)]


def test_export_before_training_fails_and_writes_nothing(tmp_path):
  kmeans = KMeansClustering(3, model_dir=str(tmp_path / 'model'))
  with pytest.raises(ValueError, match='No trained model in model_dir'):
    kmeans.export_saved_model(tmp_path / 'export')
  assert not (tmp_path / 'export').exists()


def test_export_as_text_and_assets_extra(trained, tmp_path):
  vocabulary = tmp_path / 'labels.txt'
  vocabulary.write_text('a\nb\n')
  path = trained.export_saved_model(
      tmp_path / 'export', assets_extra={'meta/labels.txt': str(vocabulary)},
      as_text=True).decode()
  assert sorted(os.listdir(path)) == sorted(
      ['assets', 'assets.extra', 'saved_model.pbtxt', 'variables',
       'fingerprint.pb'])
  assert (pathlib.Path(path) / 'assets.extra' / 'meta' /
          'labels.txt').read_text() == 'a\nb\n'
  loaded = tf.saved_model.load(path)
  np.testing.assert_array_equal(
      loaded.signatures['cluster_centers']()['output'],
      trained.cluster_centers())


@pytest.mark.parametrize('assets_extra, match', [
    ({'x.txt': '/no/such/file'}, 'does not exist'),
    ({'/abs.txt': __file__}, 'must be relative paths'),
    ({'../up.txt': __file__}, 'must be relative paths'),
    (['x.txt'], '`assets_extra` must be a dict'),
])
def test_bad_assets_extra_write_nothing(trained, tmp_path, assets_extra,
                                        match):
  with pytest.raises((TypeError, ValueError), match=match):
    trained.export_saved_model(tmp_path / 'export', assets_extra=assets_extra)
  assert not (tmp_path / 'export').exists()


def test_export_of_an_older_checkpoint(tmp_path):
  points = blobs(seed=3)
  kmeans = KMeansClustering(4, model_dir=str(tmp_path / 'model'), seed=0,
                            use_mini_batch=False)
  kmeans.train(lambda: points, steps=1)
  old_centers = kmeans.cluster_centers()
  old = kmeans.latest_checkpoint()
  kmeans.train(lambda: points, steps=2)
  path = kmeans.export_saved_model(tmp_path / 'export', checkpoint_path=old)
  loaded = tf.saved_model.load(path.decode())
  assert int(loaded.global_step.numpy()) == 1
  np.testing.assert_array_equal(loaded.clusters.numpy(), old_centers)


def test_legacy_method_name_exports_too(trained, tmp_path):
  path = trained.export_savedmodel(tmp_path, strip_default_attrs=True)
  assert tf.saved_model.contains_saved_model(path.decode())


@pytest.mark.parametrize('receiver_fn, error, match', [
    (lambda: 'not a receiver', TypeError, 'must return a'),
    ('not callable', TypeError, 'must be None or a callable'),
    (kmeans_estimator.build_raw_serving_input_receiver_fn(
        tf.TensorSpec([None, 5], tf.float32)), ValueError,
     'gives points of width 5 but the model was trained on width 3'),
    (kmeans_estimator.build_raw_serving_input_receiver_fn(
        tf.TensorSpec([None, 3], tf.string)), TypeError, 'must be numeric'),
])
def test_bad_receivers_fail_clearly_and_write_nothing(trained, tmp_path,
                                                      receiver_fn, error,
                                                      match):
  with pytest.raises(error, match=match):
    trained.export_saved_model(tmp_path / 'exports', receiver_fn)
  assert os.listdir(tmp_path) == []  # Not even export_dir_base.


@pytest.mark.parametrize('make, error, match', [
    (lambda: kmeans_estimator.build_parsing_serving_input_receiver_fn(
        {'a': tf.io.VarLenFeature(tf.float32)}), TypeError,
     'must be a tf.io.FixedLenFeature'),
    (lambda: kmeans_estimator.build_parsing_serving_input_receiver_fn({}),
     TypeError, 'non-empty dict'),
    (lambda: kmeans_estimator.ServingInputReceiver(None, {'bad name': tf.TensorSpec([None])}),
     ValueError, 'must be identifiers'),
    (lambda: kmeans_estimator.ServingInputReceiver(None, {'x': [1, 2]}),
     TypeError, 'must be a tf.TensorSpec'),
    (lambda: kmeans_estimator.build_raw_serving_input_receiver_fn(
        tf.TensorSpec([], tf.float32)), ValueError, 'batch dimension'),
])
def test_bad_receiver_helpers_fail_clearly(make, error, match):
  with pytest.raises(error, match=match):
    make()


# ----------------------------------------------------------------- top_k
# A process that never imports the library calls the 'top_k' signature.
_SERVE_TOP_K_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    result = loaded.signatures['top_k'](input=tf.constant(np.load(sys.argv[2])))
    for key, value in result.items():
      np.save(sys.argv[1] + '.' + key + '.npy', value.numpy())
    print(json.dumps({'keys': sorted(result),
                      'signatures': sorted(loaded.signatures),
                      'top_k': int(loaded.top_k.numpy()),
                      'imported': sorted(m for m in sys.modules
                                         if m.startswith('kmeans_estimator'))}))
''')


@pytest.mark.parametrize('metric', [oracles.SQUARED_EUCLIDEAN, oracles.COSINE])
@pytest.mark.slow
def test_top_k_signature_serves_what_predict_gives(tmp_path, metric):
  points, new_points = blobs(seed=2), blobs(seed=3, n=29)
  kmeans = train(tmp_path / 'model', points, metric)
  export_dir = kmeans.export_saved_model(tmp_path / 'export',
                                         top_k=3).decode()
  np.save(tmp_path / 'points.npy', new_points)
  served = run_fresh_python(_SERVE_TOP_K_SCRIPT, export_dir,
                            str(tmp_path / 'points.npy'))
  assert served['imported'] == []
  assert served['keys'] == ['top_k_cluster_indices', 'top_k_distances']
  assert served['signatures'] == sorted(SIGNATURES + ('top_k',))
  assert served['top_k'] == 3
  predictions = list(kmeans.predict(lambda: new_points, top_k=3))
  index = np.load(export_dir + '.top_k_cluster_indices.npy')
  assert index.dtype == np.int64 and index.shape == (29, 3)
  np.testing.assert_array_equal(
      index, np.stack([p['top_k_cluster_indices'] for p in predictions]))
  np.testing.assert_allclose(
      np.load(export_dir + '.top_k_distances.npy'),
      np.stack([p['top_k_distances'] for p in predictions]),
      rtol=1e-5, atol=1e-4)
  # And both against a full numpy sort.
  distances = oracles.distances(new_points, kmeans.cluster_centers(), metric)
  np.testing.assert_array_equal(index[:, 0], distances.argmin(axis=1))
  np.testing.assert_allclose(np.load(export_dir + '.top_k_distances.npy'),
                             np.sort(distances, axis=1)[:, :3],
                             rtol=1e-4, atol=1e-3)


def test_without_top_k_there_is_no_top_k_signature(exports):
  loaded = tf.saved_model.load(
      exports['cases']['squared_euclidean_full']['export_dir'].decode())
  assert 'top_k' not in loaded.signatures
  assert not hasattr(loaded, 'top_k')


@pytest.mark.slow
def test_tflite_interpreter_gives_the_same_top_k(tmp_path):
  points = blobs(seed=4)
  kmeans = train(tmp_path / 'model', points, oracles.SQUARED_EUCLIDEAN)
  export_dir = kmeans.export_saved_model(tmp_path / 'export',
                                         top_k=2).decode()
  runner = _tflite_runner(export_dir, 'top_k')
  got = runner(input=points)
  predictions = list(kmeans.predict(lambda: points, top_k=2,
                                    predict_keys=['top_k_cluster_indices',
                                                  'top_k_distances']))
  np.testing.assert_array_equal(
      got['top_k_cluster_indices'],
      np.stack([p['top_k_cluster_indices'] for p in predictions]))
  # |x|^2 - 2 x.c + |c|^2 in float32 cancels: TFLite's kernels round
  # differently, by a few float32 ulps of |x|^2 (about 2e4 here).
  np.testing.assert_allclose(
      got['top_k_distances'],
      np.stack([p['top_k_distances'] for p in predictions]),
      rtol=1e-5, atol=1e-6 * np.max(np.sum(points**2, axis=1)))
