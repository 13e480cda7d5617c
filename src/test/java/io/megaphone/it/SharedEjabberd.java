// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * One private ejabberd for every test class of a test run that does not need its own (starting one takes
 * seconds). Stopped by a shutdown hook when the test JVM exits.
 */
public final class SharedEjabberd {

    public static final String PASSWORD = "secret-pw";
    private static final AtomicInteger USERS = new AtomicInteger();
    private static PrivateEjabberd instance;

    private SharedEjabberd() {
    }

    public static synchronized PrivateEjabberd get() {
        if (instance == null) {
            try {
                instance = PrivateEjabberd.start();
            } catch (Exception e) {
                throw new IllegalStateException("cannot start the private ejabberd the tests need "
                        + "(run the README's test command, which installs it): " + e.getMessage(), e);
            }
        }
        return instance;
    }

    /** Registers a fresh user (name unique in this run) with {@link #PASSWORD}, and returns its name. */
    public static String newUser(String prefix) throws Exception {
        String user = prefix + USERS.incrementAndGet();
        get().register(user, PASSWORD);
        return user;
    }
}
