#!/usr/bin/env python3
"""Does the Kafka broker at HOST:PORT answer a real request?

An open port is not enough: Tansu's storage task can panic and leave a
process that accepts connections and answers nothing useful, or a broker
can be wedged at full CPU. This sends a Metadata request (v1, all topics),
which has to read the broker's storage, and checks that a well-formed
answer naming at least one broker arrives within the timeout.

Standard library only, so `stack status` works before anything is
installed. Exit status: 0 healthy, 1 no or bad answer (reason on stderr).

Usage: broker_probe.py HOST PORT [TIMEOUT_SECONDS]
"""

import socket
import struct
import sys


def metadata_request(correlation_id):
    client_id = b"centile-stack-probe"
    body = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", -1)  # v1: a null topic array means every topic
    return struct.pack(">i", len(body)) + body


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


def probe(host, port, timeout):
    correlation_id = 0x43454E54
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(metadata_request(correlation_id))
        (size,) = struct.unpack(">i", read_exact(sock, 4))
        if size < 8 or size > 64 * 1024 * 1024:
            raise ValueError(f"implausible response size {size}")
        payload = read_exact(sock, size)
    got_id, brokers = struct.unpack(">ii", payload[:8])
    if got_id != correlation_id:
        raise ValueError(f"correlation id {got_id:#x}, expected {correlation_id:#x}")
    if brokers < 1:
        raise ValueError("metadata lists no broker")


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) == 4 else 5.0
    try:
        probe(host, port, timeout)
    except socket.timeout:
        print(f"no metadata answer within {timeout:g}s", file=sys.stderr)
        return 1
    except (OSError, ValueError, struct.error) as e:
        print(f"bad metadata answer: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
