"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from __future__ import annotations

import os
import sys

# Before numpy and the boosters load: threads that spin while they wait, and two BLAS threads
# per fit beside another fit, cost the benchmarks several times their time on 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from benchmarks import cycle, events, features, monitor, quality, retrain, scale


def main() -> int:
    failures = features.main()
    print()
    failures += quality.main(seeds=3, jobs=quality.DEFAULT_JOBS,
                             label=" (a 3-seed version: python -m benchmarks.quality --seeds 20 is the committed run)")
    print()
    failures += monitor.main(seeds=3)  # python -m benchmarks.monitor runs the ten seeds
    print()
    failures += events.main()  # its own prefect server on loopback, stopped at the end
    print()
    failures += cycle.main()  # one monitor cycle, 76 symbols; its own STORMWATCH_HOME
    print()
    failures += scale.main(scale.REDUCED, label=" (a reduced version: python -m benchmarks.scale runs 76, 500 "
                                                "and 1,500 symbols with retraining at 500)")
    print()
    failures += retrain.main()  # last: it points STORMWATCH_HOME and PREFECT_HOME at a temporary folder
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
