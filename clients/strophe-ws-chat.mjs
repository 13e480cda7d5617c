#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Strophe.js 5, headless in Node: one user over XMPP over WebSocket (RFC 7395), one over BOSH, both through the
// Megaphone ECM, chatting both ways.
//
//   node strophe-ws-chat.mjs <ws-url> <bosh-url> <jid-a> <password-a> <jid-b> <password-b>
//
// A logs in over the WebSocket URL (Strophe picks its WebSocket transport for ws: URLs; Node's WebSocket is the
// `ws` package), B over BOSH. Prints one JSON object; exits 0 only when each message arrived exactly once.
// STROPHE_WS_CHAT_HOLD_FILE (optional): once both are logged in, the script writes their full JIDs there (JSON)
// and chats only after that file is removed, so that a caller can look at both sessions first.
import { existsSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { NodeXHR } from './node-xhr.mjs';

const TIMEOUT_MS = Number(process.env.STROPHE_CHAT_TIMEOUT_MS || 30000);
const [wsUrl, boshUrl, jidA, pwA, jidB, pwB] = process.argv.slice(2);
if (!pwB) {
    console.error('usage: node strophe-ws-chat.mjs <ws-url> <bosh-url> <jid-a> <password-a> <jid-b> <password-b>');
    process.exit(2);
}

// What a browser has and Node lacks: WebSocket, and an XHR whose responseXML is parsed (node-xhr.mjs).
globalThis.WebSocket = WebSocket;
globalThis.XMLHttpRequest = NodeXHR;
const { Strophe, $msg, $pres } = await import('strophe.js');
Strophe.setLogLevel(Strophe.LogLevel.WARN);

const result = { ok: false, problems: [], transports: {}, received: { a: [], b: [] } };
const finish = (code) => {
    console.log(JSON.stringify(result));
    process.exit(code);
};
setTimeout(() => { result.problems.push(`timed out after ${TIMEOUT_MS} ms`); finish(1); }, TIMEOUT_MS);

function login(url, jid, password, name) {
    return new Promise((resolve, reject) => {
        const conn = new Strophe.Connection(url);
        conn.addHandler((stanza) => {
            const body = stanza.getElementsByTagName('body')[0];
            if (body) result.received[name].push(Strophe.getText(body));
            return true;
        }, null, 'message', 'chat');
        conn.connect(jid, password, (status, condition) => {
            if (status === Strophe.Status.CONNECTED) {
                result.transports[name] = conn._proto instanceof Strophe.Websocket ? 'websocket' : 'bosh';
                // Ready once ejabberd echoes our own presence.
                conn.addHandler(() => { resolve(conn); return false; }, null, 'presence', null, null, conn.jid);
                conn.send($pres());
            } else if ([Strophe.Status.CONNFAIL, Strophe.Status.AUTHFAIL, Strophe.Status.ERROR,
                        Strophe.Status.CONNTIMEOUT].includes(status)) {
                reject(new Error(`${name}: status ${status}${condition ? ': ' + condition : ''}`));
            }
        }, 30, 1);
    });
}

const until = async (check) => {
    while (!check()) await new Promise((r) => setTimeout(r, 50));
};

try {
    const a = await login(wsUrl, jidA, pwA, 'a');
    const b = await login(boshUrl, jidB, pwB, 'b');
    const hold = process.env.STROPHE_WS_CHAT_HOLD_FILE;
    if (hold) {
        writeFileSync(hold, JSON.stringify({ a: a.jid, b: b.jid }));
        await until(() => !existsSync(hold));
    }
    a.send($msg({ to: jidB, type: 'chat' }).c('body').t('from websocket to bosh'));
    await until(() => result.received.b.length > 0);
    b.send($msg({ to: jidA, type: 'chat' }).c('body').t('from bosh to websocket'));
    b.flush();
    await until(() => result.received.a.length > 0);
    await new Promise((r) => setTimeout(r, 500)); // a duplicate would arrive now
    if (result.transports.a !== 'websocket') result.problems.push(`A used ${result.transports.a}`);
    if (JSON.stringify(result.received.b) !== '["from websocket to bosh"]') result.problems.push('B got ' + result.received.b);
    if (JSON.stringify(result.received.a) !== '["from bosh to websocket"]') result.problems.push('A got ' + result.received.a);
    a.disconnect('done');
    b.disconnect('done');
    result.ok = result.problems.length === 0;
    setTimeout(() => finish(result.ok ? 0 : 1), 500);
} catch (e) {
    result.problems.push(String(e && e.stack || e));
    finish(1);
}
