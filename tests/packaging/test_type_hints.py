"""The public API is annotated: every parameter and return of every public
callable, and the annotations resolve at run time.

The public API is the names in `kmeans_estimator.__all__` (their public
methods, properties, constructors) and the public names of
`kmeans_estimator.errors`. Type checkers read these annotations through
`kmeans_estimator/py.typed` (PEP 561); `test_mypy.py` checks a user's
script against them.
"""

import inspect
import pathlib
import typing

import pytest

import kmeans_estimator
from kmeans_estimator import errors


def _ours(function):
  return getattr(function, '__module__', '').startswith('kmeans_estimator')


def _class_members(name, cls):
  """(qualified name, function) of the public callables a class defines."""
  for attribute in dir(cls):
    if attribute.startswith('_') and attribute not in ('__init__', '__new__'):
      continue
    raw = inspect.getattr_static(cls, attribute)
    if isinstance(raw, property):
      function = raw.fget
    elif isinstance(raw, (classmethod, staticmethod)):
      function = raw.__func__
    elif inspect.isfunction(raw):
      function = raw
    else:
      continue
    if _ours(function):
      yield f'{name}.{attribute}', function


def _public_callables():
  namespaces = [(name, getattr(kmeans_estimator, name))
                for name in kmeans_estimator.__all__]
  namespaces += [(f'errors.{name}', value) for name, value in vars(
      errors).items() if not name.startswith('_') and _ours(value)]
  for name, value in namespaces:
    if inspect.isclass(value):
      yield from _class_members(name, value)
    elif inspect.isfunction(value):
      yield name, value


def _missing_annotations(function):
  signature = inspect.signature(function)
  missing = [parameter.name for index, parameter in enumerate(
      signature.parameters.values())
             if parameter.annotation is inspect.Parameter.empty and not (
                 index == 0 and parameter.name in ('self', 'cls'))]
  if signature.return_annotation is inspect.Signature.empty:
    missing.append('return')
  return missing


def test_every_public_callable_annotates_its_parameters_and_return():
  callables = dict(_public_callables())
  # The walk reaches what users call (a guard against an empty walk).
  for name in ('KMeansClustering.__init__', 'KMeansClustering.train',
               'KMeansClustering.evaluate', 'KMeansClustering.predict',
               'KMeansClustering.model_dir', 'KMeans.nearest',
               'KMeans.full_batch_step', 'KMeans.lloyd_step',
               'RunConfig.replace', 'StopAtStepHook.__init__',
               'SessionRunHook.before_run', 'TrainingSummary.as_dict',
               'build_raw_serving_input_receiver_fn',
               'errors.InvalidArgumentError.from_template',
               'errors.translate'):
    assert name in callables, name
  missing = {name: _missing_annotations(function)
             for name, function in callables.items()}
  assert {name: m for name, m in missing.items() if m} == {}


def test_public_annotations_resolve_at_run_time():
  # `from __future__ import annotations` keeps them as strings: a name
  # that is not importable where they are written fails only here (or in
  # a user's `typing.get_type_hints`).
  unresolved = {}
  for name, function in _public_callables():
    try:
      typing.get_type_hints(function)
    except Exception as error:  # pylint: disable=broad-except
      unresolved[name] = repr(error)
  assert unresolved == {}


def test_the_package_ships_its_py_typed_marker():
  package = pathlib.Path(kmeans_estimator.__file__).parent
  assert (package / 'py.typed').is_file()


def test_py_typed_is_package_data_so_wheels_carry_it():
  tomllib = pytest.importorskip('tomllib')  # Python 3.11+.
  pyproject = pathlib.Path(__file__).parents[2] / 'pyproject.toml'
  config = tomllib.loads(pyproject.read_text())
  assert config['tool']['setuptools']['package-data']['kmeans_estimator'] == [
      'py.typed']


def test_kmeans_estimator_typing_is_the_alias_module_not_the_standard_one():
  # `from kmeans_estimator import typing` returns whatever the package's
  # namespace binds to `typing`: an `import typing` in __init__.py would
  # hand out the standard library's module (to mypy too), and every
  # annotation naming an alias would fail to resolve.
  from kmeans_estimator import typing as ke_typing  # pylint: disable=g-import-not-at-top
  assert ke_typing.__name__ == 'kmeans_estimator.typing'
  assert ke_typing.ArrayLike is not None
