// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import io.megaphone.link.Frame;
import io.megaphone.link.FrameCodec;
import io.megaphone.link.RequestEnvelope;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH: the link frame codec (docs/protocol.md) on the hot path: encode of a REQUEST (the ECM, per forwarded
 * POST), decode of a RESPONSE (the ECM, per answer), and the other two directions (what mod_megaphone does),
 * with Netty's pooled allocator as in the ECM. The frame's length prefix is included in the encoded bytes and
 * skipped before decode, as the link's frame decoder does. Run with bench/jmh.sh.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class FrameCodecBenchmark {

    final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
    Frame.Request request;
    Frame.Response response;
    ByteBuf requestBytes;
    ByteBuf responseBytes;

    @Setup
    public void setUp() throws Exception {
        byte[] body = "<body rid='1234567890' sid='a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2' xmlns='http://jabber.org/protocol/httpbind'/>"
                .getBytes(StandardCharsets.UTF_8);
        request = new Frame.Request(42, RequestEnvelope.of(1234567890L, "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
                InetAddress.getByName("127.0.0.1"), 54321, body));
        byte[] answer = ("<body xmlns='http://jabber.org/protocol/httpbind'><message from='alice@localhost/lg'"
                + " to='bob@localhost' type='chat' xmlns='jabber:client'><body>hello</body></message></body>")
                .getBytes(StandardCharsets.UTF_8);
        response = new Frame.Response(42, 200, "text/xml; charset=utf-8", answer);
        requestBytes = FrameCodec.encode(request, alloc);
        responseBytes = FrameCodec.encode(response, alloc);
    }

    @TearDown
    public void tearDown() {
        requestBytes.release();
        responseBytes.release();
    }

    @Benchmark
    public int encodeRequest() {
        ByteBuf out = FrameCodec.encode(request, alloc);
        int n = out.readableBytes();
        out.release();
        return n;
    }

    @Benchmark
    public Frame decodeResponse() {
        ByteBuf in = responseBytes.duplicate();
        in.skipBytes(4);
        return FrameCodec.decode(in);
    }

    @Benchmark
    public int encodeResponse() {
        ByteBuf out = FrameCodec.encode(response, alloc);
        int n = out.readableBytes();
        out.release();
        return n;
    }

    @Benchmark
    public Frame decodeRequest() {
        ByteBuf in = requestBytes.duplicate();
        in.skipBytes(4);
        return FrameCodec.decode(in);
    }
}
