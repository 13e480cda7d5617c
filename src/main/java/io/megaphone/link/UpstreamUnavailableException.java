// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/**
 * No link could carry a request (none ready, or the one it was on died and no other could take it).
 * The edge answers 503 with Retry-After: ejabberd never saw the request or will answer a re-send of it.
 */
public final class UpstreamUnavailableException extends RuntimeException {

    public UpstreamUnavailableException(String message) {
        super(message, null, false, false);
    }
}
