// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import io.megaphone.loadgen.Conn.Req;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The Megaphone BOSH load generator (see {@link Options#HELP} and loadgen/README.md). All users of a process
 * live on one Netty event loop; every state change happens on that thread.
 */
public final class LoadGenerator {

    final Options options;
    final Stats stats = new Stats();
    private final EventLoopGroup group;
    private final EventLoop loop;
    private final Bootstrap bootstrap;
    private final Bootstrap wsBootstrap;
    private final List<SimUser> users = new ArrayList<>();
    private final List<SimUser> online = new ArrayList<>();
    private final List<SimUser> onlineSenders = new ArrayList<>();
    private final long t0 = System.nanoTime();
    private String phase = "init";
    private long rampNanos = -1;
    private long steadyStartNanos;
    private long steadyEndNanos;
    private long messagesSentAtSteadyStart;
    private int started;
    private double messageCredit;
    private long lastProgressNanos;
    private long lastAnswers;

    LoadGenerator(Options options) {
        this.options = options;
        boolean epoll = options.epoll == null ? Epoll.isAvailable() : options.epoll;
        group = new MultiThreadIoEventLoopGroup(1, epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory());
        loop = group.next();
        Conn.Handler handler = new Conn.Handler(stats);
        bootstrap = new Bootstrap().group(group).channel(epoll ? EpollSocketChannel.class : NioSocketChannel.class)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000)
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new HttpClientCodec(), new HttpObjectAggregator(4 << 20), handler);
                    }
                });
        wsBootstrap = new Bootstrap().group(group).channel(epoll ? EpollSocketChannel.class : NioSocketChannel.class)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000)
                .handler(WsUser.initializer(stats));
        log("transport " + (epoll ? "epoll" : "nio") + ", targets " + options.urls + ", sources "
                + (options.sources.isEmpty() ? "(any)" : options.sources));
    }

    EventLoop loop() {
        return loop;
    }

    /** Stops the event loop. */
    void close() {
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    }

    public static void main(String[] args) throws Exception {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("loadgen: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (options.registerCmd != null && !options.mode.equals("raw")) {
            register(options);
        }
        LoadGenerator gen = new LoadGenerator(options);
        int code;
        try {
            code = options.mode.equals("raw") ? gen.runRaw() : gen.runUsers();
        } finally {
            gen.close();
        }
        System.exit(code);
    }

    static void log(String line) {
        System.out.println("[loadgen " + java.time.LocalTime.now().withNano(0) + "] " + line);
        System.out.flush();
    }

    // ---------------------------------------------------------------- registration

    private static void register(Options o) throws Exception {
        log("registering " + o.users + " users through: " + o.registerCmd);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        AtomicInteger failed = new AtomicInteger();
        List<Future<?>> all = new ArrayList<>();
        for (int i = 0; i < o.users; i++) {
            String user = o.userName(o.first + i);
            all.add(pool.submit((Callable<Void>) () -> {
                List<String> cmd = new ArrayList<>(List.of("bash", "-c", o.registerCmd + " register \"$1\" \"$2\" \"$3\"",
                        "register", user, o.domain, o.password));
                Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                if (p.waitFor() != 0 && !out.contains("already registered")) {
                    if (failed.incrementAndGet() <= 3) {
                        log("register " + user + " failed: " + out.trim());
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : all) {
            f.get();
        }
        pool.shutdown();
        if (failed.get() > 0) {
            throw new IllegalStateException(failed.get() + " registrations failed");
        }
    }

    // ---------------------------------------------------------------- connections

    private Conn.Factory connections(int index) {
        URI uri = options.urls.get(index % options.urls.size());
        InetSocketAddress remote = new InetSocketAddress(uri.getHost(), uri.getPort() > 0 ? uri.getPort() : 80);
        InetSocketAddress local = options.sources.isEmpty() ? null
                : new InetSocketAddress(options.sources.get(index % options.sources.size()), 0);
        return owner -> new Conn(bootstrap, stats, uri, remote, local, owner);
    }

    private WsUser wsUser(int i, int index) {
        URI uri = options.urls.get(i % options.urls.size());
        InetSocketAddress local = options.sources.isEmpty() ? null
                : new InetSocketAddress(options.sources.get(i % options.sources.size()), 0);
        return new WsUser(index, options.userName(index), this, wsBootstrap, uri, local, i < options.senders);
    }

    // ---------------------------------------------------------------- BOSH and WebSocket users

    void online(SimUser u) {
        u.onlineSlot = online.size();
        online.add(u);
        if (u.sender()) {
            u.senderSlot = onlineSenders.size();
            onlineSenders.add(u);
        }
    }

    void offline(SimUser u) {
        removeSlot(online, u, true);
        if (u.senderSlot >= 0) {
            removeSlot(onlineSenders, u, false);
        }
    }

    private static void removeSlot(List<SimUser> list, SimUser u, boolean onlineList) {
        int slot = onlineList ? u.onlineSlot : u.senderSlot;
        if (slot < 0 || slot >= list.size() || list.get(slot) != u) {
            return;
        }
        SimUser last = list.remove(list.size() - 1);
        if (last != u) {
            list.set(slot, last);
            if (onlineList) {
                last.onlineSlot = slot;
            } else {
                last.senderSlot = slot;
            }
        }
        if (onlineList) {
            u.onlineSlot = -1;
        } else {
            u.senderSlot = -1;
        }
    }

    private <T> T onLoop(Callable<T> task) throws Exception {
        return loop.submit(task).get();
    }

    int runUsers() throws Exception {
        boolean ws = options.mode.equals("ws");
        onLoop(() -> {
            for (int i = 0; i < options.users; i++) {
                int index = options.first + i;
                users.add(ws ? wsUser(i, index)
                        : new User(index, options.userName(index), this, connections(i), i < options.senders));
            }
            phase = "ramp";
            return null;
        });
        if (ws) {
            log(String.format(Locale.ROOT, "ws: %d users (%d send, %d only receive), one WebSocket each, ramp %.0f/s,"
                            + " steady %.0f s, %.1f messages/s", options.users, options.senders,
                    options.users - options.senders, options.ramp, options.duration, options.msgRate));
        } else {
            log(String.format(Locale.ROOT, "bosh: %d users (%d with poll + send connections, %d poll only), ramp"
                            + " %.0f/s, steady %.0f s, %.1f messages/s, wait %d", options.users, options.senders,
                    options.users - options.senders, options.ramp, options.duration, options.msgRate,
                    options.waitSeconds));
        }
        lastProgressNanos = System.nanoTime();
        loop.scheduleAtFixedRate(this::tick, 0, 10, TimeUnit.MILLISECONDS);
        loop.scheduleAtFixedRate(this::sweep, 1, 1, TimeUnit.SECONDS);
        loop.scheduleAtFixedRate(this::progress, (long) (options.progress * 1000), (long) (options.progress * 1000),
                TimeUnit.MILLISECONDS);

        // ramp: every user started and either online or failed
        while (!onLoop(() -> started == users.size() && users.stream().allMatch(SimUser::settled))) {
            Thread.sleep(100);
        }
        onLoop(() -> {
            rampNanos = System.nanoTime() - t0;
            steadyStartNanos = System.nanoTime();
            messagesSentAtSteadyStart = stats.messagesQueued;
            phase = "steady";
            log(String.format(Locale.ROOT, "ramp done in %.1f s: %d online, %d failed", rampNanos / 1e9,
                    stats.usersOnline, stats.usersFailed));
            if (options.readyFile != null) {
                Json j = new Json().field("online", stats.usersOnline).field("failed", stats.usersFailed)
                        .field("ramp_seconds", rampNanos / 1e9);
                // whole or absent: scripts wait for the file to exist, then read it
                Path ready = Path.of(options.readyFile);
                Path tmp = ready.resolveSibling("." + ready.getFileName() + ".tmp");
                Files.writeString(tmp, j.toString());
                Files.move(tmp, ready, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            }
            return null;
        });

        long end = System.nanoTime() + (long) (options.duration * 1e9);
        while (System.nanoTime() < end && (options.stopFile == null || !Files.exists(Path.of(options.stopFile)))) {
            Thread.sleep(100);
        }
        onLoop(() -> {
            phase = "drain";
            steadyEndNanos = System.nanoTime();
            return null;
        });
        long drainEnd = System.nanoTime() + (long) (options.drain * 1e9);
        while (System.nanoTime() < drainEnd
                && !onLoop(() -> stats.messagesReceived >= stats.messagesQueued)) {
            Thread.sleep(50);
        }
        onLoop(() -> {
            phase = "end";
            for (SimUser u : users) {
                u.end(options.terminate);
            }
            return null;
        });
        long endDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < endDeadline
                && !onLoop(() -> users.stream().allMatch(SimUser::finished))) {
            Thread.sleep(50);
        }
        String result = onLoop(() -> {
            progress();
            for (SimUser u : users) {
                if (u.ending()) {
                    stats.error("terminate-unanswered");
                }
                u.closeConnections();
            }
            return resultJson();
        });
        Files.writeString(Path.of(options.out), result);
        log("result written to " + options.out);
        log("login " + Stats.summary(stats.login) + "; request " + Stats.summary(stats.request) + "; delivery "
                + Stats.summary(stats.delivery));
        return 0;
    }

    private void tick() {
        long now = System.nanoTime();
        if (phase.equals("ramp") || phase.equals("steady")) {
            long due = Math.min(users.size(), (long) ((now - t0) / 1e9 * options.ramp) + 1);
            while (started < due) {
                users.get(started++).start();
            }
        }
        boolean chatting = phase.equals("steady") || phase.equals("ramp") && options.chatDuringRamp;
        if (chatting && options.msgRate > 0) {
            messageCredit += options.msgRate * 0.010;
            while (messageCredit >= 1) {
                messageCredit -= 1;
                if (onlineSenders.isEmpty() || online.size() < 2) {
                    break;
                }
                ThreadLocalRandom r = ThreadLocalRandom.current();
                SimUser from = onlineSenders.get(r.nextInt(onlineSenders.size()));
                SimUser to;
                do {
                    to = online.get(r.nextInt(online.size()));
                } while (to == from);
                from.chat(to);
            }
        }
    }

    private void sweep() {
        long now = System.nanoTime();
        for (SimUser u : users) {
            u.sweep(now);
        }
    }

    private void progress() {
        long now = System.nanoTime();
        double secs = (now - lastProgressNanos) / 1e9;
        long answers = stats.answers;
        String line = String.format(Locale.ROOT,
                "%s t=%.0fs users started=%d online=%d failed=%d | conns open=%d held polls=%d | req/s=%.0f | msgs"
                        + " queued=%d sent=%d received=%d dup=%d | errors=%d%s | delivery %s",
                phase, (now - t0) / 1e9, stats.usersStarted, online.size(), stats.usersFailed, stats.openConnections,
                stats.heldPolls, secs > 0 ? (answers - lastAnswers) / secs : 0.0, stats.messagesQueued,
                stats.messagesSent, stats.messagesReceived, stats.messagesDuplicated, stats.errorCount(),
                stats.errors.isEmpty() ? "" : " " + stats.errors, Stats.summary(stats.delivery));
        lastAnswers = answers;
        lastProgressNanos = now;
        log(line);
    }

    private String resultJson() {
        Json j = new Json();
        j.field("mode", options.mode);
        j.object("options");
        j.field("urls", options.urls.toString());
        for (var e : options.echo.entrySet()) {
            if (!e.getKey().equals("url") && !e.getKey().equals("password")) {
                j.field(e.getKey(), e.getValue());
            }
        }
        j.end();
        j.field("users", options.users);
        j.field("users_started", stats.usersStarted);
        j.field("users_logged_in", stats.usersOnline);
        j.field("users_failed", stats.usersFailed);
        j.field("users_terminated", stats.usersTerminated);
        j.field("ramp_seconds", rampNanos < 0 ? null : rampNanos / 1e9);
        double steady = (steadyEndNanos - steadyStartNanos) / 1e9;
        j.field("steady_seconds", steady);
        j.field("requests_sent", stats.requestsSent);
        j.field("answers", stats.answers);
        j.field("polls_answered", stats.pollsAnswered);
        j.field("resends", stats.resends);
        j.field("pipelined_pairs", stats.pipelined);
        j.field("connections_opened", stats.connectionsOpened);
        j.object("messages");
        j.field("queued", stats.messagesQueued);
        j.field("sent", stats.messagesSent);
        j.field("received", stats.messagesReceived);
        j.field("duplicated", stats.messagesDuplicated);
        j.field("unexpected", stats.messagesUnexpected);
        j.field("lost", stats.awaitedMessages.size()); // queued, never received by the end (after the drain)
        j.field("queued_during_steady_per_second", steady > 0 ? (stats.messagesQueued - messagesSentAtSteadyStart) / steady : 0.0);
        j.end();
        j.object("errors");
        for (var e : stats.errors.entrySet()) {
            j.field(e.getKey(), e.getValue());
        }
        j.end();
        j.field("error_count", stats.errorCount());
        j.object("latency");
        Stats.histogramJson(j, "login", stats.login);
        Stats.histogramJson(j, "request", stats.request);
        Stats.histogramJson(j, "delivery", stats.delivery);
        j.end();
        return j.toString();
    }

    // ---------------------------------------------------------------- raw mode

    private final class RawClient implements Conn.Listener {
        final ArrayDeque<Long> backlog;
        Conn conn;

        RawClient(ArrayDeque<Long> backlog) {
            this.backlog = backlog;
        }

        void issue(long intended) {
            Req req = new Req(Req.RAW, 0, options.body, 0);
            req.intendedNanos = intended;
            conn.send(req);
        }

        @Override
        public void answered(Conn c, Req req, int status, String body, String retryAfter) {
            stats.answers++;
            long now = System.nanoTime();
            if (status != 200) {
                stats.error("http-" + status);
            }
            if (req.intendedNanos >= steadyStartNanos) {
                Stats.record(stats.raw, now - req.intendedNanos);
                Stats.record(stats.request, now - req.sentNanos);
            }
            next();
        }

        @Override
        public void failed(Conn c, Req req, String kind) {
            stats.error(kind);
            next();
        }

        void next() {
            Long intended = backlog.poll();
            if (intended != null) {
                issue(intended);
            } else {
                idle.add(this);
            }
        }
    }

    private final ArrayDeque<RawClient> idle = new ArrayDeque<>();

    private int runRaw() throws Exception {
        ArrayDeque<Long> backlog = new ArrayDeque<>();
        double warmup = Math.min(5, options.duration / 5);
        onLoop(() -> {
            for (int i = 0; i < options.connections; i++) {
                RawClient c = new RawClient(backlog);
                c.conn = connections(i).open(c);
                idle.add(c);
            }
            phase = "warmup";
            steadyStartNanos = t0 + (long) (warmup * 1e9);
            return null;
        });
        log(String.format(Locale.ROOT, "raw: %.0f requests/s over %d connections for %.0f s (first %.0f s not"
                + " recorded), latency from the intended send time", options.rate, options.connections,
                options.duration, warmup));
        long[] issued = {0};
        long[] dropped = {0};
        loop.scheduleAtFixedRate(() -> {
            long now = System.nanoTime();
            if (!phase.equals("warmup") && !phase.equals("steady")) {
                return;
            }
            if (phase.equals("warmup") && now >= steadyStartNanos) {
                phase = "steady";
            }
            long due = (long) ((now - t0) / 1e9 * options.rate);
            while (issued[0] < due) {
                long intended = t0 + (long) (issued[0] / options.rate * 1e9);
                issued[0]++;
                RawClient c = idle.poll();
                if (c != null) {
                    c.issue(intended);
                } else if (backlog.size() < 1_000_000) {
                    backlog.add(intended);
                } else {
                    dropped[0]++;
                }
            }
        }, 0, 1, TimeUnit.MILLISECONDS);
        loop.scheduleAtFixedRate(this::progressRaw, (long) (options.progress * 1000), (long) (options.progress * 1000),
                TimeUnit.MILLISECONDS);
        Thread.sleep((long) (options.duration * 1000));
        String result = onLoop(() -> {
            phase = "end";
            steadyEndNanos = System.nanoTime();
            Json j = new Json();
            j.field("mode", "raw");
            j.field("urls", options.urls.toString());
            j.field("target_rate", options.rate);
            j.field("connections", options.connections);
            double secs = (steadyEndNanos - steadyStartNanos) / 1e9;
            j.field("recorded_seconds", secs);
            j.field("recorded_answers", stats.raw.getTotalCount());
            j.field("achieved_rate", stats.raw.getTotalCount() / secs);
            j.field("backlog_at_end", backlog.size());
            j.field("dropped", dropped[0]);
            j.object("errors");
            for (var e : stats.errors.entrySet()) {
                j.field(e.getKey(), e.getValue());
            }
            j.end();
            j.field("error_count", stats.errorCount());
            j.object("latency");
            Stats.histogramJson(j, "intended_to_answer", stats.raw);
            Stats.histogramJson(j, "sent_to_answer", stats.request);
            j.end();
            return j.toString();
        });
        Files.writeString(Path.of(options.out), result);
        log("raw: " + stats.raw.getTotalCount() + " answers recorded; intended->answer " + Stats.summary(stats.raw)
                + String.format(Locale.ROOT, " p99.9=%s", Stats.ms(stats.raw.getValueAtPercentile(99.9)))
                + "; errors " + stats.errors + "; result " + options.out);
        return 0;
    }

    private void progressRaw() {
        long now = System.nanoTime();
        double secs = (now - lastProgressNanos) / 1e9;
        log(String.format(Locale.ROOT, "%s t=%.0fs answers/s=%.0f conns open=%d errors=%d%s | %s", phase,
                (now - t0) / 1e9, (stats.answers - lastAnswers) / secs, stats.openConnections, stats.errorCount(),
                stats.errors.isEmpty() ? "" : " " + stats.errors, Stats.summary(stats.raw)));
        lastAnswers = stats.answers;
        lastProgressNanos = now;
    }

    static void writeQuietly(Path path, String text) {
        try {
            Files.writeString(path, text);
        } catch (IOException e) {
            log("cannot write " + path + ": " + e);
        }
    }
}
