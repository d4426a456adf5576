"""Quiet start-up (asdcore.quiet): a command prints none of TensorFlow's native start-up lines unless the
user asks for them (--verbose, or TF_CPP_MIN_LOG_LEVEL set by the user, whose value is never changed)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asdcore import quiet

ROOT = Path(__file__).resolve().parents[2]
#: The lines a fresh run printed before: absl's pre-initialisation notice, oneDNN, CUDA stubs, cuInit, grappler.
NATIVE_LINE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cuInit|remapper failed|"
                         r"cpu_feature_guard|^[IWE]\d{4} ", re.MULTILINE)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ASD_QUIET_TENSORFLOW")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def _plan(root, out, *flags, **env):
    command = [sys.executable, str(ROOT / "run_dcase2020.py"), "subcluster-adacos", "--experiment", "subclusters",
               "--data-root", str(root), "--out", str(out), "--plan", *flags]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(ASD_CACHE_DIR=str(out / "cache"), **env),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def fan_set(synthetic_set):
    return synthetic_set(2020, seed=4, machine_types=("fan",), duration=1.0)


def test_a_command_prints_no_tensorflow_start_up_lines(fan_set, tmp_path):
    done = _plan(fan_set, tmp_path)
    assert "units.csv" in done.stdout + done.stderr  # the command ran (and imported TensorFlow)
    assert not NATIVE_LINE.search(done.stderr), done.stderr


def test_verbose_shows_them_again(fan_set, tmp_path):
    done = _plan(fan_set, tmp_path, "--verbose")
    assert "absl::InitializeLog" in done.stderr


# TensorFlow imported and its CPU device initialised (where "failed call to cuInit" is logged on a machine
# without a GPU): quiet_tensorflow first, as the command front does.
_TF_USE = ("from asdcore.quiet import quiet_tensorflow; quiet_tensorflow(); import os, tensorflow as tf; "
           "tf.config.list_physical_devices('GPU'); print(float(tf.reduce_sum(tf.ones(3))), "
           "os.environ['TF_CPP_MIN_LOG_LEVEL'])")


def test_lines_after_the_import_are_quiet_too():
    done = subprocess.run([sys.executable, "-c", _TF_USE], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.0", "3"]
    assert not NATIVE_LINE.search(done.stderr), done.stderr


@pytest.mark.slow  # a TensorFlow import in a fresh process; the decision itself is tested without one below
def test_a_level_the_user_set_is_kept_and_nothing_is_hidden():
    done = subprocess.run([sys.executable, "-c", _TF_USE], capture_output=True, text=True,
                          env=_env(TF_CPP_MIN_LOG_LEVEL="0"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.0", "0"]
    assert "absl::InitializeLog" in done.stderr


def test_decisions_without_importing_tensorflow(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # restored after the test
    hooks = list(sys.meta_path)
    for user_value in ("0", "1", "2", "3"):  # a value the user set: kept, nothing hooked
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", user_value)
        monkeypatch.delenv("ASD_QUIET_TENSORFLOW", raising=False)
        assert quiet.quiet_tensorflow() is False
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == user_value and sys.meta_path == hooks
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert quiet.quiet_tensorflow(verbose=True) is False and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert quiet.quiet_tensorflow() is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and len(sys.meta_path) == len(hooks) + 1
    assert quiet.quiet_tensorflow() is True and len(sys.meta_path) == len(hooks) + 1  # hooked once
    # a worker process inherits our value and stays quiet; --verbose there brings everything back
    assert quiet.quiet_tensorflow(verbose=True) is False and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_python_stderr_still_reaches_the_console_while_native_writes_are_dropped():
    code = ("import os, sys; from asdcore.quiet import native_stderr_silenced\n"
            "with native_stderr_silenced():\n"
            "    os.write(2, b'native\\n'); print('python', file=sys.stderr)\n"
            "os.write(2, b'after\\n')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert done.stderr.split() == ["python", "after"]


def test_a_log_handler_made_while_silenced_writes_to_the_console_afterwards():
    # TensorFlow's logger and absl's handler bind the sys.stderr of the moment they are made: inside the block
    # that is a temporary file object, closed afterwards (it printed "--- Logging error ---" tracebacks)
    code = ("import logging, sys; from asdcore.quiet import native_stderr_silenced\n"
            "log = logging.getLogger('made_inside'); log.propagate = False\n"
            "with native_stderr_silenced():\n"
            "    log.addHandler(logging.StreamHandler(sys.stderr))\n"
            "log.warning('retracing notice')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert done.stderr.strip() == "retracing notice", done.stderr


def _record(message):
    import logging

    return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)


def test_the_retracing_notice_about_per_model_functions_is_dropped_and_others_kept():
    keep = quiet.PerModelRetracingNotice().filter
    # the two notices a DDCSAD quick run printed (one function per trained model, counted together by TensorFlow)
    for function in ("compiled_inference.<locals>.<lambda>",
                     "TensorFlowTrainer.make_predict_function.<locals>.one_step_on_data_distributed"):
        assert not keep(_record(f"5 out of the last 9 calls to <function {function} at 0x7f> triggered "
                                "tf.function retracing. Tracing is expensive ..."))
    assert keep(_record("5 out of the last 9 calls to <function my_step at 0x7f> triggered tf.function retracing."))
    assert keep(_record("compiled_inference.<locals> failed"))  # another message naming the same function


def test_quiet_mode_filters_the_tensorflow_logger_once(monkeypatch):
    import logging

    logger = logging.getLogger("tensorflow")
    monkeypatch.setattr(logger, "filters", [])
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("ASD_QUIET_TENSORFLOW", raising=False)
    assert quiet.quiet_tensorflow(verbose=True) is False and logger.filters == []  # --verbose: every notice
    assert quiet.quiet_tensorflow() is True and quiet.quiet_tensorflow() is True
    assert [type(f) for f in logger.filters] == [quiet.PerModelRetracingNotice]
