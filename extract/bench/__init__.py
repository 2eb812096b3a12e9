"""``extract bench``: the pipeline's throughput per stage against a naive baseline.

Modules: ``run`` (the benchmark), ``paths`` (the two paths and their agreement), ``measure``
(timers, peak memory, the machine), ``report`` (text and JSON).
"""

from extract.bench.measure import BENCH_STAGES
from extract.bench.report import format_report, write_json
from extract.bench.run import BASELINE, DATASET_SIZES, run_bench
from extract.synthetic import write_synthetic

__all__ = ["BASELINE", "BENCH_STAGES", "DATASET_SIZES", "format_report", "run_bench", "write_json", "write_synthetic"]
