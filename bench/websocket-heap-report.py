#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns one bench/websocket-heap.sh result directory into a Markdown report (stdout).

points.txt: target n heap_histogram_bytes heap_used_bytes rss_bytes instances heap_committed_bytes (the histogram's
total without jdk.internal.vm.FillerElement arrays)
histogram-<target>-<n>.txt: `jcmd <pid> GC.class_histogram` at each point.
The per-connection figure is the slope of the live heap from the first non-zero point to the last (0 → first
holds one-time effects); the class differences use the histograms at those two points.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

out = Path(sys.argv[1])
FLOOR, WEBFLUX, ECM = "reactor-netty", "webflux", "ecm"
points = defaultdict(list)
for line in (out / "points.txt").read_text().splitlines()[1:]:
    if line.strip():
        t, n, heap, used, rss, objs, committed = line.split()
        points[t].append(dict(n=int(n), heap=int(heap), used=int(used), rss=int(rss), objs=int(objs),
                              committed=int(committed)))

LINE = re.compile(r"^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)")


def histogram(target, n):
    classes = {}
    for line in (out / f"histogram-{target}-{n}.txt").read_text().splitlines():
        m = LINE.match(line)
        if m and "FillerElement;" not in m.group(3):  # not objects: filler arrays in unused heap space
            classes[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return classes


def span(target):
    ps = points[target]
    nonzero = [p for p in ps if p["n"] > 0]
    return (nonzero[0] if len(nonzero) > 1 else ps[0]), ps[-1]


def per_connection(target):
    """Class -> (bytes, instances) per connection between the span's two points."""
    a, b = span(target)
    dn = b["n"] - a["n"]
    h0, h1 = histogram(target, a["n"]), histogram(target, b["n"])
    result = {}
    for name in set(h0) | set(h1):
        i0, b0 = h0.get(name, (0, 0))
        i1, b1 = h1.get(name, (0, 0))
        result[name] = ((b1 - b0) / dn, (i1 - i0) / dn)
    return result


def slope(target, key="heap"):
    a, b = span(target)
    return (b[key] - a[key]) / (b["n"] - a["n"])


RULES = [
    ("io.megaphone.", "Megaphone (XmppWebSocketSession, LinkStream, its Outbound, lambdas)"),
    ("reactor.core.", "Reactor operators and sinks"),
    ("reactor.util.", "Reactor operators and sinks"),
    ("reactor.netty.", "Reactor Netty (WebsocketServerOperations, FluxReceive, ...)"),
    ("org.springframework.", "Spring WebFlux (session, exchange, handshake info, headers)"),
    ("io.netty.handler.codec.http.websocketx.", "Netty WebSocket codec"),
    ("io.netty.handler.codec.http.", "Netty HTTP (request kept by the upgrade, headers)"),
    ("io.netty.handler.codec.DefaultHeaders", "Netty HTTP (request kept by the upgrade, headers)"),
    ("[Lio.netty.handler.codec.DefaultHeaders", "Netty HTTP (request kept by the upgrade, headers)"),
    ("io.netty.", "Netty channel, pipeline, contexts"),
    ("[B", "byte[] and String"),
    ("java.lang.String", "byte[] and String"),
    ("java.net.", "java.net socket addresses"),
    ("java.util.concurrent.", "JDK concurrent maps, atomics"),
    ("[Ljava.util.concurrent.", "JDK concurrent maps, atomics"),
]


def category(name):
    for prefix, label in RULES:
        if name.startswith(prefix):
            return label
    return "other JDK objects (maps, lists, arrays, ...)"


def kb(x):
    return f"{x / 1024:,.2f}"


print((out / "machine.txt").read_text().strip().replace("\n", "  \n"))
print()
print("| target | N | live heap (MB) | heap used (MB, jstat) | heap committed (MB) | RSS (MB) | live objects |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t, ps in points.items():
    for p in ps:
        print(f"| {t} | {p['n']:,} | {p['heap'] / 1048576:,.1f} | {p['used'] / 1048576:,.1f} "
              f"| {p['committed'] / 1048576:,.1f} | {p['rss'] / 1048576:,.1f} | {p['objs']:,} |")
print()
print("Per idle WebSocket (slopes; B = bytes, KB = 1024 B):")
print()
print("| target | " + " | ".join(f"{a['n']:,} → {b['n']:,}" for a, b in zip(next(iter(points.values())),
                                                                          next(iter(points.values()))[1:]))
      + " | **live heap, first non-zero → last** | objects | RSS |")
print("|---|" + "---:|" * (len(next(iter(points.values()))) - 1) + "---:|---:|---:|")
for t, ps in points.items():
    steps = " | ".join(f"{(b['heap'] - a['heap']) / (b['n'] - a['n']):,.0f} B" for a, b in zip(ps, ps[1:]))
    print(f"| {t} | {steps} | **{slope(t):,.0f} B ({kb(slope(t))} KB)** | {slope(t, 'objs'):.1f} "
          f"| {kb(slope(t, 'rss'))} KB |")
print()
if FLOOR in points:
    for t in points:
        if t != FLOOR:
            print(f"* {t} / {FLOOR}: **{slope(t) / slope(FLOOR):.2f}×** ({slope(t) - slope(FLOOR):+,.0f} B)")
    if ECM in points and WEBFLUX in points:
        print(f"* {ECM} / {WEBFLUX}: **{slope(ECM) / slope(WEBFLUX):.2f}×** ({slope(ECM) - slope(WEBFLUX):+,.0f} B)")
    print()

per = {t: per_connection(t) for t in points}
for t in points:
    rows = sorted(((b, i, name) for name, (b, i) in per[t].items()), reverse=True)
    print(f"Top classes per connection, {t}:")
    print()
    print("| bytes | instances | class |")
    print("|---:|---:|---|")
    for b, i, name in rows[:20]:
        print(f"| {b:,.1f} | {i:.2f} | `{name}` |")
    print()


def diff(t, base):
    names = set(per[t]) | set(per[base])
    rows = []
    for name in names:
        b1, i1 = per[t].get(name, (0, 0))
        b0, i0 = per[base].get(name, (0, 0))
        rows.append((b1 - b0, i1 - i0, name))
    rows.sort(key=lambda r: -abs(r[0]))
    print(f"Where {t}'s bytes differ from {base}'s, per connection (classes over ±24 B):")
    print()
    print("| bytes | instances | class |")
    print("|---:|---:|---|")
    for b, i, name in rows:
        if abs(b) >= 24:
            print(f"| {b:+,.1f} | {i:+.2f} | `{name}` |")
    cats = defaultdict(lambda: [0.0, 0.0])
    for b, i, name in rows:
        cats[category(name)][0] += b
        cats[category(name)][1] += i
    print()
    print(f"Grouped ({t} minus {base}, per connection):")
    print()
    print("| group | bytes | objects |")
    print("|---|---:|---:|")
    for c, (b, i) in sorted(cats.items(), key=lambda kv: -kv[1][0]):
        print(f"| {c} | {b:+,.0f} | {i:+.1f} |")
    print()


for t, base in ((ECM, FLOOR), (WEBFLUX, FLOOR), (ECM, WEBFLUX)):
    if t in points and base in points:
        diff(t, base)
