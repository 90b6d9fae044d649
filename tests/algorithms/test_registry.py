"""The registry of k-means variants: names, needs, and the one choice."""

import pytest

from kmeans_estimator import algorithms
from kmeans_estimator import config
from kmeans_estimator import errors


def test_registry_holds_every_variant():
  assert set(algorithms.REGISTRY) == {'lloyd', 'hamerly', 'yinyang',
                                      'minibatch'}
  assert algorithms.names() == ['lloyd', 'hamerly', 'yinyang']


def test_unknown_name_lists_the_accepted_ones():
  with pytest.raises(algorithms.UnknownAlgorithmError,
                     match=r"`algorithm` must be one of \['lloyd', 'hamerly', "
                     r"'yinyang'\]. Received: algorithm='elkan'"):
    algorithms.get('elkan')
  with pytest.raises(errors.InvalidArgumentError) as raised:
    config.check_algorithm('elkan', 'squared_euclidean', False)
  assert (raised.value.argument, raised.value.received) == ('algorithm',
                                                            'elkan')
  # The mini-batch step is chosen by use_mini_batch, not by name.
  with pytest.raises(ValueError, match='must be one of'):
    config.check_algorithm('minibatch', 'squared_euclidean', True)


@pytest.mark.parametrize('name', ['hamerly', 'yinyang'])
def test_check_algorithm_reads_the_needs_from_the_registry(name):
  assert config.check_algorithm(name, 'squared_euclidean', False) == name
  with pytest.raises(ValueError, match=f"algorithm='{name}' needs "
                     'use_mini_batch=False'):
    config.check_algorithm(name, 'cosine', False)
  assert config.check_algorithm('lloyd', 'cosine', True) == 'lloyd'


@pytest.mark.parametrize('name', ['lloyd', 'hamerly', 'yinyang'])
def test_choose_runs_the_named_variant_carried_on_data_in_memory(name):
  chosen = algorithms.choose(name, use_mini_batch=False, in_memory=True)
  assert (chosen.algorithm.name, chosen.carried, chosen.warning) == (
      name, True, None)


@pytest.mark.parametrize('name', ['hamerly', 'yinyang'])
def test_choose_falls_back_to_lloyd_over_batches_with_a_warning(name):
  chosen = algorithms.choose(name, use_mini_batch=False, in_memory=False)
  assert (chosen.algorithm.name, chosen.carried) == ('lloyd', False)
  assert chosen.warning == (
      f"algorithm='{name}' needs the data in memory (a Tensor or array); "
      "this dataset of batches is trained with algorithm='lloyd'.")


def test_choose_mini_batch_and_restarts():
  assert algorithms.choose('lloyd', True, True).algorithm.name == 'minibatch'
  assert not algorithms.choose('lloyd', True, True).carried
  assert not algorithms.choose('lloyd', False, True, num_restarts=3).carried


def test_a_new_variant_is_one_registry_entry_and_trains_end_to_end(
    tmp_path, monkeypatch):
  """The extension point: registering an `Algorithm` (here Lloyd's pure
  functions under another name) is all the estimator needs to accept the
  name, train with it carried over data in memory, and checkpoint it."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top
  lloyd = algorithms.REGISTRY['lloyd']
  monkeypatch.setitem(algorithms.REGISTRY, 'plain',
                      lloyd._replace(name='plain'))
  assert 'plain' in algorithms.names()
  points = np.random.default_rng(0).normal(size=(120, 3)).astype('float32')

  def fit(name):
    estimator = KMeansClustering(4, model_dir=str(tmp_path / name),
                                 use_mini_batch=False, algorithm=name,
                                 initial_clusters=points[:4])
    return estimator.train(points, steps=6)

  plain, reference = fit('plain'), fit('lloyd')
  np.testing.assert_array_equal(plain.cluster_centers(),
                                reference.cluster_centers())
  assert plain.training_summary.global_step == 6
