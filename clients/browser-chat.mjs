#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// A real browser through the Megaphone ECM: Debian's Chromium, headless, driven with playwright-core.
//
//   node browser-chat.mjs <ecm-base-url> <jid-a> <password-a> <jid-b> <password-b> <screenshot-dir> [bosh|websocket]
//
// Page A: Strophe.js (from node_modules) on a page served by a tiny static server in this script, on another
//         loopback origin than the ECM, so the browser makes real cross-origin BOSH requests (CORS preflight), or
//         with `websocket` opens a cross-origin WebSocket to <ecm-base-url>/xmpp-websocket (the ECM checks Origin).
// Page B: the ECM's own demo page, <ecm-base-url>/demo/index.html (plain JavaScript, same origin), over the
//         transport picked in its form: BOSH (the default) or WebSocket.
// A logs in, B logs in through the demo page's form; A -> B, then B -> A typed into the demo page's form.
// Screenshots of both pages go to <screenshot-dir>. Prints one JSON object; exits 0 only when both messages
// were shown on the other side.
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.BROWSER_CHAT_TIMEOUT_MS || 30000);
const [base, jidA, pwA, jidB, pwB, outDir, transport = 'bosh'] = process.argv.slice(2);
if (!outDir || !['bosh', 'websocket'].includes(transport)) {
    console.error('usage: node browser-chat.mjs <ecm-base-url> <jid-a> <password-a> <jid-b> <password-b> <screenshot-dir> [bosh|websocket]');
    process.exit(2);
}
const boshUrl = base.replace(/\/$/, '') + '/http-bind';
const wsUrl = base.replace(/\/$/, '').replace(/^http/, 'ws') + '/xmpp-websocket';
const chatUrl = transport === 'websocket' ? wsUrl : boshUrl;
const shotSuffix = transport === 'websocket' ? '-websocket' : '';
const demoUrl = base.replace(/\/$/, '') + '/demo/index.html';
const version = (pkg) => JSON.parse(readFileSync(join(HERE, 'node_modules', pkg, 'package.json'), 'utf8')).version;
const bare = (jid) => jid.split('/')[0];

