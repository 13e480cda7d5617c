package io.megaphone.edge;

import java.util.Locale;

/**
 * Which request Content-Types a BOSH body may come with: none, XML ({@code text/xml}, {@code application/xml},
 * {@code application/…+xml}) or {@code text/plain} (Strophe.js sends it to avoid a CORS preflight), in UTF-8 (or
 * with no charset). Anything else cannot be a BOSH body ejabberd reads and gets 415.
 */
final class BoshContentType {

    private BoshContentType() {
    }

    static boolean accepts(String contentType) {
        if (contentType == null || contentType.isBlank()) {
            return true;
        }
        String[] parts = contentType.toLowerCase(Locale.ROOT).split(";");
        String type = parts[0].strip();
        boolean xmlOrText = type.equals("text/xml") || type.equals("application/xml") || type.endsWith("+xml")
                || type.equals("text/plain");
        if (!xmlOrText) {
            return false;
        }
        for (int i = 1; i < parts.length; i++) {
            String parameter = parts[i].strip();
            if (parameter.startsWith("charset=")) {
                String charset = parameter.substring(8).replace("\"", "").strip();
                if (!charset.equals("utf-8") && !charset.equals("utf8") && !charset.equals("us-ascii")) {
                    return false;
                }
            }
        }
        return true;
    }
}
