// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/**
 * The version-2 frames (STREAM_OPEN, STREAM_OPENED, DATA, WINDOW, STREAM_CLOSE, and WELCOME's stream fields)
 * against bytes written out by hand from /tmp/notes/ws-protocol.md, until docs/protocol-vectors.txt has them.
 */
class StreamFramesTest {

    private static final HexFormat HEX = HexFormat.of();

    private static Frame decode(String hex) {
        EmbeddedChannel channel = new EmbeddedChannel(new LinkFrameDecoder(1 << 20, new LinkStats()));
        channel.writeInbound(Unpooled.wrappedBuffer(HEX.parseHex(hex)));
        Frame frame = channel.readInbound();
        assertThat(channel.finish()).as("one frame, nothing left over").isFalse();
        return frame;
    }

    private static String encode(Frame frame) {
        return HEX.formatHex(ByteBufUtil.getBytes(FrameCodec.encode(frame, UnpooledByteBufAllocator.DEFAULT)));
    }

    private static void roundTrip(String hex, Frame expected) {
        assertThat(decode(hex)).isEqualTo(expected);
        assertThat(encode(expected)).isEqualTo(hex);
    }

    @Test
    void streamOpenCarriesTheClientAddressAndTheServersCredit() throws Exception {
        // length 16 | 0x40 | stream 7 | ip_len 4 | 127.0.0.1 | port 50000 | window 65536
        roundTrip("00000010" + "40" + "00000007" + "04" + "7f000001" + "c350" + "00010000",
                new Frame.StreamOpen(7, new InetSocketAddress(InetAddress.getByName("127.0.0.1"), 50000), 65536));
        // IPv6: ip_len 16 | ::1 | port 443 | window 1
        roundTrip("0000001c" + "40" + "00000009" + "10" + "00000000000000000000000000000001" + "01bb" + "00000001",
                new Frame.StreamOpen(9, new InetSocketAddress(InetAddress.getByName("::1"), 443), 1));
    }

    @Test
    void streamOpenedDataWindowAndStreamClose() {
        roundTrip("00000009" + "41" + "00000007" + "00040000", new Frame.StreamOpened(7, 262144));
        roundTrip("0000000c" + "42" + "00000007" + "3c6f70656e2f3e",
                new Frame.Data(7, "<open/>".getBytes(StandardCharsets.UTF_8)));
        roundTrip("00000005" + "42" + "00000007", new Frame.Data(7, new byte[0]));
        roundTrip("00000009" + "43" + "00000007" + "ffffffff", new Frame.Window(7, 0xFFFF_FFFFL));
        // stream 7 | code 1012 | reason_len 9 | "link lost"
        roundTrip("00000011" + "44" + "00000007" + "03f4" + "09" + "6c696e6b206c6f7374",
                new Frame.StreamClose(7, 1012, "link lost"));
    }

    @Test
    void welcomeOfVersion2AppendsMaxStreamsAndStreamWindowAfterTheNode() {
        byte[] mac = new byte[32];
        String v1 = "0000002f" + "03" + "00".repeat(32) + "00100000" + "00002710" + "00003a98" + "01" + "6e";
        Frame.Welcome plain = (Frame.Welcome) decode(v1);
        assertThat(plain.hasStreamFields()).isFalse();
        assertThat(encode(new Frame.Welcome(mac, 1 << 20, 10_000, 15_000, "n"))).isEqualTo(v1);
        String v2 = "00000037" + "03" + "00".repeat(32) + "00100000" + "00002710" + "00003a98" + "01" + "6e"
                + "00004e20" + "00010000";
        Frame.Welcome streams = (Frame.Welcome) decode(v2);
        assertThat(streams.hasStreamFields()).isTrue();
        assertThat(streams.maxStreams()).isEqualTo(20_000);
        assertThat(streams.streamWindow()).isEqualTo(65_536);
        assertThat(encode(new Frame.Welcome(mac, 1 << 20, 10_000, 15_000, "n", 20_000, 65_536))).isEqualTo(v2);
    }

    @Test
    void aCloseReasonIsCutTo123BytesOnACharacterBoundary() {
        String reason = "é".repeat(70); // 140 bytes
        Frame.StreamClose decoded = (Frame.StreamClose) decode(encode(new Frame.StreamClose(3, 1000, reason)));
        assertThat(decoded.reason()).isEqualTo("é".repeat(61)); // 122 bytes: 123 would split a character
    }

    @Test
    void malformedStreamFramesAreRejected() {
        for (String hex : new String[] {
            "00000009" + "43" + "00000000" + "00000001", // stream 0
            "0000000f" + "40" + "00000007" + "05" + "7f00000101" + "c350" + "0001", // ip_len 5
            "00000008" + "43" + "00000007" + "000001", // window short
            "0000000a" + "43" + "00000007" + "0000000100", // a byte after the payload
            "00000009" + "44" + "00000007" + "03e8" + "7c" + "61", // reason_len 124
            "00000009" + "44" + "00000007" + "03e8" + "05" + "61", // reason overruns
            "00000033" + "03" + "00".repeat(32) + "00100000" + "00002710" + "00003a98" + "01" + "6e" + "00004e20",
        }) {
            EmbeddedChannel channel = new EmbeddedChannel(new LinkFrameDecoder(1 << 20, new LinkStats()));
            assertThatThrownBy(() -> channel.writeInbound(Unpooled.wrappedBuffer(HEX.parseHex(hex))), hex)
                    .isInstanceOf(DecoderException.class).hasCauseInstanceOf(MalformedFrameException.class);
        }
    }
}
