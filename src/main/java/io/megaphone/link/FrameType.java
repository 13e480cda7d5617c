// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/** Frame type bytes of the megaphone link protocol (docs/protocol.md, section 1; 0x4x: version 2 only). */
final class FrameType {
    static final byte HELLO = 0x01;
    static final byte AUTH = 0x02;
    static final byte WELCOME = 0x03;
    static final byte REQUEST = 0x10;
    static final byte RESPONSE = 0x11;
    static final byte CANCEL = 0x12;
    static final byte PING = 0x20;
    static final byte PONG = 0x21;
    static final byte GOAWAY = 0x30;
    static final byte ERROR = 0x3F;
    static final byte STREAM_OPEN = 0x40;
    static final byte STREAM_OPENED = 0x41;
    static final byte DATA = 0x42;
    static final byte WINDOW = 0x43;
    static final byte STREAM_CLOSE = 0x44;

    private FrameType() {
    }
}
