"""A fork server for the tests that need other processes: crashes and locks.

Importing TensorFlow takes seconds, and the crash test needs dozens of
trainers to kill. `python tests/_child.py` imports TensorFlow and
kmeans_estimator once and runs no TensorFlow op (so no runtime threads exist
when it forks). It then reads one JSON job per line on stdin,
`{"job": NAME, **kwargs}`, forks a child that runs `JOBS[NAME](**kwargs)`,
and prints `<pid> exit <status>` when that child ends (status -9: killed by
SIGKILL). Children report on the shared stdout in lines `<pid> <event>
<value>`, one `write` each, so lines never interleave.

The tests import this module too, for `ForkServer` (the parent's side) and
`points` (the training data both sides use).

Hooks that exist only in this script, never in the package: with
`block_at=[phase, save]`, the child's `save`-th checkpoint save stops at
`phase` (printing `phase <name> <step>`) and waits to be killed;
`phase_sleep` makes every phase pause that long, which widens the windows
that kills at random moments can land in. The phases, in the order
`checkpoints.save_checkpoint` passes them:
  save_v2        about to write the bundle under its temporary prefix;
  rename_data    bundle written, data file not yet renamed into place;
  rename_index   data file in place, index file not yet;
  rename_state   both in place, new state file written under a temporary
                 name but not yet renamed over `checkpoint`;
  state_written  `checkpoint` names the new checkpoint; old ones not yet
                 deleted;
  delete_old     one file of a checkpoint beyond keep_checkpoint_max
                 deleted, the others not yet.
"""

import dataclasses
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

import numpy as np

PHASES = ('save_v2', 'rename_data', 'rename_index', 'rename_state',
          'state_written', 'delete_old')
# Phases in which a checkpoint file is being written or replaced.
WRITE_PHASES = PHASES[:4]


def points(seed, n, d):
  """Uniform points in the unit cube, float32 (n, d)."""
  return np.random.default_rng(seed).uniform(size=(n, d)).astype(np.float32)


def ring(seed, n):
  """Points on the unit circle, float32 (n, 2)."""
  angles = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
  return np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)


