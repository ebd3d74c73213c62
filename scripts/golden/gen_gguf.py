#!/usr/bin/env python3
"""Golden vectors for lowbit's "gguf" family from the `gguf` Python package (gguf-py).

Source of truth: gguf.quants.quantize / gguf.quants.dequantize (numpy ports of llama.cpp's ggml
reference quantizers and dequantizers) and gguf.constants (GGMLQuantizationType ids,
GGML_QUANT_SIZES). The gguf and numpy versions are written into every file header and into the
sidecar gguf_golden.json. Consumed by tests/golden/gguf_golden_test.cc, which requires our bytes
and float bits to be identical.

One file per type, $LOWBIT_GOLDEN_DIR/gguf_<type>.bin, all integers little-endian:

  offset  size  field
  0       8     magic b"LBGGUFG1"
  8       16    lowbit type name (the value of gguf:type=, e.g. "q4_0"), NUL-padded ASCII
  24      64    source, e.g. "gguf 0.19.0; numpy 2.4.6", NUL-padded
  88      4     u32 ggml type id (gguf.GGMLQuantizationType)
  92      4     u32 block size (elements, GGML_QUANT_SIZES)
  96      4     u32 block bytes (GGML_QUANT_SIZES)
  100     4     u32 number of records
  104     ...   records, each:
                  u32 kind (1 = quantize, 2 = decode), u32 rows, u32 cols, u32 distribution id
                  kind 1: f32 x[rows*cols]; u8 packed[rows*cols/block*bytes] = gguf quantize(x);
                          f32 y[rows*cols] = gguf dequantize(packed)
                  kind 2: u8 packed[...] (random bytes); f32 y[...] = gguf dequantize(packed)

Quantize records exist for the types gguf.quants can quantize (q8_0, q4_0, q4_1, q5_0, q5_1,
mxfp4): 11 distributions x 4 row lengths (32, 64, 256, 512) x 46 rows = 2024 rows per type.
Distributions (ids in DISTRIBUTIONS): normal; Student-t(2) heavy tails; uniform scaled by
10^U(-3,3); zeros (all +0.0; a zero block led by -0.0 for the symmetric types) and sparse rows;
outliers; exact rounding ties (values on the type's half-step grid with an exact scale: ties of
roundf, of the +8.5/+0.5 truncation and of mxfp4's nearest-code search); negative max (the
largest |x| negative, and +-|max| ties in both orders); tiny rows (fp16 scale subnormal or 0);
max|x| at or 1..40 ulps around powers of two (mxfp4's floor(log2f)); large rows (up to ~1.5e4);
small integers (many magnitude ties).
Not covered, by design: results ggml leaves undefined or non-finite (NaN/Inf inputs; fp16 scale
overflow; float32-subnormal scales); the generator asserts every reference output is finite.
Decode records exist for every type: 2000 blocks of random bytes (1000 rows of 1 block, 250 rows
of 4 blocks) with every fp16 field forced finite (an all-ones exponent loses its top bit); for
mxfp4 also one block per E8M0 byte 0..255 holding all 16 codes.
Seeded: the files are reproducible.
"""
import importlib.metadata
import json
import os
import pathlib

import numpy as np
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

MAGIC = b"LBGGUFG1"
GGUF_VERSION = importlib.metadata.version("gguf")
SOURCE = f"gguf {GGUF_VERSION}; numpy {np.__version__}"

# lowbit type name -> (gguf enum name, encodable in gguf.quants, byte offsets of fp16 fields)
TYPES = {
    "q8_0": ("Q8_0", True, [0]),
    "q4_0": ("Q4_0", True, [0]),
    "q4_1": ("Q4_1", True, [0, 2]),
    "q5_0": ("Q5_0", True, [0]),
    "q5_1": ("Q5_1", True, [0, 2]),
    "mxfp4": ("MXFP4", True, []),
    "q2_k": ("Q2_K", False, [80, 82]),
    "q3_k": ("Q3_K", False, [108]),
    "q4_k": ("Q4_K", False, [0, 2]),
    "q5_k": ("Q5_K", False, [0, 2]),
    "q6_k": ("Q6_K", False, [208]),
    "iq4_nl": ("IQ4_NL", False, [0]),
    "iq4_xs": ("IQ4_XS", False, [0]),
}

