"""The bare gRPC reference: a unary echo server in its own process, no proto needed.

`python -m benchmarks.grpc_echo` serves `/bench.Echo/Echo` (bytes in, the same bytes
out) through grpcio's generic handler API on 127.0.0.1 with a thread pool like our
daemons' (32 workers), and prints `PORT <n>` once it listens. `EchoServer` starts it
and gives a client; `EchoServer.call()` is one unary round trip.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures

import grpc

METHOD = "/bench.Echo/Echo"


def _echo(request: bytes, _context: grpc.ServicerContext) -> bytes:
    return request


def serve() -> int:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )  # no (de)serializers: the messages are the raw bytes
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.stop(0.5).wait()
    return 0


class EchoServer:
    """The echo server process and a channel to it; a context manager."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.grpc_echo"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.close()
            raise RuntimeError(f"the echo server did not start: {line}")
        self.address = f"127.0.0.1:{line[1]}"
        self._channel = grpc.insecure_channel(self.address)
        self.call = self._channel.unary_unary(METHOD)
        """`call(payload: bytes, timeout=...) -> bytes`: one unary round trip."""

    def close(self) -> None:
        if hasattr(self, "_channel"):
            self._channel.close()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    raise SystemExit(serve())
