"""Quiet start-up: TensorFlow's native log lines are kept off the console unless the user asks for them.

Importing TensorFlow 2.16+ on a machine without a GPU prints lines such as ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR``, ``oneDNN custom operations are on``, ``Could not
find cuda drivers`` (each twice: two shared libraries carry their own copy of absl), and, on first use,
``failed call to cuInit``. None of them is a failure of the run. The pre-initialisation lines ignore
``TF_CPP_MIN_LOG_LEVEL`` (absl writes them before TensorFlow reads the variable), so they can only be kept
off by pointing the process's native stderr (file descriptor 2) elsewhere *while* TensorFlow is imported;
the lines logged after the import do follow ``TF_CPP_MIN_LOG_LEVEL``.

:func:`quiet_tensorflow` does both, once, before TensorFlow is first imported (wherever that happens: it
hooks the import of ``tensorflow`` itself, so modules keep importing Keras lazily):

- ``TF_CPP_MIN_LOG_LEVEL=3`` (only when the user has not set the variable: a value they set is never
  changed, and then nothing is hidden);
- while ``tensorflow`` is being imported, native writes to stderr go to the null device; Python's own
  ``sys.stderr`` (warnings, tracebacks, our log) keeps writing to the console;
- TensorFlow's "excessive retracing" notice about the functions each trained model makes for itself is
  dropped (:class:`PerModelRetracingNotice`: a false alarm when a run trains many models).

``--verbose`` on the command line, or any value of ``TF_CPP_MIN_LOG_LEVEL`` set by the user (e.g. ``0``),
brings every line back. The command-line fronts (:mod:`asdcore.cli` of both scripts, :mod:`asdcore.asd_cli`
of ``asd``) and the worker entry point (``python -m asdcore.runner``) call it first.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys

__all__ = ["quiet_tensorflow", "native_stderr_silenced", "PerModelRetracingNotice", "LOG_LEVEL_VARIABLE"]

#: TensorFlow's variable for its C++ log level (0: everything, 3: fatal only).
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
#: Set beside ``TF_CPP_MIN_LOG_LEVEL`` when *we* set it, so that worker processes, which inherit both, know
#: the value is ours (and stay quiet) and not the user's.
_MARKER = "ASD_QUIET_TENSORFLOW"
_QUIET_LEVEL = "3"


@contextlib.contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at the null device for the block; Python's ``sys.stderr`` keeps writing to
    the original stderr when it is file descriptor 2 (it is swapped for a file on a copy of the original
    descriptor), so only writes of native code are dropped."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    saved = os.dup(2)
    python_stderr = sys.stderr
    replacement = None
    try:
        is_fd2 = python_stderr is not None and python_stderr.fileno() == 2
    except (AttributeError, ValueError, OSError):  # pytest's capture, a StringIO: not descriptor 2
        is_fd2 = False
    try:
        if is_fd2:
            replacement = os.fdopen(os.dup(saved), "w", buffering=1,
                                    encoding=getattr(python_stderr, "encoding", None) or "utf-8",
                                    errors="backslashreplace")
            sys.stderr = replacement
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        if replacement is not None:
            replacement.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if replacement is not None:
            sys.stderr = python_stderr
            _repoint_log_handlers(replacement, python_stderr)
            replacement.close()


def _repoint_log_handlers(old, new) -> None:
    """Handlers made inside the block bound themselves to the temporary ``sys.stderr`` (TensorFlow's
    ``tf_logging`` handler, absl's Python handler): point them at the restored one, so that a warning logged
    later (e.g. TensorFlow's retracing notice) is printed instead of a "Logging error ... I/O operation on
    closed file" traceback."""
    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]
    handlers = [h for lg in loggers for h in lg.handlers]
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:  # absl's handler is attached to a logger only once absl is initialised
        absl_handler = getattr(absl_logging, "_absl_handler", None)
        handlers += [absl_handler, getattr(absl_handler, "python_handler", None)]
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is old:
            handler.setStream(new)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with native stderr silenced; everything else is delegated."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # the spec's loader is ours while the module runs; give the module the real one afterwards
        with native_stderr_silenced():
            self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and wraps its loader in :class:`_QuietLoader` (once)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        _remove_finder()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class PerModelRetracingNotice(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function ...> triggered tf.function retracing" notice
    for the functions every trained model makes for itself (Keras' train / predict step, our
    :func:`asdcore.keras_utils.compiled_inference`). TensorFlow counts the traces of all functions made from
    one piece of code together, so a run that trains many small models (DDCSAD's 60 in quick mode) is told after
    the fifth model that tracing is "excessive", although each model's function is traced only once per batch
    shape. The notice about any other function is kept; ``--verbose`` keeps every notice."""

    NOTICE = "triggered tf.function retracing"
    PER_MODEL = ("compiled_inference.<locals>", "TensorFlowTrainer.make_")

    def filter(self, record) -> bool:
        message = record.getMessage()
        return not (self.NOTICE in message and any(name in message for name in self.PER_MODEL))


def _add_filter_once(logger, log_filter) -> None:
    if not any(type(f) is type(log_filter) for f in logger.filters):
        logger.addFilter(log_filter)


def _remove_finder():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]


def quiet_tensorflow(verbose: bool = False) -> bool:
    """Keep TensorFlow's native start-up and log lines off the console (see the module docstring).

    Parameters
    ----------
    verbose : ``--verbose``: show everything (nothing is set or hooked).

    Returns
    -------
    True when TensorFlow will be quiet; False when ``verbose``, when the user set ``TF_CPP_MIN_LOG_LEVEL``
    (their value is kept), or when TensorFlow was already imported (too late for its start-up lines; the
    log level of later lines is then left as it is).
    """
    ours = os.environ.get(_MARKER) == "1" and os.environ.get(LOG_LEVEL_VARIABLE) == _QUIET_LEVEL
    if verbose:
        if ours:  # a parent process made it quiet; this one was asked for everything
            del os.environ[LOG_LEVEL_VARIABLE], os.environ[_MARKER]
        return False
    if LOG_LEVEL_VARIABLE in os.environ and not ours:
        return False
    if "tensorflow" in sys.modules:
        return False
    os.environ[LOG_LEVEL_VARIABLE] = _QUIET_LEVEL
    os.environ[_MARKER] = "1"
    _add_filter_once(logging.getLogger("tensorflow"), PerModelRetracingNotice())
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
    return True
