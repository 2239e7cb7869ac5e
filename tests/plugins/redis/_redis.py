"""A real redis-server (and a 3-master Cluster) started from the installed binary."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "need_redis"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_redis() -> str:
    """The redis-server binary; without it the test fails under CI=true, else is skipped."""
    path = shutil.which("redis-server")
    if path is None:
        msg = "redis-server is not installed (scripts/test installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _ping(s: socket.socket) -> bytes:
    s.sendall(b"PING\r\n")
    return s.recv(16)


class RedisServer:
    """One redis-server on a free port, in a directory of its own; can be stopped and started
    again on the same port (a restart)."""

    def __init__(self, *extra: str, port: int | None = None, tls: bool = False) -> None:
        self.binary = need_redis()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmplug-redis-"))
        self.extra = extra
        #: TLS only (``rediss://``), with a self-signed certificate for 127.0.0.1 (``ca``).
        self.tls = tls
        self.ca = self.dir / "cert.pem"
        if tls:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", str(self.dir / "key.pem"), "-out", str(self.ca), "-days", "2",
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                capture_output=True, check=True, timeout=60,
            )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for attempt in range(3):
            try:
                self._start()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
                # The free port was taken meanwhile (another process's ephemeral port).
                self.port = free_port()
        return self

    def _start(self) -> None:
        log = open(self.dir / "redis.log", "wb")  # noqa: SIM115 (the server holds it)
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.dir / "cert.pem"),
                "--tls-key-file", str(self.dir / "key.pem"),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
            ]  # fmt: skip
        self.proc = subprocess.Popen(
            [
                self.binary,
                *ports,
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--enable-debug-command", "yes",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.wait_ready()

    def wait_ready(self, limit: float = 10.0) -> None:
        """Until it answers PING (the server's own readiness: nothing else to wait on)."""
        deadline = time.monotonic() + limit
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                    if self.tls:
                        tls = ssl.create_default_context(cafile=self.ca)
                        with tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                            answer = _ping(s)
                    else:
                        answer = _ping(raw)
                if answer.startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            exited = self.proc is not None and self.proc.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = (self.dir / "redis.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server on port {self.port} did not start: {tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            check=True,
            timeout=30,
        )
        return out.stdout.decode()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three masters, no replicas, slots spread by redis-cli."""

    def __init__(self) -> None:
        self.nodes = [RedisServer("--cluster-enabled", "yes") for _ in range(3)]

    def start(self) -> RedisCluster:
        for n in self.nodes:
            n.extra = (*n.extra, "--cluster-config-file", str(n.dir / "nodes.conf"))
            n.start()
        subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not all("cluster_state:ok" in n.cli("cluster", "info") for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def close(self) -> None:
        for n in self.nodes:
            n.close()
