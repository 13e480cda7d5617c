// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import java.nio.charset.StandardCharsets;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.context.support.GenericApplicationContext;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.function.server.RouterFunction;
import org.springframework.web.reactive.function.server.RouterFunctions;
import org.springframework.web.reactive.function.server.ServerResponse;

/**
 * A reference point of the forwarding benchmark (bench/forwarding.sh): the smallest WebFlux functional endpoint on
 * the Reactor Netty server Spring Boot creates, with the ECM's class path and Boot's defaults — a
 * {@code RouterFunction} that reads the POSTed body ({@code bodyToMono(String)}) and answers the same small
 * {@code <body/>} as {@link InstantUpstream} at once. No CORS, no link, no BOSH checks: what the card's shape costs
 * before the ECM adds anything. Usage: {@code WebFluxHelloWorld <port>}; loopback only; Actuator off.
 *
 * <p>Deliberately not a {@code @Configuration} (the route is registered by an initializer): the ECM's component
 * scan of {@code io.megaphone} would otherwise pick it up in the tests.
 */
@EnableAutoConfiguration
public class WebFluxHelloWorld {

    private static final String BODY = new String(InstantUpstream.BODY, StandardCharsets.UTF_8);

    static RouterFunction<ServerResponse> routes() {
        MediaType xml = MediaType.parseMediaType("text/xml; charset=utf-8");
        return RouterFunctions.route()
                .POST("/http-bind", request -> request.bodyToMono(String.class)
                        .flatMap(body -> ServerResponse.ok().contentType(xml).bodyValue(BODY)))
                .build();
    }

    public static void main(String[] args) {
        SpringApplication application = new SpringApplication(WebFluxHelloWorld.class);
        application.addInitializers(context -> ((GenericApplicationContext) context)
                .registerBean("helloRoutes", RouterFunction.class, WebFluxHelloWorld::routes));
        // spring.config.name: not the ECM's application.yaml, which is on this class path too; Boot's defaults
        application.run("--spring.config.name=webflux-hello-world", "--server.address=127.0.0.1",
                "--server.port=" + args[0], "--management.server.port=-1", "--spring.main.banner-mode=off",
                "--logging.level.root=warn");
    }
}
