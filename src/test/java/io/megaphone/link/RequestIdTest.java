// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.BitSet;
import org.junit.jupiter.api.Test;

/** The request ids of a link, as its in-flight map (Netty's IntObjectHashMap: identity hash, linear probing) sees them. */
class RequestIdTest {

    @Test
    void aMillionConsecutiveIdsAreDistinctNonZeroAndLeaveNoLongRunInAHalfFullTable() {
        int slots = 1 << 21;
        BitSet used = new BitSet(slots);
        BitSet seen = new BitSet();
        for (int counter = 1; counter <= 1_000_000; counter++) {
            int id = LinkMultiplexer.requestId(counter);
            assertThat(id).isNotZero();
            used.set(id & (slots - 1));
        }
        assertThat(used.cardinality()).isEqualTo(1_000_000);

        int longestRun = 0;
        for (int start = used.nextSetBit(0); start >= 0; start = used.nextSetBit(seen.length())) {
            int end = used.nextClearBit(start);
            longestRun = Math.max(longestRun, end - start);
            seen.set(start, end);
        }
        // A remove walks the run after its slot: consecutive ids (a counter alone) made one run of 1M.
        assertThat(longestRun).isLessThanOrEqualTo(4);
    }
}
