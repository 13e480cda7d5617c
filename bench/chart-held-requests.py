#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""PNG chart of ECM memory against concurrent held requests, from bench/held-requests.sh result directories.

    bench/chart-held-requests.py OUT.png RESULT_DIR[=LABEL] ...

Plots, for each result directory (its points.txt), the live heap after a full GC and the RSS in MB against
the number of held requests, with the slope (bytes per held request, 2,000 -> last point) in the legend.
Needs python3-matplotlib (apt-get install -y python3-matplotlib).
"""
import os
import sys

try:
    import matplotlib
except ImportError:
    sys.exit("chart-held-requests.py needs matplotlib: apt-get install -y python3-matplotlib (as root), then run it "
             "with Debian's python3 (/usr/bin/python3 bench/chart-held-requests.py ...)")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def points(path):
    rows = [line.split() for line in open(os.path.join(path, "points.txt")) if line.strip()]
    head = rows[0]
    return [dict(zip(head, map(int, r))) for r in rows[1:]]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = sys.argv[1]
    fig, (ax_heap, ax_rss) = plt.subplots(1, 2, figsize=(12, 5))
    for arg in sys.argv[2:]:
        path, _, label = arg.partition("=")
        label = label or os.path.basename(path.rstrip("/"))
        pts = points(path)
        n = [p["n"] for p in pts]
        for ax, key in ((ax_heap, "heap_histogram_bytes"), (ax_rss, "rss_bytes")):
            ys = [p[key] / 2**20 for p in pts]
            a = next(p for p in pts if p["n"] == 2000) if any(p["n"] == 2000 for p in pts) else pts[0]
            b = pts[-1]
            slope = (b[key] - a[key]) / (b["n"] - a["n"])
            ax.plot(n, ys, marker="o", label=f"{label}: {slope:,.0f} B/held request")
    for ax, title in ((ax_heap, "ECM live heap after full GC"), (ax_rss, "ECM resident memory (RSS)")):
        ax.set_title(title)
        ax.set_xlabel("concurrent held BOSH requests")
        ax.set_ylabel("MB")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Megaphone ECM memory vs held requests (bench/held-requests.sh; slopes 2,000 → 16,000)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
