"""A real redis-server for tests, and a TCP relay in front of it that freezes at a chosen write.

RedisServer: a free loopback port and a folder of its own; `kill()` is SIGKILL, `start()` again
reuses the port and, when persistent, the append-only file. Where redis-server is missing the
calling test skips naming the package (helpers.programs).

FreezingRelay: the clients' bytes pass until the Nth EXEC (datasketch commits each band table's
buffer with its own MULTI/EXEC, so N picks a point inside the index writes); from then on they are
held back, so the client waits as on a hung server, alive and mid-index.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers.programs import require_program

redis = pytest.importorskip("redis")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port with its own folder; `kill()` is SIGKILL and
    `start()` again reuses the port and, when `persistent`, the append-only file (fsync always)."""

    def __init__(self, folder: Path, persistent: bool):
        self.folder, self.persistent, self.port = folder, persistent, free_port()
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> RedisServer:
        args = [
            require_program("redis-server"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port)


class FreezingRelay:
    """A TCP relay to redis-server that stops passing the clients' bytes at the Nth EXEC.

    After the freeze, the client waiting for that EXEC's reply waits until the server goes away;
    the relay then closes the client's connection, as the server's own socket would have been."""

    EXEC = b"$4\r\nEXEC\r\n"  # the RESP encoding of the command

    def __init__(self, upstream_port: int, freeze_at_exec: int | None):
        self.upstream_port, self.freeze_at = upstream_port, freeze_at_exec
        self.execs = 0
        self.frozen = threading.Event()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def disarm(self) -> None:
        with self.lock:
            self.freeze_at = None
            self.frozen.clear()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:  # the server is down: refuse, as it would
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _freezes(self, data: bytes, tail: bytes) -> bool:
        with self.lock:
            if self.frozen.is_set():
                return True
            if self.freeze_at is not None:
                self.execs += (tail + data).count(self.EXEC)
                if self.execs >= self.freeze_at:
                    self.frozen_at = time.monotonic()
                    self.frozen.set()
                    return True
            return False

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        tail = b""
        try:
            while data := src.recv(1 << 16):
                if from_client and self._freezes(data, tail):
                    continue  # held back: never reaches the server
                tail = data[-(len(self.EXEC) - 1) :]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
