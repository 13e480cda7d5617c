// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/** A link could not complete its handshake; the pool retries with backoff. */
final class LinkHandshakeException extends RuntimeException {

    LinkHandshakeException(String message) {
        super(message, null, false, false);
    }
}