const started = Date.now();
const steps = [];
const step = (what) => steps.push({ t: Date.now() - started, what });
const consoleErrors = [];
let server, context, userDataDir;
let result;
try {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (bash scripts/install-deps.sh installs it)`);
    const chromiumVersion = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();

    // The static server for page A: the page and Strophe.js's browser build, nothing else.
    const files = {
        '/': ['text/html', join(HERE, 'browser/strophe-page.html')],
        '/strophe/strophe.umd.min.js': ['text/javascript', join(HERE, 'node_modules/strophe.js/dist/strophe.umd.min.js')],
    };
    server = createServer((req, res) => {
        const file = files[req.url.split('?')[0]];
        if (!file) { res.writeHead(404).end(); return; }
        res.writeHead(200, { 'Content-Type': file[0] }).end(readFileSync(file[1]));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const pageAUrl = `http://127.0.0.1:${server.address().port}/`;

    userDataDir = mkdtempSync(join(tmpdir(), 'megaphone-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        viewport: { width: 1100, height: 800 },
    });
    step(`launched ${chromiumVersion} (playwright-core ${version('playwright-core')})`);
    // Every BOSH answer the browser got, and which origin asked (page A is cross-origin: the browser only
    // hands an answer to Strophe.js when its CORS headers allow that origin).
    const bosh = { requests: 0, statuses: {}, crossOriginAnswers: 0, allowOrigin: [] };
    context.on('response', async (r) => {
        if (r.url() !== boshUrl) return;
        bosh.requests++;
        bosh.statuses[r.status()] = (bosh.statuses[r.status()] || 0) + 1;
        try {
            const origin = (await r.request().allHeaders())['origin'];
            if (origin && pageAUrl.startsWith(origin)) {
                bosh.crossOriginAnswers++;
                const allow = (await r.allHeaders())['access-control-allow-origin'];
                if (!bosh.allowOrigin.includes(allow)) bosh.allowOrigin.push(allow);
            }
        } catch (e) {
            // a held poll answered while the browser closes at the end: its headers are gone with it
            if (!String(e).includes('has been closed')) throw e;
        }
    });

    const pageA = context.pages()[0] || await context.newPage();
    const pageB = await context.newPage();
    for (const [name, page] of [['A', pageA], ['B', pageB]]) {
        page.setDefaultTimeout(TIMEOUT_MS);
        page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${name}: ${m.text()}`); });
        page.on('pageerror', (e) => consoleErrors.push(`${name}: ${e.message}`));
    }

    // Every WebSocket the pages opened, and how it ended.
    const sockets = [];
    for (const [name, page] of [['A', pageA], ['B', pageB]]) {
        page.on('websocket', (ws) => {
            const s = { page: name, url: ws.url(), framesReceived: 0, error: null };
            sockets.push(s);
            ws.on('framereceived', () => { s.framesReceived++; });
            ws.on('socketerror', (e) => { s.error = String(e); });
        });
    }

    // Page B: the demo page, logged in through its form.
    await pageB.goto(demoUrl);
    const prefilled = await pageB.inputValue('#url');
    if (prefilled !== boshUrl) throw new Error(`demo page prefilled ${prefilled}, expected ${boshUrl}`);
    if (transport === 'websocket') {
        await pageB.check('#transport-websocket');
        const switched = await pageB.inputValue('#url');
        if (switched !== wsUrl) throw new Error(`demo page's WebSocket URL is ${switched}, expected ${wsUrl}`);
    }
    await pageB.fill('#jid', jidB);
    await pageB.fill('#password', pwB);
    await pageB.click('#connect');
    await pageB.waitForSelector('#status.on');
    const statusB = await pageB.textContent('#status');
    step(`demo page (B): ${statusB}`);

    // Page A: Strophe.js in the browser.
    await pageA.goto(pageAUrl);
    await pageA.evaluate((v) => { document.getElementById('version').textContent = v; }, version('strophe.js'));
    const fullA = await pageA.evaluate(([u, j, p]) => window.chat.login(u, j, p), [chatUrl, jidA, pwA]);
    step(`Strophe.js page (A): online as ${fullA}`);

    const toB = `Hello ${bare(jidB)}, from Strophe.js in Chromium (${new Date().toISOString().slice(11, 19)})`;
    await pageA.evaluate(([to, text]) => window.chat.send(to, text), [bare(jidB), toB]);
    await pageB.waitForFunction((text) => [...document.querySelectorAll('#chat li.them')].some((li) => li.textContent.endsWith(text)), toB);
    step(`demo page (B) shows: ${toB}`);

    const toA = `Hi ${bare(jidA)}, typed into the Megaphone demo page`;
    await pageB.fill('#to', bare(jidA));
    await pageB.fill('#text', toA);
    await pageB.click('#sendButton');
    await pageA.waitForFunction((text) => window.chat.received.some((m) => m.body === text), toA);
    step(`Strophe.js page (A) shows: ${toA}`);

    await pageA.waitForTimeout(300); // let the last stanzas render in the logs
    mkdirSync(outDir, { recursive: true });
    const shots = { demoPage: join(outDir, `demo-page${shotSuffix}.png`),
                    strophePage: join(outDir, `strophe-page${shotSuffix}.png`) };
    await pageB.screenshot({ path: shots.demoPage, fullPage: true });
    await pageA.screenshot({ path: shots.strophePage, fullPage: true });
    const chatB = await pageB.$$eval('#chat li', (lis) => lis.map((li) => li.textContent));
    const chatA = await pageA.$$eval('#chat li', (lis) => lis.map((li) => li.textContent));
    const receivedA = await pageA.evaluate(() => window.chat.received.length);
    const shownB = chatB.filter((t) => t.endsWith(toB)).length;

    await pageB.click('#disconnect');
    await pageB.waitForSelector('#status.off');
    await pageA.evaluate(() => window.chat.conn.disconnect('done'));

    const problems = [];
    if (shownB !== 1) problems.push(`the demo page shows the message ${shownB} times`);
    if (receivedA !== 1) problems.push(`the Strophe.js page received ${receivedA} messages`);
    if (transport === 'bosh' && bosh.crossOriginAnswers === 0) problems.push('no cross-origin BOSH answer seen from page A');
    if (transport === 'websocket') {
        if (bosh.requests !== 0) problems.push(`${bosh.requests} BOSH requests over WebSocket`);
        for (const name of ['A', 'B']) {
            const mine = sockets.filter((s) => s.page === name);
            if (mine.length !== 1 || mine[0].error || mine[0].framesReceived === 0) {
                problems.push(`page ${name}'s WebSockets: ${JSON.stringify(mine)}`);
            }
        }
    }
    for (const s of Object.keys(bosh.statuses)) if (s !== '200' && s !== '204') problems.push(`BOSH answered HTTP ${s}`);
    problems.push(...consoleErrors);
    result = {
        client: `Chromium (${chromiumVersion}) via playwright-core ${version('playwright-core')}: `
              + `Strophe.js ${version('strophe.js')} page + the ECM demo page, over ${transport}`,
        ok: problems.length === 0, problems, transport, chatUrl, demoUrl, pageAUrl, bosh, sockets, chatA, chatB,
        statusB, screenshots: shots,
        steps, ms: Date.now() - started,
    };
} catch (e) {
    result = { client: 'chromium', ok: false, problems: [String(e.message || e), ...consoleErrors], steps,
               ms: Date.now() - started };
    if (context && outDir) {
        try {
            mkdirSync(outDir, { recursive: true });
            const pages = context.pages();
            for (let i = 0; i < pages.length; i++) await pages[i].screenshot({ path: join(outDir, `failure-page${i}.png`) });
        } catch { /* best effort */ }
    }
} finally {
    if (context) await context.close().catch(() => {});
    if (server) server.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
}
// Exit only once the JSON is written out: stdout is a pipe when a test runs this script.
process.stdout.write(JSON.stringify(result, null, 2) + '\n', () => process.exit(result.ok ? 0 : 1));
