"""The suite's guard against logged exceptions fails the tests it should and only those.

It runs pytest in a subprocess on a scratch folder whose conftest is the suite's own, so
what is tested is the fixture every test here runs under.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TESTS = """
import logging

import pytest

log = logging.getLogger("app.worker")


def _crash() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("worker crashed")


def test_logs_unexpected() -> None:
    _crash()


@pytest.mark.logs_exceptions("app")
def test_logs_what_it_names() -> None:
    _crash()


@pytest.mark.logs_exceptions("other")
def test_names_another_logger() -> None:
    _crash()


def test_warning_with_traceback_is_handled_trouble() -> None:
    try:
        raise OSError("broker down")
    except OSError:
        log.warning("retrying", exc_info=True)


def test_error_without_exception() -> None:
    log.error("a plain error line")


async def test_task_exception_never_retrieved() -> None:
    import asyncio
    import gc

    async def fail() -> None:
        raise RuntimeError("lost")

    task = asyncio.get_running_loop().create_task(fail())
    await asyncio.sleep(0.01)
    del task
    gc.collect()
"""


@pytest.mark.slow
def test_guard_fails_only_unexpected_logged_exceptions(tmp_path: Path) -> None:
    suite_conftest = Path(__file__).parents[1] / "conftest.py"
    (tmp_path / "conftest.py").write_text(suite_conftest.read_text())
    (tmp_path / "test_guarded.py").write_text(TESTS)
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "--rootdir",
            str(tmp_path),
            f"--junitxml={report}",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    failed = {
        case.get("name")
        for case in ET.parse(report).iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    }
    assert failed == {
        "test_logs_unexpected",
        "test_names_another_logger",
        "test_task_exception_never_retrieved",
    }, run.stdout[-3000:]
    assert "app.worker: worker crashed (ValueError('boom'))" in run.stdout
