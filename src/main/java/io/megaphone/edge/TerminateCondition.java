// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.nio.charset.StandardCharsets;

/**
 * Spots a BOSH terminate in ejabberd's answer, for the terminate metric, by looking at the bytes of the root
 * start tag only (ejabberd writes it, so a byte scan is enough; no parse on the hot path).
 */
final class TerminateCondition {

    private static final int MAX_SCAN = 2048;

    private TerminateCondition() {
    }

    /** Null when the body is not a terminate; "none" when it is one without a condition; else the condition. */
    static String of(byte[] body) {
        int end = indexOf(body, (byte) '>', 0, Math.min(body.length, MAX_SCAN));
        if (end < 0 || !containsAttribute(body, end, "type", "terminate")) {
            return null;
        }
        String condition = attribute(body, end, "condition");
        return condition == null ? "none" : condition;
    }

    private static boolean containsAttribute(byte[] body, int end, String name, String value) {
        return value.equals(attribute(body, end, name));
    }

    /** The value of {@code name='…'} or {@code name="…"} in body[0, end), or null. */
    static String attribute(byte[] body, int end, String name) {
        byte[] key = (" " + name + "=").getBytes(StandardCharsets.US_ASCII);
        for (int at = 0; at + key.length < end; at++) {
            if (regionMatches(body, at, key)) {
                int quoteAt = at + key.length;
                byte quote = body[quoteAt];
                if (quote != '\'' && quote != '"') {
                    return null;
                }
                int close = indexOf(body, quote, quoteAt + 1, end);
                return close < 0 ? null
                        : new String(body, quoteAt + 1, close - quoteAt - 1, StandardCharsets.US_ASCII);
            }
        }
        return null;
    }

    private static boolean regionMatches(byte[] body, int at, byte[] key) {
        for (int i = 0; i < key.length; i++) {
            if (body[at + i] != key[i]) {
                return false;
            }
        }
        return true;
    }

    private static int indexOf(byte[] body, byte wanted, int from, int to) {
        for (int i = from; i < to; i++) {
            if (body[i] == wanted) {
                return i;
            }
        }
        return -1;
    }
}
