// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH: the ECM's BOSH start-tag parser (sid and rid of every request, Aalto async XML) on a long poll, a
 * message send and a session creation. Run with bench/jmh.sh (the {@code jmh} Maven profile); not part of the
 * unit test suite.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class BodyStartTagBenchmark {

    final byte[] poll = "<body rid='1234567890' sid='a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2' xmlns='http://jabber.org/protocol/httpbind'/>"
            .getBytes(StandardCharsets.UTF_8);
    final byte[] message = ("<body rid='1234567891' sid='a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2' xmlns='http://jabber.org/protocol/httpbind'>"
            + "<message to='bob@localhost' type='chat' xmlns='jabber:client'><body>" + "hello ".repeat(40)
            + "</body></message></body>").getBytes(StandardCharsets.UTF_8);
    final byte[] create = ("<body content='text/xml; charset=utf-8' hold='1' rid='1' to='localhost' wait='60'"
            + " xml:lang='en' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' xmlns='http://jabber.org/protocol/httpbind'/>")
            .getBytes(StandardCharsets.UTF_8);

    @Benchmark
    public BodyStartTag poll() {
        return BodyStartTag.parse(poll);
    }

    @Benchmark
    public BodyStartTag message() {
        return BodyStartTag.parse(message);
    }

    @Benchmark
    public BodyStartTag sessionCreate() {
        return BodyStartTag.parse(create);
    }
}
