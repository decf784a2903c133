"""Child processes of the demo, each in its own process group with its log in a file.

Every child gets a new session (so a Ctrl-C in the terminal reaches only the demo, which
then stops the children in order) and writes stdout and stderr to ``logs/<name>.log``
in the run folder. :meth:`Child.stop` sends SIGTERM to the whole group, waits, then
SIGKILLs what is left, so nothing outlives the demo.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

__all__ = ["Child", "ChildError"]


class ChildError(RuntimeError):
    """A child process could not be started or died when it should not have."""


@dataclass
class Child:
    """One named child process (see the module docstring)."""

    name: str
    argv: Sequence[str]
    log_path: Path
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """The process id while started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has ended."""
        return None if self._proc is None else self._proc.poll()

    def start(self) -> None:
        """Start the process in a new session, output appended to :attr:`log_path`."""
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # closed in stop()
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self._proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise ChildError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc
        log.info("started %s (pid %d), log %s", self.name, self._proc.pid, self.log_path)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL; return the status."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self._signal_group(signal.SIGKILL)
                proc.wait(timeout)
        # Whatever the leader left behind in its group goes too.
        self._signal_group(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        code = proc.returncode
        log.info("%s stopped (status %s)", self.name, code)
        return code

    def wait_gone(self, timeout: float) -> bool:
        """Wait until the process has exited; True if it has."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.running

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the child's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
