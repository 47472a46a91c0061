"""Regenerates the small numpy-made fixtures of the KVTrace tests (run by hand; outputs are committed).

Every array holds values derived from np.arange so that the Swift tests can recompute them:
element i (flat, row-major) of a float array is (i % 7) * 0.25 - 0.5; of an int array i * 3 - 5;
of a bool array i % 3 == 0.
"""
import numpy as np

def fl(shape, dtype):
    n = int(np.prod(shape))
    return ((np.arange(n) % 7) * 0.25 - 0.5).astype(dtype).reshape(shape)

def it(shape, dtype):
    n = int(np.prod(shape))
    return (np.arange(n) * 3 - 5).astype(dtype).reshape(shape)

arrays = {
    "f16": fl((2, 3, 4), np.float16),
    "f32": fl((2, 3, 4), np.float32),
    "f64": fl((5,), np.float64),
    "f32be": fl((2, 3), ">f4"),
    "i32": it((4,), np.int32),
    "i64": it((2, 2), np.int64),
    "mask": (np.arange(6) % 3 == 0),
    "u8": np.arange(6, dtype=np.uint8),
    "scalar": np.float32(2.5).reshape(()),
    # bfloat16 as numpy saves it through ml_dtypes: an opaque 2-byte void with the bf16 bits.
    "bf16": (fl((3, 2), np.float32).view(np.uint32) >> 16).astype("<u2").view("V2"),
}
np.savez("stored.npz", **arrays)
np.savez_compressed("deflated.npz", **arrays)
np.save("f16.npy", arrays["f16"])
np.save("bool.npy", arrays["mask"])
# A version 2.0 header.
with open("v2.npy", "wb") as f:
    np.lib.format.write_array(f, arrays["f32"], version=(2, 0))
print("ok")
