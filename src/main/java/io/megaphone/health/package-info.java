/** Readiness that follows the links: the ECM is ready while at least one authenticated link takes requests. */
package io.megaphone.health;
