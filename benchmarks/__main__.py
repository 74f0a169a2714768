"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from __future__ import annotations

import sys

from benchmarks import features, monitor, quality, retrain


def main() -> int:
    failures = features.main()
    print()
    failures += quality.main()
    print()
    failures += monitor.main(seeds=3)  # python -m benchmarks.monitor runs the ten seeds
    print()
    failures += retrain.main()  # last: it points STORMWATCH_HOME and PREFECT_HOME at a temporary folder
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
