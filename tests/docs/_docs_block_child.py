"""The child Python of `docs_blocks`: runs python blocks in one namespace.

  python _docs_block_child.py COMMAND_FD RESULT_FD DISPLAY_NAME

Reads one JSON command per line from COMMAND_FD ({"code", "line"}), runs the
code in the namespace of the earlier blocks, and writes one JSON line to
RESULT_FD: {"error": None} or {"error": the traceback}. The code is compiled
under DISPLAY_NAME with its lines numbered as in the Markdown file, so a
traceback points at the line of the page. `sys.exit(0)` in a block is a
success, as it is for a script. Ends at the end of input.

A command {"reset": {"cwd", "display_name"}} starts the next file: a fresh
namespace, the file's directory as the working directory, and its name for
tracebacks (answered with {"error": None}). One child then serves the files
one after another, paying for the imports (TensorFlow) and the library's
traced functions once.
"""

import json
import linecache
import os
import sys
import traceback


def _block_traceback(error):
  """The traceback of `error` from the block's own frame down."""
  return ''.join(traceback.format_exception(
      type(error), error, error.__traceback__.tb_next))


def main(command_fd, result_fd, display_name):
  # As in an interactive Python: the working directory is on the path, not
  # this script's folder.
  sys.path[0] = ''
  namespace = {'__name__': '__main__', '__builtins__': __builtins__}
  with os.fdopen(command_fd, 'r') as commands, \
       os.fdopen(result_fd, 'w') as results:
    for line in commands:
      command = json.loads(line)
      if 'reset' in command:
        namespace = {'__name__': '__main__', '__builtins__': __builtins__}
        os.chdir(command['reset']['cwd'])
        display_name = command['reset']['display_name']
        linecache.cache.pop(display_name, None)
        results.write(json.dumps({'error': None}) + '\n')
        results.flush()
        continue
      # The code starts on the line after the opening fence.
      source = '\n' * command['line'] + command['code']
      # Tracebacks show the page's lines (this block's, and the earlier
      # blocks' for the functions they defined).
      lines = linecache.cache.get(display_name, (0, None, [], ''))[2]
      lines = lines + [''] * (command['line'] - len(lines))
      lines = lines[:command['line']] + command['code'].splitlines(True)
      linecache.cache[display_name] = (0, None, lines, display_name)
      error = None
      try:
        exec(compile(source, display_name, 'exec'), namespace)  # pylint: disable=exec-used
      except SystemExit as exit_:
        if exit_.code not in (None, 0):
          error = _block_traceback(exit_)
      except BaseException as raised:  # pylint: disable=broad-except
        error = _block_traceback(raised)
      sys.stdout.flush()
      sys.stderr.flush()
      results.write(json.dumps({'error': error}) + '\n')
      results.flush()


if __name__ == '__main__':
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
