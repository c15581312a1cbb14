"""Metric names a PromQL expression reads, for checking dashboards and alert
rules against deploy/metrics.txt (the names the server exports).

Not a PromQL parser: it strips what cannot be a metric name (strings, label
matchers, ranges, grouping label lists, Grafana variables) and keeps the
identifiers that are not functions, aggregations or keywords.
"""
import re

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
             "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr):
    """The set of metric names in `expr` (histogram series names as written)."""
    # Grafana's label_values(metric, label): only the metric is one.
    expr = re.sub(r"label_values\(\s*([^,)]+?)\s*,[^)]*\)", r"\1", expr)
    expr = re.sub(r'"(?:\\.|[^"\\])*"' r"|'(?:\\.|[^'\\])*'", " ", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{[^}]*\}|\$\w+", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        name = m.group(0)
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", expr[m.end():]):
            continue  # a keyword, or a function / aggregation call
        names.add(name)
    return names


def unknown_names(names, exported):
    """The names that are neither exported nor a histogram series of one."""
    unknown = set()
    for name in names:
        if name in exported:
            continue
        base = next((name[:-len(s)] for s in _HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base is None or base not in exported:
            unknown.add(name)
    return unknown


def read_metrics_list(path):
    with open(path) as f:
        names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert len(names) == len(set(names)), f"{path}: a name is listed twice"
    for name in names:
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name), f"{path}: {name!r} is not a metric name"
    return set(names)


def _self_check():
    # The extraction itself, so that an empty result never passes for "no unknown names".
    got = metric_names('sum by (pipeline, le) (rate(a_bucket{pipeline=~"$pipeline", x="y z"}[$__rate_interval]))'
                       ' / on (pipeline) group_left b_total offset 5m > 1e3 and c')
    assert got == {"a_bucket", "b_total", "c"}, got
    assert metric_names("label_values(dataflow_pipeline_running, pipeline)") == {"dataflow_pipeline_running"}
    assert unknown_names({"h_bucket", "h_count", "g", "x_bucket"}, {"h", "g"}) == {"x_bucket"}


_self_check()
