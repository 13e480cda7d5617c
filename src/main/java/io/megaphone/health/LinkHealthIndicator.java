// SPDX-License-Identifier: Apache-2.0
package io.megaphone.health;

import io.megaphone.link.LinkPool;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/**
 * {@code links}: UP while at least one authenticated link can take requests. It is part of the readiness
 * group, so a load balancer stops sending clients to an ECM that cannot reach ejabberd. Details: links ready and
 * configured, requests in flight, and the capacity (the ready links' {@code max_inflight} summed).
 */
@Component("links")
class LinkHealthIndicator implements HealthIndicator {

    private final LinkPool pool;

    LinkHealthIndicator(LinkPool pool) {
        this.pool = pool;
    }

    @Override
    public Health health() {
        int ready = pool.readyLinks();
        Health.Builder health = ready > 0 ? Health.up() : Health.down();
        return health.withDetail("ready", ready).withDetail("configured", pool.configuredLinks())
                .withDetail("inflight", pool.inflight()).withDetail("capacity", pool.capacity()).build();
    }
}
