#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns one bench/held-requests.sh result directory into a Markdown report (stdout).

points.txt: n heap_histogram_bytes heap_used_bytes rss_bytes rss_anon_bytes instances
histogram-<n>.txt: `jcmd <pid> GC.class_histogram` at each point.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

out = Path(sys.argv[1])
rows = [line.split() for line in (out / "points.txt").read_text().splitlines()[1:] if line.strip()]
points = [dict(n=int(r[0]), heap=int(r[1]), used=int(r[2]), rss=int(r[3]), anon=int(r[4]), objs=int(r[5]),
               committed=int(r[6]) if len(r) > 6 else 0) for r in rows]
for p in points:
    p["native"] = p["rss"] - p["committed"]  # RSS outside the Java heap (if the committed heap is all touched)

def kb(x):
    return f"{x / 1024:,.1f}"

def mb(x):
    return f"{x / 1048576:,.1f}"

print((out / "machine.txt").read_text().strip().replace("\n", "  \n"))
print()
print("| held N | live heap (MB, class histogram) | heap used (MB, jstat) | heap committed (MB) | RSS (MB) "
      "| RSS anon (MB) | RSS − committed heap (MB) | live objects |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in points:
    print(f"| {p['n']:,} | {mb(p['heap'])} | {mb(p['used'])} | {mb(p['committed'])} | {mb(p['rss'])} | {mb(p['anon'])} "
          f"| {mb(p['native'])} | {p['objs']:,} |")
print()
print("Slopes, per held request (KB = 1024 bytes):")
print()
print("| from → to | live heap KB | heap used KB | heap committed KB | RSS KB | RSS anon KB | RSS − committed heap KB "
      "| objects |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
pairs = list(zip(points, points[1:]))
if len(points) > 2:
    pairs.append((points[1], points[-1]))
for a, b in pairs:
    dn = b["n"] - a["n"]
    if dn <= 0:
        continue
    d = {k: (b[k] - a[k]) / dn for k in ("heap", "used", "committed", "rss", "anon", "native", "objs")}
    print(f"| {a['n']:,} → {b['n']:,} | {kb(d['heap'])} | {kb(d['used'])} | {kb(d['committed'])} | {kb(d['rss'])} "
          f"| {kb(d['anon'])} | {kb(d['native'])} | {d['objs']:.1f} |")

LINE = re.compile(r"^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)")

def histogram(n):
    classes = {}
    for line in (out / f"histogram-{n}.txt").read_text().splitlines():
        m = LINE.match(line)
        if m:
            classes[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return classes

RULES = [
    ("reactor.core.", "Reactor operators (WebFlux's filter, exception-handler and dispatcher chain; the body join)"),
    ("reactor.util.", "Reactor operators (WebFlux's filter, exception-handler and dispatcher chain; the body join)"),
    ("org.springframework.", "Spring WebFlux exchange (request, response, exchange, lambdas of its chain)"),
    ("io.megaphone.", "megaphone objects (HeldRequest, PendingRequest, RequestEnvelope, RequestDeadline; arrays under byte[])"),
    ("reactor.netty.", "Reactor Netty HTTP server (HttpServerOperations, HttpTrafficHandler, ConnectionInfo...)"),
    ("io.netty.handler.codec.http.", "Netty HTTP codec, request/response and headers"),
    ("io.netty.handler.codec.DefaultHeaders", "Netty HTTP codec, request/response and headers"),
    ("[Lio.netty.handler.codec.DefaultHeaders", "Netty HTTP codec, request/response and headers"),
    ("io.netty.", "Netty channel, pipeline, contexts, recv allocator, futures"),
    ("[B", "byte[] and String (bench/hprof-referrers.py tells whose)"),
    ("java.lang.String", "byte[] and String (bench/hprof-referrers.py tells whose)"),
    ("java.net.", "java.net socket addresses (local and remote)"),
    ("java.util.concurrent.ConcurrentHashMap", "JDK maps (the exchange's attributes and other per-request maps)"),
    ("[Ljava.util.concurrent.ConcurrentHashMap", "JDK maps (the exchange's attributes and other per-request maps)"),
]


def category(name):
    for prefix, label in RULES:
        if name.startswith(prefix):
            return label
    return "other (JDK collections, arrays, ...)"


first, last = points[0], points[-1]
if last["n"] > first["n"]:
    h0, h1 = histogram(first["n"]), histogram(last["n"])
    dn = last["n"] - first["n"]
    deltas = []
    for name in set(h0) | set(h1):
        i0, b0 = h0.get(name, (0, 0))
        i1, b1 = h1.get(name, (0, 0))
        deltas.append(((b1 - b0) / dn, (i1 - i0) / dn, name))
    deltas.sort(reverse=True)
    print()
    print(f"Top classes per held request (class histogram at {last['n']:,} minus at {first['n']:,}, divided by {dn:,}):")
    print()
    print("| bytes / held request | instances / held request | class |")
    print("|---:|---:|---|")
    shown = 0
    for b, i, name in deltas[:20]:
        print(f"| {b:,.1f} | {i:.2f} | `{name}` |")
        shown += b
    total = (last["heap"] - first["heap"]) / dn
    print(f"| {shown:,.1f} | | (these 20 classes; all classes: {total:,.1f}) |")
    cats = defaultdict(lambda: [0.0, 0.0])
    for b, i, name in deltas:
        c = category(name)
        cats[c][0] += b
        cats[c][1] += i
    print()
    print("The same difference grouped by where the classes come from (bytes / held request):")
    print()
    print("| group | bytes | objects |")
    print("|---|---:|---:|")
    for c, (b, i) in sorted(cats.items(), key=lambda kv: -kv[1][0]):
        print(f"| {c} | {b:,.0f} | {i:.1f} |")
    print()
    print(f"Top 15 lines of the class histogram at {last['n']:,} held:")
    print()
    print("```")
    lines = (out / f"histogram-{last['n']}.txt").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip().startswith("num"))
    print("\n".join(lines[start:start + 17]))
    print([l for l in lines if l.startswith("Total")][0])
    print("```")
