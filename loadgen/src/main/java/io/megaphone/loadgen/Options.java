// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import java.net.URI;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Command-line options: {@code --name value} or {@code --name=value}. */
final class Options {

    static final String HELP = """
            Megaphone load generator: simulated BOSH users (session create, SASL PLAIN, restart, bind,
            presence, held long polls, chat messages) against a BOSH endpoint (the ECM or ejabberd's /http-bind),
            or XMPP over WebSocket users (--mode ws: RFC 7395, one socket each) against the ECM's
            /xmpp-websocket or ejabberd's own /ws.

            java -jar megaphone-loadgen.jar [options]

              --url URL[,URL...]       endpoint(s); user i uses URL i mod n          (http://127.0.0.1:8080/http-bind;
                                       --mode ws: ws://127.0.0.1:8080/xmpp-websocket)
              --domain D               XMPP domain (the 'to' of the session)          (localhost)
              --user-pattern P         user name pattern, %d = index                  (lg%d)
              --first N                index of the first user                        (1)
              --users N                number of users                                (10)
              --password PW            password of every user                         (secret-pw)
              --register-cmd CMD       register the users first by running 'CMD register USER DOMAIN PW'
                                       (e.g. "scripts/private-ejabberd.sh ctl /tmp/ej"), 4 at a time
              --ramp R                 new users per second                           (100)
              --duration S             seconds of steady state after the ramp          (30)
              --stop-file PATH         end the steady state early when this file exists
              --ready-file PATH        written (JSON counts) when the ramp is over
              --msg-rate R             chat messages per second, whole process        (0)
              --chat-during-ramp       send messages during the ramp too (between the users online so
                                       far), not only in the steady state
              --senders N              users that hold 2 connections (poll + send) and send messages;
                                       the others hold 1 (poll only, receive only)    (all)
                                       (--mode ws: one socket each; only the first N send)
              --source ADDR[,ADDR...]  local addresses to bind (127.0.0.x); user i uses ADDR i mod n
              --wait S                 BOSH wait                                      (60)
              --hold N                 BOSH hold                                      (1)
              --drain S                after the steady state, wait up to S s for messages in flight (10)
              --no-terminate           do not end the sessions at the end (just close connections)
              --pipeline               senders hold their messages until their poll is answered, then send
                                       them as rid N+1 on the send connection *before* the new poll N on
                                       the poll connection (requests='2' pipelining, worst order; use a
                                       short --wait so queued messages go out at least every wait seconds)
              --login-timeout S        a user not online S s after it started counts as a login error (60)
              --progress S             seconds between progress lines                 (5)
              --out PATH               result file (JSON)                             (loadgen-result.json)
              --mode bosh|ws|raw       ws: XMPP over WebSocket users (subprotocol xmpp, RFC 7395 framing);
                                       the BOSH-only options (wait, hold, pipeline) do not apply;
                                       raw: constant-rate POSTs of one fixed body (no sessions), open loop,
                                       latency from the intended send time (no coordinated omission)
              --rate R                 raw mode: requests per second                  (1000)
              --connections N          raw mode: connections (each one request at a time) (64)
              --body XML               raw mode: the body POSTed
              --epoll / --nio          transport                                      (epoll when available)
            """;

