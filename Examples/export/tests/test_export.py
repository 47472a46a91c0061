"""Tests of the attn-trace v1 exporter on tiny randomly initialised models (no downloads)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import kvscope_export as kx

IMAGE_TOKEN = 100
IMAGE_SEQ = 16  # 56 px / 14 px patches = a 4x4 grid
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_llama_config(**kw):
    from transformers import LlamaConfig
    base = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(kw)
    return LlamaConfig(**base)


def tiny_llava():
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration
    torch.manual_seed(0)
    vc = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          image_size=56, patch_size=14, projection_dim=32)
    cfg = LlavaConfig(vision_config=vc, text_config=tiny_llama_config(), image_token_index=IMAGE_TOKEN,
                      image_seq_length=IMAGE_SEQ, vision_feature_layer=-1)
    return LlavaForConditionalGeneration(cfg).eval()


# prompt: text, image 0, text, image 1 (two consecutive images), text
PROMPT = [1, 5, 6] + [IMAGE_TOKEN] * IMAGE_SEQ + [7, 8] + [IMAGE_TOKEN] * (2 * IMAGE_SEQ) + [9, 10, 11]
NEW_TOKENS = 5


@pytest.fixture(scope="module")
def llava_trace(tmp_path_factory):
    model = tiny_llava()
    out = str(tmp_path_factory.mktemp("llava") / "tiny-llava")
    pixel_values = torch.randn(3, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    meta = kx.export_trace(model, PROMPT, out, max_new_tokens=NEW_TOKENS,
                           model_inputs={"pixel_values": pixel_values}, name="tiny-llava",
                           generate_kwargs={"min_new_tokens": NEW_TOKENS}, strict=True)
    _, layers = kx.load_trace(out)
    return out, meta, layers, model


@pytest.fixture(scope="module")
def text_model():
    torch.manual_seed(3)
    from transformers import LlamaForCausalLM
    return LlamaForCausalLM(tiny_llama_config(num_hidden_layers=2)).eval()


TEXT_PROMPT = list(range(3, 40))
WINDOW = 8


@pytest.fixture(scope="module")
def text_traces(tmp_path_factory, text_model):
    base = tmp_path_factory.mktemp("text")
    kw = dict(max_new_tokens=6, generate_kwargs={"min_new_tokens": 6}, strict=True)
    full = kx.export_trace(text_model, TEXT_PROMPT, str(base / "full"), **kw)
    win = kx.export_trace(text_model, TEXT_PROMPT, str(base / "win"), window=WINDOW, **kw)
    return base, full, win


# ---------------------------------------------------------------- helpers

def child_env():
    """Environment for CLI subprocesses: this folder first, keeping any PYTHONPATH (pip --target mode)."""
    old = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=HERE + (os.pathsep + old if old else ""))


def softmax_causal(q, k, kv_map, scale, row_start):
    """numpy reference: softmax(scale·q·kᵀ) with GQA and the causal mask. q [H,Q,D], k [KVH,T,D]."""
    q = q.astype(np.float64)
    kk = k.astype(np.float64)[np.asarray(kv_map)]
    logits = np.einsum("hqd,htd->hqt", q, kk) * scale
    T = k.shape[1]
    rows = np.arange(row_start, row_start + q.shape[1])[:, None]
    logits = np.where(np.arange(T)[None, :] <= rows, logits, -np.inf)
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------- llava trace

def test_trace_json_required_keys(llava_trace):
    out, meta, _, model = llava_trace
    with open(os.path.join(out, "trace.json")) as f:
        j = json.load(f)
    for k in ("format", "version", "model", "causal", "seq_len", "prefill_len", "query_rows",
              "token_modality", "images", "layer_files"):
        assert k in j, k
    assert j["format"] == "attn-trace" and j["version"] == 1 and j["causal"] is True
    m = j["model"]
    assert (m["num_layers"], m["num_heads"], m["num_kv_heads"], m["head_dim"]) == (3, 4, 2, 16)
    assert m["kv_head_of_query_head"] == [0, 0, 1, 1]
    assert m["attn_scale"] == pytest.approx(16 ** -0.5)
    assert j["prefill_len"] == len(PROMPT)
    assert j["seq_len"] == len(PROMPT) + NEW_TOKENS
    assert j["query_rows"] == {"start": 0, "stop": j["seq_len"]}
    assert j["layer_files"] == [f"layer_{i:03d}.safetensors" for i in range(3)]
    assert j["tokens"]["ids"][:len(PROMPT)] == PROMPT
    assert j["checks"]["all_passed"], j["checks"]
    assert kx.verify_trace(out) == []


def test_llava_image_spans(llava_trace):
    _, meta, _, _ = llava_trace
    a = 3
    b = a + IMAGE_SEQ + 2
    assert [(s["image_id"], s["start"], s["stop"], s["grid"]) for s in meta["images"]] == [
        (0, a, a + IMAGE_SEQ, [4, 4]),
        (1, b, b + IMAGE_SEQ, [4, 4]),
        (2, b + IMAGE_SEQ, b + 2 * IMAGE_SEQ, [4, 4]),
    ]
    ids = np.array(meta["tokens"]["ids"])
    assert meta["token_modality"] == (ids == IMAGE_TOKEN).astype(int).tolist()
    assert len(meta["token_modality"]) == meta["seq_len"]


def test_llava_shapes_and_dtypes(llava_trace):
    out, meta, layers, _ = llava_trace
    T, P = meta["seq_len"], meta["prefill_len"]
    assert sorted(layers) == [0, 1, 2]
    for i, t in layers.items():
        assert t["__metadata__"] == {"layer": str(i)}
        assert t["attn"].shape == (4, T, T) and t["attn"].dtype == np.float16
        assert t["attn_colsum"].shape == (4, T) and t["attn_colsum"].dtype == np.float32
        assert t["q"].shape == (4, T, 16) and t["q"].dtype == np.float16
        assert t["k"].shape == (2, T, 16) and t["v"].shape == (2, T, 16)
        assert t["k_norm"].shape == (2, T) and t["k_norm"].dtype == np.float32
        np.testing.assert_allclose(t["k_norm"], np.linalg.norm(t["k"].astype(np.float64), axis=-1), rtol=2e-3)
    assert P < T


def test_causal_rows(llava_trace):
    _, meta, layers, _ = llava_trace
    T = meta["seq_len"]
    above = np.triu(np.ones((T, T), bool), 1)
    for t in layers.values():
        a = t["attn"].astype(np.float64)
        assert np.all(a[:, above] == 0)
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-2)
        assert np.all(a[:, ~above] >= 0)


def test_colsum_is_sum_of_prefill_rows(llava_trace):
    _, meta, layers, _ = llava_trace
    P = meta["prefill_len"]
    for t in layers.values():
        cs = t["attn_colsum"]
        np.testing.assert_allclose(cs, t["attn"][:, :P].astype(np.float64).sum(1), atol=1e-2)
        assert np.all(cs[:, P:] == 0)
        # the column sums of P causal rows add up to P per head
        np.testing.assert_allclose(cs.sum(-1), P, rtol=1e-4)


def test_softmax_qk_reproduces_attn(llava_trace):
    _, meta, layers, _ = llava_trace
    m = meta["model"]
    for t in layers.values():
        ref = softmax_causal(t["q"], t["k"], m["kv_head_of_query_head"], m["attn_scale"], 0)
        np.testing.assert_allclose(ref, t["attn"].astype(np.float64), atol=5e-3)


def test_one_forward_reproduces_greedy_tokens(llava_trace):
    """One forward over prompt + generated tokens predicts the generated tokens greedily."""
    _, meta, _, model = llava_trace
    ids = meta["tokens"]["ids"]
    assert len(ids) == len(PROMPT) + NEW_TOKENS
    pixel_values = torch.randn(3, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixel_values, use_cache=False).logits
    P = meta["prefill_len"]
    assert logits[0, P - 1:-1].argmax(-1).tolist() == ids[P:]


def test_model_attention_restored(llava_trace):
    _, _, _, model = llava_trace
    assert model.config._attn_implementation != kx.RECORDER_NAME


def test_kvscope_info(llava_trace):
    bin_ = os.environ.get("KVSCOPE_BIN")
    if not bin_:
        pytest.skip("KVSCOPE_BIN is not set: set it to a built kvscope binary to check `kvscope info --json`")
    if not (os.path.isfile(bin_) and os.access(bin_, os.X_OK)):
        pytest.fail(f"KVSCOPE_BIN={bin_!r} is not an executable file")
    out, meta, _, _ = llava_trace
    r = subprocess.run([bin_, "info", "--json", out], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    layers = info["layers"]
    assert (layers if isinstance(layers, int) else len(layers)) == 3
    assert info["query_heads"] == 4
    assert info["kv_heads"] == 2
    assert info["head_dim"] == 16
    assert info["seq_len"] == meta["seq_len"]
    assert info["prefill_len"] == meta["prefill_len"]
    got = [(im["image_id"], im["start"], im["stop"], list(im["grid"])) for im in info["images"]]
    want = [(s["image_id"], s["start"], s["stop"], s["grid"]) for s in meta["images"]]
    assert got == want


# ---------------------------------------------------------------- text model, GQA, window rows

def test_text_window_shapes(text_traces):
    base, full, win = text_traces
    T, P = win["seq_len"], win["prefill_len"]
    assert (T, P) == (len(TEXT_PROMPT) + 6, len(TEXT_PROMPT))
    assert win["query_rows"] == {"start": T - WINDOW, "stop": T}
    assert win["images"] == [] and set(win["token_modality"]) == {0}
    assert win["checks"]["all_passed"], win["checks"]
    assert kx.verify_trace(str(base / "win")) == []
    _, layers = kx.load_trace(str(base / "win"))
    for t in layers.values():
        assert t["attn"].shape == (4, WINDOW, T)
        assert t["q"].shape == (4, WINDOW, 16)
        assert t["k"].shape == (2, T, 16)
        assert t["attn_colsum"].shape == (4, T)


def test_text_window_matches_full(text_traces):
    base, full, win = text_traces
    assert full["tokens"]["ids"] == win["tokens"]["ids"]
    _, lf = kx.load_trace(str(base / "full"))
    _, lw = kx.load_trace(str(base / "win"))
    for i in lf:
        np.testing.assert_array_equal(lw[i]["attn"], lf[i]["attn"][:, -WINDOW:])
        np.testing.assert_array_equal(lw[i]["q"], lf[i]["q"][:, -WINDOW:])
        # column sums still cover every prefill row
        np.testing.assert_allclose(lw[i]["attn_colsum"], lf[i]["attn_colsum"], rtol=1e-6, atol=1e-6)


def test_text_window_recompute(text_traces):
    base, _, win = text_traces
    _, layers = kx.load_trace(str(base / "win"))
    m = win["model"]
    T = win["seq_len"]
    for t in layers.values():
        ref = softmax_causal(t["q"], t["k"], m["kv_head_of_query_head"], m["attn_scale"], T - WINDOW)
        np.testing.assert_allclose(ref, t["attn"].astype(np.float64), atol=5e-3)
        above = np.arange(T)[None, :] > np.arange(T - WINDOW, T)[:, None]
        assert np.all(t["attn"][:, above] == 0)


def test_hook_fallback_agrees(tmp_path, text_model, text_traces):
    base, full, _ = text_traces
    kx.export_trace(text_model, TEXT_PROMPT, str(tmp_path / "hooks"), max_new_tokens=6,
                    generate_kwargs={"min_new_tokens": 6}, force_hooks=True, strict=True)
    _, lh = kx.load_trace(str(tmp_path / "hooks"))
    _, lf = kx.load_trace(str(base / "full"))
    for i in lf:
        for name in ("attn", "attn_colsum", "q", "k", "v"):
            np.testing.assert_allclose(lh[i][name].astype(np.float32), lf[i][name].astype(np.float32),
                                       atol=2e-3, err_msg=name)


def test_bf16_model_colsum_in_float32(tmp_path, text_traces):
    """A bf16 model: the recorder recomputes the softmax in float32 for the stored maps."""
    from transformers import LlamaForCausalLM
    torch.manual_seed(3)
    model = LlamaForCausalLM(tiny_llama_config(num_hidden_layers=2)).eval().to(torch.bfloat16)
    meta = kx.export_trace(model, TEXT_PROMPT, str(tmp_path / "bf16"), max_new_tokens=0, strict=True)
    assert meta["model"]["compute_dtype"] == "bfloat16"
    assert meta["seq_len"] == meta["prefill_len"] == len(TEXT_PROMPT)
    _, layers = kx.load_trace(str(tmp_path / "bf16"))
    for t in layers.values():
        np.testing.assert_allclose(t["attn_colsum"].sum(-1), len(TEXT_PROMPT), rtol=1e-5)
        assert t["attn_colsum"].dtype == np.float32


def test_layer_subset(tmp_path, text_model):
    meta = kx.export_trace(text_model, TEXT_PROMPT[:10], str(tmp_path / "sub"), layers=[1], keep_q=False,
                           keep_kv=False, keep_norms=False)
    assert meta["layer_files"] == ["layer_001.safetensors"]
    assert meta["model"]["num_layers"] == 2
    assert meta["checks"]["max_over_layers"]["recompute_stored_qk_max_abs_diff"] is None
    assert kx.verify_trace(str(tmp_path / "sub")) == []


# ---------------------------------------------------------------- spans helpers, CLI

def test_llava15_span_rule():
    ids = [1, 2] + [32000] * 576 + [3] + [32000] * 1152 + [4]
    spans = kx.image_spans_from_ids(ids, 32000, tokens_per_image=576)
    assert [(s["start"], s["stop"], s["grid"]) for s in spans] == [
        (2, 578, [24, 24]), (579, 1155, [24, 24]), (1155, 1731, [24, 24])]
    assert kx.grid_for_count(64) == [8, 8] and kx.grid_for_count(10) == [1, 10]


def test_cli_on_saved_model(tmp_path, text_model):
    mdir = tmp_path / "model"
    text_model.save_pretrained(str(mdir))
    out = tmp_path / "cli-trace"
    env = child_env()
    r = subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--model", str(mdir), "--out", str(out),
                        "--ids", ",".join(map(str, TEXT_PROMPT[:12])), "--max-new-tokens", "3",
                        "--window", "4", "--device", "cpu", "--strict"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "trace.json").read_text())
    assert meta["prefill_len"] == 12 and meta["query_rows"]["stop"] - meta["query_rows"]["start"] == 4
    assert kx.verify_trace(str(out)) == []


def test_cli_llava_with_processor(tmp_path):
    """The --image path: a llava-hf processor expands <image> to image_seq_length tokens."""
    from PIL import Image
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, IMAGE_TOKEN)] + ["<image>"]
    words += ["USER:", "ASSISTANT:", "what", "is", "this", "?"] + [f"x{i}" for i in range(107, 128)]
    vocab = {w: i for i, w in enumerate(words)}
    assert vocab["<image>"] == IMAGE_TOKEN and len(vocab) == 128
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    ip = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    proc = LlavaProcessor(image_processor=ip, tokenizer=fast, patch_size=14, image_token="<image>",
                          vision_feature_select_strategy="default", num_additional_image_tokens=1)
    mdir = tmp_path / "tiny-llava"
    tiny_llava().save_pretrained(str(mdir))
    proc.save_pretrained(str(mdir))
    img = tmp_path / "img.png"
    Image.fromarray((np.random.RandomState(0).rand(70, 90, 3) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "trace"
    r = subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--model", str(mdir), "--image", str(img),
                        "--image", str(img), "--prompt", "USER: <image> <image> what is this ? ASSISTANT:",
                        "--out", str(out), "--max-new-tokens", "3", "--device", "cpu", "--strict"],
                       capture_output=True, text=True, env=child_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "trace.json").read_text())
    assert [(s["start"], s["stop"], s["grid"]) for s in meta["images"]] == [(1, 17, [4, 4]), (17, 33, [4, 4])]
    assert meta["token_modality"][:34] == [0] + [1] * 32 + [0]
    assert meta["prefill_len"] == 38 and meta["seq_len"] == 41
    assert kx.verify_trace(str(out)) == []
