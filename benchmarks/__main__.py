"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from __future__ import annotations

import sys

from benchmarks import cycle, events, features, monitor, quality, retrain


def main() -> int:
    failures = features.main()
    print()
    failures += quality.main(seeds=3, label=" (a 3-seed version: python -m benchmarks.quality runs ten)")
    print()
    failures += monitor.main(seeds=3)  # python -m benchmarks.monitor runs the ten seeds
    print()
    failures += events.main()  # its own prefect server on loopback, stopped at the end
    print()
    failures += cycle.main()  # one monitor cycle, 76 symbols; its own STORMWATCH_HOME
    print()
    failures += retrain.main()  # last: it points STORMWATCH_HOME and PREFECT_HOME at a temporary folder
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
