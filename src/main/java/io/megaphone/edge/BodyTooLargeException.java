package io.megaphone.edge;

/** The request body exceeds megaphone.edge.max-body-bytes; answered 413 before anything is forwarded. */
final class BodyTooLargeException extends RuntimeException {

    BodyTooLargeException(long limit) {
        super("body over " + limit + " bytes", null, false, false);
    }
}
