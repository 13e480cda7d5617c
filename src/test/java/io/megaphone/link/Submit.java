// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import reactor.core.publisher.Mono;

/**
 * {@link LinkPool#submit}, the production path of every request, as a Mono for tests: the Mono's cancellation is the
 * client going away ({@link PendingRequest#cancel()}).
 */
final class Submit {

    private Submit() {
    }

    static Mono<Frame.Response> of(LinkPool pool, RequestEnvelope envelope) {
        return Mono.create(sink -> {
            PendingRequest request = pool.submit(envelope, new Exchange() {
                @Override
                public void onResponse(Frame.Response response) {
                    sink.success(response);
                }

                @Override
                public void onFailure(Throwable error) {
                    sink.error(error);
                }
            });
            sink.onCancel(request::cancel);
        });
    }
}
