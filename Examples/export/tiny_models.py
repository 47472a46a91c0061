"""Tiny randomly initialised VLMs of each supported family, with prompts built by each family's own
processor code (no downloads). Used by the tests and by ``export.py --tiny-random FAMILY``.

Every model has a 2-layer text decoder (3 for Gemma 3: two sliding-window layers, window 8, and a
full one; hidden size 64, 4 query heads, 2 KV heads, head dim 16), a 1-layer vision tower of
width 32, and random non-square images of 56×84 and 84×56 px. ``make(family, n_images)``
returns a :class:`TinyCase`: the model, the prompt ids as the processor expanded them, the extra
forward inputs (``pixel_values``, ``image_grid_thw``, ``image_sizes``, …), a word-level tokenizer,
and ``expected``: the image-token count of each image as the processor computed it (plus, for
Idefics3, the tile count of each image), which is what the exporter's spans are checked against.

Where a processor cannot be built without torchvision (its video processor), the processor
class's own placement function is called on a small namespace instead of an instance.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

FAMILIES = ("llava", "qwen2_vl", "qwen2_5_vl", "llava_next", "llava_onevision", "idefics3", "smolvlm", "gemma3")
VOCAB = 160


@dataclass
class TinyCase:
    family: str
    model: Any
    input_ids: torch.Tensor          # [1, P], image tokens expanded
    model_inputs: dict               # pixel_values and friends
    tokenizer: Any
    image_token_id: int
    expected_tokens: list[int]       # image tokens per image, from the processor
    expected_tiles: list[int] | None = None   # tiles per image (Idefics3), from the processor
    images: list = field(default_factory=list)


def _tokenizer(specials: list[str], extra: dict | None = None):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<pad>"] + list(specials)
    words += [f"w{i}" for i in range(VOCAB - len(words))]
    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>", **(extra or {}))
    tok.add_special_tokens({"additional_special_tokens": list(specials)})
    return tok


def _image(h: int, w: int, seed: int):
    from PIL import Image
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8))


def _text_kw(**kw) -> dict:
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                bos_token_id=1, eos_token_id=2, pad_token_id=3)
    base.update(kw)
    return base


# image sizes (height, width): non-square on purpose
SIZES = [(56, 84), (84, 56)]


def _prompt(marker: str, n: int) -> str:
    parts = ["w10 w11"]
    for i in range(n):
        parts.append(marker)
        parts.append(f"w{20 + i}")
    parts.append("w30 w31")
    return " ".join(parts)


def _llava(n):
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    tok = _tokenizer(["<image>"])
    tid = tok.convert_tokens_to_ids("<image>")
    vc = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          image_size=56, patch_size=14, projection_dim=32)
    cfg = LlavaConfig(vision_config=vc, text_config=LlamaConfig(**_text_kw()), image_token_id=tid,
                      image_seq_length=16, vision_feature_layer=-1)
    model = LlavaForConditionalGeneration(cfg)
    ip = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=14, image_token="<image>",
                          vision_feature_select_strategy="default", num_additional_image_tokens=1)
    imgs = [_image(*SIZES[i], seed=i) for i in range(n)]
    enc = proc(images=imgs, text=_prompt("<image>", n), return_tensors="pt")
    return model, enc, tok, tid, [16] * n, None, imgs


def _qwen(n, v25: bool):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    if v25:
        from transformers import (Qwen2_5_VLConfig as Cfg, Qwen2_5_VLForConditionalGeneration as Model)
    else:
        from transformers import Qwen2VLConfig as Cfg, Qwen2VLForConditionalGeneration as Model
    tok = _tokenizer(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    ids = {t: tok.convert_tokens_to_ids(t) for t in ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]}
    vision = dict(depth=1, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  in_channels=3)
    if v25:
        vision.update(intermediate_size=64, out_hidden_size=64, window_size=56, fullatt_block_indexes=[0])
    else:
        vision.update(embed_dim=32, hidden_size=64, mlp_ratio=2)  # hidden_size: the merger output = LM width
    text = _text_kw(rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    cfg = Cfg(vision_config=vision, text_config=text, image_token_id=ids["<|image_pad|>"],
              video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
              vision_end_token_id=ids["<|vision_end|>"])
    model = Model(cfg)
    ip = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=112 * 112, patch_size=14, merge_size=2,
                               temporal_patch_size=2)
    imgs = [_image(*SIZES[i], seed=i) for i in range(n)]
    image_inputs = ip(images=imgs, return_tensors="pt")
    # The processor's own expansion rule, called on a namespace (an instance needs torchvision).
    ns = types.SimpleNamespace(image_processor=ip, image_token="<|image_pad|>")
    counts = [int(Qwen2VLProcessor.replace_image_token(ns, image_inputs, i).count("<|image_pad|>")) for i in range(n)]
    text = _prompt("<|vision_start|> <|image_pad|> <|vision_end|>", n)
    pieces, k = [], 0
    for w in text.split(" "):
        if w == "<|image_pad|>":
            w = " ".join(["<|image_pad|>"] * counts[k])
            k += 1
        pieces.append(w)
    enc = tok(" ".join(pieces), return_tensors="pt")
    mm = (enc["input_ids"] == ids["<|image_pad|>"]).int()
    enc = dict(enc, pixel_values=image_inputs["pixel_values"], image_grid_thw=image_inputs["image_grid_thw"],
               mm_token_type_ids=mm)
    return model, enc, tok, ids["<|image_pad|>"], counts, None, imgs


def _llava_next(n, onevision: bool):
    from transformers import LlamaConfig
    tok = _tokenizer(["<image>"])
    tid = tok.convert_tokens_to_ids("<image>")
    pinpoints = [[56, 112], [112, 56], [112, 112]]
    imgs = [_image(*SIZES[i], seed=i) for i in range(n)]
    if onevision:
        from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                                  LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, SiglipVisionConfig)
        vc = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=56, patch_size=14)
        cfg = LlavaOnevisionConfig(vision_config=vc, text_config=LlamaConfig(**_text_kw()), image_token_id=tid,
                                   video_token_id=tid + 1, image_grid_pinpoints=pinpoints,
                                   vision_feature_layer=-1, vision_aspect_ratio="anyres_max_1")
        model = LlavaOnevisionForConditionalGeneration(cfg)
        ip = LlavaOnevisionImageProcessor(size={"height": 56, "width": 56}, image_grid_pinpoints=pinpoints)
        image_inputs = ip(images=imgs, return_tensors="pt")
        # The processor's own token count, called on a namespace (an instance needs torchvision).
        ns = types.SimpleNamespace(image_processor=ip, num_image_tokens=16, vision_aspect_ratio="anyres_max_1")
        ns._get_unpadded_features = functools.partial(LlavaOnevisionProcessor._get_unpadded_features, ns)
        counts = [int(LlavaOnevisionProcessor._get_number_of_features(ns, int(h), int(w), 56, 56))
                  for h, w in image_inputs["image_sizes"].tolist()]
        text = _prompt("<image>", n)
        pieces, k = [], 0
        for w in text.split(" "):
            if w == "<image>":
                w = " ".join(["<image>"] * counts[k])
                k += 1
            pieces.append(w)
        enc = dict(tok(" ".join(pieces), return_tensors="pt"), pixel_values=image_inputs["pixel_values"],
                   image_sizes=image_inputs["image_sizes"])
    else:
        from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                                  LlavaNextImageProcessor, LlavaNextProcessor)
        vc = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=56, patch_size=14, projection_dim=32)
        cfg = LlavaNextConfig(vision_config=vc, text_config=LlamaConfig(**_text_kw()), image_token_id=tid,
                              image_grid_pinpoints=pinpoints, vision_feature_layer=-1)
        model = LlavaNextForConditionalGeneration(cfg)
        ip = LlavaNextImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                                     image_grid_pinpoints=pinpoints)
        proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=14, image_token="<image>",
                                  vision_feature_select_strategy="default", num_additional_image_tokens=1)
        enc = proc(images=imgs, text=_prompt("<image>", n), return_tensors="pt")
        counts = [int(proc._get_number_of_features(int(h), int(w), 56, 56)) - 1  # "default" drops the CLS
                  for h, w in enc["image_sizes"].tolist()]
    return model, enc, tok, tid, counts, None, imgs


def _idefics3(n, smolvlm: bool = False):
    """Idefics3, or SmolVLM (same prompt layout; its own processor needs torchvision for videos,
    so the Idefics3 processor expands the prompt)."""
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor,
                              Idefics3Processor, LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration)
    specials = (["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
                + [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)])
    tok = _tokenizer(specials)
    tid = tok.convert_tokens_to_ids("<image>")
    Cfg, Model = (SmolVLMConfig, SmolVLMForConditionalGeneration) if smolvlm else (
        Idefics3Config, Idefics3ForConditionalGeneration)
    cfg = Cfg(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, image_size=56, patch_size=14),
              text_config=LlamaConfig(**_text_kw()), image_token_id=tid, scale_factor=2)
    model = Model(cfg)
    ip = Idefics3ImageProcessor(size={"longest_edge": 112}, max_image_size={"longest_edge": 56},
                                do_image_splitting=True)
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4)
    imgs = [_image(*SIZES[i], seed=i) for i in range(n)]
    enc = proc(images=[imgs], text=[_prompt("<image>", n)], return_tensors="pt")
    info = ip(images=[imgs], return_row_col_info=True)
    tiles = [r * c + 1 if r * c else 1 for r, c in zip(info["rows"][0], info["cols"][0])]
    return model, dict(enc), tok, tid, [4 * t for t in tiles], tiles, imgs


def _gemma3(n):
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor,
                              Gemma3Processor)
    tok = _tokenizer(["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
                     extra={"extra_special_tokens": {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                                     "image_token": "<image_soft_token>"}})
    tid = tok.convert_tokens_to_ids("<image_soft_token>")
    text = _text_kw(num_hidden_layers=3, layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                    sliding_window=8, query_pre_attn_scalar=16)
    cfg = Gemma3Config(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=2, image_size=56, patch_size=14),
                       text_config=text, mm_tokens_per_image=4, image_token_id=tid,
                       boi_token_id=tok.convert_tokens_to_ids("<start_of_image>"),
                       eoi_token_id=tok.convert_tokens_to_ids("<end_of_image>"))
    model = Gemma3ForConditionalGeneration(cfg)
    ip = Gemma3ImageProcessor(size={"height": 56, "width": 56})
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=4)
    imgs = [_image(*SIZES[i], seed=i) for i in range(n)]
    enc = proc(images=imgs, text=_prompt("<start_of_image>", n), return_tensors="pt")
    return model, dict(enc), tok, tid, [4] * n, None, imgs


def make(family: str, n_images: int = 1, seed: int = 0) -> TinyCase:
    """A tiny random model of ``family`` and a prompt with ``n_images`` images (see the module doc)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    build = {"llava": _llava, "qwen2_vl": functools.partial(_qwen, v25=False),
             "qwen2_5_vl": functools.partial(_qwen, v25=True),
             "llava_next": functools.partial(_llava_next, onevision=False),
             "llava_onevision": functools.partial(_llava_next, onevision=True),
             "idefics3": _idefics3, "smolvlm": functools.partial(_idefics3, smolvlm=True),
             "gemma3": _gemma3}[family]
    model, enc, tok, tid, counts, tiles, imgs = build(n_images)
    enc = dict(enc)
    input_ids = enc.pop("input_ids")
    enc.pop("attention_mask", None)
    return TinyCase(family, model.eval(), input_ids, enc, tok, tid, counts, tiles, imgs)