    List<URI> urls = new ArrayList<>(List.of(URI.create("http://127.0.0.1:8080/http-bind")));
    String domain = "localhost";
    String userPattern = "lg%d";
    int first = 1;
    int users = 10;
    String password = "secret-pw";
    String registerCmd;
    double ramp = 100;
    double duration = 30;
    String stopFile;
    String readyFile;
    double msgRate = 0;
    boolean chatDuringRamp;
    int senders = -1;
    List<String> sources = new ArrayList<>();
    int waitSeconds = 60;
    int hold = 1;
    double drain = 10;
    boolean terminate = true;
    boolean pipeline;
    double loginTimeout = 60;
    double progress = 5;
    String out = "loadgen-result.json";
    String mode = "bosh";
    double rate = 1000;
    int connections = 64;
    String body = "<body rid='1' sid='bench' xmlns='http://jabber.org/protocol/httpbind'/>";
    Boolean epoll;
    final Map<String, Object> echo = new LinkedHashMap<>();

    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help") || a.equals("-h")) {
                System.out.print(HELP);
                System.exit(0);
            }
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument: " + a);
            }
            String name = a.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            switch (name) {
                case "no-terminate" -> { o.terminate = false; o.echo.put(name, true); continue; }
                case "chat-during-ramp" -> { o.chatDuringRamp = true; o.echo.put(name, true); continue; }
                case "pipeline" -> { o.pipeline = true; o.echo.put(name, true); continue; }
                case "epoll" -> { o.epoll = true; continue; }
                case "nio" -> { o.epoll = false; continue; }
                default -> { }
            }
            if (value == null) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("--" + name + " needs a value");
                }
                value = args[++i];
            }
            o.echo.put(name, value);
            switch (name) {
                case "url" -> {
                    o.urls.clear();
                    for (String u : value.split(",")) {
                        o.urls.add(URI.create(u.trim()));
                    }
                }
                case "domain" -> o.domain = value;
                case "user-pattern" -> o.userPattern = value;
                case "first" -> o.first = Integer.parseInt(value);
                case "users" -> o.users = Integer.parseInt(value);
                case "password" -> o.password = value;
                case "register-cmd" -> o.registerCmd = value;
                case "ramp" -> o.ramp = Double.parseDouble(value);
                case "duration" -> o.duration = Double.parseDouble(value);
                case "stop-file" -> o.stopFile = value;
                case "ready-file" -> o.readyFile = value;
                case "msg-rate" -> o.msgRate = Double.parseDouble(value);
                case "senders" -> o.senders = Integer.parseInt(value);
                case "source" -> {
                    o.sources.clear();
                    for (String s : value.split(",")) {
                        if (!s.isBlank()) {
                            o.sources.add(s.trim());
                        }
                    }
                }
                case "wait" -> o.waitSeconds = Integer.parseInt(value);
                case "hold" -> o.hold = Integer.parseInt(value);
                case "drain" -> o.drain = Double.parseDouble(value);
                case "login-timeout" -> o.loginTimeout = Double.parseDouble(value);
                case "progress" -> o.progress = Double.parseDouble(value);
                case "out" -> o.out = value;
                case "mode" -> o.mode = value;
                case "rate" -> o.rate = Double.parseDouble(value);
                case "connections" -> o.connections = Integer.parseInt(value);
                case "body" -> o.body = value;
                default -> throw new IllegalArgumentException("unknown option --" + name + " (see --help)");
            }
        }
        if (o.senders < 0 || o.senders > o.users) {
            o.senders = o.users;
        }
        if (o.ramp <= 0 || o.users < 0 || o.waitSeconds < 1 || o.hold < 1) {
            throw new IllegalArgumentException("--ramp must be > 0, --users >= 0, --wait and --hold >= 1");
        }
        if (!o.mode.equals("bosh") && !o.mode.equals("raw") && !o.mode.equals("ws")) {
            throw new IllegalArgumentException("--mode: " + o.mode + " (expected: bosh, ws or raw)");
        }
        String scheme = o.mode.equals("ws") ? "ws" : "http";
        if (o.mode.equals("ws") && !o.echo.containsKey("url")) {
            o.urls.set(0, URI.create("ws://127.0.0.1:8080/xmpp-websocket"));
        }
        for (URI uri : o.urls) {
            if (!scheme.equals(uri.getScheme()) || uri.getHost() == null) {
                throw new IllegalArgumentException("--url: " + uri + " (expected: " + scheme
                        + "://host:port/path in --mode " + o.mode + ")");
            }
        }
        return o;
    }

    String userName(int index) {
        return String.format(userPattern, index);
    }
}
