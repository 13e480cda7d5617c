// SPDX-License-Identifier: Apache-2.0
package io.megaphone.health;

import io.megaphone.link.LinkPool;
import java.util.function.IntSupplier;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/**
 * {@code firstLink}: DOWN until this ECM has had its first authenticated link, UP from then on, whatever happens
 * to the links later.
 *
 * <p>It is the readiness of the Helm chart: a new pod joins the Service only once it has reached ejabberd, and a
 * restart of the shared ejabberd does not take every pod out at once (docs/operations.md, "Readiness and a shared
 * ejabberd").
 */
@Component("firstLink")
class FirstLinkHealthIndicator implements HealthIndicator {

    private final IntSupplier readyLinks;
    private volatile boolean linked;

    @Autowired
    FirstLinkHealthIndicator(LinkPool pool) {
        this(pool::readyLinks);
    }

    FirstLinkHealthIndicator(IntSupplier readyLinks) {
        this.readyLinks = readyLinks;
    }

    @Override
    public Health health() {
        int ready = readyLinks.getAsInt();
        if (ready > 0) {
            linked = true;
        }
        return (linked ? Health.up() : Health.down()).withDetail("ready", ready).build();
    }
}
