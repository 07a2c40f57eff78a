"""Parses a Prometheus text exposition (format 0.0.4) from stdin with the official Python
client's parser and prints its metric families as JSON on stdout.

The parser itself is lax (a sample whose name matches no declared family becomes an
untyped family of its own), so this also fails, with a message on stderr and exit code 1,
when the text is not what Prometheus expects from us: a family without TYPE or HELP, a
family or series exposed twice, or a histogram whose buckets are not cumulative or whose
`+Inf` bucket differs from its `_count`.

    python3 tests/prometheus/check.py < metrics.txt
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def histogram_problems(family):
    problems = []
    series = {}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "count": None})
        if s.name == family.name + "_bucket":
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == family.name + "_count":
            entry["count"] = s.value
    for key, entry in series.items():
        buckets = sorted(entry["buckets"])
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            problems.append(f"{family.name}{dict(key)}: bucket counts are not cumulative")
        if not buckets or buckets[-1][0] != math.inf:
            problems.append(f"{family.name}{dict(key)}: no +Inf bucket")
        elif buckets[-1][1] != entry["count"]:
            problems.append(f"{family.name}{dict(key)}: +Inf bucket {buckets[-1][1]} != _count {entry['count']}")
    return problems


def main():
    families = list(text_string_to_metric_families(sys.stdin.read()))
    problems = []
    names = set()
    out = []
    for f in families:
        if f.name in names:
            problems.append(f"family {f.name} is exposed twice")
        names.add(f.name)
        if f.type in ("untyped", "unknown"):
            problems.append(f"{f.name} has no TYPE (or its samples match no declared family)")
        if not f.documentation:
            problems.append(f"{f.name} has no HELP")
        seen = set()
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in seen:
                problems.append(f"series {s.name}{s.labels} is exposed twice")
            seen.add(key)
        if f.type == "histogram":
            problems.extend(histogram_problems(f))
        out.append(
            {
                "name": f.name,
                "type": f.type,
                "help": f.documentation,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)}
                    for s in f.samples
                ],
            }
        )
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
