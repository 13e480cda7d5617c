// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/**
 * One request whose frame does not fit the link: its REQUEST is over the server's {@code max_frame} (never sent),
 * or ejabberd's answer to it is over the link's limit (mod_megaphone sent its "answer too large" RESPONSE instead,
 * or the ECM skipped a RESPONSE over its own limit). Only that request fails; the link stays up. A re-send would
 * meet the same size (ejabberd answers a re-sent rid from its buffer), so the edge does not ask for one.
 */
public final class FrameTooLargeException extends RuntimeException {

    private final boolean answer;
    private final transient RequestEnvelope request;

    FrameTooLargeException(boolean answer, RequestEnvelope request, String message) {
        super(message, null, false, false);
        this.answer = answer;
        this.request = request;
    }

    /** True: ejabberd's answer was too large; false: the request was. */
    public boolean answer() {
        return answer;
    }

    /** The request that failed, so that the edge can end its session in ejabberd. */
    public RequestEnvelope request() {
        return request;
    }
}
