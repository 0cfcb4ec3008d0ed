"""The development stack: what `make stack`, the tests, the benchmark and the experiments share to
run the system's processes on localhost (the repository root, free ports, the multi-process
topology, the local Prometheus' worker targets). It imports classifier_common and nothing else of
ours; tests, bench, experiments and scripts import it."""
