// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.handler.codec.dns.DatagramDnsQuery;
import io.netty.handler.codec.dns.DatagramDnsQueryDecoder;
import io.netty.handler.codec.dns.DatagramDnsResponse;
import io.netty.handler.codec.dns.DatagramDnsResponseEncoder;
import io.netty.handler.codec.dns.DefaultDnsQuestion;
import io.netty.handler.codec.dns.DefaultDnsRawRecord;
import io.netty.handler.codec.dns.DnsQuestion;
import io.netty.handler.codec.dns.DnsRecordType;
import io.netty.handler.codec.dns.DnsSection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A name server on a loopback UDP port that, until {@link #startAnswering()}, never answers (a name server that
 * hangs); from then on it answers every A question with 127.0.0.1 (TTL {@code ttlSeconds}) and every other question
 * with no record, including the questions it held.
 */
public final class StallingDnsServer implements AutoCloseable {

    /** One question as received: enough to answer it later. */
    private record Question(InetSocketAddress sender, InetSocketAddress recipient, int id, String name,
                            DnsRecordType type) {
    }

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final Channel channel;
    private final long ttlSeconds;
    private final Queue<Question> held = new ConcurrentLinkedQueue<>();
    /** Questions received, answered or not. */
    public final AtomicInteger queries = new AtomicInteger();
    private volatile boolean answering;

    public StallingDnsServer(long ttlSeconds) throws InterruptedException {
        this.ttlSeconds = ttlSeconds;
        this.channel = new Bootstrap().group(group).channel(NioDatagramChannel.class)
                .handler(new ChannelInitializer<DatagramChannel>() {
                    @Override
                    protected void initChannel(DatagramChannel ch) {
                        ch.pipeline().addLast(new DatagramDnsQueryDecoder(), new DatagramDnsResponseEncoder(),
                                new Responder());
                    }
                }).bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).sync().channel();
    }

    /** {@code 127.0.0.1:port}, for {@code megaphone.link.dns.name-servers}. */
    public InetSocketAddress address() {
        return (InetSocketAddress) channel.localAddress();
    }

    /** Answers the questions held so far, and every later one at once. */
    public void startAnswering() {
        answering = true;
        channel.eventLoop().execute(() -> {
            Question question;
            while ((question = held.poll()) != null) {
                answer(question);
            }
        });
    }

    /** Stops answering: from now on questions are held again. */
    public void stopAnswering() {
        answering = false;
    }

    private void answer(Question question) {
        DatagramDnsResponse response = new DatagramDnsResponse(question.recipient(), question.sender(), question.id());
        response.setRecursionAvailable(true);
        response.addRecord(DnsSection.QUESTION, new DefaultDnsQuestion(question.name(), question.type()));
        if (question.type() == DnsRecordType.A) {
            response.addRecord(DnsSection.ANSWER, new DefaultDnsRawRecord(question.name(), DnsRecordType.A, ttlSeconds,
                    Unpooled.wrappedBuffer(new byte[] {127, 0, 0, 1})));
        }
        channel.writeAndFlush(response);
    }

    @Override
    public void close() {
        channel.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private final class Responder extends SimpleChannelInboundHandler<DatagramDnsQuery> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, DatagramDnsQuery query) {
            DnsQuestion asked = query.recordAt(DnsSection.QUESTION);
            queries.incrementAndGet();
            Question question = new Question(query.sender(), query.recipient(), query.id(), asked.name(), asked.type());
            if (answering) {
                answer(question);
            } else {
                held.add(question);
            }
        }
    }
}
