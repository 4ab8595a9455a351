"""Side-by-side throughput and memory benchmarks for rpcengine.

Run ``python -m benchmarks`` from the repository root (``--quick`` for a short
run, ``--json PATH`` to keep the results). See ``benchmarks/README.md``.
"""
