// SPDX-License-Identifier: Apache-2.0
/**
 * Every meter, named once in {@link io.megaphone.metrics.MegaphoneMeters} and listed in docs/metrics.md; the edge's
 * meters ({@link io.megaphone.metrics.EdgeMetrics}) and the link pool's binder. No per-user, sid or IP tags.
 */
package io.megaphone.metrics;