DISTRIBUTIONS = ["normal", "student_t2", "scaled_uniform", "zeros_sparse", "outliers", "ties",
                 "negative_max", "tiny", "pow2_edge", "large", "integers", "random_bytes",
                 "mxfp4_all_codes"]
LENGTHS = [32, 64, 256, 512]
ROWS_PER_RECORD = 46
QK = 32  # block of every encodable type

# Exact-tie grids: (anchor magnitude A, element half-steps): the block max is +-A*s, the other
# elements m/2*s with |m| <= 2A (symmetric) or min + m/2*s with 0 <= m <= 2A (asymmetric), s a
# power of two, so that d, 1/d and every x*id are exact and land on .5 ties.
TIE_ANCHOR = {"q8_0": 127, "q4_0": 8, "q5_0": 16, "q4_1": 15, "q5_1": 31, "mxfp4": 12}
ASYMMETRIC = {"q4_1", "q5_1"}


def rand_blocks(rng, name, dist, rows, cols):
    n = rows * cols
    shape = (rows, cols)
    if dist == "normal":
        return rng.standard_normal(shape)
    if dist == "student_t2":
        return rng.standard_t(2.0, shape)
    if dist == "scaled_uniform":
        return rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(-3, 3, (rows, 1))
    if dist == "zeros_sparse":
        x = np.zeros(shape)
        sparse = rng.random(rows) < 0.5
        mask = rng.random(shape) < 0.05
        x[sparse] = np.where(mask, rng.standard_normal(shape), 0.0)[sparse]  # +0.0, not -0.0
        if name not in ASYMMETRIC:  # gguf.quants and ggml's C differ on -0.0 min/max there
            x[0, 0] = -0.0  # an all-zero block led by -0.0: scale sign copied from x[0]
        return x
    if dist == "outliers":
        x = rng.standard_normal(shape) * 0.01
        for r in range(rows):
            for _ in range(rng.integers(1, 4)):
                x[r, rng.integers(cols)] = rng.choice([-1, 1]) * rng.uniform(5, 50)
        return x
    if dist == "integers":
        return rng.integers(-9, 10, shape).astype(np.float64)
    if dist == "tiny":
        return rng.standard_normal(shape) * 10.0 ** rng.uniform(-9, -4, (rows, 1))
    if dist == "large":
        return rng.standard_normal(shape) * 10.0 ** rng.uniform(2, 3.5, (rows, 1))
    blocks = np.zeros((n // QK, QK))
    for b in range(blocks.shape[0]):
        blocks[b] = special_block(rng, name, dist)
    return blocks.reshape(shape)


def special_block(rng, name, dist):
    if dist == "ties":
        a = TIE_ANCHOR[name]
        s = 2.0 ** rng.integers(-12, 9)  # fp16 fields stay finite
        if name in ASYMMETRIC:
            lo = float(rng.integers(-2 * a, 1)) / 2 * s
            x = lo + rng.integers(0, 2 * a + 1, QK) / 2 * s
            i, k = rng.choice(QK, 2, replace=False)
            x[i], x[k] = lo, lo + a * s
        else:
            x = rng.integers(-2 * a, 2 * a + 1, QK) / 2 * s
            x[rng.integers(QK)] = rng.choice([-1, 1]) * a * s
        return x
    if dist == "negative_max":
        x = rng.standard_normal(QK)
        i = int(np.argmax(np.abs(x)))
        x[i] = -abs(x[i])
        if rng.random() < 0.5:  # a +|max| tie before or after the negative one
            k = rng.integers(QK - 1)
            k += k >= i
            x[k] = abs(x[i])
        return x
    if dist == "pow2_edge":
        k = int(rng.integers(-20, 16))  # 2^15: every fp16 field stays finite
        p = np.float32(2.0 ** k)
        j = int(rng.integers(-40, 41))
        target = p
        step = np.float32(np.inf) if j > 0 else np.float32(0)
        for _ in range(abs(j)):
            target = np.nextafter(target, step)
        x = rng.uniform(-0.9, 0.9, QK) * float(target)
        x[rng.integers(QK)] = rng.choice([-1.0, 1.0]) * float(target)
        return x
    raise ValueError(dist)


def patch_halves(packed, block_bytes, offsets):
    """Makes every fp16 field finite: an all-ones exponent loses its top bit."""
    blocks = packed.reshape(-1, block_bytes)
    for off in offsets:
        h = blocks[:, off:off + 2].copy().view(np.uint16).reshape(-1)
        bad = (h & 0x7C00) == 0x7C00
        h[bad] ^= 0x4000
        blocks[:, off:off + 2] = h.reshape(-1, 1).view(np.uint8)
    return blocks.reshape(packed.shape)


def header(name, qtype, block, block_bytes, n_records):
    def padded(s, n):
        b = s.encode("ascii")
        assert len(b) < n
        return b + b"\0" * (n - len(b))

    return (MAGIC + padded(name, 16) + padded(SOURCE, 64) +
            np.array([int(qtype), block, block_bytes, n_records], dtype="<u4").tobytes())


def record_header(kind, rows, cols, dist):
    return np.array([kind, rows, cols, DISTRIBUTIONS.index(dist)], dtype="<u4").tobytes()


def generate(out_dir):
    summary = {"source": SOURCE, "gguf_version": GGUF_VERSION, "types": {}}
    for t_index, (name, (enum_name, encodable, half_offsets)) in enumerate(TYPES.items()):
        qtype = GGMLQuantizationType[enum_name]
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        rng = np.random.default_rng(20260501 + t_index)
        records = []
        counts = {"quantize_rows": 0, "quantize_blocks": 0, "decode_blocks": 0}
        if encodable:
            assert block == QK
            for dist in DISTRIBUTIONS[:11]:
                for cols in LENGTHS:
                    x = rand_blocks(rng, name, dist, ROWS_PER_RECORD, cols).astype(np.float32)
                    packed = quants.quantize(x, qtype)
                    y = quants.dequantize(packed, qtype).astype(np.float32)
                    assert np.all(np.isfinite(y)), (name, dist)
                    records.append(record_header(1, ROWS_PER_RECORD, cols, dist) + x.tobytes() +
                                   packed.astype(np.uint8).tobytes() + y.tobytes())
                    counts["quantize_rows"] += ROWS_PER_RECORD
                    counts["quantize_blocks"] += ROWS_PER_RECORD * cols // block
        for rows, blocks_per_row in ((1000, 1), (250, 4)):
            packed = rng.integers(0, 256, (rows, blocks_per_row * block_bytes), dtype=np.uint8)
            packed = patch_halves(packed, block_bytes, half_offsets)
            y = quants.dequantize(packed, qtype).astype(np.float32)
            records.append(record_header(2, rows, blocks_per_row * block, "random_bytes") +
                           packed.tobytes() + y.tobytes())
            counts["decode_blocks"] += rows * blocks_per_row
        if name == "mxfp4":
            packed = np.zeros((256, block_bytes), dtype=np.uint8)
            packed[:, 0] = np.arange(256)
            packed[:, 1:] = (np.arange(16) | ((15 - np.arange(16)) << 4)).astype(np.uint8)
            y = quants.dequantize(packed, qtype).astype(np.float32)
            records.append(record_header(2, 256, block, "mxfp4_all_codes") + packed.tobytes() +
                           y.tobytes())
            counts["decode_blocks"] += 256
        path = pathlib.Path(out_dir) / f"gguf_{name}.bin"
        with open(path, "wb") as f:
            f.write(header(name, qtype, block, block_bytes, len(records)))
            for r in records:
                f.write(r)
        summary["types"][name] = {"ggml_type": int(qtype), "block_size": block,
                                  "block_bytes": block_bytes, **counts}
    (pathlib.Path(out_dir) / "gguf_golden.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    out = pathlib.Path(os.environ.get("LOWBIT_GOLDEN_DIR", "golden"))
    out.mkdir(parents=True, exist_ok=True)
    s = generate(out)
    print(f"gguf golden ({SOURCE}): " +
          ", ".join(f"{k} {v['quantize_blocks']}q/{v['decode_blocks']}d blocks"
                    for k, v in s["types"].items()))
