package io.megaphone.edge;

/** Admission control refused the request (or the ECM is draining); answered 503 with Retry-After. */
final class AdmissionRefusedException extends RuntimeException {

    AdmissionRefusedException(String reason) {
        super(reason, null, false, false);
    }
}
