"""The command line's flags and their checks (cli/flags.py).

Evidence: a bad flag raises `app.UsageError` in the error idiom, naming the
flag and what it received, and leaves an existing model_dir byte for byte as
it was; an output that is an input file (by any spelling or link) is
refused before anything is written; every path flag and input expands a
leading ~.
"""

import os
import re

import numpy as np
import oracles
import pytest
from absl import app

from cli_cases import K, POINTS, centers_of
from helpers import run_cli, write_csv


def _same_path(d):
  np.save(d / 'p.npy', POINTS)
  return d / 'p.npy', d / 'p.npy', []


def _other_spelling(d):
  np.save(d / 'p.npy', POINTS)
  return d / 'p.npy', f'{d}/./sub/../p.npy', []


def _symlink_to_input(d):
  np.save(d / 'p.npy', POINTS)
  (d / 'link.npy').symlink_to(d / 'p.npy')
  return d / 'p.npy', d / 'link.npy', []


def _hard_link_to_input(d):
  write_csv(d / 'p.csv', POINTS)
  os.link(d / 'p.csv', d / 'link.csv')
  return d / 'p.csv', d / 'link.csv', []


def _input_by_glob(d):
  np.save(d / 'p.npy', POINTS)
  return d / '*.npy', d / 'p.npy', []


def _distances_output(d):
  np.save(d / 'out.distances.npy', POINTS)
  return d / 'out.distances.npy', d / 'out.npy', ['--distances']


@pytest.mark.parametrize('make', [
    _same_path, _other_spelling, _symlink_to_input, _hard_link_to_input,
    _input_by_glob, _distances_output])
def test_predict_refuses_an_output_that_is_an_input_file(trained, tmp_path,
                                                         make):
  model_dir, _ = trained
  (tmp_path / 'sub').mkdir()
  data, output, extra = make(tmp_path)
  before = oracles.snapshot(tmp_path)
  with pytest.raises(app.UsageError,
                     match=r'`output` must not be an input file: the '
                     r'predictions would overwrite the points\. Give another '
                     rf'path\. Received: --output={re.escape(str(output))}.* '
                     r'which is the input file '):
    run_cli('predict', f'--model_dir={model_dir}', f'--output={output}',
            *extra, data)
  assert oracles.snapshot(tmp_path) == before


@pytest.mark.parametrize('args,message', [
    (['fit'], (r'The command must be one of train, predict, score, centers, '
               r'export\. Received: fit')),
    ([], r'Give a command'),
    (['train', '--model_dir={model}', '--num_clusters=0', '{data}'],
     (r'`num_clusters` must be a positive integer\. Received: '
      r'--num_clusters=0')),
    (['train', '--num_clusters=3', '{data}'],
     r'`model_dir` must be given.*Received: no --model_dir'),
    (['train', '--model_dir={model}', '--num_clusters=4', '{data}'],
     (r'`num_clusters` must match the model in --model_dir=.*which has 3 '
      r'clusters.*Received: --num_clusters=4')),
    (['train', '--model_dir={model}', '--steps=2', '--max_steps=3', '{data}'],
     r'Give `steps` or `max_steps`, not both'),
    (['train', '--model_dir={model}', '--relative_tolerance=-1', '{data}'],
     (r'`relative_tolerance` must be None or a number >= 0\. Received: '
      r'--relative_tolerance=-1')),
    (['train', '--model_dir={model}', '--initial_clusters=best', '{data}'],
     (r'`initial_clusters` must be one of .*Received: '
      r'--initial_clusters=best')),
    (['train', '--model_dir={model}'], r'`train` needs input files'),
    (['predict', '--model_dir={model}', '--output=out.txt', '{data}'],
     r'`output` must end in \.npy or \.csv.*Received: --output=out\.txt'),
    (['centers', '--model_dir={empty}'],
     r'`model_dir` must hold a trained model .*Received: --model_dir='),
    (['export', '--model_dir={model}'], r'`export_dir_base` must be given'),
    (['export', '--model_dir={model}', '--export_dir_base={empty}',
      '--top_k=0'], r'`top_k` must be a positive integer.*--top_k=0'),
    (['train', '--model_dir={model}', '--columns=x,w', '{csv}'],
     (r"`columns` must be the header names \['x', 'y', 'z'\] or 0-based "
      r"indices .*'w' is neither\. Received: --columns=x,w")),
    (['score', '--model_dir={model}', '--columns=x', '{tfrecord}'],
     (r'`columns` applies to \.csv and \.npy files; for TFRecord files name '
      r'the features with `feature`\. Received: --columns=x')),
    (['score', '--model_dir={model}', '--feature=w', '{tfrecord}'],
     r'`feature` must name features of the records.*Received: --feature=w'),
    (['centers', '--model_dir={model}', '--distance_metric=cosine'],
     (r'`distance_metric` must match the model in --model_dir=.*trained with '
      r'squared_euclidean.*Received: --distance_metric=cosine')),
], ids=['unknown_command', 'no_command', 'num_clusters_0', 'no_model_dir',
        'other_num_clusters', 'steps_and_max_steps', 'negative_tolerance',
        'unknown_init', 'no_files', 'bad_output', 'untrained_model_dir',
        'no_export_dir', 'export_top_k_0', 'unknown_column', 'columns_of_tfrecord',
        'unknown_feature', 'other_distance_metric'])
def test_bad_flags_raise_usage_errors_and_keep_model_dir(
    trained, data_dir, tmp_path, args, message):
  model_dir, _ = trained
  before = oracles.snapshot(model_dir)
  args = [arg.format(model=model_dir, data=data_dir / 'points.npy',
                     empty=tmp_path / 'empty', csv=data_dir / 'points.csv',
                     tfrecord=data_dir / 'points.tfrecord') for arg in args]
  with pytest.raises(app.UsageError, match=message):
    run_cli(*args)
  assert oracles.snapshot(model_dir) == before


def test_a_leading_tilde_is_expanded_in_every_path_flag_and_input(
    data_dir, tmp_path, monkeypatch):
  # A shell leaves ~ as it is in --flag=~/x and in quoted globs.
  home = tmp_path / 'home'
  home.mkdir()
  monkeypatch.setenv('HOME', str(home))
  np.save(home / 'points.npy', POINTS)
  np.save(home / 'init.npy', POINTS[:K])
  assert run_cli('train', '--model_dir=~/model', '--num_clusters=3',
                 '--initial_clusters=~/init.npy', '--steps=1',
                 '~/points.npy') == 0
  assert centers_of(home / 'model').shape == (K, 3)
  assert run_cli('predict', '--model_dir=~/model', '--output=~/p.npy',
                 '~/point*.npy') == 0
  assert np.load(home / 'p.npy').shape == (len(POINTS),)
  with pytest.raises(app.UsageError, match=(
      r'Received: --output=~/points\.npy, which is the input file')):
    run_cli('predict', '--model_dir=~/model', '--output=~/points.npy',
            '~/points.npy')
  assert run_cli('centers', '--model_dir=~/model', '--output=~/c.csv') == 0
  assert (home / 'c.csv').exists()
  assert run_cli('export', '--model_dir=~/model',
                 '--export_dir_base=~/exports') == 0
  assert len(os.listdir(home / 'exports')) == 1
  assert not any(path.name == '~' for path in tmp_path.rglob('*'))
  assert not os.path.exists('~')