def clumped_centers(k):
  """k centers crowded on an arc of the ring: Lloyd spreads them round it
  only slowly, so the centers keep moving for over a hundred steps."""
  angles = np.linspace(0, 0.5, k)
  return (0.99 * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(
      np.float32)


# ---------------------------------------------------------------------------
# The child's side.
# ---------------------------------------------------------------------------


def _say(event, value='-'):
  os.write(1, f'{os.getpid()} {event} {value}\n'.encode())


def _step_of(path):
  """17 for '.../model.ckpt-17_temp_ab.index' or '.../model.ckpt-17.index'."""
  return int(re.search(r'model\.ckpt-(\d+)', os.path.basename(path))[1])


def _install_phase_hooks(block_at, phase_sleep):
  """Wraps the file operations that `checkpoints.save_checkpoint` uses."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  state = {'saves': 0, 'step': None, 'deleted': False}
  save_v2, rename, remove = (tf.raw_ops.SaveV2, tf.io.gfile.rename,
                             tf.io.gfile.remove)

  def phase(name):
    _say('phase', f'{name} {state["step"]}')
    if block_at is not None and (name, state['saves']) == tuple(block_at):
      time.sleep(600)  # Until the parent kills us.
    if phase_sleep:
      time.sleep(phase_sleep)

  def marked_save_v2(**kwargs):
    state['saves'] += 1
    state['step'] = _step_of(kwargs['prefix'])
    state['deleted'] = False
    phase('save_v2')
    return save_v2(**kwargs)

  def marked_rename(src, dst, overwrite=False):
    name = os.path.basename(dst)
    if name == 'checkpoint':
      phase('rename_state')
    elif name.endswith('.index'):
      phase('rename_index')
    else:
      phase('rename_data')
    rename(src, dst, overwrite)
    if name == 'checkpoint':
      phase('state_written')

  def marked_remove(path):
    remove(path)
    name = os.path.basename(path)
    if (name.startswith('model.ckpt-') and '_temp_' not in name and
        not state['deleted']):
      state['deleted'] = True
      phase('delete_old')

  tf.raw_ops.SaveV2 = marked_save_v2
  tf.io.gfile.rename = marked_rename
  tf.io.gfile.remove = marked_remove


def train(model_dir, seed=0, n=1500, d=2, k=16, max_steps=250,
          save_steps=1, keep=3, block_at=None, phase_sleep=0.0,
          hold_file=None, use_mini_batch=False, on_ring=False,
          batch_size=None, algorithm='lloyd'):
  """Trains (or resumes) into model_dir, reporting every checkpoint saved.

  The data are `points(seed, n, d)` from random initial centers, or with
  `on_ring`, `ring(seed, n)` from `clumped_centers(k)`. Without
  `batch_size` an input_fn returns them whole; with it, the array itself
  is given, read in slices of `batch_size` rows.

  Events: `saved <step>` after each checkpoint; with `hold_file`, `holding
  <step>` after the first step, then waits until that file exists; `done
  <global_step>` at the end.
  """
  import kmeans_estimator as ke  # pylint: disable=g-import-not-at-top

  if block_at is not None or phase_sleep:
    _install_phase_hooks(block_at, phase_sleep)
  data = ring(seed, n) if on_ring else points(seed, n, d)

  class Listener:

    def begin(self):
      pass

    def before_save(self, session, global_step):
      pass

    def after_save(self, session, global_step):
      del session
      _say('saved', global_step)

    def end(self, session, global_step):
      pass

  class Hold(ke.SessionRunHook):

    def __init__(self):
      self._held = False

    def before_run(self, run_context):
      return ke.SessionRunArgs(['global_step'])

    def after_run(self, run_context, run_values):
      if self._held:
        return
      self._held = True
      _say('holding', int(run_values.results[0]))
      deadline = time.time() + 120
      while not os.path.exists(hold_file) and time.time() < deadline:
        time.sleep(0.01)

  estimator = ke.KMeansClustering(
      num_clusters=k, model_dir=model_dir, seed=seed,
      initial_clusters=clumped_centers(k) if on_ring else 'random',
      use_mini_batch=use_mini_batch, algorithm=algorithm,
      config=ke.RunConfig(save_checkpoints_steps=save_steps,
                          keep_checkpoint_max=keep))
  estimator.train((lambda: data) if batch_size is None else data,
                  max_steps=max_steps, batch_size=batch_size,
                  hooks=[Hold()] if hold_file else None,
                  saving_listeners=[Listener()])
  _say('done', estimator.get_variable_value('global_step'))


JOBS = {'train': train}


def serve():
  """The fork server's loop (see the module docstring)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  # Imported once here, before any fork, so that children need not.
  # pylint: disable=g-import-not-at-top,unused-import
  import tensorflow  # noqa: F401
  import kmeans_estimator  # noqa: F401
  # pylint: enable=g-import-not-at-top,unused-import

  logging.set_verbosity(logging.WARNING)
  _say('ready')
  for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      status = 0
      try:
        _say('started')
        JOBS[job.pop('job')](**job)
      except BaseException as e:  # pylint: disable=broad-except
        message = ' '.join(f'{type(e).__name__}: {e}'.split())
        _say('error', message)
        status = 1
      finally:
        os._exit(status)  # pylint: disable=protected-access
    _, status = os.waitpid(pid, 0)
    os.write(1, f'{pid} exit {os.waitstatus_to_exitcode(status)}\n'.encode())


# ---------------------------------------------------------------------------
# The parent's side.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Event:
  pid: int
  kind: str
  value: str


class ForkServer:
  """Starts `python tests/_child.py` and talks to it."""

  def __init__(self, log_path, timeout=180):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', CUDA_VISIBLE_DEVICES='',
               OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    self._log = open(log_path, 'w')  # pylint: disable=consider-using-with
    self._process = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        env=env, cwd=os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
    self._events = queue.Queue()
    threading.Thread(target=self._read, daemon=True).start()
    self.log_path = log_path
    ready = self.next_event(timeout)
    if ready.kind != 'ready':
      raise RuntimeError(f'The fork server did not start: {ready}')

  def _read(self):
    for line in self._process.stdout:
      pid, kind, value = (line.rstrip('\n').split(' ', 2) + ['-', '-'])[:3]
      self._events.put(Event(int(pid), kind, value))
    self._events.put(None)

  def next_event(self, timeout=120):
    """The next line any child (or the server) printed, as an `Event`."""
    try:
      event = self._events.get(timeout=timeout)
    except queue.Empty:
      raise TimeoutError(f'No word from the children for {timeout} s; see '
                         f'{self.log_path}') from None
    if event is None:
      raise RuntimeError(f'The fork server died; see {self.log_path}')
    return event

  def start(self, job, **kwargs):
    """Starts a job in a new child; returns its pid."""
    self._process.stdin.write(json.dumps({'job': job, **kwargs}) + '\n')
    self._process.stdin.flush()
    event = self.next_event()
    if event.kind != 'started':
      raise RuntimeError(f'Expected a child to start, got {event}')
    return event.pid

  def wait_exit(self, pid, timeout=120):
    """Drains events until `pid` exits; returns (exit status, its events)."""
    events = []
    while True:
      event = self.next_event(timeout)
      if event.kind == 'exit' and event.pid == pid:
        return int(event.value), events
      events.append(event)

  def close(self):
    self._process.stdin.close()
    try:
      self._process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      self._process.kill()
      self._process.wait()
    self._log.close()


if __name__ == '__main__':
  serve()
