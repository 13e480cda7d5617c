// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

/**
 * A request the edge answers itself (refused, malformed, upstream unreachable), raised as a Mono error so that
 * WebFlux's exception handling ({@link EdgeExceptionHandler}) writes {@link #answer()}. Its outcome is already
 * counted where it was raised. No stack trace: these are expected, and some are frequent under a storm.
 */
final class EdgeAnswerException extends RuntimeException {

    private final transient BoshAnswer answer;

    EdgeAnswerException(BoshAnswer answer) {
        super("answered " + answer.status(), null, false, false);
        this.answer = answer;
    }

    BoshAnswer answer() {
        return answer;
    }
}
