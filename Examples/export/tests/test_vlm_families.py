"""The exporter on a tiny random model of each VLM family, with one and with two images.

Each case's prompt comes from the family's own processor code (see tiny_models.py); the trace's
spans, tiles and grids are checked against the processor's token counts and against where the
image token id sits in the ids; then the causal rows, the column sums, softmax(q·kᵀ) under the
documented mask rule, the position ids, and `kvscope info --json` reading the trace back.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import kvscope_export as kx
import tiny_models as tm

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW = 4
CASES = [(f, n) for f in tm.FAMILIES if f != "llava" for n in (1, 2)]


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    cache = {}

    def get(family, n):
        if (family, n) not in cache:
            case = tm.make(family, n)
            out = str(tmp_path_factory.mktemp(f"{family}-{n}") / "trace")
            meta = kx.export_trace(case.model, case.input_ids, out, max_new_tokens=NEW,
                                   model_inputs=case.model_inputs, tokenizer=case.tokenizer,
                                   generate_kwargs={"min_new_tokens": NEW}, strict=True)
            _, layers = kx.load_trace(out)
            cache[(family, n)] = (case, out, meta, layers)
        return cache[(family, n)]
    return get


def parts(span):
    """The token ranges of an image: its tiles, or the image itself."""
    return [(t["start"], t["stop"]) for t in span.get("tiles") or [span]]


def rule(meta, layer, rows, T):
    """numpy version of the mask rule trace.json documents for `layer`."""
    window = {a["layer"]: a["window"] for a in meta.get("layer_attention") or []}.get(layer)
    r, c = rows[:, None], np.arange(T)[None, :]
    ok = c <= r
    for a, b in meta.get("bidirectional_spans") or []:
        ok |= (r >= a) & (r < b) & (c >= a) & (c < b)
    if window:
        ok &= (r - c) < window
    return ok


@pytest.mark.parametrize("family,n", CASES)
def test_spans_match_processor_placement(traces, family, n):
    case, out, meta, _ = traces(family, n)
    ids = case.input_ids[0].tolist()
    imgs = meta["images"]
    assert len(imgs) == n
    # image-token counts per image, as the processor computed them
    assert [sum(b - a for a, b in parts(s)) for s in imgs] == case.expected_tokens
    # the spans (tiles) cover exactly the positions holding the image token id
    covered = sorted(p for s in imgs for a, b in parts(s) for p in range(a, b))
    assert covered == [i for i, x in enumerate(ids) if x == case.image_token_id]
    P, T = meta["prefill_len"], meta["seq_len"]
    assert (P, T) == (len(ids), len(ids) + NEW)
    assert meta["token_modality"] == [int(x == case.image_token_id) for x in ids] + [0] * NEW
    for s in imgs:
        for t in s.get("tiles") or [s]:
            assert t["grid"][0] * t["grid"][1] == t["stop"] - t["start"]
    assert kx.verify_trace(out) == []
    assert meta["checks"]["all_passed"], meta["checks"]["passed"]


@pytest.mark.parametrize("family,n", [c for c in CASES if c[0].startswith("qwen")])
def test_qwen_grids_and_mrope(traces, family, n):
    case, _, meta, _ = traces(family, n)
    thw = case.model_inputs["image_grid_thw"].tolist()
    assert [s["grid"] for s in meta["images"]] == [[h // 2, w // 2] for _, h, w in thw]
    assert meta["images"][0]["grid"] == [2, 3]          # 56×84 px: a non-square grid
    if n == 2:
        assert meta["images"][1]["grid"] == [3, 2]      # 84×56 px
    # the stored position ids are the model's own M-RoPE index over the whole sequence
    full = torch.tensor([meta["tokens"]["ids"]])
    mm = torch.tensor([meta["token_modality"]])
    want, _ = case.model.model.get_rope_index(full, mm, image_grid_thw=case.model_inputs["image_grid_thw"])
    assert meta["position_ids"] == want[:, 0].tolist()
    assert len(meta["position_ids"]) == 3 and len(meta["position_ids"][0]) == meta["seq_len"]


@pytest.mark.parametrize("family,n", [c for c in CASES if c[0].startswith("llava")])
def test_llava_next_tiles(traces, family, n):
    case, _, meta, _ = traces(family, n)
    side = case.model.config.vision_config.image_size // case.model.config.vision_config.patch_size
    for s in meta["images"]:
        base, hires = s["tiles"]
        assert (base["label"], base["grid"], base["start"]) == ("base", [side, side], s["start"])
        assert hires["label"] == "high-res" and hires["newline_column"] is True
        assert (hires["start"], hires["stop"]) == (base["stop"], s["stop"])
        assert hires["grid"][0] * hires["grid"][1] == s["stop"] - base["stop"]
    if n == 2:  # a wide and a tall image give differently shaped high-res grids
        assert meta["images"][0]["tiles"][1]["grid"] != meta["images"][1]["tiles"][1]["grid"]


@pytest.mark.parametrize("family,n", [c for c in CASES if c[0] in ("idefics3", "smolvlm")])
def test_idefics3_tiles(traces, family, n):
    case, _, meta, _ = traces(family, n)
    assert [len(s["tiles"]) for s in meta["images"]] == case.expected_tiles
    ids = meta["tokens"]["ids"]
    pieces = meta["tokens"]["pieces"]
    for s in meta["images"]:
        assert s["tiles"][-1]["label"] == "global"
        assert s["tiles"][0]["label"] == "row 1 col 1"
        for t in s["tiles"]:
            assert t["grid"] == [2, 2]
            # the tag before each tile names it
            assert pieces[t["start"] - 1].strip("<>").replace("-img", "").replace("_", " ") == t["label"]
        # between tiles: text tokens only (tile tags), marked text
        inside = set(range(s["start"], s["stop"])) - {p for a, b in parts(s) for p in range(a, b)}
        assert inside and all(meta["token_modality"][p] == 0 and ids[p] != case.image_token_id for p in inside)


@pytest.mark.parametrize("n", [1, 2])
def test_gemma3_windows_and_bidirectional_images(traces, n):
    case, _, meta, layers = traces("gemma3", n)
    T = meta["seq_len"]
    la = meta["layer_attention"]
    assert [(a["type"], a["window"], a["cached_keys"]) for a in la] == [
        ("sliding_attention", 8, min(T, 8)), ("sliding_attention", 8, min(T, 8)), ("full_attention", None, T)]
    assert meta["bidirectional_spans"] == [[s["start"], s["stop"]] for s in meta["images"]]
    assert all(s["grid"] == [2, 2] and s["bidirectional"] for s in meta["images"])
    a0, b0 = meta["bidirectional_spans"][0]
    for i, t in layers.items():
        att = t["attn"].astype(np.float64)
        # an image token reads the later tokens of its own image
        assert att[:, a0, a0 + 1:b0].min() > 0
        # a sliding layer reads nothing further back than its window
        if la[i]["window"]:
            far = np.arange(T)[None, :] <= np.arange(T)[:, None] - 8
            assert np.all(att[:, far] == 0)


@pytest.mark.parametrize("family,n", CASES)
def test_rows_colsums_and_recompute(traces, family, n):
    _, _, meta, layers = traces(family, n)
    T, P = meta["seq_len"], meta["prefill_len"]
    m = meta["model"]
    rows = np.arange(T)
    for i, t in layers.items():
        a = t["attn"].astype(np.float64)
        allowed = rule(meta, i, rows, T)
        assert np.all(a[:, ~allowed] == 0)
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-2)
        cs = t["attn_colsum"]
        np.testing.assert_allclose(cs, a[:, :P].sum(1), atol=1e-2)
        assert np.all(cs[:, P:] == 0)
        np.testing.assert_allclose(cs.sum(-1), P, rtol=1e-4)
        q = t["q"].astype(np.float64)
        k = t["k"].astype(np.float64)[np.asarray(m["kv_head_of_query_head"])]
        logits = np.where(allowed, np.einsum("hqd,htd->hqt", q, k) * m["attn_scale"], -np.inf)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(-1, keepdims=True), a, atol=5e-3)


@pytest.mark.parametrize("family,n", CASES)
def test_recorded_forward_reproduces_generation(traces, family, n):
    """One forward over prompt + generated tokens (as recorded) predicts the generated tokens greedily:
    the recorded positions and masks are the ones generation used."""
    case, _, meta, _ = traces(family, n)
    ids = meta["tokens"]["ids"]
    P = meta["prefill_len"]
    inputs = kx._extend_inputs(case.model_inputs, len(ids))
    with torch.no_grad():
        logits = case.model(input_ids=torch.tensor([ids]), **inputs, use_cache=False).logits
    pred = logits[0, P - 1:-1].clone()
    pred[:, kx.placeholder_token_ids(case.model)] = -float("inf")   # suppressed in generation
    assert pred.argmax(-1).tolist() == ids[P:]


@pytest.mark.parametrize("family,n", CASES)
def test_position_ids_only_when_not_arange(traces, family, n):
    _, _, meta, _ = traces(family, n)
    if family.startswith("qwen"):
        pos = np.array(meta["position_ids"])
        assert pos.shape == (3, meta["seq_len"]) and not np.array_equal(pos[0], np.arange(meta["seq_len"]))
    else:
        assert meta["position_ids"] is None


def test_generate_never_emits_image_placeholders(tmp_path):
    """A random LLaVA pushed to always predict its image token still records (suppress_tokens)."""
    case = tm.make("llava", 1)
    with torch.no_grad():
        case.model.lm_head.weight[case.image_token_id] = case.model.lm_head.weight.abs().max() * 50
        logits = case.model(input_ids=case.input_ids, **case.model_inputs).logits
    assert logits[0, -1].argmax().item() == case.image_token_id   # unsuppressed, it would be generated
    meta = kx.export_trace(case.model, case.input_ids, str(tmp_path / "t"), max_new_tokens=3,
                           model_inputs=case.model_inputs, generate_kwargs={"min_new_tokens": 3}, strict=True)
    gen = meta["tokens"]["ids"][meta["prefill_len"]:]
    assert len(gen) == 3 and case.image_token_id not in gen
    assert kx.placeholder_token_ids(case.model) == [case.image_token_id]


def test_readme_tiny_llava_recipe(tmp_path):
    """Runs the CPU recipe of README.md exactly as written (in a scratch folder)."""
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip().startswith("python export.py --tiny-random llava")]
    assert len(lines) == 1, lines
    cmd = lines[0].split()
    out = cmd[cmd.index("--out") + 1]
    assert not os.path.isabs(out), "the recipe writes to a relative folder"
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(HERE, "export.py")] + cmd[2:], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"wrote .* images=1 checks=ok", r.stdout), r.stdout
    meta = json.loads((tmp_path / out / "trace.json").read_text())
    assert meta["model"]["name"] == "tiny-random-llava" and len(meta["images"]) == 1
    assert kx.verify_trace(str(tmp_path / out)) == []


def kvscope_bin():
    b = os.environ.get("KVSCOPE_BIN")
    if not b:
        pytest.skip("KVSCOPE_BIN is not set: set it to a built kvscope binary to check `kvscope info --json`")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"KVSCOPE_BIN={b!r} is not an executable file")
    return b


@pytest.mark.parametrize("family,n", CASES)
def test_kvscope_info_reads_back(traces, family, n):
    b = kvscope_bin()
    _, out, meta, _ = traces(family, n)
    r = subprocess.run([b, "info", "--json", out], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["seq_len"], info["prefill_len"]) == (meta["seq_len"], meta["prefill_len"])
    assert info["errors"] == []
    # Gemma 3's bidirectional image spans are expected attention above the diagonal, not a warning
    assert not any("above the diagonal" in w for w in info["warnings"]), info["warnings"]
    if meta.get("bidirectional_spans"):
        assert info["bidirectional_spans"] == meta["bidirectional_spans"]
        assert info["sliding_windows"] == {str(a["layer"]): a["window"] for a in meta["layer_attention"] if a["window"]}
    assert (info["position_ids"] is None) == (meta["position_ids"] is None)
    got = [(i["image_id"], i["start"], i["stop"], [(t["start"], t["stop"], t["grid"], t.get("label"))
                                                   for t in i["tiles"]]) for i in info["images"]]
    want = [(s["image_id"], s["start"], s["stop"], [(t["start"], t["stop"], t["grid"], t.get("label"))
                                                    for t in s.get("tiles", [])]) for s in meta["images"]]
    assert got == want
    assert [i["grid"] for i in info["images"]] == [s["grid"] for s in meta["images"]]


def test_out_path_that_is_not_a_trace_is_refused(tmp_path):
    """--out naming a file, or a folder with other content, fails with one line and status 2."""
    (tmp_path / "notes.txt").write_text("keep me")
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for out in (tmp_path / "notes.txt", tmp_path):
        r = subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--tiny-random", "llava",
                            "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 2
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("[transformers]")]
        assert len(lines) == 1 and str(out) in lines[0], r.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_rerecording_replaces_an_earlier_trace(tmp_path):
    case = tm.make("gemma3", 1)
    out = str(tmp_path / "t")
    kw = dict(model_inputs=case.model_inputs, tokenizer=case.tokenizer)
    kx.export_trace(case.model, case.input_ids, out, max_new_tokens=2, generate_kwargs={"min_new_tokens": 2}, **kw)
    meta = kx.export_trace(case.model, case.input_ids, out, max_new_tokens=0, **kw)
    assert json.loads(open(os.path.join(out, "trace.json")).read())["seq_len"] == meta["seq_len"] == case.input_ids.shape[1]
    assert sorted(os.listdir(tmp_path)) == ["t"]   # no partial or old folders left behind
