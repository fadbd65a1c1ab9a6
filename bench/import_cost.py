"""Cold-start import cost of each handler: what each top-level package adds.

Run: `make bench` (or `.venv/bin/python bench/import_cost.py [--runs N]`). Each run imports the
handler in a fresh interpreter with `-X importtime`, as a Lambda cold start does, and the figures
are medians over the runs. No AWS call is made: module-scope clients are only constructed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "TABLE_NAME": "bench-tasks",
    "RULE_NAME_PREFIX": "bench",
    "EXECUTE_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:bench",
    "FUNCTION_ARN_PREFIX": "arn:aws:lambda:us-east-1:123456789012:function:",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "POWERTOOLS_SERVICE_NAME": "task-scheduler",
    "POWERTOOLS_METRICS_NAMESPACE": "ServerlessTaskScheduler",
    "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
    "RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-retry",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-dlq",
}
IMPORT = (
    "import importlib.util, sys; sys.path.insert(0, {layer!r}); "
    "spec = importlib.util.spec_from_file_location('app', {app!r}); "
    "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)"
)


def measure(function_dir: str) -> tuple[dict[str, int], int]:
    """Microseconds per top-level package (cumulative, self-time summed), and the total."""
    code = IMPORT.format(
        layer=str(ROOT / "scheduler_layer"), app=str(ROOT / function_dir / "app.py")
    )
    env = {**os.environ, **ENV}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    per_package: dict[str, int] = defaultdict(int)
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[12:].split("|"))
        per_package[name.strip().split(".")[0]] += int(self_us)
    return dict(per_package), sum(per_package.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    sys.stdout.write(f"python {sys.version.split()[0]}, {args.runs} runs, median ms\n")
    for function_dir in ("schedule_task", "execute_task", "reconcile_task"):
        runs = [measure(function_dir) for _ in range(args.runs)]
        totals = [total for _, total in runs]
        packages = {name for per, _ in runs for name in per}
        medians = {
            name: statistics.median(per.get(name, 0) for per, _ in runs) for name in packages
        }
        sys.stdout.write(f"\n{function_dir}: total {statistics.median(totals) / 1000:.1f} ms\n")
        for name, us in sorted(medians.items(), key=lambda item: -item[1])[: args.top]:
            sys.stdout.write(f"  {name:<24} {us / 1000:7.1f} ms\n")


if __name__ == "__main__":
    main()
