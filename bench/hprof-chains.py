#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Who holds the objects of a class in a heap dump: the chains of referrers (class.field), grouped and counted.
A small HPROF reader for the memory benchmarks (bench/websocket-heap.sh, bench/held-requests.sh with HEAP_DUMP=1),
no dependencies.

    python3 bench/hprof-chains.py heap.hprof CLASS[,CLASS...] [depth] [min_count]

CLASS is a class name as the class histogram prints it (e.g. `[Ljava.lang.Object;`, `reactor.core.publisher.
SinkManyUnicast`); each instance is followed up its first referrer `depth` times (default 6), and the chains with at
least min_count instances (default 100) are printed, most frequent first. An object array's element shows as
`[i]`. The first referrer is the first one the dump lists: good enough to tell per-connection objects apart.
"""
import mmap
import struct
import sys
from collections import Counter

path, targets = sys.argv[1], sys.argv[2].split(",")
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 6
min_count = int(sys.argv[4]) if len(sys.argv) > 4 else 100

f = open(path, "rb")
mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
header_end = mm.find(b"\0") + 1
assert struct.unpack_from(">I", mm, header_end)[0] == 8, "expects 8-byte ids"
pos0 = header_end + 4 + 8
TYPE_SIZE = {2: 8, 4: 1, 5: 2, 6: 4, 7: 8, 8: 1, 9: 2, 10: 4, 11: 8}
PRIM = {4: "[Z", 5: "[C", 6: "[F", 7: "[D", 8: "[B", 9: "[S", 10: "[I", 11: "[J"}


def records():
    pos, end = pos0, len(mm)
    while pos < end:
        tag = mm[pos]
        length = struct.unpack_from(">I", mm, pos + 5)[0]
        yield tag, pos + 9, length
        pos += 9 + length


def subrecords(start, length):
    pos, end = start, start + length
    while pos < end:
        t = mm[pos]
        pos += 1
        if t in (0xFF, 0x05, 0x07):
            pos += 8
        elif t in (0x01, 0x02, 0x03, 0x08):
            pos += 16
        elif t in (0x04, 0x06):
            pos += 12
        elif t == 0x20:
            cid = struct.unpack_from(">Q", mm, pos)[0]
            sup = struct.unpack_from(">Q", mm, pos + 12)[0]
            p = pos + 8 + 4 + 8 * 6 + 4
            ncp = struct.unpack_from(">H", mm, p)[0]
            p += 2
            for _ in range(ncp):
                p += 3 + TYPE_SIZE[mm[p + 2]]
            nst = struct.unpack_from(">H", mm, p)[0]
            p += 2
            for _ in range(nst):
                p += 9 + TYPE_SIZE[mm[p + 8]]
            nf = struct.unpack_from(">H", mm, p)[0]
            p += 2
            fields = []
            for _ in range(nf):
                fields.append((struct.unpack_from(">Q", mm, p)[0], mm[p + 8]))
                p += 9
            yield t, (cid, sup, fields)
            pos = p
        elif t == 0x21:
            oid, _, cid, n = struct.unpack_from(">QIQI", mm, pos)
            yield t, (oid, cid, pos + 24, n)
            pos += 24 + n
        elif t == 0x22:
            oid, _, n, cid = struct.unpack_from(">QIIQ", mm, pos)
            yield t, (oid, cid, pos + 24, n)
            pos += 24 + 8 * n
        elif t == 0x23:
            oid, _, n, ty = struct.unpack_from(">QIIB", mm, pos)
            yield t, (oid, ty, pos + 17, n)
            pos += 17 + TYPE_SIZE[ty] * n
        else:
            raise ValueError(f"unknown sub-record 0x{t:02x} at {pos - 1}")


strings, class_name, classes = {}, {}, {}
for tag, start, length in records():
    if tag == 0x01:
        strings[struct.unpack_from(">Q", mm, start)[0]] = mm[start + 8:start + length].decode("utf-8", "replace")
    elif tag == 0x02:
        _, cid, _, nid = struct.unpack_from(">IQIQ", mm, start)
        class_name[cid] = strings.get(nid, "?").replace("/", ".")
    elif tag in (0x0C, 0x1C):
        for t, rec in subrecords(start, length):
            if t == 0x20:
                cid, sup, fields = rec
                classes[cid] = (sup, [(strings.get(n, "?"), ty) for n, ty in fields])

layout_cache = {}


def layout(cid):
    if cid not in layout_cache:
        out, c = [], cid
        while c and c in classes:
            out.extend(classes[c][1])
            c = classes[c][0]
        layout_cache[cid] = out
    return layout_cache[cid]


def array_name(cid):
    n = class_name.get(cid, "?")
    return n if n.startswith("[") else "[L" + n + ";"


kind = {}      # object id -> class name
referrer = {}  # object id -> (referrer id, field or index)
for tag, start, length in records():
    if tag not in (0x0C, 0x1C):
        continue
    for t, rec in subrecords(start, length):
        if t == 0x21:
            oid, cid, p, _ = rec
            kind[oid] = class_name.get(cid, "?")
            for name, ty in layout(cid):
                if ty == 2:
                    ref = struct.unpack_from(">Q", mm, p)[0]
                    if ref and ref not in referrer:
                        referrer[ref] = (oid, name)
                p += TYPE_SIZE[ty]
        elif t == 0x22:
            oid, cid, p, n = rec
            kind[oid] = array_name(cid) + f"({n})"
            for i in range(n):
                ref = struct.unpack_from(">Q", mm, p + 8 * i)[0]
                if ref and ref not in referrer:
                    referrer[ref] = (oid, "[]")
        elif t == 0x23:
            oid, ty, _, n = rec
            kind[oid] = PRIM[ty] + f"({n})"

chains = {target: Counter() for target in targets}
for oid, name in kind.items():
    base = name.split("(")[0]
    if base not in chains:
        continue
    parts, cur = [name], oid
    for _ in range(depth):
        up = referrer.get(cur)
        if up is None:
            parts.append("(root)")
            break
        cur, field = up
        parts.append(f"{kind.get(cur, '?')}.{field}")
    chains[base][" <- ".join(parts)] += 1
for target in targets:
    print(f"{target}:")
    for chain, count in chains[target].most_common():
        if count >= min_count:
            print(f"{count:8d}  {chain}")
