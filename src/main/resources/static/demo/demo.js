// SPDX-License-Identifier: Apache-2.0
// The smallest XMPP client that chats, written out step by step with no library, over either transport.
//
// BOSH (XEP-0124 + XEP-0206):
//   1. session request  <body rid to wait hold xmpp:version/>      -> sid + stream features (SASL mechanisms)
//   2. SASL PLAIN       <auth mechanism='PLAIN'>base64(\0user\0password)</auth>  -> <success/>
//   3. stream restart   <body sid rid xmpp:restart='true'/>         -> stream features (bind)
//   4. resource bind    <iq type='set'><bind/></iq>                 -> our full JID
//   5. presence         <presence/>
//   6. long poll        keep one empty <body/> held by the server; it returns when there is something for us
//      and sending     a second request carrying the stanza (BOSH allows two at once; with hold=1 the server
//                       answers the held poll, and the loop sends the next one)
// Every request carries the next rid (+1 each time) and the sid. Any 4xx or a type='terminate' answer ends the
// session; a network error or 5xx is retried with the same body (same rid), as BOSH allows.
//
// XMPP over WebSocket (RFC 7395): one WebSocket (subprotocol 'xmpp'), one stanza or framing element per text
// message; the same steps with <open/> for the stream header (sent again after SASL) and no long poll: the
// server sends each stanza as it comes. <close/> ends the stream. A refused handshake (e.g. 503 when the ECM
// has no link that takes WebSocket streams) shows as an error: pick BOSH then.
'use strict';

const NS_BOSH = 'http://jabber.org/protocol/httpbind';
const WAIT = 30; // seconds the server may hold a poll

const $ = (id) => document.getElementById(id);
const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const session = { url: null, sid: null, rid: 0, domain: null, jid: null, online: false, socket: null };

const defaultUrl = (transport) => transport === 'websocket'
  ? `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/xmpp-websocket`
  : location.origin + '/http-bind';
const transport = () => document.querySelector('input[name=transport]:checked').value;
$('url').value = defaultUrl(transport());
for (const radio of document.querySelectorAll('input[name=transport]')) {
  radio.addEventListener('change', () => { $('url').value = defaultUrl(transport()); });
}

function log(kind, text) {
  const line = document.createElement('span');
  line.className = kind;
  line.textContent = `${new Date().toISOString().slice(11, 23)} ${kind === 'out' ? 'SEND' : kind === 'in' ? 'RECV' : '----'} ${text}\n`;
  $('log').appendChild(line);
  $('log').scrollTop = $('log').scrollHeight;
}

function status(text, on) {
  $('status').textContent = text;
  $('status').className = on ? 'on' : 'off';
}

function chatLine(who, text, mine) {
  const li = document.createElement('li');
  li.className = mine ? 'me' : 'them';
  li.textContent = `${who}: ${text}`;
  $('chat').appendChild(li);
}

const escapeXml = (s) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);

// POSTs one <body/> (attributes + payload) with the next rid, and returns the parsed answer <body/>.
async function post(attrs, payload = '') {
  const rid = session.rid++;
  let head = `<body xmlns='${NS_BOSH}' rid='${rid}'`;
  if (session.sid) head += ` sid='${session.sid}'`;
  for (const [k, v] of Object.entries(attrs)) head += ` ${k}='${v}'`;
  const xml = payload ? `${head}>${payload}</body>` : `${head}/>`;
  log('out', xml);
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await fetch(session.url, { method: 'POST', body: xml,
                                             headers: { 'Content-Type': 'text/xml; charset=utf-8' } });
    } catch (e) {
      response = null; // network error: retry the same rid
    }
    if (response && response.status < 500) {
      const text = await response.text();
      log('in', text || `(HTTP ${response.status}, empty)`);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = new DOMParser().parseFromString(text, 'text/xml').documentElement;
      if (body.localName !== 'body') throw new Error('not a BOSH <body/>');
      if (body.getAttribute('type') === 'terminate') {
        throw new Error('session terminated: ' + (body.getAttribute('condition') || 'no condition'));
      }
      return body;
    }
    if (attempt >= 5) throw new Error(response ? `HTTP ${response.status}` : 'network error');
    const pause = Number(response && response.headers.get('Retry-After')) || attempt;
    log('note', `${response ? 'HTTP ' + response.status : 'network error'}; resending rid ${rid} in ${pause}s`);
    await new Promise((r) => setTimeout(r, pause * 1000));
  }
}

