// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import io.megaphone.loadgen.Conn.Req;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Base64;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One simulated BOSH user, like Strophe.js: session create, SASL PLAIN, restart, bind, presence, then one long
 * poll always outstanding on its poll connection, and chat messages on its send connection. A request that gets a
 * 5xx or loses its connection is re-sent with the same rid and body. Event loop thread only.
 */
final class User extends SimUser implements Conn.Listener {

    static final String NS = "http://jabber.org/protocol/httpbind";
    private static final Pattern SID = Pattern.compile("\\ssid=['\"]([^'\"]+)['\"]");
    private static final Pattern TERMINATE = Pattern.compile("^\\s*(<\\?xml[^>]*>\\s*)?<body[^>]*\\stype=['\"]terminate['\"]");
    private static final Pattern CONDITION = Pattern.compile("\\scondition=['\"]([^'\"]+)['\"]");
    private static final Pattern MESSAGE_BODY = Pattern.compile("<body>m (\\d+) (\\d+) (\\d+)</body>");

    enum State { NEW, CREATE, AUTH, RESTART, BIND, PRESENCE, ONLINE, ENDING, DONE, DEAD }

    private final LoadGenerator gen;
    private final Stats stats;
    final Conn poll;
    final Conn send;
    State state = State.NEW;
    private long rid;
    private String sid;
    long startNanos;
    private final StringBuilder loginAnswers = new StringBuilder();
    private final ArrayDeque<String> outbox = new ArrayDeque<>();
    private boolean sendBackoff;
    private long messageSeq;

    User(int index, String name, LoadGenerator gen, Conn.Factory conns, boolean sender) {
        super(index, name);
        this.gen = gen;
        this.stats = gen.stats;
        this.poll = conns.open(this);
        this.send = sender ? conns.open(this) : null;
    }

    @Override
    boolean sender() {
        return send != null;
    }

    @Override
    void start() {
        stats.usersStarted++;
        startNanos = System.nanoTime();
        rid = ThreadLocalRandom.current().nextLong(1, 1L << 32);
        state = State.CREATE;
        Options o = gen.options;
        String create = "<body rid='" + rid + "' to='" + o.domain + "' xml:lang='en' wait='" + o.waitSeconds
                + "' hold='" + o.hold + "' content='text/xml; charset=utf-8' ver='1.6' xmpp:version='1.0'"
                + " xmlns:xmpp='urn:xmpp:xbosh' xmlns='" + NS + "'/>";
        loginStep(State.CREATE, new Req(Req.LOGIN, rid, create, 0));
    }

    private String wrap(long r, String payload) {
        if (payload.isEmpty()) {
            return "<body rid='" + r + "' sid='" + sid + "' xmlns='" + NS + "'/>";
        }
        return "<body rid='" + r + "' sid='" + sid + "' xmlns='" + NS + "'>" + payload + "</body>";
    }

    private void loginStep(State next, Req req) {
        state = next;
        loginAnswers.setLength(0);
        poll.send(req);
    }

    private void loginPayload(State next, String payload) {
        loginStep(next, new Req(Req.LOGIN, ++rid, wrap(rid, payload), 0));
    }

    private void emptyLoginPoll() {
        poll.send(new Req(Req.LOGIN, ++rid, wrap(rid, ""), 0));
    }

    @Override
    public void answered(Conn conn, Req req, int status, String body, String retryAfter) {
        stats.answers++;
        if (req.kind == Req.POLL) {
            stats.heldPolls--;
            stats.pollsAnswered++;
        } else {
            Stats.record(stats.request, System.nanoTime() - req.sentNanos);
        }
        if (state == State.DEAD || state == State.DONE) {
            return;
        }
        if (status >= 500) {
            stats.error("http-" + status);
            resendLater(conn, req, retryAfter);
            return;
        }
        if (status != 200) {
            stats.error("http-" + status);
            die();
            return;
        }
        receivedMessages(body);
        if (TERMINATE.matcher(body).find()) {
            if (req.kind == Req.TERMINATE) {
                stats.usersTerminated++;
                finish();
            } else if (state != State.ENDING) {
                Matcher c = CONDITION.matcher(body);
                stats.error("bosh-terminate:" + (c.find() ? c.group(1) : "none"));
                die();
            }
            return;
        }
        switch (req.kind) {
            case Req.LOGIN -> loginAnswer(body);
            case Req.POLL -> {
                if (state == State.ONLINE) {
                    if (gen.options.pipeline) {
                        pipelinedPoll();
                    } else {
                        poll();
                    }
                }
            }
            case Req.SEND -> {
                stats.messagesSent += req.messages;
                flushOutbox();
            }
            default -> { }
        }
    }

