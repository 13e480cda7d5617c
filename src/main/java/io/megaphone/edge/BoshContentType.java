// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import org.springframework.http.MediaType;

/**
 * Which request Content-Types a BOSH body may come with: none, XML ({@code text/xml}, {@code application/xml},
 * {@code application/…+xml}) or {@code text/plain} (Strophe.js sends it to avoid a CORS preflight), in UTF-8 (or
 * US-ASCII, or with no charset). Anything else cannot be a BOSH body ejabberd reads and gets 415.
 */
final class BoshContentType {

    private BoshContentType() {
    }

    static boolean accepts(String contentType) {
        if (contentType == null || contentType.isBlank()) {
            return true;
        }
        MediaType type;
        Charset charset;
        try {
            type = MediaType.parseMediaType(contentType);
            charset = type.getCharset();
        } catch (IllegalArgumentException e) { // InvalidMediaTypeException too
            return false; // unparsable, or a charset this JVM does not know
        }
        boolean xmlOrText = type.equalsTypeAndSubtype(MediaType.TEXT_XML)
                || type.equalsTypeAndSubtype(MediaType.APPLICATION_XML)
                || type.equalsTypeAndSubtype(MediaType.TEXT_PLAIN)
                || !type.isWildcardType() && "xml".equals(type.getSubtypeSuffix());
        return xmlOrText && (charset == null || charset.equals(StandardCharsets.UTF_8)
                || charset.equals(StandardCharsets.US_ASCII));
    }
}
