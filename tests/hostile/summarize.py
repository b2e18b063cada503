"""Markdown table of one or more hostile-suite reports side by side, e.g. the old and the new
server:  python tests/hostile/summarize.py old.json new.json"""
import json
import sys

# The figures worth a column in the table; the rest stay in the JSON.
KEY_FIGURES = ("status", "closed", "rss_growth_mb", "p50_ms", "p99_ms", "failures",
               "idle_opened", "cut_off_s", "closed_after_idle_s", "drain_s", "exit_code",
               "response_bytes", "admitted_after_close_s", "new_connection")


def short(nodeid):
    return nodeid.split("::", 1)[-1].replace("test_", "", 1)


def cell(entry):
    if entry is None:
        return "-"
    outcome = {"passed": "pass", "failed": "FAIL"}.get(entry.get("outcome"), entry.get("outcome"))
    shown = [f"{k}={entry['figures'][k]}" for k in KEY_FIGURES if k in entry.get("figures", {})]
    return outcome + (" (" + ", ".join(shown) + ")" if shown else "")


def main(paths):
    reports = [json.load(open(path)) for path in paths]
    order, by_report = [], []
    for report in reports:
        entries = {t["test"]: t for t in report["tests"]}
        by_report.append(entries)
        order += [name for name in entries if name not in order]
    print("| test | " + " | ".join(r["binary"] for r in reports) + " |")
    print("|---|" + "---|" * len(reports))
    for name in order:
        print(f"| {short(name)} | " + " | ".join(cell(e.get(name)) for e in by_report) + " |")
    print()
    for report in reports:
        print(f"{report['binary']}: {report['counts']}")


if __name__ == "__main__":
    main(sys.argv[1:])
