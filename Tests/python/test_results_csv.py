"""`kvscope sweep` results load straight into pandas (pd.read_csv with no arguments).

Run: KVSCOPE_BIN=.build/debug/kvscope python3 -m pytest Tests/python
"""
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

BIN = os.environ.get("KVSCOPE_BIN", str(Path(__file__).resolve().parents[2] / ".build" / "debug" / "kvscope"))

COLUMNS = ["trace", "trace_hash", "policy", "base", "merge", "merge_scope", "params", "score", "fidelity", "budget", "budget_spec",
           "hh_ratio", "recent_ratio", "recent_share", "tokens", "compression_point", "nominal_tokens", "actual_tokens",
           "kept_ratio", "metric", "all_layers", "layer", "head_index", "image", "step", "source", "target", "value", "eval_rows", "eval_row_count", "note"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    if not Path(BIN).exists():
        pytest.skip(f"no kvscope binary at {BIN} (set KVSCOPE_BIN)")
    root = tmp_path_factory.mktemp("sweep")
    trace = root / "tiny"
    subprocess.run([BIN, "synth", str(trace), "--preset", "tiny"], check=True, capture_output=True)
    out = root / "out"
    r = subprocess.run([BIN, "sweep", str(trace), "--policies", "full,h2o,lookm,oracle", "--budgets", "0.1,0.3",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", "no progress bar when stderr is not a terminal"
    return out


def test_loads_without_cleaning(sweep):
    df = pd.read_csv(sweep / "results.csv")
    assert list(df.columns) == COLUMNS
    assert df["value"].dtype == "float64"
    assert df["budget"].dtype == "float64"
    assert df["compression_point"].dtype == "int64"
    assert df["eval_row_count"].dtype == "int64"
    # Layer, head and image are numbers (NaN where the row aggregates); all_layers is a boolean.
    for c in ["layer", "head_index", "image", "step", "kept_ratio", "recent_share"]:
        assert pd.api.types.is_numeric_dtype(df[c]), c
    assert df["all_layers"].dtype == "bool"
    assert len(df[df.layer == 0]) > 0
    assert df[df.all_layers]["layer"].isna().all() and df[~df.all_layers]["layer"].notna().all()
    assert set(df["merge"]) == {"none", "pivotal"}
    assert set(df[df.policy == "lookm"]["base"]) == {"text-prior"}
    assert set(df["eval_rows"]) <= {"future", "proxy", "none"}
    # Omitted metrics are empty (NaN) with a note, never 0.
    omitted = df[df["value"].isna()]
    assert omitted["note"].notna().all()
    assert df[df["value"].notna()]["note"].isna().all()


def test_full_cache_is_exact_and_oracle_bounds(sweep):
    df = pd.read_csv(sweep / "results.csv")
    allrows = df[df.all_layers & df.head_index.isna()]
    full = allrows[allrows["policy"] == "full"].set_index(["budget", "metric"])["value"]
    assert (full.xs("attention_recall", level="metric") == 1.0).all()
    assert (full.xs("output_error", level="metric") == 0.0).all()
    rec = allrows[allrows["metric"] == "attention_recall"].pivot(index="budget", columns="policy", values="value")
    assert (rec["oracle"] >= rec["h2o"] - 1e-12).all()


def test_layers_and_json_agree(sweep):
    df = pd.read_csv(sweep / "results.csv")
    per_layer = df[~df.all_layers]
    assert per_layer["layer"].between(0, 3).all()
    doc = json.loads((sweep / "results.json").read_text())
    assert len(doc["rows"]) == len(df)
    assert doc["metadata"]["kvscope_version"]
    assert doc["metadata"]["command_line"][1] == "sweep"
    assert doc["rows"][0]["trace_hash"] == df["trace_hash"][0]


def tiny_trace(tmp_path):
    """A tiny synthetic trace in tmp_path (the test is skipped without a kvscope binary)."""
    if not Path(BIN).exists():
        pytest.skip(f"no kvscope binary at {BIN} (set KVSCOPE_BIN)")
    trace = tmp_path / "tiny"
    subprocess.run([BIN, "synth", str(trace), "--preset", "tiny"], check=True, capture_output=True)
    return trace


def test_grid_axes_are_columns(tmp_path):
    trace = tiny_trace(tmp_path)
    out = tmp_path / "grid"
    r = subprocess.run([BIN, "sweep", str(trace), "--policies", "h2o,snapkv", "--merge", "none,pivotal", "--param", "window=4,8",
                        "--hh-ratio", "0.1,0.2", "--recent-ratio", "0.1", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "results.csv")
    overall = df[df.all_layers & (df.metric == "kept_ratio")]
    # h2o: 2 merges × 2 ratio settings; snapkv: 2 merges × 2 windows × 2 ratio settings.
    assert len(overall[overall.base == "h2o"]) == 4 and len(overall[overall.base == "snapkv"]) == 8
    assert set(overall[overall.base == "snapkv"]["window"]) == {4.0, 8.0}
    assert overall[overall.base == "h2o"]["window"].isna().all()
    assert set(overall["hh_ratio"]) == {0.1, 0.2} and set(overall["recent_ratio"]) == {0.1}
    assert set(overall["policy"]) == {"h2o", "h2o+pivotal", "snapkv", "snapkv+pivotal"}


def test_merge_scope_axis_and_merge_flow(tmp_path):
    trace = tiny_trace(tmp_path)
    out = tmp_path / "scopes"
    r = subprocess.run([BIN, "sweep", str(trace), "--policies", "h2o,lookm", "--merge-scope", "all,modality", "--budgets", "0.2",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "results.csv")
    overall = df[df.all_layers & (df.metric == "kept_ratio")]
    # The scope axis applies to the merging policy only; the eviction-only one runs once without it.
    assert set(overall["policy"]) == {"h2o", "lookm", "lookm+scope=modality"}
    assert overall[overall.policy == "h2o"]["merge_scope"].isna().all()
    assert set(overall[overall.base == "text-prior"]["merge_scope"]) == {"all", "modality"}
    flow = df[df.all_layers & df.head_index.isna() & (df.metric == "merge_flow")]
    assert set(flow["policy"]) == {"lookm", "lookm+scope=modality"}
    assert flow["value"].dtype == "float64" and "dropped" in set(flow["target"])
    m = flow[flow.merge_scope == "modality"].pivot(index="source", columns="target", values="value")
    # Under modality scope nothing moves from an image into text.
    images = [s for s in m.index if s.startswith("image")]
    assert images and (m.loc[images, "text"] == 0).all()
