// SPDX-License-Identifier: Apache-2.0
package io.megaphone;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;
import org.springframework.scheduling.annotation.EnableScheduling;

/**
 * The Megaphone ECM: terminates BOSH HTTP connections ({@code edge}) and forwards every request over a few
 * authenticated megaphone links ({@code link}) to mod_megaphone inside ejabberd. Start reading at
 * {@link io.megaphone.edge.BoshHandler} (one POST) and {@link io.megaphone.link.LinkPool} (where it goes).
 */
@SpringBootApplication
@ConfigurationPropertiesScan
@EnableScheduling
public class MegaphoneApplication {

    public static void main(String[] args) {
        SpringApplication.run(MegaphoneApplication.class, args);
    }
}