    private void loginAnswer(String body) {
        if (state == State.CREATE && sid == null) {
            Matcher m = SID.matcher(body);
            if (!m.find()) {
                stats.error("login-no-sid");
                die();
                return;
            }
            sid = m.group(1);
        }
        loginAnswers.append(body);
        String seen = loginAnswers.toString();
        switch (state) {
            case CREATE -> {
                if (seen.contains("mechanisms")) {
                    String plain = Base64.getEncoder().encodeToString(("\0" + name + "\0" + gen.options.password)
                            .getBytes(StandardCharsets.UTF_8));
                    loginPayload(State.AUTH, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                            + plain + "</auth>");
                    return;
                }
            }
            case AUTH -> {
                if (seen.contains("<failure")) {
                    stats.error("login-sasl-failure");
                    die();
                    return;
                }
                if (seen.contains("<success")) {
                    state = State.RESTART;
                    loginAnswers.setLength(0);
                    ++rid;
                    poll.send(new Req(Req.LOGIN, rid, "<body rid='" + rid + "' sid='" + sid + "' to='"
                            + gen.options.domain + "' xml:lang='en' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'"
                            + " xmlns='" + NS + "'/>", 0));
                    return;
                }
            }
            case RESTART -> {
                if (seen.contains("urn:ietf:params:xml:ns:xmpp-bind")) {
                    loginPayload(State.BIND, "<iq type='set' id='bind1' xmlns='jabber:client'>"
                            + "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>lg</resource></bind></iq>");
                    return;
                }
            }
            case BIND -> {
                if (seen.contains("<jid>")) {
                    loginPayload(State.PRESENCE, "<presence xmlns='jabber:client'/>");
                    return;
                }
                if (seen.contains("type='error'") || seen.contains("type=\"error\"")) {
                    stats.error("login-bind-error");
                    die();
                    return;
                }
            }
            case PRESENCE -> {
                online();
                return;
            }
            default -> {
                return;
            }
        }
        emptyLoginPoll(); // what we wait for has not come yet
    }

    private void online() {
        state = State.ONLINE;
        stats.usersOnline++;
        Stats.record(stats.login, System.nanoTime() - startNanos);
        gen.online(this);
        poll();
        flushOutbox();
    }

    private void poll() {
        stats.heldPolls++;
        poll.send(new Req(Req.POLL, ++rid, wrap(rid, ""), 0));
    }

    /**
     * {@code --pipeline}: the new poll takes rid N and the queued messages rid N+1, and N+1 is written first, on
     * the other connection: the order in which a requests='2' client's two requests can reach the server when
     * they leave microseconds apart. ejabberd 23.01 parks N+1 behind the empty poll N and loses the session
     * unless its requests are put back in rid order (issue 13).
     */
    private void pipelinedPoll() {
        if (send == null || !send.idle() || sendBackoff || outbox.isEmpty()) {
            poll();
            return;
        }
        long pollRid = ++rid;
        long sendRid = ++rid;
        StringBuilder payload = new StringBuilder();
        int n = 0;
        while (!outbox.isEmpty() && n < 50) {
            payload.append(outbox.poll());
            n++;
        }
        stats.pipelined++;
        send.send(new Req(Req.SEND, sendRid, wrap(sendRid, payload.toString()), n));
        stats.heldPolls++;
        poll.send(new Req(Req.POLL, pollRid, wrap(pollRid, ""), 0));
    }

    /** Queues a chat message to {@code to} and sends it (with whatever else is queued) when the send connection is free. */
    @Override
    void chat(SimUser to) {
        long seq = ++messageSeq;
        outbox.add("<message to='" + to.name + "@" + gen.options.domain + "' type='chat' xmlns='jabber:client'>"
                + "<body>m " + index + " " + seq + " " + System.nanoTime() + "</body></message>");
        stats.messagesQueued++;
        stats.awaitedMessages.add(Stats.messageKey(index, seq));
        flushOutbox();
    }

    private void flushOutbox() {
        if (gen.options.pipeline) {
            return; // the messages go with the next poll (pipelinedPoll)
        }
        if (state != State.ONLINE || send == null || !send.idle() || sendBackoff || outbox.isEmpty()) {
            return;
        }
        StringBuilder payload = new StringBuilder();
        int n = 0;
        while (!outbox.isEmpty() && n < 50) {
            payload.append(outbox.poll());
            n++;
        }
        send.send(new Req(Req.SEND, ++rid, wrap(rid, payload.toString()), n));
    }

