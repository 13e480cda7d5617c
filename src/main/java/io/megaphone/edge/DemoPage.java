// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import org.springframework.core.io.Resource;
import org.springframework.core.io.support.PathMatchingResourcePatternResolver;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.MediaTypeFactory;
import org.springframework.web.reactive.function.server.RouterFunction;
import org.springframework.web.reactive.function.server.RouterFunctions;
import org.springframework.web.reactive.function.server.ServerRequest;
import org.springframework.web.reactive.function.server.ServerResponse;
import org.springframework.web.server.ResponseStatusException;
import reactor.core.publisher.Mono;

/**
 * The demo page's files, the static resources under {@code classpath:/static/demo/}, served on the BOSH port so the
 * page and the BOSH endpoint share an origin. The files are listed once at startup; a request for any other name is
 * a 404 without a class-path lookup, so a flood of random paths cannot grow the class loader's resource cache
 * (docs/architecture.md).
 */
final class DemoPage {

    private static final String LOCATION = "classpath:/static/demo/";

    private final Map<String, Resource> files = new HashMap<>();

    DemoPage() {
        try {
            for (Resource file : new PathMatchingResourcePatternResolver().getResources(LOCATION + "*")) {
                if (file.isReadable() && file.getFilename() != null) {
                    files.put(file.getFilename(), file);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("the demo page's files (" + LOCATION + ") cannot be listed", e);
        }
    }

    /** GET /demo/ (the index), /demo/{file} and /demo (redirected to /demo/). */
    RouterFunction<ServerResponse> routes() {
        return RouterFunctions.route()
                .GET("/demo", request -> ServerResponse.permanentRedirect(request.uriBuilder().path("/").build())
                        .build())
                .GET("/demo/", request -> serve("index.html"))
                .GET("/demo/{file}", request -> serve(request.pathVariable("file")))
                .build();
    }

    private Mono<ServerResponse> serve(String name) {
        Resource file = files.get(name);
        if (file == null) {
            return Mono.error(new ResponseStatusException(HttpStatus.NOT_FOUND));
        }
        MediaType type = MediaTypeFactory.getMediaType(file).orElse(MediaType.APPLICATION_OCTET_STREAM);
        return ServerResponse.ok().contentType(type).header("Cache-Control", "no-cache").bodyValue(file);
    }

    int fileCount() {
        return files.size();
    }
}
