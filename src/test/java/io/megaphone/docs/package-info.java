// SPDX-License-Identifier: Apache-2.0
/**
 * Checks that keep the docs true to the code: property names and defaults quoted in README.md, docs/ and the
 * charts' READMEs ({@link io.megaphone.docs.DocsDriftTest}).
 */
package io.megaphone.docs;
