// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/** A complete frame whose content docs/protocol.md does not allow; the link is closed with protocol_error. */
public final class MalformedFrameException extends RuntimeException {

    MalformedFrameException(String message) {
        super(message, null, false, false);
    }
}
