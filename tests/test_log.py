"""MNE's logging convention: one package logger, ``set_log_level``, ``verbose=`` per call."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import physioaffect
from physioaffect.errors import PhysioAffectError
from physioaffect.log import logger, progress_enabled, verbose
from physioaffect.training.estimator import DeepEEGClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _restore_level():
    old = logger.level
    yield
    logger.setLevel(old)


def _windows():
    rng = np.random.default_rng(0)
    return rng.standard_normal((16, 4, 64)) * 10, np.arange(16) % 2


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "physioaffect"]


def test_set_log_level_is_honoured(caplog) -> None:
    caplog.set_level(logging.DEBUG)  # pytest's handler takes everything the logger passes on
    physioaffect.set_log_level("WARNING")
    logger.info("hidden")
    logger.warning("shown")
    assert _messages(caplog) == ["shown"]
    assert not progress_enabled(True)  # progress bars follow INFO
    physioaffect.set_log_level(True)
    assert logger.level == logging.INFO and progress_enabled(True) and not progress_enabled(False)
    assert physioaffect.set_log_level("debug", return_old_level=True) == logging.INFO
    with pytest.raises(PhysioAffectError, match="verbose: expected"):
        physioaffect.set_log_level("loud")


def test_verbose_false_silences_a_fit_and_debug_shows_its_epochs(caplog) -> None:
    X, y = _windows()
    caplog.set_level(logging.DEBUG)
    physioaffect.set_log_level("INFO")
    est = DeepEEGClassifier("eegnet", sfreq=64.0, epochs=2, batch_size=8)
    est.fit(X, y)
    lines = _messages(caplog)
    assert len(lines) == 1 and "2 epochs on 16 windows" in lines[0]
    caplog.clear()
    est.set_params(verbose=False).fit(X, y)
    assert _messages(caplog) == []
    est.set_params(verbose="DEBUG").fit(X, y)
    lines = _messages(caplog)
    assert [m for m in lines if "epoch 1/2" in m] and [m for m in lines if "epoch 2/2" in m]
    assert logger.level == logging.INFO  # the call's level did not stay


def test_the_verbose_decorator_sets_the_level_for_one_call(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    physioaffect.set_log_level("WARNING")

    @verbose
    def work(n: int, verbose=None) -> int:
        logger.info("working on %d", n)
        if n < 0:
            raise ValueError("negative")
        return n

    assert work(1) == 1 and _messages(caplog) == []
    assert work(2, verbose=True) == 2 and work(3, "INFO") == 3  # keyword or positional
    assert _messages(caplog) == ["working on 2", "working on 3"]
    with pytest.raises(ValueError):
        work(-1, verbose=True)
    assert logger.level == logging.WARNING  # restored after an exception too
    with pytest.raises(TypeError, match="no 'verbose' parameter"):
        verbose(lambda x: x)


def test_messages_reach_stderr_once(capsys, monkeypatch) -> None:
    """Without an application handler the package prints plain lines on stderr; with one
    (here pytest's), only that handler gets them."""
    physioaffect.set_log_level("INFO")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    logger.info("alpha %d", 1)
    assert capsys.readouterr().err == "alpha 1\n"
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    logger.info("beta")
    assert capsys.readouterr().err == ""
