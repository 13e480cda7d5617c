// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The Java codec against docs/protocol-vectors.txt, the same file the Erlang codec is tested against. */
class FrameCodecVectorsTest {

    private static final Path VECTORS = Path.of("docs/protocol-vectors.txt");
    private static final HexFormat HEX = HexFormat.of();

    record Vector(String kind, String name, byte[] bytes) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<Vector> vectors() throws IOException {
        return Files.readAllLines(VECTORS).stream().filter(line -> !line.isBlank() && !line.startsWith("#"))
                .map(line -> line.split(" "))
                .map(f -> new Vector(f[0], f[1], HEX.parseHex(f[2]))).toList();
    }

    static Stream<Vector> valid() throws IOException {
        return vectors().stream().filter(v -> v.kind().equals("valid"));
    }

    static Stream<Vector> malformed() throws IOException {
        return vectors().stream().filter(v -> v.kind().equals("malformed"));
    }

    static Map<String, Frame> decodedByName() throws IOException {
        return valid().collect(Collectors.toMap(Vector::name, v -> decodeWhole(v.bytes())));
    }

    private static Frame decodeWhole(byte[] bytes) {
        EmbeddedChannel channel = new EmbeddedChannel(new LinkFrameDecoder(1 << 20, new LinkStats()));
        channel.writeInbound(Unpooled.wrappedBuffer(bytes));
        Frame frame = channel.readInbound();
        assertThat(channel.finish()).as("one frame, nothing left over").isFalse();
        return frame;
    }

    @ParameterizedTest
    @MethodSource("valid")
    void everyValidVectorDecodesAndEncodesBackToTheSameBytes(Vector vector) {
        Frame frame = decodeWhole(vector.bytes());
        ByteBuf encoded = FrameCodec.encode(frame, UnpooledByteBufAllocator.DEFAULT);
        assertThat(ByteBufUtil.getBytes(encoded)).isEqualTo(vector.bytes());
    }

    @ParameterizedTest
    @MethodSource("malformed")
    void everyMalformedVectorIsRejected(Vector vector) {
        EmbeddedChannel channel = new EmbeddedChannel(new LinkFrameDecoder(1 << 20, new LinkStats()));
        assertThatThrownBy(() -> channel.writeInbound(Unpooled.wrappedBuffer(vector.bytes())))
                .isInstanceOf(DecoderException.class).hasCauseInstanceOf(MalformedFrameException.class);
    }

    @Test
    void decodedFieldsAreTheDocumentedValues() throws Exception {
        Map<String, Frame> frames = decodedByName();
        Frame.Request request = (Frame.Request) frames.get("request_ipv4");
        assertThat(request.id()).isEqualTo(7);
        assertThat(request.envelope().rid()).isEqualTo(1001);
        assertThat(request.envelope().sid()).isEqualTo("abc");
        assertThat(request.envelope().address()).isEqualTo(InetAddress.getByName("127.0.0.1"));
        assertThat(request.envelope().port()).isEqualTo(50000);
        assertThat(new String(request.envelope().body(), StandardCharsets.UTF_8))
                .isEqualTo("<body rid='1001' sid='abc'/>");
        Frame.Request v6 = (Frame.Request) frames.get("request_ipv6_no_sid");
        assertThat(v6.envelope().address()).isEqualTo(InetAddress.getByName("::1"));
        assertThat(v6.envelope().sid()).isEmpty();
        assertThat(v6.envelope().rid()).isZero();
        assertThat(frames.get("response")).isEqualTo(new Frame.Response(7, 200, "text/xml; charset=utf-8",
                "<body/>".getBytes(StandardCharsets.UTF_8)));
        assertThat(frames.get("cancel")).isEqualTo(new Frame.Cancel(7));
        assertThat(frames.get("goaway")).isEqualTo(new Frame.GoAway(0, "shutdown"));
        assertThat(frames.get("error")).isEqualTo(new Frame.Error(Frame.Error.AUTH_FAILED, "auth_failed"));
        Frame.Welcome welcome = (Frame.Welcome) frames.get("welcome");
        assertThat(welcome.maxFrame()).isEqualTo(1_048_576);
        assertThat(welcome.node()).isEqualTo("ejabberd@localhost");
    }

    @Test
    void handshakeMacsAreTheOnesInTheVectorsFileMadeWithASecretOfAtLeast32Bytes() throws Exception {
        List<String> lines = Files.readAllLines(VECTORS);
        String header = lines.stream().filter(l -> l.startsWith("# Handshake values: secret '")).findFirst().orElseThrow();
        String secret = header.substring(header.indexOf('\'') + 1, header.indexOf('\'', header.indexOf('\'') + 1));
        assertThat(secret).as("the vectors' secret, as both sides require").hasSizeGreaterThanOrEqualTo(32);
        String authMac = lines.stream().filter(l -> l.startsWith("# auth_mac=")).findFirst().orElseThrow().substring(11);
        String welcomeMac = lines.stream().filter(l -> l.startsWith("# welcome_mac=")).findFirst().orElseThrow()
                .substring(14);
        Frame.Hello hello = (Frame.Hello) decodedByName().get("hello");
        Frame.Auth auth = (Frame.Auth) decodedByName().get("auth");
        HandshakeProof proof = new HandshakeProof(secret.getBytes(StandardCharsets.US_ASCII));
        assertThat(HEX.formatHex(proof.authMac(1, hello.serverNonce(), auth.clientNonce(), "ecm-1"))).isEqualTo(authMac);
        assertThat(auth.mac()).isEqualTo(HEX.parseHex(authMac));
        assertThat(HEX.formatHex(proof.welcomeMac(1, auth.clientNonce(), hello.serverNonce()))).isEqualTo(welcomeMac);
        assertThat(proof.toString()).doesNotContain(secret);
    }

    @Test
    void aLengthOverTheLimitFailsFastWithoutWaitingForTheRest() {
        EmbeddedChannel channel = new EmbeddedChannel(new LinkFrameDecoder(4096, new LinkStats()));
        ByteBuf header = Unpooled.buffer().writeInt(4097).writeByte(0x10);
        assertThatThrownBy(() -> channel.writeInbound(header))
                .isInstanceOf(io.netty.handler.codec.TooLongFrameException.class);
    }

    @Test
    void anIncompleteFrameWaitsForMoreBytes() throws Exception {
        byte[] ping = valid().filter(v -> v.name().equals("ping")).findFirst().orElseThrow().bytes();
        EmbeddedChannel channel = new EmbeddedChannel(new LinkFrameDecoder(4096, new LinkStats()));
        channel.writeInbound(Unpooled.wrappedBuffer(ping, 0, 6));
        assertThat((Object) channel.readInbound()).isNull();
        channel.writeInbound(Unpooled.wrappedBuffer(ping, 6, ping.length - 6));
        assertThat((Frame) channel.readInbound()).isEqualTo(new Frame.Ping(42));
    }
}
