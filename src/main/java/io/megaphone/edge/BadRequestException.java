// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

/** The client sent something that is not a BOSH request; answered 400 with a bad-request terminate. */
final class BadRequestException extends RuntimeException {

    BadRequestException(String message) {
        super(message, null, false, false);
    }
}
