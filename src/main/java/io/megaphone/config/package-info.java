// SPDX-License-Identifier: Apache-2.0
/**
 * Validated {@code megaphone.*} properties ({@link io.megaphone.config.MegaphoneProperties}) and the wiring of the
 * link pool from them. A bad value stops startup with the property, the value and what is expected.
 */
package io.megaphone.config;
