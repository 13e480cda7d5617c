#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where do the byte[] and String objects of a heap dump hang? A small HPROF reader for the held-request
benchmark (bench/held-requests.sh with HEAP_DUMP=1), no dependencies.

    python3 bench/hprof-referrers.py heap-16000.hprof [min_count]

For every byte[] and java.lang.String it finds the class of an object that references it (the first
referrer seen), then prints the groups (referrer class, byte[] length) with at least min_count members
(default 1000), with the content of one member, so per-request arrays and strings can be told apart from
the constant ones.
"""
import mmap
import struct
import sys
from collections import Counter, defaultdict

path = sys.argv[1]
min_count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
extra = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else set()  # more classes to attribute, with a chain

f = open(path, "rb")
mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
header_end = mm.find(b"\0") + 1
id_size = struct.unpack_from(">I", mm, header_end)[0]
assert id_size == 8, "expects 8-byte ids"
pos0 = header_end + 4 + 8
ID = ">Q"
TYPE_SIZE = {2: 8, 4: 1, 5: 2, 6: 4, 7: 8, 8: 1, 9: 2, 10: 4, 11: 8}

strings = {}
class_name = {}


def records():
    pos = pos0
    end = len(mm)
    while pos < end:
        tag = mm[pos]
        length = struct.unpack_from(">I", mm, pos + 5)[0]
        yield tag, pos + 9, length
        pos += 9 + length


def subrecords(start, length):
    pos = start
    end = start + length
    while pos < end:
        t = mm[pos]
        pos += 1
        if t == 0xFF or t == 0x05 or t == 0x07:
            pos += 8
        elif t == 0x01:
            pos += 16
        elif t in (0x02, 0x03, 0x08):
            pos += 16
        elif t in (0x04, 0x06):
            pos += 12
        elif t == 0x20:
            cid = struct.unpack_from(ID, mm, pos)[0]
            sup = struct.unpack_from(ID, mm, pos + 12)[0]
            p = pos + 8 + 4 + 8 * 6 + 4
            ncp = struct.unpack_from(">H", mm, p)[0]
            p += 2
            for _ in range(ncp):
                ty = mm[p + 2]
                p += 3 + TYPE_SIZE[ty]
            nst = struct.unpack_from(">H", mm, p)[0]
            p += 2
            for _ in range(nst):
                ty = mm[p + 8]
                p += 9 + TYPE_SIZE[ty]
            nf = struct.unpack_from(">H", mm, p)[0]
            p += 2
            fields = []
            for _ in range(nf):
                fields.append(mm[p + 8])
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


classes = {}
byte_arrays = {}  # id -> (offset, length)
string_ids = set()
string_value = {}  # String id -> byte[] id
# pass 1: names, classes, byte arrays
for tag, start, length in records():
    if tag == 0x01:
        sid = struct.unpack_from(ID, mm, start)[0]
        strings[sid] = mm[start + 8:start + length].decode("utf-8", "replace")
    elif tag == 0x02:
        cid, nid = struct.unpack_from(">IQIQ", mm, start)[1], struct.unpack_from(">IQIQ", mm, start)[3]
        class_name[cid] = strings.get(nid, "?").replace("/", ".")
    elif tag in (0x0C, 0x1C):
        for t, rec in subrecords(start, length):
            if t == 0x20:
                cid, sup, fields = rec
                classes[cid] = (sup, fields)
            elif t == 0x23 and rec[1] == 8:
                byte_arrays[rec[0]] = (rec[2], rec[3])

layout_cache = {}


def layout(cid):
    """Field types of an instance of cid, in dump order (the class's own fields, then its superclasses')."""
    if cid in layout_cache:
        return layout_cache[cid]
    out = []
    c = cid
    while c and c in classes:
        sup, fields = classes[c]
        out.extend(fields)
        c = sup
    layout_cache[cid] = out
    return out


string_cid = next(c for c, n in class_name.items() if n == "java.lang.String")
referrer = {}
owner = {}  # object id -> id of the first object seen referencing it
instance_class = {}  # object id -> class name, for the classes in `extra` and their chains
# pass 2: who references the byte arrays and strings
for tag, start, length in records():
    if tag not in (0x0C, 0x1C):
        continue
    for t, rec in subrecords(start, length):
        if t == 0x21:
            oid, cid, p, n = rec
            if cid == string_cid:
                string_ids.add(oid)
            name = class_name.get(cid, "?")
            if extra:
                instance_class[oid] = name
            for ty in layout(cid):
                if ty == 2:
                    ref = struct.unpack_from(ID, mm, p)[0]
                    if ref and ref not in referrer:
                        referrer[ref] = name
                        owner[ref] = oid
                    if cid == string_cid and ref in byte_arrays:
                        string_value[oid] = ref
                p += TYPE_SIZE[ty]
        elif t == 0x22:
            oid, cid, p, n = rec
            name = class_name.get(cid, "?")
            if extra:
                instance_class[oid] = name
            for i in range(n):
                ref = struct.unpack_from(ID, mm, p + 8 * i)[0]
                if ref and ref not in referrer:
                    referrer[ref] = name

def array_bytes(n):
    return (16 + n + 7) // 8 * 8  # byte[] with a 16-byte header (12 with compact headers: an upper bound)


groups = defaultdict(list)  # (kind, referrer class) -> [(id, length)]
for bid, (off, n) in byte_arrays.items():
    ref = referrer.get(bid, "(root or unknown)")
    if ref != "java.lang.String":  # those are counted with their String
        groups[("byte[]", ref)].append((bid, n))
for sid in string_ids:
    value = string_value.get(sid)
    n = byte_arrays[value][1] if value else 0
    groups[("String", referrer.get(sid, "(root or unknown)"))].append((sid, n))


def sample(kind, oid):
    bid = oid if kind == "byte[]" else string_value.get(oid)
    if bid is None:
        return ""
    off, n = byte_arrays[bid]
    return repr(bytes(mm[off:off + min(n, 48)]))[2:-1]


print("Groups of byte[] and String (a String counted with its byte[]: 24 + array bytes) by the class that")
print(f"references them, at least {min_count} members; bytes assume 16-byte array headers.")
print()
print(f"{'count':>8} {'kind':6} {'len':>9} {'bytes':>10}  referrer class | one sample")
for (kind, ref), members in sorted(groups.items(), key=lambda g: -len(g[1])):
    if len(members) < min_count:
        continue
    lens = [n for _, n in members]
    total = sum(array_bytes(n) + (24 if kind == "String" else 0) for n in lens)
    span = f"{min(lens)}-{max(lens)}" if min(lens) != max(lens) else str(lens[0])
    print(f"{len(members):8d} {kind:6} {span:>9} {total:10d}  {ref} | {sample(kind, members[0][0])}")

if extra:
    print()
    print("Reference chains (first referrer, up to 5 levels) of the classes asked for:")
    chains = Counter()
    for oid, name in instance_class.items():
        if name in extra:
            chain = [name]
            o = oid
            for _ in range(5):
                o = owner.get(o)
                if o is None:
                    break
                chain.append(instance_class.get(o, "?"))
            chains[" <- ".join(chain)] += 1
    for chain, count in chains.most_common():
        if count >= min_count:
            print(f"{count:8d}  {chain}")
