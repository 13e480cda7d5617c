// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/**
 * ejabberd did not answer a request within the ECM's upstream timeout, which is longer than any BOSH
 * {@code wait}: the upstream is broken. The edge answers a retryable 5xx, never a fabricated empty body.
 */
public final class UpstreamTimeoutException extends RuntimeException {

    public UpstreamTimeoutException(String message) {
        super(message, null, false, false);
    }
}