    private void receivedMessages(String body) {
        if (body.indexOf("<message") < 0) {
            return;
        }
        Matcher m = MESSAGE_BODY.matcher(body);
        long now = System.nanoTime();
        while (m.find()) {
            if (stats.messageReceived(Stats.messageKey(Long.parseLong(m.group(1)), Long.parseLong(m.group(2))))) {
                Stats.record(stats.delivery, now - Long.parseLong(m.group(3)));
            }
        }
    }

    private void resendLater(Conn conn, Req req, String retryAfter) {
        long delayMs = 500;
        if (retryAfter != null) {
            try {
                delayMs = Math.max(100, Long.parseLong(retryAfter.trim()) * 1000);
            } catch (NumberFormatException ignored) {
                // keep the default
            }
        }
        delayMs += ThreadLocalRandom.current().nextLong(0, 500);
        stats.resends++;
        if (conn == send) {
            sendBackoff = true;
        }
        gen.loop().schedule(() -> {
            if (conn == send) {
                sendBackoff = false;
            }
            if (state == State.DEAD || state == State.DONE || (state == State.ENDING && req.kind == Req.POLL)
                    || !conn.idle()) {
                return;
            }
            if (req.kind == Req.POLL) {
                stats.heldPolls++;
            }
            conn.send(req); // the same rid and body (a Strophe-like client re-sends the same rid)
        }, delayMs, TimeUnit.MILLISECONDS);
    }

    @Override
    public void failed(Conn conn, Req req, String kind) {
        if (req == null) {
            return;
        }
        if (req.kind == Req.POLL) {
            stats.heldPolls--;
        }
        if (state == State.DEAD || state == State.DONE || (state == State.ENDING && req.kind == Req.POLL)) {
            return;
        }
        stats.error(kind);
        if (req.attempts >= 5) {
            stats.error("gave-up-after-5-attempts");
            die();
            return;
        }
        resendLater(conn, req, null);
    }

    /** The per-second check: a request unanswered long after {@code wait}, a login that takes too long. */
    @Override
    void sweep(long now) {
        long limit = TimeUnit.SECONDS.toNanos(gen.options.waitSeconds + 20L);
        for (Conn c : new Conn[] {poll, send}) {
            if (c != null && c.current != null && now - c.current.sentNanos > limit) {
                c.abort("answer-timeout:" + (c.current.kind == Req.POLL ? "poll"
                        : c.current.kind == Req.LOGIN ? "login-" + state.name().toLowerCase() : "send"));
            }
        }
        if (state.ordinal() < State.ONLINE.ordinal() && state != State.NEW
                && now - startNanos > (long) (gen.options.loginTimeout * 1e9)) {
            stats.error("login-timeout");
            die();
        }
    }

    /** Ends the session: a terminate body (on the free send connection, else instead of the held poll). */
    @Override
    void end(boolean terminate) {
        if (state != State.ONLINE) {
            if (state != State.DEAD && state != State.DONE) {
                die();
            }
            return;
        }
        state = State.ENDING;
        gen.offline(this);
        if (!terminate) {
            finish();
            return;
        }
        Conn via = send != null && send.idle() ? send : poll;
        if (!via.idle()) {
            via.abort("ending"); // ignored in ENDING for a poll
        }
        via.send(new Req(Req.TERMINATE, ++rid, wrap(rid, "<presence type='unavailable' xmlns='jabber:client'/>")
                .replaceFirst("<body ", "<body type='terminate' "), 0));
    }

    private void finish() {
        if (state == State.ONLINE) {
            gen.offline(this);
        }
        state = State.DONE;
        closeConnections();
    }

    private void die() {
        if (state == State.ONLINE) {
            gen.offline(this);
        }
        if (state != State.DEAD) {
            stats.usersFailed++;
        }
        state = State.DEAD;
        closeConnections();
    }

    /** Closes both connections, dropping what they carry (a held poll stops counting as held). */
    @Override
    void closeConnections() {
        for (Conn c : new Conn[] {poll, send}) {
            if (c != null) {
                if (c.current != null && c.current.kind == Req.POLL) {
                    stats.heldPolls--;
                }
                c.current = null;
                c.close();
            }
        }
    }

    @Override
    boolean settled() {
        return state == State.ONLINE || state == State.DEAD || state == State.DONE || state == State.ENDING;
    }

    @Override
    boolean finished() {
        return state == State.DONE || state == State.DEAD;
    }

    @Override
    boolean ending() {
        return state == State.ENDING;
    }
}
