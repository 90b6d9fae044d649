"""The command line's output files (cli/writers.py).

Evidence: outputs are written under an exclusively created temporary name
and renamed into place, so a symlink planted at the output, at a temporary
name or at the distances' file is never written through, and no temporary
file is left behind.
"""

import os

import numpy as np
import pytest

from cli_cases import K, POINTS, centers_of
from helpers import run_cli
from kmeans_estimator import KMeansClustering
from kmeans_estimator.cli import writers


@pytest.mark.parametrize('command,name', [
    ('predict', 'out.npy'), ('predict', 'out.csv'), ('centers', 'out.npy'),
    ('centers', 'out.csv')])
def test_outputs_never_write_through_a_planted_symlink(
    trained, data_dir, tmp_path, command, name, capsys):
  model_dir, _ = trained
  output = tmp_path / name
  victims = []
  # Symlinks at the output, at the old predictable temporary names, and at
  # the .distances.npy output.
  links = [output, tmp_path / f'{name}.tmp-{os.getpid()}',
           tmp_path / 'out.distances.npy']
  for i, link in enumerate(links):
    victim = tmp_path / f'victim{i}'
    victim.write_text('precious')
    link.symlink_to(victim)
    victims.append(victim)
  args = ['--distances', data_dir / 'points.npy'] if command == 'predict' else []
  assert run_cli(command, f'--model_dir={model_dir}', f'--output={output}',
                 *args) == 0
  capsys.readouterr()
  assert all(victim.read_text() == 'precious' for victim in victims)
  assert not output.is_symlink() and output.is_file()
  if name.endswith('.npy') and command == 'predict':
    assert not links[2].is_symlink()
    assert np.load(links[2]).shape == (len(POINTS), K)
  expected = (centers_of(model_dir) if command == 'centers' else
              np.array(list(KMeansClustering(
                  K, model_dir=str(model_dir)).predict_cluster_index(
                      lambda: POINTS))))
  got = (np.load(output) if name.endswith('.npy') else
         np.loadtxt(output, delimiter=',', skiprows=int(command == 'predict')))
  np.testing.assert_allclose(got if got.ndim == expected.ndim else got[:, 0],
                             expected, rtol=1e-6)
  assert not [p for p in tmp_path.iterdir() if '.tmp-' in p.name and
              not p.is_symlink()]


def test_the_temporary_output_is_created_exclusively(trained, tmp_path,
                                                     monkeypatch, capsys):
  model_dir, _ = trained
  output = tmp_path / 'centers.npy'
  victim = tmp_path / 'victim'
  victim.write_text('precious')
  # The first random name drawn is taken by a symlink: another is drawn.
  names = iter(['planted', 'fresh'])
  monkeypatch.setattr(writers.secrets, 'token_hex', lambda n: next(names))
  (tmp_path / 'centers.npy.tmp-planted').symlink_to(victim)
  assert run_cli('centers', f'--model_dir={model_dir}',
                 f'--output={output}') == 0
  capsys.readouterr()
  assert victim.read_text() == 'precious'
  np.testing.assert_array_equal(np.load(output), centers_of(model_dir))
  assert not (tmp_path / 'centers.npy.tmp-fresh').exists()
