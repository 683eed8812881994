"""Scrapes switchyard's /metrics as Prometheus does and parses it with the Prometheus Python
client's own parsers (PyPI `prometheus-client`).

Two scrapes of $SWITCHYARD_METRICS_URL:
- no `Accept` header: must be Prometheus text 0.0.4 (`text/plain; version=0.0.4`), read by the
  classic text parser (`prometheus_client.parser`), which types a family `unknown` when its
  `# TYPE` line does not name its samples;
- Prometheus' own scrape `Accept` header: must be OpenMetrics 1.0, read by the strict OpenMetrics
  parser (`prometheus_client.openmetrics.parser`), which rejects a body without `# EOF` or with a
  misnamed sample.

Prints one JSON line {"ok": true, "text": {...}, "openmetrics": {...}} where each maps a family
name to {"type": ..., "samples": {sample name: value of its first sample}}; exits non-zero when a
scrape or a parse fails.
"""

import json
import os
import sys
import traceback
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

# What Prometheus 3 sends on a scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


def scrape(url, accept):
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode("utf-8")


def families(parsed):
    out = {}
    for family in parsed:
        samples = {}
        for sample in family.samples:
            samples.setdefault(sample.name, sample.value)
        out[family.name] = {"type": family.type, "samples": samples}
    return out


def main():
    url = os.environ["SWITCHYARD_METRICS_URL"]
    text_type, text_body = scrape(url, None)
    if not text_type.startswith("text/plain") or "version=0.0.4" not in text_type:
        raise AssertionError(f"default scrape has Content-Type {text_type!r}")
    om_type, om_body = scrape(url, PROMETHEUS_ACCEPT)
    if not om_type.startswith("application/openmetrics-text"):
        raise AssertionError(f"OpenMetrics scrape has Content-Type {om_type!r}")
    result = {
        "ok": True,
        "text_content_type": text_type,
        "openmetrics_content_type": om_type,
        "text": families(parse_text(text_body)),
        "openmetrics": families(parse_openmetrics(om_body)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - the test prints whatever went wrong
        traceback.print_exc()
        print(json.dumps({"ok": False}))
        sys.exit(1)
