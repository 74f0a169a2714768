"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from __future__ import annotations

import sys

from benchmarks import features, quality


def main() -> int:
    failures = features.main()
    print()
    failures += quality.main()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
