// SPDX-License-Identifier: Apache-2.0
package io.megaphone.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.MegaphoneApplication;
import io.megaphone.link.LinkPool;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.EventExecutor;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.http.client.ReactorResourceFactory;

/**
 * {@code megaphone.link.links-per-node}: unset, one link per event loop of the web server (so that every client
 * connection's loop has a link of its own); set, exactly that many. The node is a closed port: only the pool's
 * configuration is looked at.
 */
class LinksPerNodeTest {

    private static final String[] BASE = {"--megaphone.link.secret=links-per-node-test-secret-0123456789",
            "--megaphone.link.nodes=127.0.0.1:1", "--server.port=0", "--management.server.port=0"};

    @Test
    void unsetItIsOneLinkPerServerEventLoop() {
        try (ConfigurableApplicationContext context = start()) {
            EventLoopGroup loops = context.getBean(ReactorResourceFactory.class).getLoopResources().onServer(true);
            int loopCount = 0;
            for (EventExecutor ignored : loops) {
                loopCount++;
            }
            assertThat(loopCount).as("Reactor Netty's server loops (at least 4)").isGreaterThanOrEqualTo(4);
            assertThat(context.getBean(LinkPool.class).configuredLinks()).isEqualTo(loopCount);
        }
    }

    @Test
    void setItIsExactlyThatMany() {
        try (ConfigurableApplicationContext context = start("--megaphone.link.links-per-node=3")) {
            assertThat(context.getBean(LinkPool.class).configuredLinks()).isEqualTo(3);
        }
    }

    private static ConfigurableApplicationContext start(String... extra) {
        String[] args = java.util.Arrays.copyOf(BASE, BASE.length + extra.length);
        System.arraycopy(extra, 0, args, BASE.length, extra.length);
        return new SpringApplicationBuilder(MegaphoneApplication.class).run(args);
    }
}
