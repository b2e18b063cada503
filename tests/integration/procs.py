"""Child processes of the integration tests (imagegen serve / worker, moto_server,
aws-lambda-rie): started with their output in a log file, waited for until they answer, read
back as JSON log lines, and stopped with SIGTERM (then SIGKILL). Plain helpers, no fixtures, so
conftest.py, the plugins and the test modules can all import them."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=60, interval=0.05, what="condition"):
    """Calls predicate until it returns something truthy, and returns that."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Child:
    """One child process whose stdout and stderr go to `log_path`."""

    def __init__(self, argv, log_path, env=None, cwd=None, inherit_env=True):
        full_env = dict(os.environ) if inherit_env else {}
        full_env.update(env or {})
        self.log_path = pathlib.Path(log_path)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(a) for a in argv], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=full_env, cwd=cwd)

    def wait_ready(self, probe, what, timeout=60):
        """Waits until probe() is truthy; connection errors count as not yet. Raises, with the
        log, if the process exits first or the time runs out."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited {self.proc.returncode}: {self.logs()}")
            try:
                if probe():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{what} did not become ready in {timeout}s: {self.logs()}")

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def json_lines(self):
        """The log's JSON lines (structured logs), skipping any other output."""
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode
