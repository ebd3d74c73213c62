#!/usr/bin/env python3
"""Golden vectors for lowbit's minifloat codecs from independent implementations.

Source of truth: ml_dtypes (float8_e4m3fn, float8_e5m2, float6_e3m2fn, float6_e2m3fn,
float4_e2m1fn, bfloat16) and numpy (float16). Versions are written into every file header and
into the sidecar minifloat_golden.json. Consumed by tests/golden/minifloat_golden_test.cc.

For each type, one file $LOWBIT_GOLDEN_DIR/minifloat_<name>.bin, all integers little-endian:

  offset  size  field
  0       8     magic b"LBMFGLD1"
  8       32    lowbit name (preset, or "fp16" / "bf16"), NUL-padded ASCII
  40      32    reference dtype name (e.g. "float8_e4m3fn"), NUL-padded
  72      64    source, e.g. "ml_dtypes 0.6.0; numpy 2.4.6", NUL-padded
  136     4     u32 code_bits (4, 6, 8 or 16)
  140     4     u32 n_codes (= 2^code_bits)
  144     4     u32 n_inputs
  148     4     u32 reserved (0)
  152     4*n_codes   u32: float32 bits of the reference decode of code c (c = 0 .. n_codes-1)
  ...     4*n_inputs  u32: float32 bits of input i
  ...     4*n_inputs  u32: reference code of input i (float32 -> type, round to nearest even)

Inputs (deduplicated by bit pattern, both signs): every decoded value; every midpoint between
neighbouring finite values (the ties) and the floats 1 ulp either side; every grid value +-1 ulp;
the overflow boundary (max_finite, the tie max_finite + step/2 above it, +-1 ulp, 2x, 1e30,
float32 max); underflow (half the smallest subnormal and its neighbours, float32 subnormals);
+-0, +-Inf, NaNs with several payloads; then 100000 floats with a random sign, mantissa and an
exponent uniform over a range reaching 12 binades beyond the type's, and 20000 random float32 bit
patterns (seeded: the files are reproducible).
"""
import json
import os
import pathlib
import platform

import ml_dtypes
import numpy as np

MAGIC = b"LBMFGLD1"
HEADER_BYTES = 152

# (lowbit name, reference dtype, dtype name, code bits)
TYPES = [
    ("fp8_e4m3", ml_dtypes.float8_e4m3fn, "float8_e4m3fn", 8),
    ("fp8_e5m2", ml_dtypes.float8_e5m2, "float8_e5m2", 8),
    ("fp6_e3m2", ml_dtypes.float6_e3m2fn, "float6_e3m2fn", 6),
    ("fp6_e2m3", ml_dtypes.float6_e2m3fn, "float6_e2m3fn", 6),
    ("fp4_e2m1", ml_dtypes.float4_e2m1fn, "float4_e2m1fn", 4),
    ("fp16", np.float16, "float16", 16),
    ("bf16", ml_dtypes.bfloat16, "bfloat16", 16),
]

SOURCE = f"ml_dtypes {ml_dtypes.__version__}; numpy {np.__version__}"


def f32(values):
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def bits_to_f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def decode_all(dtype, code_bits):
    n = 1 << code_bits
    storage = np.uint8 if code_bits <= 8 else np.uint16
    codes = np.arange(n, dtype=storage)
    return codes.view(dtype).astype(np.float32)


def exact_f32(values64):
    """float64 values that must be exact float32 (midpoints of <= 12-bit grids are)."""
    v32 = values64.astype(np.float32)
    assert np.array_equal(v32.astype(np.float64), values64), "midpoint not exact in float32"
    return v32


def neighbours(v32):
    """v and the floats one ulp below and above (float32)."""
    up = np.nextafter(v32, np.float32(np.inf))
    down = np.nextafter(v32, np.float32(-np.inf))
    return [v32, up, down]


def build_inputs(decoded, rng):
    finite = decoded[np.isfinite(decoded)].astype(np.float64)
    grid = np.unique(np.abs(finite))  # 0 and the positive finite values, ascending
    max_finite = grid[-1]
    top_step = grid[-1] - grid[-2]
    min_sub = grid[1]
    emax = int(np.floor(np.log2(max_finite)))
    emin_sub = int(np.floor(np.log2(min_sub)))

    parts = [decoded]
    parts += neighbours(grid.astype(np.float32))
    mids = exact_f32((grid[:-1] + grid[1:]) / 2)
    parts += neighbours(mids)

    beyond = grid[-1] + top_step  # the next grid point an unbounded exponent range would have
    edge = [max_finite, max_finite + top_step / 2, beyond, beyond + top_step / 2, 1.5 * max_finite,
            2 * max_finite, 4 * max_finite, 1e3 * max_finite, 65504.0, 65520.0, 1e30]
    edge32 = [v for v in f32(edge) if np.isfinite(v)]
    parts += neighbours(np.array(edge32 + [np.finfo(np.float32).max], dtype=np.float32))
    tiny = [min_sub / 2, min_sub / 4, min_sub * 0.75, min_sub * 1.5, 2.0**-126, 2.0**-149,
            2.0**-140, 3 * 2.0**-149]
    parts += neighbours(f32([v for v in tiny if v >= 2.0**-149]))
    specials = bits_to_f32([0x00000000, 0x7F800000, 0x7FC00000, 0x7FC00001, 0x7F800001,
                            0x7FA00000, 0x7FFFFFFF, 0x7FE00000, 0x7F802000])
    parts.append(specials)

    # Random: sign, 23 mantissa bits, exponent spread 12 binades past the type's range.
    lo = max(emin_sub - 12, -149)
    hi = min(emax + 12, 127)
    n_random = 100000
    exps = rng.integers(lo, hi + 1, size=n_random)
    mant = rng.integers(0, 1 << 23, size=n_random).astype(np.float64) / float(1 << 23)
    vals = np.ldexp(1.0 + mant, exps)
    parts.append(f32(vals))
    parts.append(rng.integers(0, 1 << 32, size=20000, dtype=np.uint64).astype(np.uint32)
                 .view(np.float32))

    x = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])
    x = np.concatenate([x, -x])  # both signs (negating flips the sign bit, NaNs included)
    bits = np.unique(x.view(np.uint32))
    return bits.view(np.float32)


def encode(x, dtype, code_bits):
    storage = np.uint8 if code_bits <= 8 else np.uint16
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype).view(storage).astype(np.uint32)


def pad(s, n):
    b = s.encode("ascii")
    assert len(b) < n
    return b + b"\0" * (n - len(b))


def write_type(out_dir, name, dtype, dtype_name, code_bits, rng):
    decoded = decode_all(dtype, code_bits)
    inputs = build_inputs(decoded, rng)
    codes = encode(inputs, dtype, code_bits)
    assert codes.max() < (1 << code_bits)
    header = (MAGIC + pad(name, 32) + pad(dtype_name, 32) + pad(SOURCE, 64) +
              np.array([code_bits, 1 << code_bits, inputs.size, 0], dtype="<u4").tobytes())
    assert len(header) == HEADER_BYTES
    path = out_dir / f"minifloat_{name}.bin"
    tmp = path.with_suffix(".bin.tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(decoded.view(np.uint32).astype("<u4").tobytes())
        f.write(inputs.view(np.uint32).astype("<u4").tobytes())
        f.write(codes.astype("<u4").tobytes())
    os.replace(tmp, path)
    return {"file": path.name, "name": name, "reference_dtype": dtype_name,
            "code_bits": code_bits, "n_codes": 1 << code_bits, "n_inputs": int(inputs.size)}


def main():
    out_dir = pathlib.Path(os.environ.get("LOWBIT_GOLDEN_DIR", "golden"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing edge values are intended
        entries = [write_type(out_dir, *t, rng) for t in TYPES]
    manifest = {
        "generator": "scripts/golden/gen_minifloat.py",
        "source": SOURCE,
        "ml_dtypes": ml_dtypes.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "rounding": "float32 -> type via dtype.astype (round to nearest, ties to even)",
        "files": entries,
    }
    (out_dir / "minifloat_golden.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for e in entries:
        print(f"  {e['file']}: {e['n_codes']} codes, {e['n_inputs']} inputs ({SOURCE})")


if __name__ == "__main__":
    main()
