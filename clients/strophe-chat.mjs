#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Strophe.js 5, headless in Node, through a BOSH endpoint (the Megaphone ECM in the tests).
//
//   node strophe-chat.mjs <bosh-url> <jid-a> <password-a> <jid-b> <password-b>
//
// Two "pages" log in (A and B) and exchange chat messages both ways. Then page B is reloaded: its process is
// killed (SIGKILL, so its TCP connections die with it, like a browser tab's), and a NEW page process creates a
// NEW Strophe connection that attaches to the same BOSH session with Strophe's connection.attach(jid, sid, rid)
// (sid and the next rid kept by the old page, as Converse.js keeps them in sessionStorage), on a fresh TCP
// connection, and the chat goes on both ways. Prints one JSON object; exits 0 only when every message arrived
// exactly once and nothing else failed.
//
// Each page is a child process of this script (`--page` mode), driven over Node's IPC channel.
import { fork } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const TIMEOUT_MS = Number(process.env.STROPHE_CHAT_TIMEOUT_MS || 30000);

if (process.argv[2] === '--page') {
    await runPage();
} else {
    await runOrchestrator();
}

// ---------------------------------------------------------------------------------------------------------------
// One page: one Strophe connection, in its own process.
async function runPage() {
    const { NodeXHR, XHR } = await import('./node-xhr.mjs');
    // A page's own connection pool: every socket this page opens is recorded (local port), to show that the
    // reloaded page talks over new TCP connections.
    const localPorts = [];
    const agent = new http.Agent({ keepAlive: true });
    const createConnection = agent.createConnection.bind(agent);
    agent.createConnection = (options, callback) => {
        const socket = createConnection(options, callback);
        socket.once('connect', () => localPorts.push(socket.localPort));
        return socket;
    };
    XHR.nodejsSet({ httpAgent: agent });
    globalThis.XMLHttpRequest = NodeXHR;
    const { Strophe, $msg, $pres } = await import('strophe.js');
    Strophe.setLogLevel(Strophe.LogLevel.WARN);

    const send = (event) => process.send(event);
    const traffic = { requests: 0 };
    let conn = null;

    function watch(connection) {
        connection.xmlOutput = (el) => {
            traffic.requests++;
            if (process.env.STROPHE_CHAT_DEBUG) console.error(`[${process.pid}] OUT ${Strophe.serialize(el)}`);
        };
        if (process.env.STROPHE_CHAT_DEBUG) {
            connection.xmlInput = (el) => console.error(`[${process.pid}] IN  ${Strophe.serialize(el)}`);
        }
        connection.addHandler((stanza) => {
            const body = stanza.getElementsByTagName('body')[0];
            if (body) {
                send({ ev: 'message', from: stanza.getAttribute('from'), id: stanza.getAttribute('id'),
                       body: Strophe.getText(body) });
            }
            return true;
        }, null, 'message', 'chat');
    }

    function statusName(status) {
        return Object.keys(Strophe.Status).find((k) => Strophe.Status[k] === status) || String(status);
    }

    process.on('message', (cmd) => {
        try {
            if (cmd.cmd === 'login' || cmd.cmd === 'attach') {
                conn = new Strophe.Connection(cmd.url);
                watch(conn);
                const callback = (status, condition) => {
                    send({ ev: 'status', status: statusName(status), condition: condition || null });
                    if (status === Strophe.Status.CONNECTED) {
                        // Ready once ejabberd echoes our own presence: from then on a message to the bare JID
                        // is routed to this resource.
                        conn.addHandler(() => { send({ ev: 'ready', jid: conn.jid }); return false; },
                                        null, 'presence', null, null, conn.jid);
                        conn.send($pres());
                    } else if (status === Strophe.Status.ATTACHED) {
                        send({ ev: 'ready', jid: conn.jid });
                    } else if ([Strophe.Status.CONNFAIL, Strophe.Status.AUTHFAIL, Strophe.Status.ERROR,
                                Strophe.Status.CONNTIMEOUT].includes(status)) {
                        send({ ev: 'error', error: statusName(status) + (condition ? ': ' + condition : '') });
                    }
                };
                if (cmd.cmd === 'login') {
                    conn.connect(cmd.jid, cmd.password, callback, 60, 1);
                } else {
                    conn.attach(cmd.jid, cmd.sid, cmd.rid, callback, 60, 1);
                }
            } else if (cmd.cmd === 'send') {
                conn.send($msg({ to: cmd.to, type: 'chat', id: cmd.id }).c('body').t(cmd.body));
                conn.flush();
                send({ ev: 'sent', id: cmd.id });
            } else if (cmd.cmd === 'state') {
                // What a page keeps across a reload (Converse.js: sessionStorage): jid, sid and the next rid.
                send({ ev: 'state', jid: conn.jid, sid: conn._proto.sid, rid: conn._proto.rid,
                       requests: traffic.requests, localPorts: [...localPorts] });
            } else if (cmd.cmd === 'logout') {
                conn.disconnect('done');
                setTimeout(() => send({ ev: 'state', jid: conn.jid, requests: traffic.requests,
                                        localPorts: [...localPorts] }), 500);
            }
        } catch (e) {
            send({ ev: 'error', error: String(e && e.stack || e) });
        }
    });
    send({ ev: 'page-up', pid: process.pid });
}

