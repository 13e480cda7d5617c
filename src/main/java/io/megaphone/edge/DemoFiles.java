package io.megaphone.edge;

import java.io.IOException;
import java.io.InputStream;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The demo page's few files, from {@code classpath:/static/demo/}, served on the BOSH port so the page and the
 * BOSH endpoint share an origin. Read once, kept in memory; no directory listing, no path outside the folder.
 */
final class DemoFiles {

    /** A file's bytes and its Content-Type. */
    record File(byte[] bytes, String contentType) {
    }

    private static final File MISSING = new File(new byte[0], "");
    private final Map<String, File> cache = new ConcurrentHashMap<>();

    /** The file for a request path under /demo, or null. */
    File get(String path) {
        String name = path.equals("/demo") || path.equals("/demo/") ? "index.html" : path.substring("/demo/".length());
        if (name.isEmpty() || name.contains("..") || name.contains("\\") || name.startsWith("/")) {
            return null;
        }
        File file = cache.computeIfAbsent(name, DemoFiles::load);
        return file == MISSING ? null : file;
    }

    private static File load(String name) {
        try (InputStream in = DemoFiles.class.getResourceAsStream("/static/demo/" + name)) {
            return in == null ? MISSING : new File(in.readAllBytes(), contentType(name));
        } catch (IOException e) {
            return MISSING;
        }
    }

    private static String contentType(String name) {
        if (name.endsWith(".html")) {
            return "text/html; charset=utf-8";
        } else if (name.endsWith(".js") || name.endsWith(".mjs")) {
            return "text/javascript; charset=utf-8";
        } else if (name.endsWith(".css")) {
            return "text/css; charset=utf-8";
        } else if (name.endsWith(".svg")) {
            return "image/svg+xml";
        } else if (name.endsWith(".png")) {
            return "image/png";
        }
        return "application/octet-stream";
    }
}
