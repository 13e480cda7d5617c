// SPDX-License-Identifier: Apache-2.0
/**
 * Tests of what ships besides the jar: the Helm chart ({@code helm/megaphone}, rendered with helm-java's
 * embedded Helm), the Grafana dashboard ({@code docs/grafana}) and the Dockerfile (linted with dockerfilelint
 * from npm). Start with {@link io.megaphone.helm.HelmChartTest}.
 */
package io.megaphone.helm;
