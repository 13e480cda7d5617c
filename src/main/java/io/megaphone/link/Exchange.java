package io.megaphone.link;

/**
 * Where a request's outcome goes: exactly one of the two methods is called, once, on a link event loop (or on the
 * caller's thread when no link can take the request at all). The edge's connection handler implements it, so a
 * held request costs no Reactor operators.
 */
public interface Exchange {

    void onResponse(Frame.Response response);

    /** {@link UpstreamUnavailableException} or {@link UpstreamTimeoutException}. */
    void onFailure(Throwable error);
}
