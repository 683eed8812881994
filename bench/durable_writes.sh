#!/usr/bin/env bash
# Durable writes per second with group commit vs one transaction per command, SQLite and
# PostgreSQL, 64 concurrent writers (bench/durable_writes.rs). Prints a Markdown table for the
# "Durable writes" section of BENCHMARKS.md. PostgreSQL: $SWITCHYARD_BENCH_DATABASE_URL, else
# the machine's at 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m)"
cargo bench -q -p switchyard-core --bench durable_writes
