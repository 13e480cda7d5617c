// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

/** A tiny JSON writer (objects, strings, numbers, booleans), pretty-printed. */
final class Json {

    private final StringBuilder out = new StringBuilder();
    private int depth;
    private boolean first = true;

    Json() {
        out.append('{');
        depth = 1;
    }

    private void key(String name) {
        if (!first) {
            out.append(',');
        }
        out.append('\n').append("  ".repeat(depth));
        quote(name);
        out.append(": ");
        first = false;
    }

    Json object(String name) {
        key(name);
        out.append('{');
        depth++;
        first = true;
        return this;
    }

    Json end() {
        depth--;
        out.append('\n').append("  ".repeat(depth)).append('}');
        first = false;
        return this;
    }

    Json field(String name, Object value) {
        key(name);
        if (value == null) {
            out.append("null");
        } else if (value instanceof Number || value instanceof Boolean) {
            if (value instanceof Double d && (d.isNaN() || d.isInfinite())) {
                out.append("null");
            } else {
                out.append(value);
            }
        } else {
            quote(value.toString());
        }
        return this;
    }

    private void quote(String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    @Override
    public String toString() {
        return out + "\n}\n";
    }
}
