// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The ECM that the end-to-end tests start runs on the tests' own JDK (scripts/test.sh picks 17, or 25 where it is
 * installed), with compact object headers on Java 25 and later and no native-access warning, as the image runs it;
 * read back from the ECM process with jcmd and its log.
 */
class EcmRuntimeTest {

    private static final Pattern JDK = Pattern.compile("(?m)^JDK (\\d+)");

    @Test
    void theEcmRunsOnTheTestsJdkWithCompactObjectHeadersFromJava25On() throws Exception {
        int feature = Runtime.version().feature();
        try (EcmProcess ecm = EcmProcess.start(SharedEjabberd.get())) {
            String version = ecm.jcmd("VM.version");
            Matcher jdk = JDK.matcher(version);
            assertThat(jdk.find()).as("jcmd VM.version: %s", version).isTrue();
            assertThat(Integer.parseInt(jdk.group(1))).as("the ECM's JDK").isEqualTo(feature);

            String flags = ecm.jcmd("VM.flags");
            if (feature >= 25) {
                assertThat(flags).as("jcmd VM.flags on Java %d", feature).contains("-XX:+UseCompactObjectHeaders");
            } else {
                assertThat(flags).as("jcmd VM.flags on Java %d", feature).doesNotContain("UseCompactObjectHeaders");
            }
            // Java 24+ warns when Netty loads its epoll library unless native access is enabled, as the image does
            assertThat(ecm.logText()).doesNotContain("WARNING: A restricted method");
        }
    }
}