// ---------------------------------------------------------------------------------------------------------------
// The orchestrator: starts pages, drives the chat, checks that every message arrived exactly once.
async function runOrchestrator() {
    const [url, jidA, pwA, jidB, pwB] = process.argv.slice(2);
    if (!pwB) {
        console.error('usage: node strophe-chat.mjs <bosh-url> <jid-a> <password-a> <jid-b> <password-b>');
        process.exit(2);
    }
    const started = Date.now();
    const steps = [];
    const step = (what) => { steps.push({ t: Date.now() - started, what }); };
    const received = { [bare(jidA)]: [], [bare(jidB)]: [] };
    const sent = [];
    const errors = [];
    const pages = [];

    function bare(jid) { return jid.split('/')[0]; }

    function newPage(name, owner) {
        const child = fork(fileURLToPath(import.meta.url), ['--page'], { stdio: ['ignore', 2, 2, 'ipc'] });
        const page = { name, owner, child, waiters: [], events: [] };
        child.on('message', (ev) => {
            page.events.push(ev);
            if (ev.ev === 'message') {
                received[owner].push({ ...ev, page: name });
            } else if (ev.ev === 'error') {
                errors.push(`${name}: ${ev.error}`);
            }
            page.waiters = page.waiters.filter((w) => !(w.test(ev) && (w.resolve(ev), true)));
        });
        child.on('exit', (code, signal) => {
            page.exit = { code, signal };
            if (!page.killed) {
                errors.push(`${name}: page process exited (${code ?? signal})`);
                for (const w of page.waiters) w.fail(new Error(`${name}: page process exited (${code ?? signal})`));
                page.waiters = [];
            }
        });
        pages.push(page);
        return page;
    }

    function waitFor(page, test, what) {
        const already = page.events.find(test);
        if (already) return Promise.resolve(already);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${page.name}: timed out waiting for ${what}`)), TIMEOUT_MS);
            page.waiters.push({ test, resolve: (ev) => { clearTimeout(timer); resolve(ev); },
                                fail: (e) => { clearTimeout(timer); reject(e); } });
        });
    }

    async function login(page, jid, password) {
        await waitFor(page, (e) => e.ev === 'page-up', 'page start');
        page.child.send({ cmd: 'login', url, jid, password });
        const ready = await waitFor(page, (e) => e.ev === 'ready' || e.ev === 'error', 'login');
        if (ready.ev === 'error') throw new Error(`${page.name}: ${ready.error}`);
        step(`${page.name} logged in as ${ready.jid}`);
        return ready.jid;
    }

    let counter = 0;
    const pendingArrivals = [];
    async function chat(fromPage, toPage, text, toOwner) {
        const id = `m${++counter}-${Date.now().toString(36)}`;
        const body = `${text} [${id}]`;
        const to = toPage ? toPage.owner : toOwner;
        sent.push({ id, from: fromPage.owner, to, body });
        fromPage.child.send({ cmd: 'send', to, body, id });
        if (!toPage) {
            await waitFor(fromPage, (e) => e.ev === 'sent' && e.id === id, `sending ${id}`);
            pendingArrivals.push(id);
            step(`${fromPage.name} -> ${to} (no page open): ${body}`);
            return;
        }
        const got = await waitFor(toPage, (e) => e.ev === 'message' && e.id === id, `message ${id}`);
        step(`${fromPage.name} -> ${toPage.name}: ${got.body}`);
    }

    const reloads = [];
    async function reload(oldPage, newName, attachRid, duringReload) {
        await quiet(500);
        const before = await state(oldPage);
        if (oldPage.reloadEntry) oldPage.reloadEntry.newLocalPorts = before.localPorts;
        oldPage.killed = true;
        oldPage.child.kill('SIGKILL');
        await new Promise((r) => (oldPage.exit ? r() : oldPage.child.once('exit', r)));
        step(`${oldPage.name} reloaded: page killed (sid ${before.sid}, next rid ${before.rid}, `
             + `${before.requests} requests, local ports ${before.localPorts.join(',')})`);
        const page = newPage(newName, oldPage.owner);
        if (duringReload) {
            await duringReload();
            await quiet(300);
        }
        await waitFor(page, (e) => e.ev === 'page-up', 'page start');
        const rid = attachRid(before);
        page.child.send({ cmd: 'attach', url, jid: before.jid, sid: before.sid, rid });
        const attached = await waitFor(page, (e) => e.ev === 'ready' || e.ev === 'error', 'attach');
        if (attached.ev === 'error') throw new Error(attached.error);
        step(`${newName} attached to sid ${before.sid} with rid ${rid} (${rid === before.rid ? 'rid + 1' : 'the rid in flight'})`);
        for (const id of pendingArrivals.splice(0)) {
            const got = await waitFor(page, (e) => e.ev === 'message' && e.id === id, `message ${id}`);
            step(`${newName} got the message sent during the reload: ${got.body}`);
        }
        const entry = { page: newName, sid: before.sid, attachRid: rid, nextRidOfOldPage: before.rid,
                        oldLocalPorts: before.localPorts, newLocalPorts: [] };
        reloads.push(entry);
        page.reloadEntry = entry;
        return page;
    }

    async function state(page) {
        page.events = page.events.filter((e) => e.ev !== 'state');
        page.child.send({ cmd: 'state' });
        return waitFor(page, (e) => e.ev === 'state', 'state');
    }

    const quiet = (ms) => new Promise((r) => setTimeout(r, ms));
    let result;
    try {
        const a = newPage('A', bare(jidA));
        const b1 = newPage('B', bare(jidB));
        await Promise.all([login(a, jidA, pwA), login(b1, jidB, pwB)]);
        await chat(a, b1, 'hello B, from A through Strophe.js');
        await chat(b1, a, 'hello A, from B through Strophe.js');
        await chat(a, b1, 'second message A to B');

        // Reload 1, as Strophe.js / Converse.js do it: at a quiet moment the old page is killed with its held
        // long poll; the new page attaches with the same sid and the NEXT rid (rid + 1). The new page speaks
        // first, so its request has superseded the dead poll inside ejabberd (hold=1) before A writes again.
        const b2 = await reload(b1, 'B (reloaded)', (s) => s.rid, null);
        await chat(b2, a, 'reloaded B to A');
        await chat(a, b2, 'A to reloaded B');
        await chat(a, b2, 'A to reloaded B again');

        // Reload 2, with a message on its way during the reload: A writes while B's only long poll belongs to
        // the killed page, so ejabberd gives the message to that dead request. The new page attaches with the
        // rid of that request (the last one sent) instead of rid + 1: ejabberd answers a re-sent rid with the
        // body it already gave it, so the message still arrives, exactly once.
        const b3 = await reload(b2, 'B (reloaded twice)', (s) => s.rid - 1,
                                () => chat(a, null, 'A to B while B reloads', b2.owner));
        await chat(b3, a, 'twice reloaded B to A');
        await chat(a, b3, 'A to twice reloaded B');
        b3.reloadEntry.newLocalPorts = (await state(b3)).localPorts;
        const freshTcp = reloads.every((r) => r.newLocalPorts.length > 0
                && r.newLocalPorts.every((p) => !r.oldLocalPorts.includes(p)));
        await quiet(300);
        a.child.send({ cmd: 'logout' });
        b3.child.send({ cmd: 'logout' });
        await quiet(800);

        // Every message exactly once, at its addressee, nowhere else.
        const problems = [];
        for (const m of sent) {
            const copies = received[m.to].filter((r) => r.id === m.id);
            if (copies.length !== 1) problems.push(`${m.id} (${m.from} -> ${m.to}) arrived ${copies.length} times`);
            if (copies[0] && copies[0].body !== m.body) problems.push(`${m.id} body changed: ${copies[0].body}`);
        }
        for (const [owner, list] of Object.entries(received)) {
            for (const r of list) {
                if (!sent.some((m) => m.id === r.id && m.to === owner)) problems.push(`unexpected message at ${owner}: ${r.body}`);
            }
        }
        if (!freshTcp) problems.push('the reloaded page did not use fresh TCP connections');
        problems.push(...errors);
        result = {
            client: 'strophe.js ' + (await stropheVersion()) + ' (Node ' + process.version + ', xhr2)',
            url, ok: problems.length === 0, problems,
            sent: sent.length,
            received: Object.fromEntries(Object.entries(received).map(([k, v]) => [k, v.length])),
            reloads, freshTcp,
            steps,
            ms: Date.now() - started,
        };
    } catch (e) {
        result = { client: 'strophe.js', url, ok: false, problems: [String(e.message || e), ...errors], steps,
                   ms: Date.now() - started };
    } finally {
        for (const p of pages) if (!p.exit) { p.killed = true; p.child.kill('SIGKILL'); }
    }
    // Exit only once the JSON is written out: stdout is a pipe when a test runs this script.
    process.stdout.write(JSON.stringify(result, null, 2) + '\n', () => process.exit(result.ok ? 0 : 1));
}

async function stropheVersion() {
    const { readFile } = await import('node:fs/promises');
    const pkg = new URL('./node_modules/strophe.js/package.json', import.meta.url);
    return JSON.parse(await readFile(pkg, 'utf8')).version;
}
