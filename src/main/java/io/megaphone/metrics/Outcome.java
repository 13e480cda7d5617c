// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import java.util.Locale;

/** How a BOSH request ended; the {@code outcome} tag of {@link MegaphoneMeters#EDGE_REQUESTS}. */
public enum Outcome {
    /** ejabberd answered and the answer was relayed. */
    ANSWERED,
    /** ejabberd did not answer within the upstream timeout: 504. */
    UPSTREAM_TIMEOUT,
    /** No link could carry the request: 503. */
    UPSTREAM_UNAVAILABLE,
    /** The client went away before the answer. */
    CLIENT_GONE,
    /** Admission control refused it: 503. */
    REJECTED,
    /** Not a BOSH body: 400. */
    BAD_REQUEST,
    /** Body over the limit: 413. */
    TOO_LARGE,
    /** ejabberd's answer was too large for the link: a BOSH terminate (undefined-condition). */
    ANSWER_TOO_LARGE,
    /** The ECM failed: 500. */
    ERROR;

    public String tag() {
        return name().toLowerCase(Locale.ROOT);
    }
}
