"""Speed and quality benchmarks, run by ``make bench``. Each prints ratios against baselines
measured in the same run, so numbers from different machines stay comparable."""
