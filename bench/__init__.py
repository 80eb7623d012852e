"""The benchmarks, run from the repository's root as ``python -m bench.NAME`` (``--help`` says what each
measures); :mod:`bench.report` holds what they share, and ``python -m bench.results_page`` writes
docs/results.md from their outputs in docs/bench/."""
