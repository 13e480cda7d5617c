// SPDX-License-Identifier: Apache-2.0
/**
 * Readiness that follows the links: {@code links} is UP while at least one authenticated link takes requests (the
 * default readiness group); {@code firstLink} is UP from the first link on (the Helm chart's readiness, so that a
 * restart of the shared ejabberd does not empty the Service).
 */
package io.megaphone.health;
