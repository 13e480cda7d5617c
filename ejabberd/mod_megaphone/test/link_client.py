#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A tiny megaphone link client (docs/protocol.md, client side) and a live
check of mod_megaphone inside a running ejabberd.

    python3 link_client.py [--ctl DIR] HOST:PORT SECRET DOMAIN [USER PASSWORD]

Each check prints one 'ok' / 'FAIL' line; the exit status is the number of
failures. With USER/PASSWORD (registered beforehand) it also logs a user in
over BOSH through the link, from the client address 203.0.113.7:40000.
With --ctl DIR (an instance of scripts/private-ejabberd.sh) it also checks
ejabberd's side through `private-ejabberd.sh ctl DIR megaphone_stats`: the
refused handshakes are counted, and only real calls into ejabberd count
as requests. Nothing else may use the instance meanwhile.
Standard library only.
"""
import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

HELLO, AUTH, WELCOME = 0x01, 0x02, 0x03
REQUEST, RESPONSE, CANCEL = 0x10, 0x11, 0x12
PING, PONG, GOAWAY, ERROR = 0x20, 0x21, 0x30, 0x3F
NS = "http://jabber.org/protocol/httpbind"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                      "scripts", "private-ejabberd.sh")


class Closed(Exception):
    pass


class Link:
    def __init__(self, addr, timeout=30):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.lock = threading.Lock()

    def send(self, ftype, payload=b""):
        data = bytes([ftype]) + payload
        with self.lock:
            self.sock.sendall(struct.pack(">I", len(data)) + data)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed()
            buf += chunk
        return buf

    def recv(self):
        (length,) = struct.unpack(">I", self._read(4))
        data = self._read(length)
        return data[0], data[1:]

    def handshake(self, secret, name=b"link-client"):
        ftype, p = self.recv()
        assert ftype == HELLO and p[:4] == b"MGPH" and p[4] == 1 and p[5] == 1, p
        server_nonce = p[6:38]
        client_nonce = os.urandom(32)
        mac = hmac.new(secret, b"megaphone-auth" + b"\x01" + server_nonce + client_nonce + name,
                       hashlib.sha256).digest()
        self.send(AUTH, b"\x01" + client_nonce + mac + bytes([len(name)]) + name)
        ftype, p = self.recv()
        if ftype != WELCOME:
            return ftype, p
        expect = hmac.new(secret, b"megaphone-welcome" + b"\x01" + client_nonce + server_nonce,
                          hashlib.sha256).digest()
        assert hmac.compare_digest(p[:32], expect), "welcome mac"
        max_frame, max_inflight, hb = struct.unpack(">III", p[32:44])
        node = p[45:45 + p[44]].decode()
        self.welcome = dict(max_frame=max_frame, max_inflight=max_inflight, heartbeat_ms=hb, node=node)
        return ftype, p

    def request(self, rid_id, body, sid=b"", rid=0, ip=(203, 0, 113, 7), port=40000):
        payload = (struct.pack(">IQ", rid_id, rid) + bytes([len(sid)]) + sid +
                   bytes([4]) + bytes(ip) + struct.pack(">H", port) + body)
        self.send(REQUEST, payload)

    def response(self):
        while True:
            ftype, p = self.recv()
            if ftype == RESPONSE:
                rid_id, status, ctlen = struct.unpack(">IHB", p[:7])
                return rid_id, status, p[7:7 + ctlen].decode(), p[7 + ctlen:]
            if ftype == ERROR:
                raise AssertionError("ERROR %r" % (p,))

    def closed_after(self, timeout=5):
        """Reads until EOF; returns the frames seen before it."""
        self.sock.settimeout(timeout)
        frames = []
        try:
            while True:
                frames.append(self.recv())
        except (Closed, ConnectionResetError):
            return frames
        except socket.timeout:
            frames.append(("timeout", b""))
            return frames

    def close(self):
        self.sock.close()


FAILURES = 0


def check(name, cond, detail=""):
    global FAILURES
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  -- %s" % (detail,)))
    if not cond:
        FAILURES += 1


def attr(body, name):
    m = re.search(rb"\b" + name + rb"=['\"]([^'\"]*)['\"]", body)
    return m.group(1) if m else None


def stats(ctl_dir):
    """megaphone_stats of the instance in ctl_dir, as {name: value}."""
    out = subprocess.run([SCRIPT, "ctl", ctl_dir, "megaphone_stats"], check=True,
                         capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split("\t") for line in out.splitlines() if line)}


def delta(before, after):
    """How the *_total counters moved (the gauges move with unrelated held requests)."""
    return {k: after[k] - before[k] for k in after
            if k.endswith("_total") and after[k] != before.get(k)}


def create_session(link, domain, rid, wait=10):
    body = ("<body rid='%d' to='%s' xml:lang='en' wait='%d' hold='1' ver='1.6' xmlns='%s' "
            "xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>" % (rid, domain, wait, NS)).encode()
    link.request(1, body, rid=0)
    return link.response()


def main():
    args = sys.argv[1:]
    ctl_dir = None
    if "--ctl" in args:
        i = args.index("--ctl")
        ctl_dir = args[i + 1]
        del args[i:i + 2]
    addr, secret, domain = args[0], args[1].encode(), args[2]
    user = args[3] if len(args) > 4 else None
    password = args[4] if len(args) > 4 else None

    # 1. handshake with the right secret
    a = Link(addr)
    ftype, p = a.handshake(secret, b"ecm-test")
    check("handshake with the right secret gets a verified WELCOME", ftype == WELCOME, (ftype, p))
    print("     welcome:", a.welcome)

    # 2. session creation
    rid = 1000
    rid_id, status, ct, body = create_session(a, domain, rid)
    sid = attr(body, b"sid")
    check("session-create REQUEST gets RESPONSE 200 with a sid",
          rid_id == 1 and status == 200 and sid, (status, ct, body))
    check("RESPONSE carries ejabberd's content type", ct == "text/xml; charset=utf-8", ct)

    # 3. PING / PONG
    a.send(PING, b"\x00\x00\x00\x00\x00\x00\x00\x2a")
    ftype, p = a.recv()
    check("PING is answered by PONG with the same 8 bytes", ftype == PONG and p == b"\x00" * 7 + b"\x2a", (ftype, p))

    # 4. de-duplication: the same (sid, rid) on two links runs once, answers both
    b = Link(addr)
    b.handshake(secret, b"ecm-test-2")
    held = ("<body rid='%d' sid='%s' xmlns='%s'/>" % (rid + 1, sid.decode(), NS)).encode()
    a.request(2, held, sid=sid, rid=rid + 1)
    time.sleep(0.3)
    b.request(77, held, sid=sid, rid=rid + 1)
    time.sleep(0.3)
    # the next rid makes ejabberd (hold=1) answer the held one at once
    nxt = ("<body rid='%d' sid='%s' xmlns='%s'/>" % (rid + 2, sid.decode(), NS)).encode()
    a.request(3, nxt, sid=sid, rid=rid + 2)
    ra = a.response()
    rb = b.response()
    check("a re-sent copy on another link gets the same RESPONSE (one call into ejabberd)",
          ra[0] == 2 and rb[0] == 77 and ra[1:] == rb[1:] and ra[1] == 200, (ra, rb))

    # 5. CANCEL the held rid+2, then re-send it on b: ejabberd answers it again
    a.send(CANCEL, struct.pack(">I", 3))
    time.sleep(0.2)
    a.request(4, ("<body rid='%d' sid='%s' xmlns='%s'/>" % (rid + 3, sid.decode(), NS)).encode(),
              sid=sid, rid=rid + 3)
    r = a.response()
    check("after CANCEL, only the new request's RESPONSE arrives (id 3 is silent)", r[0] in (4,), r)

    # 6. a REQUEST whose id is in flight: ERROR protocol_error + close
    a.request(9, ("<body rid='%d' sid='%s' xmlns='%s'/>" % (rid + 4, sid.decode(), NS)).encode(),
              sid=sid, rid=rid + 4)
    a.request(9, ("<body rid='%d' sid='%s' xmlns='%s'/>" % (rid + 5, sid.decode(), NS)).encode(),
              sid=sid, rid=rid + 5)
    frames = a.closed_after()
    check("a REQUEST with an id in flight gets ERROR protocol_error, then close",
          any(f[0] == ERROR and f[1][:2] == b"\x00\x01" for f in frames), frames)
    a.close()

    # 7. GOAWAY from the client: a crossing REQUEST gets 503, requests in
    #    flight finish, then the server closes the idle link
    _, _, _, body = create_session(b, domain, 3000, wait=2)
    sid2 = attr(body, b"sid")
    b.request(4, ("<body rid='3001' sid='%s' xmlns='%s'/>" % (sid2.decode(), NS)).encode(),
              sid=sid2, rid=3001)
    time.sleep(0.2)
    b.send(GOAWAY, struct.pack(">HH", 0, 8) + b"shutdown")
    b.request(5, b"<body/>")
    frames = b.closed_after()
    got = [(struct.unpack(">I", f[1][:4])[0], struct.unpack(">H", f[1][4:6])[0])
           for f in frames if f[0] == RESPONSE]
    check("after GOAWAY a REQUEST gets 503, the held one finishes, then the link is closed",
          got == [(5, 503), (4, 200)] and frames[-1][0] != "timeout", frames)
    b.close()

    # 8-10b. four refused handshakes; ejabberd's counters must see them all
    #        and no request (--ctl only)
    before = stats(ctl_dir) if ctl_dir else None

    # 8. wrong secret
    c = Link(addr)
    ftype, p = c.handshake(b"not-the-secret")
    frames = c.closed_after()
    check("a wrong secret gets ERROR auth_failed, then close",
          ftype == ERROR and p[:2] == b"\x00\x03" and p[4:] == b"auth_failed" and
          all(f[0] != "timeout" for f in frames), (ftype, p, frames))
    c.close()

    # 9. garbage instead of AUTH (an HTTP request)
    d = Link(addr)
    d.recv()  # HELLO
    d.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    frames = d.closed_after()
    check("garbage instead of AUTH is answered by ERROR and closed",
          frames and frames[0][0] == ERROR and frames[-1][0] != "timeout", frames)
    d.close()

    # 10. a well-formed non-AUTH frame before AUTH (a REQUEST)
    e = Link(addr)
    e.recv()
    e.request(1, b"<body/>")
    frames = e.closed_after()
    check("a REQUEST before AUTH gets ERROR protocol_error and never reaches ejabberd",
          frames and frames[0][0] == ERROR and frames[0][1][:2] == b"\x00\x01", frames)
    e.close()

    # 10b. an oversize frame before AUTH (the limit is 4096 until WELCOME)
    o = Link(addr)
    o.recv()
    o.sock.sendall(struct.pack(">I", 5000) + bytes([AUTH]) + b"\x00" * 64)
    frames = o.closed_after()
    check("a frame over 4096 bytes before AUTH gets ERROR frame_too_large, then close",
          frames and frames[0][0] == ERROR and frames[0][1][:2] == b"\x00\x04" and
          frames[-1][0] != "timeout", frames)
    o.close()

    if ctl_dir:
        after = stats(ctl_dir)
        d = delta(before, after)
        check("megaphone_stats: the 4 refused handshakes are counted, nothing reached ejabberd",
              d == {"links_refused_total": 4}, d)
        before = after

    # 11. a malformed frame after the handshake
    f = Link(addr)
    f.handshake(secret)
    f.send(0x7E, b"\x00")
    frames = f.closed_after()
    check("an unknown frame type gets ERROR protocol_error, then close",
          frames and frames[0][0] == ERROR and frames[0][1][:2] == b"\x00\x01", frames)
    f.close()

    if ctl_dir:
        # 11b. one session creation through a link is one call into ejabberd
        h = Link(addr)
        h.handshake(secret, b"ecm-stats")
        _, status, _, _ = create_session(h, domain, 7000)
        h.close()
        time.sleep(0.3)  # the link process notices the close
        after = stats(ctl_dir)
        d = delta(before, after)
        check("megaphone_stats: an ERROR after the handshake is a protocol error, "
              "one session creation is one request",
              status == 200 and d == {"links_accepted_total": 2, "protocol_errors_total": 1,
                                      "requests_total": 1, "responses_answered_total": 1},
              (status, d))
        print("     megaphone_stats:", " ".join("%s=%d" % kv for kv in after.items()))

    # 12. full login through the link (client IP 203.0.113.7)
    if user:
        g = Link(addr)
        g.handshake(secret, b"ecm-login")
        rid = 5000
        _, status, _, body = create_session(g, domain, rid)
        sid = attr(body, b"sid").decode()
        plain = base64.b64encode(b"\x00" + user.encode() + b"\x00" + password.encode()).decode()
        steps = [
            "<body rid='%d' sid='%s' xmlns='%s'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
            "mechanism='PLAIN'>%s</auth></body>" % (rid + 1, sid, NS, plain),
            "<body rid='%d' sid='%s' to='%s' xml:lang='en' xmpp:restart='true' xmlns='%s' "
            "xmlns:xmpp='urn:xmpp:xbosh'/>" % (rid + 2, sid, domain, NS),
            "<body rid='%d' sid='%s' xmlns='%s'><iq type='set' id='b1' xmlns='jabber:client'>"
            "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>link</resource></bind></iq>"
            "</body>" % (rid + 3, sid, NS),
        ]
        out = []
        for i, s in enumerate(steps):
            g.request(10 + i, s.encode(), sid=sid.encode(), rid=rid + 1 + i)
            out.append(g.response())
        check("SASL PLAIN over the link succeeds", b"<success" in out[0][3], out[0])
        check("resource bind over the link returns a full JID", b"<jid>" in out[2][3], out[2])
        print("     bound:", re.search(rb"<jid>([^<]*)</jid>", out[2][3]).group(1).decode()
              if b"<jid>" in out[2][3] else None)
        # keep the session: leave the link open a moment for the caller's ctl check
        g.request(20, ("<body rid='%d' sid='%s' xmlns='%s'><presence xmlns='jabber:client'/></body>"
                       % (rid + 4, sid, NS)).encode(), sid=sid.encode(), rid=rid + 4)
        g.response()
        print("     session stays up while this process sleeps 8 s (check user_sessions_info now)")
        sys.stdout.flush()
        time.sleep(8)
        g.close()

    print("failures:", FAILURES)
    return FAILURES


if __name__ == "__main__":
    sys.exit(main())
