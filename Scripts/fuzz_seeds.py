#!/usr/bin/env python3
"""Writes small seed inputs for the fuzz targets that have no fixture of their own (standard
library only): tiny safetensors files (bare and single-file attn-trace), trace.json documents and
bare-array inputs (flag byte + .npy image + NUL + sidecar JSON), into the folder given."""
import json, os, struct, sys

def npy(shape, fill=0.25):
    n = 1
    for d in shape: n *= d
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join("%d, " % d for d in shape)
    h = h.encode("latin1")
    h += b" " * (64 - (10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + struct.pack("<%df" % n, *([fill] * n))

def trace_meta(T=4, H=2, KVH=1, L=1):
    return {"format": "attn-trace", "version": 1, "name": "seed",
            "model": {"name": "m", "num_layers": L, "num_heads": H, "num_kv_heads": KVH, "head_dim": 2,
                      "kv_head_of_query_head": [0] * H},
            "causal": True, "seq_len": T, "prefill_len": T, "query_rows": {"start": 0, "stop": T},
            "token_modality": [0, 1, 1, 0][:T], "images": [{"image_id": 0, "start": 1, "stop": 3, "grid": [1, 2]}],
            "recorder": {"tool": "seed"}}

def safetensors(tensors, metadata=None):
    header, buf = {}, b""
    for name, shape in tensors:
        n = 1
        for d in shape: n *= d
        data = struct.pack("<%df" % n, *([0.25] * n))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    if metadata: header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + buf

kind, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
def put(name, data):
    with open(os.path.join(out, name), "wb") as f: f.write(data)

if kind == "safetensors":
    put("bare.safetensors", safetensors([("attn", [2, 4, 4])]))
    put("single.safetensors", safetensors([("layers.0.attn", [2, 4, 4]), ("layers.0.k", [1, 4, 2])],
                                          {"attn-trace": json.dumps(trace_meta())}))
elif kind == "tracejson":
    put("small.json", json.dumps(trace_meta()).encode())
    m = trace_meta(); m["recorder"] = "exporter v1"; m["images"][0]["tiles"] = [{"start": 1, "stop": 3, "grid": [1, 2]}]
    put("tiles.json", json.dumps(m).encode())
elif kind == "barearrays":
    side = {"prefill_len": 3, "query_rows": {"start": 0}, "token_modality": [0, 1, 1, 0],
            "images": [{"start": 1, "stop": 3, "grid": [1, 2]}], "model": {"kv_head_of_query_head": [0, 0]}}
    put("plain.bin", b"\x00" + npy([2, 4, 4]))
    put("sidecar.bin", b"\x00" + npy([2, 4, 4]) + b"\x00" + json.dumps(side).encode())
    put("tril.bin", b"\x01" + npy([2, 10]))
    put("lhqt.bin", b"\x02" + npy([1, 2, 4, 4]))
else:
    sys.exit("unknown seed kind " + kind)
