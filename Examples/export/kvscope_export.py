"""Record an attn-trace v1 (the trace format kvscope reads; see README.md) from a Hugging Face transformers model.

The recorder registers its own attention function (``AttentionInterface.register``) together with
the eager mask builder (``AttentionMaskInterface.register``, otherwise transformers builds no mask
and the maps are silently non-causal). The function calls the model's own eager kernel, so the
forward pass is unchanged, and writes one safetensors file per decoder layer as soon as that layer
has run:

* ``attn``         F16 ``[H, Q, T]``  post-softmax rows ``row_start ..< T``
* ``attn_colsum``  F32 ``[H, T]``     sum over prefill rows ``0 ..< P``, accumulated in float32
  (the softmax is recomputed in float32 when the model runs in bf16/fp16)
* ``q``            F16 ``[H, Q, D]``  post-RoPE queries of the recorded rows (optional)
* ``k``, ``v``     F16 ``[KVH, T, D]`` post-RoPE keys and values, before any GQA repeat (optional)
* ``k_norm``, ``v_norm`` F32 ``[KVH, T]`` (optional)

Typical use::

    import kvscope_export as kx
    info = kx.export_trace(model, input_ids, "out/my-trace", max_new_tokens=16, tokenizer=tok)

which generates first with plain eager attention, then runs one recorded forward over
prompt + generated tokens with ``prefill_len`` = the prompt length, and writes ``trace.json``
(with the checks it ran: rows sum to 1, ``softmax(scale·q·kᵀ)`` reproduces ``attn``, column sums
match the stored rows).

For transformers releases without ``AttentionInterface`` (before 4.48) a forward-hook fallback
records the weights returned by each ``self_attn`` and recomputes ``q``/``k``/``v`` from the
``hidden_states`` and ``position_embeddings`` kwargs (Llama-like attention modules only).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import warnings
from typing import Any, Callable, Iterable, Sequence

import torch

try:  # safetensors is a hard requirement
    from safetensors.torch import save_file
except ImportError as exc:  # pragma: no cover
    raise ImportError("kvscope_export needs the 'safetensors' package") from exc

import transformers

try:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    HAVE_ATTENTION_INTERFACE = True
except ImportError:  # transformers < 4.48: use the hook fallback
    AttentionInterface = None
    ALL_MASK_ATTENTION_FUNCTIONS = None
    AttentionMaskInterface = None
    HAVE_ATTENTION_INTERFACE = False

__all__ = [
    "RECORDER_NAME",
    "TraceRecorder",
    "export_trace",
    "image_spans_from_ids",
    "llava_image_spans",
    "vlm_layout",
    "family_of",
    "placeholder_token_ids",
    "mask_rule",
    "grid_for_count",
    "decoder_attention_modules",
    "text_config_of",
    "write_trace_json",
    "verify_trace",
    "load_trace",
]

FORMAT_NAME = "attn-trace"
FORMAT_VERSION = 1
RECORDER_NAME = "kvscope_record"
MODALITY_LEGEND = {"0": "text", "1": "image", "2": "video", "3": "audio"}

# Check thresholds written next to the measured values in trace.json["checks"].
ROW_SUM_TOL_F16 = 1e-2
RECOMPUTE_TOL = 2e-2
COLSUM_TOL = 1e-2


# --------------------------------------------------------------------------------------------
# model introspection
# --------------------------------------------------------------------------------------------

def text_config_of(model_or_config) -> Any:
    """The text (decoder) config: ``config.get_text_config()`` where it exists."""
    config = getattr(model_or_config, "config", model_or_config)
    if hasattr(config, "get_text_config"):
        try:
            return config.get_text_config(decoder=True)
        except TypeError:
            return config.get_text_config()
    return getattr(config, "text_config", config)


def decoder_attention_modules(model) -> list[tuple[int, torch.nn.Module]]:
    """``(layer_index, self_attn)`` for every decoder layer of the model's language model.

    Vision towers and projectors are left out: only the text decoder is recorded.
    """
    return _decoder_parts(model)[1]


def _decoder_parts(model) -> tuple[torch.nn.Module, list[tuple[int, torch.nn.Module]]]:
    decoder = model
    for _ in range(4):  # unwrap ForCausalLM -> Model, ForConditionalGeneration -> language_model
        nxt = None
        if hasattr(decoder, "layers") and isinstance(decoder.layers, torch.nn.ModuleList):
            break
        if hasattr(decoder, "get_decoder"):
            try:
                cand = decoder.get_decoder()
            except Exception:  # some models raise for missing rules
                cand = None
            if cand is not None and cand is not decoder:
                nxt = cand
        if nxt is None:
            for name in ("language_model", "model", "text_model", "decoder"):
                if isinstance(getattr(decoder, name, None), torch.nn.Module):
                    nxt = getattr(decoder, name)
                    break
        if nxt is None:
            break
        decoder = nxt
    layers = getattr(decoder, "layers", None)
    if layers is None:
        n = getattr(text_config_of(model), "num_hidden_layers", None)
        for _, mod in decoder.named_modules():
            if isinstance(mod, torch.nn.ModuleList) and len(mod) == n and hasattr(mod[0], "self_attn"):
                layers = mod
                break
    if layers is None:
        raise ValueError(f"could not find the decoder layers of {type(model).__name__}")
    out = []
    for i, layer in enumerate(layers):
        attn = getattr(layer, "self_attn", None)
        if attn is None:
            raise ValueError(f"decoder layer {i} of {type(model).__name__} has no self_attn")
        idx = getattr(attn, "layer_idx", i)
        out.append((int(idx) if idx is not None else i, attn))
    return decoder, out


def _module_eager(module) -> Callable:
    mod = sys.modules[type(module).__module__]
    fn = getattr(mod, "eager_attention_forward", None)
    if fn is None:
        raise RuntimeError(
            f"{type(module).__module__} defines no eager_attention_forward; this architecture "
            "does not use the AttentionInterface (try force_hooks=True)")
    return fn


def _current_attn_impl(model) -> str | None:
    cfg = model.config
    return getattr(cfg, "_attn_implementation", None) or getattr(cfg, "_attn_implementation_internal", None)


def _set_attn_impl(model, name: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
        return
    # older releases: set the private attribute on every config we can reach
    for mod in model.modules():
        cfg = getattr(mod, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            try:
                cfg._attn_implementation = name
            except Exception:
                cfg._attn_implementation_internal = name


# --------------------------------------------------------------------------------------------
# image spans
# --------------------------------------------------------------------------------------------

def grid_for_count(n: int) -> list[int]:
    """Patch grid of an ``n``-token image: the square root when ``n`` is a perfect square, else 1×n."""
    r = int(math.isqrt(int(n)))
    return [r, r] if r * r == n else [1, int(n)]


def _runs(mask: Sequence[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs


def image_spans_from_ids(ids: Sequence[int], image_token_id: int, tokens_per_image: int | None = None,
                         grid: Sequence[int] | None = None, first_id: int = 0) -> list[dict]:
    """Image spans from expanded ids: runs of ``image_token_id``, split every ``tokens_per_image``.

    ``grid`` defaults to :func:`grid_for_count` of each span's length.
    """
    ids = [int(x) for x in ids]
    spans = []
    for a, b in _runs([x == image_token_id for x in ids]):
        n = b - a
        step = tokens_per_image if tokens_per_image and n % tokens_per_image == 0 else n
        if tokens_per_image and n % tokens_per_image:
            warnings.warn(f"image-token run [{a},{b}) of length {n} is not a multiple of "
                          f"{tokens_per_image}; kept as one span")
        for s in range(a, b, step):
            g = list(grid) if grid is not None and grid[0] * grid[1] == step else grid_for_count(step)
            spans.append({"image_id": first_id + len(spans), "start": s, "stop": s + step, "grid": g,
                          "order": "row-major"})
    return spans


def llava_image_spans(ids: Sequence[int], config) -> tuple[list[int], list[dict]]:
    """``token_modality`` and image spans of a llava-hf model.

    ``token_modality = ids == config.image_token_id``; consecutive images are split every
    ``config.image_seq_length`` tokens (576 for LLaVA-1.5, a 24×24 grid).
    """
    tok = getattr(config, "image_token_id", None)
    if tok is None:
        tok = getattr(config, "image_token_index", None)
    if tok is None:
        raise ValueError("config has neither image_token_id nor image_token_index")
    n = getattr(config, "image_seq_length", None)
    grid = None
    vc = getattr(config, "vision_config", None)
    if vc is not None and getattr(vc, "image_size", None) and getattr(vc, "patch_size", None):
        side = vc.image_size // vc.patch_size
        if n is None or n == side * side:
            n, grid = side * side, [side, side]
    modality = [1 if int(x) == tok else 0 for x in ids]
    spans = image_spans_from_ids(ids, tok, tokens_per_image=n, grid=grid)
    src = f"{type(config).__name__}: {getattr(vc, 'model_type', 'vision')} encoder features"
    for s in spans:
        s["source"] = src
    return modality, spans


# --------------------------------------------------------------------------------------------
# VLM families: where each places its image tokens
# --------------------------------------------------------------------------------------------

def _cfg(config, *names, default=None):
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return default


def family_of(model_or_config) -> str | None:
    """The exporter's family name for a model: ``llava``, ``qwen2_vl`` (also Qwen2.5-VL),
    ``llava_next``, ``llava_onevision``, ``idefics3`` (also SmolVLM) or ``gemma3``; None otherwise."""
    config = getattr(model_or_config, "config", model_or_config)
    mt = getattr(config, "model_type", "")
    return {"llava": "llava", "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "llava_next": "llava_next",
            "llava_onevision": "llava_onevision", "idefics3": "idefics3", "smolvlm": "idefics3",
            "gemma3": "gemma3"}.get(mt)


def placeholder_token_ids(model_or_config) -> list[int]:
    """Ids that stand for image or video features (``image_token_id``, ``video_token_id`` and their
    older ``*_index`` names). Generating one of them breaks the recorded forward, so
    :func:`export_trace` suppresses them during generation."""
    config = getattr(model_or_config, "config", model_or_config)
    out = []
    for n in ("image_token_id", "image_token_index", "video_token_id", "video_token_index"):
        v = getattr(config, n, None)
        if isinstance(v, int) and v >= 0 and v not in out:
            out.append(v)
    return out


def _as_list(x) -> list:
    if x is None:
        return []
    if torch.is_tensor(x):
        return x.tolist()
    return [list(r) if isinstance(r, (list, tuple)) else r for r in x]


def _check_runs(runs, counts, what):
    if len(runs) != len(counts):
        raise ValueError(f"{what}: {len(runs)} runs of image tokens in the ids but {len(counts)} images in the "
                         "processor outputs")
    for (a, b), n in zip(runs, counts):
        if b - a != n:
            raise ValueError(f"{what}: image-token run [{a},{b}) has {b - a} tokens, the processor outputs say {n}")


def qwen2_vl_layout(ids: Sequence[int], config, image_grid_thw=None, video_grid_thw=None):
    """Qwen2-VL / Qwen2.5-VL: each image is a run of ``n = t·h·w / m²`` ``image_token_id`` tokens
    (``m`` = ``vision_config.spatial_merge_size``, 2) between ``<|vision_start|>`` and
    ``<|vision_end|>``; its grid is ``(h/m) × (w/m)`` from ``image_grid_thw`` (``[t, h, w]`` per
    image), so it varies with the image size and is rarely square. A video (``video_token_id``,
    modality 2) gets one tile per temporal patch ``t``, each ``(h/m) × (w/m)``."""
    m = int(_cfg(config.vision_config, "spatial_merge_size", default=2))
    ids = [int(x) for x in ids]
    modality = [0] * len(ids)
    images = []
    for tok, code, grids, kind in ((_cfg(config, "image_token_id", "image_token_index"), 1, image_grid_thw, "image"),
                                   (_cfg(config, "video_token_id", "video_token_index"), 2, video_grid_thw, "video")):
        if tok is None:
            continue
        runs = _runs([x == tok for x in ids])
        thw = [[int(v) for v in g] for g in _as_list(grids)]
        if not runs and not thw:
            continue
        _check_runs(runs, [t * h * w // (m * m) for t, h, w in thw], f"{kind} tokens")
        for (a, b), (t, h, w) in zip(runs, thw):
            for i in range(a, b):
                modality[i] = code
            rows, cols = h // m, w // m
            span = {"image_id": 0, "start": a, "stop": b, "grid": [t * rows, cols] if t > 1 else [rows, cols],
                    "order": "row-major", "source": f"{type(config).__name__} {kind}, grid_thw {[t, h, w]}"}
            if kind == "video":
                span["modality"] = "video"
            if t > 1:
                span["tiles"] = [{"start": a + k * rows * cols, "stop": a + (k + 1) * rows * cols,
                                  "grid": [rows, cols], "label": f"frame {k}"} for k in range(t)]
            images.append(span)
    images.sort(key=lambda s: s["start"])
    for k, s in enumerate(images):
        s["image_id"] = k
    return modality, images


def _anyres_hires_shape(orig_hw, pinpoints, side: int, crop: int, max_patches: int | None = None):
    """Rows and columns of the high-resolution feature grid of LLaVA-NeXT / OneVision ("anyres"):
    the best pinpoint resolution is cut into ``crop``-pixel crops of ``side × side`` features,
    the crops are joined into one grid, and the padding rows (or columns) are removed to restore
    the image's aspect ratio. OneVision then shrinks a grid of more than ``1.1² · max_patches``
    crops' worth of features by ``ratio = sqrt(rows·cols / (max_patches·side²))``."""
    from transformers.image_processing_utils import select_best_resolution
    h, w = int(orig_hw[0]), int(orig_hw[1])
    bh, bw = select_best_resolution([h, w], pinpoints)
    rows, cols = side * (bh // crop), side * (bw // crop)
    if w / h > cols / rows:
        new_h = int(round(h * (cols / w), 7))
        rows -= ((rows - new_h) // 2) * 2
    else:
        new_w = int(round(w * (rows / h), 7))
        cols -= ((cols - new_w) // 2) * 2
    if max_patches is not None:
        ratio = math.sqrt(rows * cols / (max_patches * side * side))
        if ratio > 1.1:
            rows, cols = int(rows // ratio), int(cols // ratio)
    return rows, cols


def llava_next_layout(ids: Sequence[int], config, image_sizes):
    """LLaVA-NeXT and LLaVA-OneVision ("anyres"): each image is one run of ``image_token_id``
    made of two tiles, in this order: the **base** tile (the whole image resized to the vision
    tower's input, ``side × side`` with ``side = image_size / patch_size``), then the
    **high-res** tile: the crops of the best ``image_grid_pinpoints`` resolution joined into one
    ``rows × cols`` grid with the padding removed, plus one ``image_newline`` token closing each row,
    so its grid is ``rows × (cols + 1)`` and its last column holds the newline tokens."""
    tok = _cfg(config, "image_token_id", "image_token_index")
    vc = config.vision_config
    side = int(vc.image_size) // int(vc.patch_size)
    onevision = getattr(config, "model_type", "") == "llava_onevision"
    max_patches = None
    if onevision:
        ar = str(getattr(config, "vision_aspect_ratio", "anyres_max_9"))
        max_patches = int(ar[len("anyres_max_"):]) if ar.startswith("anyres_max_") else None
    ids = [int(x) for x in ids]
    runs = _runs([x == tok for x in ids])
    shapes = [_anyres_hires_shape(hw, config.image_grid_pinpoints, side, int(vc.image_size), max_patches)
              for hw in _as_list(image_sizes)]
    _check_runs(runs, [side * side + r * (c + 1) for r, c in shapes], "image tokens")
    modality = [1 if x == tok else 0 for x in ids]
    images = []
    for k, ((a, b), (r, c)) in enumerate(zip(runs, shapes)):
        base = a + side * side
        images.append({"image_id": k, "start": a, "stop": b, "grid": [1, b - a], "order": "row-major",
                       "source": f"{type(config).__name__}: base tile + high-res tiles, image size "
                                 f"{list(map(int, _as_list(image_sizes)[k]))}",
                       "tiles": [{"start": a, "stop": base, "grid": [side, side], "label": "base"},
                                 {"start": base, "stop": b, "grid": [r, c + 1], "label": "high-res",
                                  "newline_column": True}]})
    return modality, images


def idefics3_layout(ids: Sequence[int], config, tokenizer=None, tiles_per_image: Sequence[int] | None = None):
    """Idefics3 / SmolVLM: an image split into ``R × C`` tiles is written tile by tile, row-major,
    as ``<fake_token_around_image><row_r_col_c>`` + ``n`` × ``<image>``, then a global
    (downscaled whole-image) tile ``<fake_token_around_image><global-img>`` + ``n`` × ``<image>``;
    an unsplit image is the global tile only. ``n = (image_size / patch_size)² / scale_factor²``
    and each tile's grid is ``√n × √n``. Images are told apart by the ``<global-img>`` tag before
    their last tile (needs ``tokenizer``) or by ``tiles_per_image`` (from the image processor's
    ``rows`` / ``cols``: ``R·C + 1`` tiles, or 1); the separator tokens between tiles are text."""
    tok = _cfg(config, "image_token_id", "image_token_index")
    vc = config.vision_config
    n = (int(vc.image_size) // int(vc.patch_size)) ** 2 // int(getattr(config, "scale_factor", 2)) ** 2
    g = int(math.isqrt(n))
    ids = [int(x) for x in ids]
    runs = _runs([x == tok for x in ids])
    if any(b - a != n for a, b in runs):
        raise ValueError(f"Idefics3: every tile has {n} image tokens, found runs {runs}")
    labels = []
    if tokenizer is not None:
        for a, _ in runs:
            piece = tokenizer.convert_ids_to_tokens(ids[a - 1]) if a > 0 else ""
            labels.append(str(piece).strip("<>").replace("-img", "").replace("_", " ") if piece else "tile")
    if tiles_per_image is None:
        if not labels:
            raise ValueError("Idefics3: give tokenizer= or tiles_per_image= to group tiles into images")
        tiles_per_image, count = [], 0
        for lab in labels:
            count += 1
            if lab == "global":
                tiles_per_image.append(count)
                count = 0
        if count:
            raise ValueError("Idefics3: the last image has no <global-img> tile")
    if sum(tiles_per_image) != len(runs):
        raise ValueError(f"Idefics3: {len(runs)} tiles in the ids, the processor outputs say {sum(tiles_per_image)}")
    modality = [1 if x == tok else 0 for x in ids]
    images, r = [], 0
    for k, nt in enumerate(tiles_per_image):
        tr = runs[r:r + nt]
        tiles = []
        for j, (a, b) in enumerate(tr):
            lab = labels[r + j] if labels else ("global" if j == nt - 1 else f"tile {j}")
            tiles.append({"start": a, "stop": b, "grid": [g, g], "label": lab})
        images.append({"image_id": k, "start": tr[0][0], "stop": tr[-1][1], "grid": [1, nt * n], "order": "row-major",
                       "source": f"{type(config).__name__}: {nt - 1 if nt > 1 else 0} tiles + global", "tiles": tiles})
        r += nt
    return modality, images


def gemma3_layout(ids: Sequence[int], config):
    """Gemma 3: each image is ``<start_of_image>`` + ``mm_tokens_per_image`` (256) ×
    ``image_token_id`` + ``<end_of_image>``, a fixed ``√n × √n`` (16×16) grid of pooled SigLIP
    features, whatever the image size. Pan-and-scan crops are written as further images. The
    image tokens attend to each other **bidirectionally** (the mask lets every token of an image
    see the whole image): the spans go to ``bidirectional_spans``."""
    tok = _cfg(config, "image_token_id", "image_token_index")
    n = int(getattr(config, "mm_tokens_per_image", 256))
    ids = [int(x) for x in ids]
    modality = [1 if x == tok else 0 for x in ids]
    g = grid_for_count(n)
    images = []
    for a, b in _runs([x == tok for x in ids]):
        if (b - a) % n:
            raise ValueError(f"Gemma 3: image-token run [{a},{b}) is not a multiple of mm_tokens_per_image={n}")
        for s in range(a, b, n):
            images.append({"image_id": len(images), "start": s, "stop": s + n, "grid": g, "order": "row-major",
                           "source": f"{type(config).__name__}: pooled vision features", "bidirectional": True})
    return modality, images


def vlm_layout(model, ids: Sequence[int], model_inputs: dict | None = None, tokenizer=None,
               tiles_per_image: Sequence[int] | None = None):
    """``(token_modality, images)`` for a model of a known family (see :func:`family_of`), from the
    ids and the processor's outputs in ``model_inputs`` (``image_grid_thw``, ``video_grid_thw``,
    ``image_sizes``); ``(None, None)`` for a model without image tokens."""
    config = model.config
    fam = family_of(config)
    mi = model_inputs or {}
    if fam == "qwen2_vl":
        return qwen2_vl_layout(ids, config, mi.get("image_grid_thw"), mi.get("video_grid_thw"))
    if fam in ("llava_next", "llava_onevision"):
        if mi.get("image_sizes") is None:
            raise ValueError(f"{type(model).__name__}: model_inputs needs image_sizes to place the tiles")
        return llava_next_layout(ids, config, mi["image_sizes"])
    if fam == "idefics3":
        return idefics3_layout(ids, config, tokenizer=tokenizer, tiles_per_image=tiles_per_image)
    if fam == "gemma3":
        return gemma3_layout(ids, config)
    if fam == "llava" or _cfg(config, "image_token_id", "image_token_index") is not None:
        return llava_image_spans(ids, config)
    return None, None


# --------------------------------------------------------------------------------------------
# the recorder
# --------------------------------------------------------------------------------------------

def _to_storage(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, str | None]:
    """Downcast for storage; falls back to float32 when float16 would overflow."""
    y = x.to(dtype)
    if dtype == torch.float16 and not torch.isfinite(y).all() and torch.isfinite(x).all():
        return x.float(), "float16 overflow: stored as float32"
    return y, None


def _causal_mask(q_rows: torch.Tensor, T: int, device) -> torch.Tensor:
    cols = torch.arange(T, device=device)
    return cols[None, :] <= q_rows[:, None]  # [Q, T] True = allowed


def mask_rule(rows: torch.Tensor, T: int, *, window: int | None = None,
              bidirectional: Sequence[Sequence[int]] = (), device=None) -> torch.Tensor:
    """The attention mask a trace documents, ``[Q, T]`` (True = row ``i`` may read key ``j``):
    ``(j ≤ i or i, j in the same bidirectional span) and (window is None or i − j < window)``.

    ``window`` is the layer's sliding window (the row and the ``window − 1`` keys before it);
    ``bidirectional`` holds half-open ``[start, stop)`` spans whose tokens see each other
    (Gemma 3 images). With neither it is the plain causal mask."""
    r = rows.to(device)[:, None]
    c = torch.arange(T, device=device)[None, :]
    ok = c <= r
    for a, b in bidirectional:
        ok = ok | ((r >= a) & (r < b) & (c >= a) & (c < b))
    if window is not None:
        ok = ok & ((r - c) < int(window))
    return ok


def _softmax_rows(q: torch.Tensor, k: torch.Tensor, kv_map: torch.Tensor, scale: float,
                  rows: torch.Tensor, allowed: torch.Tensor | None = None,
                  softcap: float | None = None) -> torch.Tensor:
    """softmax(scale·q·kᵀ) in float32 under ``allowed`` ([Q, T], default: the causal mask).
    q [H,Q,D], k [KVH,T,D] -> [H,Q,T]."""
    kk = k.float()[kv_map]  # [H, T, D]
    logits = torch.matmul(q.float(), kk.transpose(-1, -2)) * scale
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    if allowed is None:
        allowed = _causal_mask(rows.to(logits.device), k.shape[1], logits.device)
    logits = logits.masked_fill(~allowed.to(logits.device)[None], float("-inf"))
    return torch.softmax(logits, dim=-1)


def _model_allowed(attention_mask, T: int) -> torch.Tensor | None:
    """The model's own mask as ``[Q, T]`` booleans (True = allowed), or None when it passed none."""
    if attention_mask is None:
        return None
    m = attention_mask[0]
    while m.dim() > 2:
        m = m[0]
    m = m[..., :T]
    if m.dtype == torch.bool:
        return m
    return m > torch.finfo(m.dtype).min / 2


class TraceRecorder:
    """Records one forward pass of a model into an attn-trace v1 folder, layer by layer.

    Use as a context manager around a single forward under ``torch.no_grad()``.
    """

    def __init__(self, model, out_dir: str, prefill_len: int, *, row_start: int = 0,
                 keep_q: bool = True, keep_kv: bool = True, keep_norms: bool = True,
                 layers: Iterable[int] | None = None, attn_dtype: torch.dtype = torch.float16,
                 qkv_dtype: torch.dtype = torch.float16, force_hooks: bool = False,
                 run_checks: bool = True):
        self.model = model
        self.out_dir = out_dir
        self.prefill_len = int(prefill_len)
        self.row_start = int(row_start)
        self.keep_q, self.keep_kv, self.keep_norms = keep_q, keep_kv, keep_norms
        self.attn_dtype, self.qkv_dtype = attn_dtype, qkv_dtype
        self.run_checks = run_checks
        self.use_hooks = force_hooks or not HAVE_ATTENTION_INTERFACE
        mods = decoder_attention_modules(model)
        wanted = None if layers is None else set(int(i) for i in layers)
        self._layer_of = {id(m): i for i, m in mods if wanted is None or i in wanted}
        self._all_layers = [i for i, _ in mods]
        self._modules = [m for i, m in mods if wanted is None or i in wanted]
        self.files: dict[int, str] = {}
        self.checks: dict[int, dict] = {}
        self.shapes: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.attn_scale: float | None = None
        self.seq_len: int | None = None
        # the mask rule documented in trace.json: bidirectional spans (Gemma 3 images) and
        # each layer's sliding window (seen in the module or its kwargs)
        self.bidirectional: list[tuple[int, int]] = []
        self.windows: dict[int, int | None] = {}
        self.position_ids: torch.Tensor | None = None
        decoder, _ = _decoder_parts(model)
        self._rotary = [m for n, m in decoder.named_children() if "rotary" in n.lower()]
        self._prev_impl = None
        self._hooks = []

    # -- attach / detach ----------------------------------------------------------------------
    def __enter__(self):
        self.attach()
        return self

    def __exit__(self, *exc):
        self.detach()
        return False

    def _capture_positions(self, module, args, kwargs):
        if self.position_ids is None:
            pos = kwargs.get("position_ids", args[1] if len(args) > 1 else None)
            if torch.is_tensor(pos):
                self.position_ids = pos.detach().cpu()

    def attach(self):
        os.makedirs(self.out_dir, exist_ok=True)
        for r in self._rotary:  # the position ids the decoder's RoPE receives
            self._hooks.append(r.register_forward_pre_hook(self._capture_positions, with_kwargs=True))
        if self.use_hooks:
            for m in self._modules:
                self._hooks.append(m.register_forward_hook(self._hook, with_kwargs=True))
            return
        AttentionInterface.register(RECORDER_NAME, self._attention)
        # Without this, transformers builds no mask for an unknown name: maps would be non-causal.
        AttentionMaskInterface.register(RECORDER_NAME, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
        self._prev_impl = _current_attn_impl(self.model)
        _set_attn_impl(self.model, RECORDER_NAME)

    def detach(self):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._prev_impl is not None:
            _set_attn_impl(self.model, self._prev_impl)
            self._prev_impl = None

    # -- the registered attention function ----------------------------------------------------
    def _attention(self, module, query, key, value, attention_mask, **kwargs):
        eager = _module_eager(module)
        out, probs = eager(module, query, key, value, attention_mask, **kwargs)
        layer = self._layer_of.get(id(module))
        if layer is not None:  # vision towers etc. pass straight through
            scaling = kwargs.get("scaling", getattr(module, "scaling", None))
            if scaling is None:
                scaling = query.shape[-1] ** -0.5
            window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))
            self._record(layer, query, key, value, probs, attention_mask, float(scaling),
                         softcap=kwargs.get("softcap"), window=int(window) if window else None)
        return out, probs

    # -- hook fallback (older transformers) ---------------------------------------------------
    def _hook(self, module, args, kwargs, output):
        probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if probs is None:
            raise RuntimeError("self_attn returned no attention weights: load the model with "
                               "attn_implementation='eager' and pass output_attentions=True")
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        pe = kwargs.get("position_embeddings")
        if pe is None:
            raise RuntimeError("hook fallback needs the position_embeddings kwarg (transformers >= 4.45)")
        mod = sys.modules[type(module).__module__]
        bsz, T, _ = hidden.shape
        D = module.head_dim
        q = module.q_proj(hidden).view(bsz, T, -1, D).transpose(1, 2)
        k = module.k_proj(hidden).view(bsz, T, -1, D).transpose(1, 2)
        v = module.v_proj(hidden).view(bsz, T, -1, D).transpose(1, 2)
        cos, sin = pe
        q, k = mod.apply_rotary_pos_emb(q, k, cos, sin)
        scaling = float(getattr(module, "scaling", D ** -0.5))
        window = getattr(module, "sliding_window", None)
        self._record(self._layer_of[id(module)], q, k, v, probs, kwargs.get("attention_mask"), scaling,
                     window=int(window) if window else None)

    # -- reduce and write one layer -----------------------------------------------------------
    def _record(self, layer, query, key, value, probs, attention_mask, scaling, softcap=None, window=None):
        if query.shape[0] != 1:
            raise ValueError("attn-trace v1 holds one sequence: run the recorded forward with batch size 1")
        H, T, D = query.shape[1], query.shape[2], query.shape[3]
        KVH = key.shape[1]
        if key.shape[2] != T:
            raise ValueError(f"layer {layer}: query covers {T} positions but keys {key.shape[2]}: "
                             "record one forward over the whole sequence without a cache")
        P, r0 = self.prefill_len, self.row_start
        if not (1 <= P <= T) or not (0 <= r0 < T):
            raise ValueError(f"prefill_len {P} / row_start {r0} out of range for T={T}")
        self.seq_len = T
        self.windows[layer] = window
        if self.attn_scale is None:
            self.attn_scale = scaling
        kv_map = torch.arange(H, device=query.device) // (H // KVH)

        if probs.dtype == torch.float32:
            p32 = probs[0]
        else:  # bf16/fp16 model: recompute the softmax in float32 from the same inputs
            g = H // KVH
            kk = key[0].float().repeat_interleave(g, dim=0)
            logits = torch.matmul(query[0].float(), kk.transpose(-1, -2)) * scaling
            if softcap is not None:
                logits = torch.tanh(logits / softcap) * softcap
            if attention_mask is not None:
                m = attention_mask[0]
                if m.dtype == torch.bool:
                    logits = logits.masked_fill(~m[..., :T], float("-inf"))
                else:
                    logits = logits + m[..., :T].float()
            p32 = torch.softmax(logits, dim=-1)
            if layer == self._all_layers[0]:
                self.notes.append(f"model runs in {probs.dtype}: attn_colsum and attn recomputed in float32")

        t: dict[str, torch.Tensor] = {}
        notes = []
        attn_rows = p32[:, r0:]
        t["attn"], n = _to_storage(attn_rows, self.attn_dtype)
        t["attn_colsum"] = p32[:, :P].sum(dim=1, dtype=torch.float32)
        if self.keep_q:
            t["q"], n2 = _to_storage(query[0, :, r0:], self.qkv_dtype)
            notes += [x for x in (n2,) if x]
        if self.keep_kv:
            t["k"], n3 = _to_storage(key[0], self.qkv_dtype)
            t["v"], n4 = _to_storage(value[0], self.qkv_dtype)
            notes += [x for x in (n3, n4) if x]
        if self.keep_norms:
            t["k_norm"] = key[0].float().norm(dim=-1)
            t["v_norm"] = value[0].float().norm(dim=-1)

        if self.run_checks:
            self.checks[layer] = self._layer_checks(t, p32, query, key, kv_map, scaling, H, T, window,
                                                    _model_allowed(attention_mask, T), softcap)
        name = f"layer_{layer:03d}.safetensors"
        path = os.path.join(self.out_dir, name)
        save_file({k: v.detach().contiguous().cpu() for k, v in t.items()}, path,
                  metadata={"layer": str(layer)})
        os.chmod(path, 0o644)
        self.files[layer] = name
        if self.shapes is None:
            self.shapes = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                           for k, v in t.items()}
        for x in notes:
            self.notes.append(f"layer {layer}: {x}")

    def _layer_checks(self, t, p32, query, key, kv_map, scaling, H, T, window=None, model_allowed=None,
                      softcap=None):
        P, r0 = self.prefill_len, self.row_start
        rows = torch.arange(r0, T, device=p32.device)
        a = t["attn"].float()
        c: dict[str, float | None] = {}
        c["row_sum_max_abs_err"] = (a.sum(-1) - 1).abs().max().item()
        rule = mask_rule(rows, T, window=window, bidirectional=self.bidirectional, device=a.device)
        # above the diagonal, outside the bidirectional spans
        above = ~mask_rule(rows, T, bidirectional=self.bidirectional, device=a.device)
        c["above_diagonal_max"] = a.masked_select(above[None].expand_as(a)).abs().max().item() if above.any() else 0.0
        outside = ~rule
        c["outside_mask_rule_max"] = a.masked_select(outside[None].expand_as(a)).abs().max().item() if outside.any() else 0.0
        # the model's own mask against the rule trace.json documents (window, bidirectional spans)
        ma = model_allowed[r0:] if model_allowed is not None else torch.ones_like(rule)
        c["mask_rule_mismatches"] = float((ma.to(rule.device) != rule).sum().item())
        # the recorded maps are exactly softmax(scale·q·kᵀ) of the recorded vectors under that rule
        ref32 = _softmax_rows(query[0, :, r0:], key[0], kv_map, scaling, rows, rule, softcap)
        c["recompute_f32_max_abs_diff"] = (ref32 - p32[:, r0:]).abs().max().item()
        if "q" in t and "k" in t:
            ref = _softmax_rows(t["q"], t["k"], kv_map, scaling, rows, rule, softcap)
            c["recompute_stored_qk_max_abs_diff"] = (ref - a).abs().max().item()
        else:
            c["recompute_stored_qk_max_abs_diff"] = None
        if r0 == 0:
            d = (a[:, :P].sum(1) - t["attn_colsum"]).abs()
            c["colsum_vs_stored_rows_max_abs_diff"] = d.max().item()
            c["colsum_vs_stored_rows_max_rel_diff"] = (d / t["attn_colsum"].abs().clamp(min=1.0)).max().item()
        else:
            c["colsum_vs_stored_rows_max_abs_diff"] = None
            c["colsum_vs_stored_rows_max_rel_diff"] = None
        c["colsum_beyond_prefill_max"] = t["attn_colsum"][:, P:].abs().max().item() if P < T else 0.0
        return c

    def summary(self) -> dict:
        if not self.checks:
            return {}
        agg: dict[str, Any] = {}
        for key in next(iter(self.checks.values())):
            vals = [c[key] for c in self.checks.values() if c[key] is not None]
            agg[key] = max(vals) if vals else None
        rs = agg["row_sum_max_abs_err"]
        ok = {
            "rows_sum_to_1": rs is not None and rs <= ROW_SUM_TOL_F16,
            "causal_zero_above_diagonal": agg["above_diagonal_max"] <= 1e-6,
            "zero_outside_mask_rule": agg["outside_mask_rule_max"] <= 1e-6,
            "model_mask_matches_rule": agg["mask_rule_mismatches"] == 0,
            "softmax_qk_reproduces_attn": agg["recompute_f32_max_abs_diff"] <= 1e-3 and (
                agg["recompute_stored_qk_max_abs_diff"] is None
                or agg["recompute_stored_qk_max_abs_diff"] <= RECOMPUTE_TOL),
            "colsum_matches_stored_rows": (agg["colsum_vs_stored_rows_max_rel_diff"] is None
                                           or agg["colsum_vs_stored_rows_max_rel_diff"] <= COLSUM_TOL),
            "colsum_zero_beyond_prefill": agg["colsum_beyond_prefill_max"] == 0.0,
        }
        return {
            "max_over_layers": agg,
            "tolerances": {"row_sum": ROW_SUM_TOL_F16, "above_diagonal": 1e-6,
                           "recompute_f32": 1e-3, "recompute_stored_qk": RECOMPUTE_TOL,
                           "colsum": f"{COLSUM_TOL}·max(1, |colsum|)"},
            "passed": ok,
            "all_passed": all(ok.values()),
            "notes": {
                "above_diagonal_max": "largest stored entry above the diagonal, outside bidirectional_spans",
                "outside_mask_rule_max": "largest stored entry the layer's mask rule forbids (causal, its "
                                         "sliding window, bidirectional_spans)",
                "mask_rule_mismatches": "(row, key) pairs where the model's own mask differs from that rule",
                "recompute_f32_max_abs_diff": "softmax(attn_scale·q·kᵀ) under the layer's mask rule from the "
                                              "model's float vectors, against the float32 probabilities",
                "recompute_stored_qk_max_abs_diff": "the same from the stored (F16) q and k, against stored attn",
                "colsum_vs_stored_rows_max_abs_diff": "attn_colsum against the column sums of stored attn rows "
                                                      "0..prefill_len-1 (null when the rows do not cover the prefill)",
                "colsum_vs_stored_rows_max_rel_diff": "the same, divided by max(1, |attn_colsum|)",
            },
        }


# --------------------------------------------------------------------------------------------
# trace.json
# --------------------------------------------------------------------------------------------

def _versions() -> dict:
    v = {"transformers": transformers.__version__, "torch": torch.__version__,
         "python": platform.python_version()}
    from importlib import metadata
    for name in ("safetensors", "numpy", "accelerate", "gguf"):
        try:
            v[name] = metadata.version(name)
        except Exception:
            pass
    return v


def model_metadata(model, *, name: str | None = None, attn_scale: float | None = None,
                   num_layers: int | None = None, **extra) -> dict:
    tc = text_config_of(model)
    H = int(tc.num_attention_heads)
    KVH = int(getattr(tc, "num_key_value_heads", None) or H)
    D = int(getattr(tc, "head_dim", None) or tc.hidden_size // H)
    cfg = model.config
    meta = {
        "name": name or getattr(cfg, "_name_or_path", None) or type(model).__name__,
        "architecture": (getattr(cfg, "architectures", None) or [type(model).__name__])[0],
        "num_layers": int(num_layers if num_layers is not None else tc.num_hidden_layers),
        "num_heads": H,
        "num_kv_heads": KVH,
        "head_dim": D,
        "hidden_size": int(getattr(tc, "hidden_size", H * D)),
        "kv_head_of_query_head": [h // (H // KVH) for h in range(H)],
        "attn_scale": float(attn_scale if attn_scale is not None else D ** -0.5),
        "compute_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "attn_implementation": "eager",
    }
    rope = getattr(tc, "rope_theta", None)
    if rope is None:
        rp = getattr(tc, "rope_parameters", None) or getattr(tc, "rope_scaling", None)
        if isinstance(rp, dict):
            rope = rp.get("rope_theta")
    if rope is not None:
        meta["rope_theta"] = float(rope)
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


def write_trace_json(out_dir: str, meta: dict) -> str:
    """Writes ``out_dir/trace.json`` through a temporary file renamed into place."""
    path = os.path.join(out_dir, "trace.json")
    tmp = path + f".tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def check_out_dir(out_dir: str) -> None:
    """Refuses an output path that exists and is neither an empty folder nor an earlier trace
    (a folder holding ``trace.json``), which :func:`export_trace` would replace."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir}: exists and is not a folder; choose another output path")
    if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, "trace.json")):
        raise ValueError(f"{out_dir}: exists and holds no trace.json, so it is not replaced; choose another output path")


def _publish(work: str, out_dir: str) -> None:
    """Moves the finished trace folder ``work`` to ``out_dir``, replacing an earlier trace there."""
    import shutil
    old = None
    if os.path.exists(out_dir):
        old = out_dir.rstrip(os.sep) + f".old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(work, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# high-level export
# --------------------------------------------------------------------------------------------

def _extend_inputs(model_inputs: dict, T: int) -> dict:
    """Extend per-token inputs of length P (attention_mask, mm_token_type_ids, …) to length T."""
    out = {}
    for k, v in (model_inputs or {}).items():
        if k in ("input_ids", "position_ids", "cache", "past_key_values"):
            continue
        if torch.is_tensor(v) and v.dim() == 2 and v.shape[0] == 1 and k.endswith(("mask", "type_ids")):
            if v.shape[1] < T:
                fill = 1 if k == "attention_mask" else 0
                pad = torch.full((1, T - v.shape[1]), fill, dtype=v.dtype, device=v.device)
                v = torch.cat([v, pad], dim=1)
        out[k] = v
    return out


def _record_forward(model, rec: "TraceRecorder", ids: torch.Tensor, fwd_inputs: dict) -> None:
    with rec:
        kw = dict(use_cache=False)
        if rec.use_hooks:
            kw["output_attentions"] = True
        model(input_ids=ids, **fwd_inputs, **kw)


@torch.no_grad()
def export_trace(model, input_ids, out_dir: str, *, max_new_tokens: int = 0,
                 model_inputs: dict | None = None, window: int | None = None,
                 keep_q: bool = True, keep_kv: bool = True, keep_norms: bool = True,
                 layers: Iterable[int] | None = None, token_modality: Sequence[int] | None = None,
                 images: list[dict] | None = None, tokenizer=None, name: str | None = None,
                 model_name: str | None = None, model_extra: dict | None = None,
                 extra: dict | None = None, generate_kwargs: dict | None = None,
                 position_ids=None, prefill_len: int | None = None, force_hooks: bool = False,
                 strict: bool = False, tiles_per_image: Sequence[int] | None = None) -> dict:
    """Generate, record one forward over prompt + generated tokens, and write a trace folder.

    * ``input_ids``: the (expanded) prompt, ``[1, P]`` or a list; ``prefill_len`` = its length.
      Or, with ``max_new_tokens=0`` and ``prefill_len=P``, a sequence generated beforehand
      (prompt + answer): then nothing is generated and rows ``P ..< T`` are the decode rows.
    * ``model_inputs``: extra forward inputs such as ``pixel_values``.
    * ``window``: store only the last ``window`` rows of ``attn`` and ``q``.
    * Image spans: ``images`` / ``token_modality`` when given; otherwise found with
      :func:`vlm_layout` for the families of :func:`family_of` (from ``model_inputs``' processor
      outputs, and ``tokenizer`` or ``tiles_per_image`` for Idefics3), and with
      :func:`llava_image_spans` for other configs with an ``image_token_id``.
    * Generation never samples image or video placeholder ids (``suppress_tokens``, added to any
      given in ``generate_kwargs``).
    * ``position_ids`` in ``trace.json``: as given, else what the decoder's rotary embedding
      received (``[3, T]`` for Qwen2-VL's M-RoPE), null when that is ``0 ..< T``.

    Returns the ``trace.json`` content.
    """
    model.eval()
    original_impl = _current_attn_impl(model)
    dev = next(model.parameters()).device
    if not torch.is_tensor(input_ids):
        input_ids = torch.tensor([list(input_ids)], dtype=torch.long)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    input_ids = input_ids.to(dev)
    P = int(input_ids.shape[1])
    if prefill_len is not None:
        if max_new_tokens:
            raise ValueError("give either prefill_len (pre-generated sequence) or max_new_tokens")
        P = int(prefill_len)
    model_inputs = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in (model_inputs or {}).items()}
    timing = {}

    # 1. generate with plain eager attention
    _set_attn_impl(model, "eager")  # generation, and the hook fallback, need the eager kernel
    full = input_ids
    if max_new_tokens > 0:
        t0 = time.time()
        gk = dict(do_sample=False, max_new_tokens=max_new_tokens)
        gk.update(generate_kwargs or {})
        # A generated image placeholder would make the recorded forward fail ("Image features and
        # image tokens do not match"), and random or small models do generate them: never sample them.
        placeholders = placeholder_token_ids(model)
        if placeholders:
            gk["suppress_tokens"] = sorted(set(list(gk.get("suppress_tokens") or []) + placeholders))
        gen_inputs = {k: v for k, v in model_inputs.items()}
        if "attention_mask" not in gen_inputs:
            gen_inputs["attention_mask"] = torch.ones_like(input_ids)
        full = model.generate(input_ids=input_ids, **gen_inputs, **gk)
        if full.shape[1] > P and not torch.equal(full[:, :P], input_ids):  # some models return new tokens only
            full = torch.cat([input_ids, full], dim=1)
        timing["generate"] = round(time.time() - t0, 3)
    T = int(full.shape[1])
    row_start = 0 if not window else max(0, T - int(window))

    # 2. modality and spans (before the forward: the recorder checks the mask against them)
    ids = [int(x) for x in full[0].tolist()]
    if images is None and token_modality is None:
        token_modality, images = vlm_layout(model, ids[:P], model_inputs, tokenizer=tokenizer,
                                            tiles_per_image=tiles_per_image)
    if token_modality is None:
        token_modality = [0] * T
        for s in images or []:
            for i in range(s["start"], s["stop"]):
                token_modality[i] = 1
    token_modality = [int(x) for x in token_modality]
    if len(token_modality) == P < T:  # generated tokens are text
        token_modality += [0] * (T - P)
    images = images or []

    # 3. one recorded forward over prompt + generated tokens
    fwd_inputs = _extend_inputs(model_inputs, T)
    if position_ids is not None:
        fwd_inputs["position_ids"] = position_ids
    # the trace is recorded into a sibling folder and moved to out_dir once complete
    import shutil
    check_out_dir(out_dir)
    work = os.path.normpath(out_dir) + f".partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    rec = TraceRecorder(model, work, P, row_start=row_start, keep_q=keep_q, keep_kv=keep_kv,
                        keep_norms=keep_norms, layers=layers, force_hooks=force_hooks)
    rec.bidirectional = [(s["start"], s["stop"]) for s in images if s.get("bidirectional")]
    t0 = time.time()
    try:
        _record_forward(model, rec, full, fwd_inputs)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    timing["record_forward"] = round(time.time() - t0, 3)
    if original_impl and original_impl != _current_attn_impl(model):
        try:
            _set_attn_impl(model, original_impl)
        except Exception:  # pragma: no cover - leave the model in eager mode
            pass
    if rec.seq_len != T or not rec.files:
        shutil.rmtree(work, ignore_errors=True)
        if not rec.files:
            raise RuntimeError("no layer was recorded: is the attention implementation dispatched?")
        raise RuntimeError(f"recorded {rec.seq_len} positions, expected {T}")

    # position ids: as given, else as the decoder's rotary embedding received them; null for 0 ..< T
    pos = position_ids if position_ids is not None else rec.position_ids
    if torch.is_tensor(pos):
        pos = pos.detach().cpu().long()
        while pos.dim() > 1 and pos.shape[-2] == 1:  # drop the batch axis: [1, T] or [3, 1, T]
            pos = pos.squeeze(-2)
        if pos.dim() == 1 and torch.equal(pos, torch.arange(T)):
            pos = None
        elif pos.dim() == 2 and pos.shape[0] > 1 and all(torch.equal(r, torch.arange(T)) for r in pos):
            pos = None
    if torch.is_tensor(pos):
        pos = pos.tolist()

    # 4. trace.json
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": model_metadata(model, name=model_name, attn_scale=rec.attn_scale, **(model_extra or {})),
        "causal": True,
        "batch_index": 0,
        "seq_len": T,
        "prefill_len": P,
        "query_rows": {"start": row_start, "stop": T},
        "colsum_over": "query rows 0..prefill_len-1 (float32, before any downcast)",
        "position_ids": pos,
        "tokens": {"ids": ids},
        "token_modality": token_modality,
        "modality_legend": MODALITY_LEGEND,
        "images": images,
    }
    if tokenizer is not None:
        meta["tokens"]["pieces"] = [p if p is not None else "" for p in tokenizer.convert_ids_to_tokens(ids)]
        if T > P:
            meta["generated_text"] = tokenizer.decode(ids[P:], skip_special_tokens=True)
    if any(s.get("pseudo") for s in images):
        meta["synthetic_image_tokens"] = True
    if name:
        meta["name"] = name
    for k in ("sliding_window", "layer_types"):
        v = getattr(text_config_of(model), k, None)
        if v is not None:
            meta[k] = v
    types_ = getattr(text_config_of(model), "layer_types", None) or []
    if any(rec.windows.values()):
        # per recorded layer: its mask rule and how many keys its cache holds at the end (T of that layer)
        meta["layer_attention"] = [
            {"layer": i, "type": types_[i] if i < len(types_) else ("sliding_attention" if w else "full_attention"),
             "window": w, "cached_keys": min(T, w) if w else T} for i, w in sorted(rec.windows.items())]
    if rec.bidirectional:
        meta["bidirectional_spans"] = [[a, b] for a, b in rec.bidirectional]
    layer_ids = sorted(rec.files)
    meta["layer_files"] = [rec.files[i] for i in layer_ids]
    meta["tensors"] = rec.shapes
    meta["recorder"] = {"script": "kvscope_export.py", "method": "hooks" if rec.use_hooks else
                        f"AttentionInterface '{RECORDER_NAME}' + eager mask", "device": str(dev),
                        "torch_threads": torch.get_num_threads(), **_versions()}
    meta["timing_s"] = timing
    meta["checks"] = rec.summary()
    if rec.notes:
        meta["notes"] = "; ".join(rec.notes)
    if extra:
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(meta.get(k), dict):
                meta[k].update(v)
            else:
                meta[k] = v
    write_trace_json(work, meta)
    _publish(work, out_dir)
    if meta["checks"] and not meta["checks"]["all_passed"]:
        msg = f"trace checks failed: {meta['checks']['passed']} ({meta['checks']['max_over_layers']})"
        if strict:
            raise RuntimeError(msg)
        warnings.warn(msg)
    return meta


# --------------------------------------------------------------------------------------------
# reading back (tests, quick checks)
# --------------------------------------------------------------------------------------------

def load_trace(trace_dir: str) -> tuple[dict, dict[int, dict[str, Any]]]:
    """``(trace.json, {layer: {tensor name: numpy array}})``; also returns the file metadata as
    ``tensors[layer]["__metadata__"]``."""
    import numpy as np
    from safetensors import safe_open

    with open(os.path.join(trace_dir, "trace.json"), encoding="utf-8") as f:
        meta = json.load(f)
    layers = {}
    for fn in meta["layer_files"]:
        with safe_open(os.path.join(trace_dir, fn), framework="np") as f:
            d = {k: np.asarray(f.get_tensor(k)) for k in f.keys()}
            d["__metadata__"] = f.metadata()
        layers[int(d["__metadata__"]["layer"])] = d
    return meta, layers


REQUIRED_KEYS = ("format", "version", "model", "causal", "seq_len", "prefill_len", "query_rows",
                 "token_modality", "images", "layer_files")
REQUIRED_MODEL_KEYS = ("name", "num_layers", "num_heads", "num_kv_heads", "head_dim", "kv_head_of_query_head")
DTYPES = {"attn": {"F16", "BF16", "F32"}, "attn_colsum": {"F32", "F64"}, "q": {"F16", "BF16", "F32"},
          "k": {"F16", "BF16", "F32"}, "v": {"F16", "BF16", "F32"}, "k_norm": {"F32"}, "v_norm": {"F32"}}


def _raw_header(path: str) -> dict:
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def verify_trace(trace_dir: str) -> list[str]:
    """Checks the layout against attn-trace v1; returns a list of problems (empty = fine)."""
    import re
    import numpy as np

    errs = []
    meta, layers = load_trace(trace_dir)
    for k in REQUIRED_KEYS:
        if k not in meta:
            errs.append(f"trace.json: missing {k}")
    for k in REQUIRED_MODEL_KEYS:
        if k not in meta.get("model", {}):
            errs.append(f"trace.json: missing model.{k}")
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        errs.append("format/version")
    m = meta["model"]
    H, KVH, D, T, P = m["num_heads"], m["num_kv_heads"], m["head_dim"], meta["seq_len"], meta["prefill_len"]
    r0, r1 = meta["query_rows"]["start"], meta["query_rows"]["stop"]
    Q = r1 - r0
    if not (1 <= P <= T) or not (0 <= r0 < r1 <= T):
        errs.append("prefill_len / query_rows out of range")
    kvmap = m["kv_head_of_query_head"]
    if len(kvmap) != H or set(kvmap) != set(range(KVH)):
        errs.append("kv_head_of_query_head")
    if len(meta["token_modality"]) != T or any(c not in (0, 1, 2, 3) for c in meta["token_modality"]):
        errs.append("token_modality")
    prev = -1
    for s in sorted(meta["images"], key=lambda s: s["start"]):
        if not (0 <= s["start"] < s["stop"] <= T) or s["start"] < prev:
            errs.append(f"image span {s}")
        # an image with tiles may hold text between its tiles (Idefics3's tile tags); its tiles may not
        parts = s.get("tiles") or [s]
        tprev = s["start"]
        for t in parts:
            if not (tprev <= t["start"] < t["stop"] <= s["stop"]):
                errs.append(f"image {s['image_id']}: tile {t} outside its image or out of order")
            if t["grid"][0] * t["grid"][1] != t["stop"] - t["start"]:
                errs.append(f"image {s['image_id']}: grid {t['grid']} != length of [{t['start']},{t['stop']})")
            if any(meta["token_modality"][i] == 0 for i in range(t["start"], t["stop"])):
                errs.append(f"image {s['image_id']} covers text positions")
            tprev = t["stop"]
        prev = s["stop"]
    shapes = {"attn": [H, Q, T], "attn_colsum": [H, T], "q": [H, Q, D], "k": [KVH, T, D],
              "v": [KVH, T, D], "k_norm": [KVH, T], "v_norm": [KVH, T]}
    for fn in meta["layer_files"]:
        mm = re.fullmatch(r"layer_(\d+)\.safetensors", fn)
        hdr = _raw_header(os.path.join(trace_dir, fn))
        md = hdr.pop("__metadata__", {})
        if not mm or int(mm.group(1)) != int(md.get("layer", -1)):
            errs.append(f"{fn}: layer number {md}")
        for name, info in hdr.items():
            if name not in shapes:
                errs.append(f"{fn}: unexpected tensor {name}")
                continue
            if info["shape"] != shapes[name]:
                errs.append(f"{fn}: {name} shape {info['shape']} != {shapes[name]}")
            if info["dtype"] not in DTYPES[name]:
                errs.append(f"{fn}: {name} dtype {info['dtype']}")
        t = layers[int(md.get("layer", -1))]
        if "attn" not in t and "attn_colsum" not in t and not ("q" in t and "k" in t):
            errs.append(f"{fn}: no attn, attn_colsum or q+k")
        for name in ("attn", "attn_colsum", "q", "k", "v"):
            if name in t and not np.isfinite(t[name].astype(np.float32)).all():
                errs.append(f"{fn}: {name} not finite")
        if "attn_colsum" in t and P < T and np.abs(t["attn_colsum"][:, P:]).max() != 0:
            errs.append(f"{fn}: attn_colsum nonzero beyond prefill")
        if "attn" in t:
            a = t["attn"].astype(np.float64)
            if np.abs(a.sum(-1) - 1).max() > 1e-2:
                errs.append(f"{fn}: rows do not sum to 1")
            rows = np.arange(r0, r1)[:, None]
            above = np.arange(T)[None, :] > rows
            for b0, b1 in meta.get("bidirectional_spans") or []:
                above &= ~((rows >= b0) & (rows < b1) & (np.arange(T)[None, :] >= b0) & (np.arange(T)[None, :] < b1))
            if np.abs(a * above).max() > 1e-6:
                errs.append(f"{fn}: nonzero above diagonal")
            if r0 == 0 and "attn_colsum" in t:
                cs = a[:, :P].sum(1)
                if (np.abs(cs - t["attn_colsum"]) > 1e-2 * np.maximum(1, np.abs(t["attn_colsum"]))).any():
                    errs.append(f"{fn}: attn_colsum != column sums of stored prefill rows")
    return errs


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def sha256_of(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_ints(s: str | None) -> list[int] | None:
    return None if not s else [int(x) for x in s.replace(" ", "").split(",") if x]


def build_arg_parser():
    import argparse
    p = argparse.ArgumentParser(
        prog="python -m kvscope_export",
        description="Record an attn-trace v1 folder (the format kvscope reads) from a Hugging Face model: "
                    "greedy generation with eager attention, then one recorded forward over "
                    "prompt + generated tokens.",
        epilog="examples:\n"
               "  python export.py --tiny-random llava --out tiny-llava-trace --max-new-tokens 8\n"
               "  python export.py --tiny-random qwen2_vl --images 2 --out tiny-qwen2vl-trace\n"
               "  python export.py --model Qwen/Qwen2-VL-2B-Instruct --image photo.jpg --chat "
               "--prompt 'Describe this image.' --out qwen2vl-photo   (GPU recipes: README.md)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model id or local folder")
    p.add_argument("--tiny-random", metavar="FAMILY", choices=["llava", "qwen2_vl", "qwen2_5_vl", "llava_next",
                   "llava_onevision", "idefics3", "smolvlm", "gemma3"],
                   help="instead of --model: a tiny randomly initialised model of this family, built from a "
                        "config on the CPU with random images (no downloads): llava, qwen2_vl, qwen2_5_vl, "
                        "llava_next, llava_onevision, idefics3, smolvlm, gemma3")
    p.add_argument("--images", type=int, default=1, help="images in the --tiny-random prompt (default 1)")
    p.add_argument("--out", required=True, help="output trace folder")
    p.add_argument("--gguf-file", help="load GGUF weights from this file inside --model")
    p.add_argument("--revision")
    p.add_argument("--prompt", help="prompt text (put <image> where each image goes, unless --chat)")
    p.add_argument("--prompt-file")
    p.add_argument("--ids", help="comma-separated prompt token ids (no tokenizer needed)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--system", help="system prompt for --chat")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable): loads the "
                   "model with AutoModelForImageTextToText and its processor")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--window", type=int, help="store only the last W rows of attn and q")
    p.add_argument("--layers", help="comma-separated layer indices to record (default: all)")
    p.add_argument("--no-q", action="store_true")
    p.add_argument("--no-kv", action="store_true")
    p.add_argument("--no-norms", action="store_true")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (auto: cuda when available)")
    p.add_argument("--name", help="trace name written into trace.json")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--strict", action="store_true", help="fail when a check does not pass")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import inspect
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if not args.model and not args.tiny_random:
        parser.error("give --model or --tiny-random")
    try:
        check_out_dir(args.out)
    except ValueError as e:
        print(f"python -m kvscope_export: error: --out {e}", file=sys.stderr)
        return 2
    if args.tiny_random:
        if not 1 <= args.images <= 2:
            parser.error(f"--images must be 1 or 2 with --tiny-random, found {args.images}")
        return _main_tiny(args, argv)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"auto": torch.float32 if device == "cpu" else torch.bfloat16, "float32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    # `dtype=` since transformers 5 (`torch_dtype=` before)
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    load = dict(revision=args.revision, trust_remote_code=args.trust_remote_code)
    if args.gguf_file:
        load["gguf_file"] = args.gguf_file
    load = {k: v for k, v in load.items() if v}
    model_extra = {"revision": args.revision}
    if args.gguf_file and os.path.isfile(os.path.join(args.model, args.gguf_file)):
        model_extra["weights_sha256"] = sha256_of(os.path.join(args.model, args.gguf_file))
        model_extra["weights"] = args.gguf_file

    prompt = args.prompt
    if args.prompt_file:
        with open(args.prompt_file, encoding="utf-8") as f:
            prompt = f.read()
    model_inputs: dict[str, Any] = {}
    tokenizer = None
    token_modality = None
    if args.image:
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor
        processor = AutoProcessor.from_pretrained(args.model, **load)
        tokenizer = getattr(processor, "tokenizer", None)
        model = AutoModelForImageTextToText.from_pretrained(
            args.model, **{dtype_kw: dtype}, attn_implementation="eager", **load).to(device)
        images = [Image.open(p).convert("RGB") for p in args.image]
        text = prompt or "Describe the image."
        if args.chat:
            content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
            conv = ([{"role": "system", "content": [{"type": "text", "text": args.system}]}] if args.system else [])
            conv.append({"role": "user", "content": content})
            text = processor.apply_chat_template(conv, add_generation_prompt=True)
        try:
            enc = processor(images=images, text=text, return_tensors="pt", return_mm_token_type_ids=True)
        except TypeError:
            enc = processor(images=images, text=text, return_tensors="pt")
        input_ids = enc.pop("input_ids")
        mm = enc.get("mm_token_type_ids")
        if mm is not None:
            token_modality = [int(x) for x in mm[0].tolist()]
            if "mm_token_type_ids" not in inspect.signature(model.forward).parameters:
                enc.pop("mm_token_type_ids")
        model_inputs = dict(enc)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained(
            args.model, **{dtype_kw: dtype}, attn_implementation="eager", **load).to(device)
        if args.ids:
            input_ids = torch.tensor([_parse_ints(args.ids)])
            try:
                tokenizer = AutoTokenizer.from_pretrained(args.model, **load)
            except Exception:
                tokenizer = None
        else:
            tokenizer = AutoTokenizer.from_pretrained(args.model, **load)
            if prompt is None:
                raise SystemExit("give --prompt, --prompt-file or --ids")
            if args.chat:
                msgs = ([{"role": "system", "content": args.system}] if args.system else [])
                msgs.append({"role": "user", "content": prompt})
                text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            else:
                input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]

    images = None
    if family_of(model) is not None:
        token_modality = None  # vlm_layout places the spans and tiles from the processor outputs
    if token_modality is not None and any(token_modality):
        n = getattr(model.config, "image_seq_length", None)
        images = []
        for a, b in _runs([c != 0 for c in token_modality]):
            step = n if n and (b - a) % n == 0 else b - a
            for s in range(a, b, step):
                images.append({"image_id": len(images), "start": s, "stop": s + step,
                               "grid": grid_for_count(step), "order": "row-major",
                               "source": f"{type(processor).__name__} mm_token_type_ids"})
    meta = export_trace(
        model, input_ids, args.out, max_new_tokens=args.max_new_tokens, model_inputs=model_inputs,
        window=args.window, keep_q=not args.no_q, keep_kv=not args.no_kv, keep_norms=not args.no_norms,
        layers=_parse_ints(args.layers), token_modality=token_modality, images=images,
        tokenizer=tokenizer, name=args.name or os.path.basename(os.path.normpath(args.out)),
        model_name=args.model if not os.path.isdir(args.model) else None,
        model_extra=model_extra, strict=args.strict,
        extra={"recorder": {"command": "python -m kvscope_export " + " ".join(
            a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:]))}})
    c = meta.get("checks", {})
    print(f"wrote {args.out}: T={meta['seq_len']} P={meta['prefill_len']} rows {meta['query_rows']} "
          f"layers={len(meta['layer_files'])} images={len(meta['images'])} "
          f"checks={'ok' if c.get('all_passed') else c.get('passed')}")
    return 0


def _command_text(argv) -> str:
    return "python -m kvscope_export " + " ".join(
        a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:]))


def _main_tiny(args, argv) -> int:
    """``--tiny-random FAMILY``: record a trace from a tiny random model on the CPU."""
    import tiny_models
    case = tiny_models.make(args.tiny_random, args.images)
    meta = export_trace(
        case.model, case.input_ids, args.out, max_new_tokens=args.max_new_tokens, model_inputs=case.model_inputs,
        window=args.window, keep_q=not args.no_q, keep_kv=not args.no_kv, keep_norms=not args.no_norms,
        layers=_parse_ints(args.layers), tokenizer=case.tokenizer,
        name=args.name or os.path.basename(os.path.normpath(args.out)),
        model_name=f"tiny-random-{args.tiny_random}", strict=args.strict,
        extra={"recorder": {"command": _command_text(argv)},
               "notes": "randomly initialised weights and random images: for testing tools, not a study"})
    c = meta.get("checks", {})
    print(f"wrote {args.out}: T={meta['seq_len']} P={meta['prefill_len']} layers={len(meta['layer_files'])} "
          f"images={len(meta['images'])} checks={'ok' if c.get('all_passed') else c.get('passed')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
