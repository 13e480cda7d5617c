// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The UTF-8 check of client text messages (RFC 6455 §8.1: not UTF-8 closes with 1007). */
class XmppWebSocketSessionTest {

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        empty                           |                    | true
        ASCII                           | 3c6d6573736167652f3e | true
        two-byte é                      | 3cc3a93e           | true
        four-byte emoji                 | f09f9880           | true
        truncated two-byte sequence     | 3cc3               | false
        lone continuation byte          | 3c803e             | false
        overlong encoding of /          | c0af               | false
        encoded surrogate D800          | eda080             | false
        above U+10FFFF                  | f4908080           | false
        """)
    void utf8IsTextAndAnythingElseIsNot(String name, String hex, boolean utf8) {
        byte[] bytes = hex == null ? new byte[0] : HexFormat.of().parseHex(hex);
        assertThat(XmppWebSocketSession.isUtf8(bytes)).isEqualTo(utf8);
    }

    @ParameterizedTest(name = "{0} bytes")
    @CsvSource({"511", "512", "513", "4096"})
    void longTextPastTheDecodersBufferIsUtf8(int chars) {
        assertThat(XmppWebSocketSession.isUtf8("é".repeat(chars).getBytes(StandardCharsets.UTF_8))).isTrue();
        byte[] broken = ("é".repeat(chars) + "x").getBytes(StandardCharsets.UTF_8);
        broken[broken.length - 2] = (byte) 0xc3; // the last é's second byte becomes a lead byte
        assertThat(XmppWebSocketSession.isUtf8(broken)).isFalse();
    }
}
