#!/usr/bin/env python3
"""Attacks a running `hallmark serve` the way one anonymous client could, and prints what each
cost the service: status, time to answer, the service's resident memory (RSS) before, at its peak
during, and after, and the latency of an ordinary request made meanwhile.

    scripts/abuse.py --url http://127.0.0.1:8080 --metrics-url http://127.0.0.1:9464 \
        --pid $(pgrep -f 'hallmark serve')

Standard library only. Figures go to docs/reliability.md.
"""

import argparse
import http.client
import json
import socket
import struct
import threading
import time
import urllib.parse
import zlib


def png(width, height, depth=8, row=None):
    """A grey PNG; `row(y)` gives each row's raw bytes (default: a gradient)."""
    bpp = depth // 8

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    comp = zlib.compressobj(6)
    idat = bytearray()
    for y in range(height):
        data = row(y) if row else bytes((x // 16 + y // 32) % 256 for x in range(width)) * bpp
        idat += comp.compress(b"\0" + data)
    idat += comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b"")


class Service:
    def __init__(self, url, pid):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.pid = parts.hostname, parts.port or 80, pid

    def rss_mb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def request(self, method, path, body=None, headers=None, timeout=120):
        started = time.monotonic()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except Exception as error:  # a hang or a reset is a result here
            status, data = type(error).__name__, b""
        finally:
            conn.close()
        return status, time.monotonic() - started, data

    def probe(self):
        """Latency of an ordinary request (readiness) in ms."""
        _, elapsed, _ = self.request("GET", "/healthz", timeout=60)
        return elapsed * 1000


class Peak:
    """Samples the service's RSS every 50 ms while in a `with` block."""

    def __init__(self, service):
        self.service, self.peak, self.stop = service, 0.0, threading.Event()

    def __enter__(self):
        self.before = self.service.rss_mb()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.service.rss_mb())
            time.sleep(0.05)

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()


def report(name, service, attack, settle=2.0):
    with Peak(service) as peak:
        started = time.monotonic()
        outcome = attack()
        elapsed = time.monotonic() - started
    time.sleep(settle)
    after = service.rss_mb()
    probe = service.probe()
    print(
        f"{name:<44} {outcome:<34} {elapsed:7.2f} s  RSS {peak.before:6.0f} -> peak {peak.peak:6.0f} "
        f"-> {after:6.0f} MB  healthz after {probe:6.1f} ms",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--metrics-url", default="http://127.0.0.1:9464",
                        help="the metrics listener (metrics.listen)")
    parser.add_argument("--methods", type=int, default=20000, help="requests with made-up methods")
    args = parser.parse_args()
    service = Service(args.url, args.pid)
    metrics = Service(args.metrics_url, args.pid)
    octet = {"Content-Type": "application/octet-stream"}

    strip = png(16_777_216, 1, row=lambda y: bytes(16_777_216))
    report("lookup 16777216x1 PNG (16 KB)", service,
           lambda: str(service.request("POST", "/v1/lookup", strip, octet)[0]))
    tall = png(1, 16_777_216, row=lambda y: b"\0")
    report("lookup 1x16777216 PNG", service,
           lambda: str(service.request("POST", "/v1/lookup", tall, octet)[0]))
    big = png(4096, 4096)
    report("lookup 4096x4096 PNG", service,
           lambda: str(service.request("POST", "/v1/lookup", big, octet)[0]))
    row16 = bytes((x // 16) % 256 for x in range(4096 * 2))
    big16 = png(4096, 4096, depth=16, row=lambda y: row16)

    def eight_big():
        results = [None] * 8

        def one(i):
            results[i] = service.request("POST", "/v1/lookup", big16, octet)[0]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return "statuses " + ",".join(str(s) for s in results)

    report("8 concurrent 4096x4096 16-bit PNG lookups", service, eight_big)

    def never_arrives():
        sock = socket.create_connection((service.host, service.port))
        sock.settimeout(120)
        sock.sendall(b"POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
        answer = sock.recv(4096).split(b"\r\n")[0].decode()
        sock.close()
        return answer

    report("Content-Length 10^10, no body", service, never_arrives)

    def trickle(count=100, size=10 * 1024 * 1024 - 1):
        socks, statuses = [], {}
        chunk = b"\0" * (1 << 20)
        probes = []
        for _ in range(count):
            sock = socket.create_connection((service.host, service.port))
            sock.settimeout(120)
            sock.sendall(f"POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
            socks.append(sock)
        # Everything but the last byte, then wait.
        for sock in socks:
            try:
                sent = 0
                while sent < size - 1:
                    n = min(len(chunk), size - 1 - sent)
                    sock.sendall(chunk[:n])
                    sent += n
            except OSError:
                pass
        probes.append(service.probe())
        for sock in socks:
            try:
                status = sock.recv(4096).split(b"\r\n")[0].decode().split(" ")[1]
            except (OSError, IndexError):
                status = "closed"
            statuses[status] = statuses.get(status, 0) + 1
            sock.close()
        return f"{statuses} healthz during {probes[0]:.0f} ms"

    report("100 lookups of 10 MB - 1 byte, stalled", service, trickle)

    def methods():
        for n in range(args.methods):
            service.request(f"ZQX{n}", "/healthz")
        status, _, body = metrics.request("GET", "/metrics")
        return f"/metrics {len(body) / 1024:.0f} KB"

    report(f"{args.methods} requests with made-up methods", service, methods)

    def slowloris(count=500):
        socks = []
        for _ in range(count):
            try:
                sock = socket.create_connection((service.host, service.port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                socks.append(sock)
            except OSError:
                break
        during = [service.probe() for _ in range(5)]
        for sock in socks:
            sock.close()
        return f"{len(socks)} conns, healthz {max(during):.0f} ms max"

    report("500 slowloris connections", service, slowloris)

    boundary = "x" * 16
    parts = "".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{n}\"\r\n\r\nx\r\n" for n in range(10_000)
    ) + f"--{boundary}--\r\n"
    report("multipart with 10^4 fields", service,
           lambda: str(service.request("POST", "/v1/lookup", parts.encode(),
                                       {"Content-Type": f"multipart/form-data; boundary={boundary}"})[0]))
    nested = "[" * 100_000 + "]" * 100_000
    report("nested JSON (10^5 levels), no key", service,
           lambda: str(service.request("POST", "/v1/generations", nested, {"Content-Type": "application/json"})[0]))
    print(json.dumps({"rss_end_mb": service.rss_mb()}))


if __name__ == "__main__":
    main()