const child = (el, name) => el.getElementsByTagNameNS('*', name)[0];

const saslPlain = (node, password) => {
  const plain = new TextEncoder().encode(`\0${node}\0${password}`);
  return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${btoa(String.fromCharCode(...plain))}</auth>`;
};
const BIND = `<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`;

async function login(url, jid, password) {
  if (url.startsWith('ws:') || url.startsWith('wss:')) return wsLogin(url, jid, password);
  const [node, domain] = jid.split('@');
  Object.assign(session, { url, sid: null, domain, jid: null, rid: Math.floor(Math.random() * 1e9) + 1000 });
  status('connecting…', false);

  // 1. Session request: the answer carries the sid and the SASL mechanisms.
  let body = await post({ to: domain, wait: WAIT, hold: 1, ver: '1.6', 'xml:lang': 'en',
                          'xmlns:xmpp': 'urn:xmpp:xbosh', 'xmpp:version': '1.0' });
  session.sid = body.getAttribute('sid');
  while (!child(body, 'mechanisms')) body = await post({}); // features may come in a second answer
  const mechanisms = [...body.getElementsByTagNameNS('*', 'mechanism')].map((m) => m.textContent);
  if (!mechanisms.includes('PLAIN')) throw new Error('the server offers no SASL PLAIN: ' + mechanisms);

  // 2. SASL PLAIN: authzid NUL authcid NUL password, base64 of its UTF-8 bytes.
  body = await post({}, saslPlain(node, password));
  while (!child(body, 'success') && !child(body, 'failure')) body = await post({});
  if (child(body, 'failure')) throw new Error('authentication failed');

  // 3. Stream restart, then 4. bind a resource: the answer holds our full JID.
  body = await post({ to: domain, 'xml:lang': 'en', 'xmlns:xmpp': 'urn:xmpp:xbosh', 'xmpp:restart': 'true' });
  while (!child(body, 'bind')) body = await post({});
  body = await post({}, BIND);
  while (!child(body, 'jid')) body = await post({});
  session.jid = child(body, 'jid').textContent;

  // 5. Presence: from now on messages to our bare JID reach this page.
  session.online = true;
  handle(await post({}, `<presence xmlns='jabber:client'/>`));
  status('online as ' + session.jid + ' (BOSH)', true);
  pollLoop();
}

// 6. The long poll: one empty request always waiting at the server.
async function pollLoop() {
  while (session.online) {
    try {
      handle(await post({}));
    } catch (e) {
      if (session.online) offline(e.message);
    }
  }
}

function handle(body) {
  for (const stanza of body.children) handleStanza(stanza);
}

function handleStanza(stanza) {
  if (stanza.localName === 'message') {
    const text = child(stanza, 'body');
    if (text) chatLine(stanza.getAttribute('from').split('/')[0], text.textContent, false);
  }
}

// XMPP over WebSocket: what the server sent and nobody took yet, and who waits for the next element.
const inbox = { elements: [], waiting: null, closed: null };

function wsSend(xml) {
  log('out', xml);
  session.socket.send(xml);
}

// The next element the server sent; fails once the WebSocket is closed.
function nextElement() {
  if (inbox.elements.length) return Promise.resolve(inbox.elements.shift());
  if (inbox.closed) return Promise.reject(new Error(inbox.closed));
  return new Promise((resolve, reject) => { inbox.waiting = { resolve, reject }; });
}

async function expectElement(name) {
  for (;;) {
    const el = await nextElement();
    if (el.localName === name) return el;
    if (el.localName === 'close') throw new Error('the server closed the stream');
  }
}

async function wsLogin(url, jid, password) {
  const [node, domain] = jid.split('@');
  const open = `<open xmlns='${NS_FRAMING}' to='${escapeXml(domain)}' version='1.0'/>`;
  Object.assign(session, { url, sid: null, domain, jid: null });
  Object.assign(inbox, { elements: [], waiting: null, closed: null });
  status('connecting…', false);
  log('note', `opening ${url} (subprotocol xmpp)`);
  const socket = new WebSocket(url, 'xmpp');
  session.socket = socket;
  socket.onmessage = (event) => {
    log('in', event.data);
    const el = new DOMParser().parseFromString(event.data, 'text/xml').documentElement;
    if (session.online) {
      if (el.localName === 'close') socket.close(1000);
      else handleStanza(el);
    } else if (inbox.waiting) {
      inbox.waiting.resolve(el);
      inbox.waiting = null;
    } else {
      inbox.elements.push(el);
    }
  };
  socket.onclose = (event) => {
    const reason = `WebSocket closed (${event.code}${event.reason ? ' ' + event.reason : ''})`;
    inbox.closed = reason;
    if (inbox.waiting) inbox.waiting.reject(new Error(reason));
    if (session.online) offline(reason);
  };
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error('the WebSocket handshake failed (see the browser console for the status)'));
  });
  socket.onerror = null;
  log('note', `WebSocket open, subprotocol ${socket.protocol || '(none)'}`);

  // 1. Stream header, then its features: the SASL mechanisms.
  wsSend(open);
  let features = await expectElement('features');
  const mechanisms = [...features.getElementsByTagNameNS('*', 'mechanism')].map((m) => m.textContent);
  if (!mechanisms.includes('PLAIN')) throw new Error('the server offers no SASL PLAIN: ' + mechanisms);

  // 2. SASL PLAIN.
  wsSend(saslPlain(node, password));
  for (;;) {
    const el = await nextElement();
    if (el.localName === 'success') break;
    if (el.localName === 'failure' || el.localName === 'close') throw new Error('authentication failed');
  }

  // 3. A new stream header, then 4. bind a resource: the answer holds our full JID.
  wsSend(open);
  features = await expectElement('features');
  if (!child(features, 'bind')) throw new Error('no resource binding offered');
  wsSend(BIND);
  let iq;
  do iq = await expectElement('iq'); while (iq.getAttribute('id') !== 'bind1');
  if (!child(iq, 'jid')) throw new Error('resource binding failed');
  session.jid = child(iq, 'jid').textContent;

  // 5. Presence: from now on every stanza for us comes as it arrives.
  session.online = true;
  for (const el of inbox.elements.splice(0)) handleStanza(el);
  wsSend(`<presence xmlns='jabber:client'/>`);
  status('online as ' + session.jid + ' (WebSocket)', true);
}

async function sendMessage(to, text) {
  chatLine('me', text, true);
  const id = 'demo' + Date.now().toString(36);
  const message = `<message xmlns='jabber:client' type='chat' to='${escapeXml(to)}' id='${id}'><body>${escapeXml(text)}</body></message>`;
  if (session.socket) wsSend(message);
  else handle(await post({}, message));
}

function offline(reason) {
  session.online = false;
  if (session.socket && session.socket.readyState <= WebSocket.OPEN) session.socket.close(1000);
  session.socket = null;
  status('offline' + (reason ? ': ' + reason : ''), false);
  log('note', 'offline' + (reason ? ': ' + reason : ''));
  $('connect').disabled = false;
  $('disconnect').disabled = true;
  $('sendButton').disabled = true;
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('connect').disabled = true;
  try {
    await login($('url').value.trim(), $('jid').value.trim(), $('password').value);
    $('disconnect').disabled = false;
    $('sendButton').disabled = false;
  } catch (e) {
    offline(e.message);
  }
});

$('send').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('text').value;
  $('text').value = '';
  try {
    await sendMessage($('to').value.trim(), text);
  } catch (e) {
    offline(e.message);
  }
});

$('disconnect').addEventListener('click', async () => {
  session.online = false;
  if (session.socket) {
    const socket = session.socket;
    const closed = new Promise((resolve) => { socket.onclose = resolve; });
    wsSend(`<presence xmlns='jabber:client' type='unavailable'/>`);
    wsSend(`<close xmlns='${NS_FRAMING}'/>`);
    // the server answers <close/> and the ECM then closes the WebSocket (RFC 7395)
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 3000))]);
    offline('logged out');
    return;
  }
  try {
    await post({ type: 'terminate' }, `<presence xmlns='jabber:client' type='unavailable'/>`);
  } catch (e) {
    // the server may already have closed the session
  }
  offline('logged out');
});
