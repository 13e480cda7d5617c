// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/**
 * Where a request's outcome goes: exactly one of the two methods is called, once, on a link event loop (or on the
 * caller's thread when no link can take the request at all). The edge's {@code HeldRequest}, the Mono of one BOSH
 * POST, implements it itself, so a held request costs no extra callback object or Reactor operator.
 */
public interface Exchange {

    void onResponse(Frame.Response response);

    /** {@link UpstreamUnavailableException}, {@link UpstreamTimeoutException} or {@link FrameTooLargeException}. */
    void onFailure(Throwable error);
}
