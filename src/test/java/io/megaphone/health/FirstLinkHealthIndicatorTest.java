// SPDX-License-Identifier: Apache-2.0
package io.megaphone.health;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.springframework.boot.health.contributor.Status;

class FirstLinkHealthIndicatorTest {

    private final AtomicInteger readyLinks = new AtomicInteger();
    private final FirstLinkHealthIndicator indicator = new FirstLinkHealthIndicator(readyLinks::get);

    @Test
    void isDownUntilTheFirstLinkIsUp() {
        assertThat(indicator.health().getStatus()).isEqualTo(Status.DOWN);

        readyLinks.set(2);

        assertThat(indicator.health().getStatus()).isEqualTo(Status.UP);
    }

    @Test
    void staysUpWhenEveryLinkGoesDownAfterTheFirstOne() {
        readyLinks.set(1);
        indicator.health();

        readyLinks.set(0);

        assertThat(indicator.health().getStatus()).isEqualTo(Status.UP);
        assertThat(indicator.health().getDetails()).containsEntry("ready", 0);
    }
}
