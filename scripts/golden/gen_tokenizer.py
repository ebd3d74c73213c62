#!/usr/bin/env python3
"""Golden token ids from independent tokenizer implementations, for tests/golden/tokenizer_golden_test.cc.

Writes into $LOWBIT_GOLDEN_DIR/tokenizer/:
  spm_tok512.json   sentencepiece 0.2.3 (the C++ library behind llama2.c's tokenizer) on
                    ../shared/data/stories260K/tok512.model. Two encodings per text:
                      ids_raw:     the model with normalizer_spec.remove_extra_whitespaces = false, i.e.
                                   whitespace kept as is: what llama2.c's run.c and llama.cpp compute;
                      ids_default: the model as shipped (remove_extra_whitespaces = true: leading and
                                   trailing spaces dropped, runs of spaces collapsed); `default_applies`
                                   marks texts that this normalization leaves unchanged.
  pretokenize.json  HF `tokenizers` 0.23.3 pre-tokenizers (Oniguruma regexes) on every text: the pieces of
                    ByteLevel(use_regex) (GPT-2), Sequence[Digits(individual), ByteLevel] (SmolLM) and
                    Split(Llama 3 / Qwen2 regex, isolated).
  smollm2.json      HF `tokenizers` BPE built from the SmolLM2-135M-Instruct GGUF's own vocabulary and
  smollm2_tokenizer.json   merges (read with the `gguf` package) with SmolLM2's tokenizer.json pipeline
                    (Digits + ByteLevel, special tokens = the GGUF's control tokens), its ids per text, and
                    that tokenizer saved by `tokenizers` (for lowbit's tokenizer.json reader). Only when
                    scripts/fetch_models.sh has put the GGUF in .cache/models/; otherwise skipped (said so).

Texts: the first 4000 characters of tinystories_valid_head.txt, the first 300 lines of wiki.test.raw (as
one text, and lines 0..99 one by one), and hand-written tricky strings (unicode, emoji, digits,
whitespace runs, contractions, special-token spellings).
"""
import json
import os
import pathlib

try:
    import sentencepiece as spm
    import tokenizers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
except ImportError as e:  # the C++ test then skips (fails under CI) for want of golden files
    spm = None
    IMPORT_ERROR = e

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(os.environ.get("LOWBIT_DATA_DIR") or ROOT.parent / "shared" / "data")
OUT = pathlib.Path(os.environ.get("LOWBIT_GOLDEN_DIR", "golden")) / "tokenizer"
SMOLLM2_GGUF = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

# The regexes of Llama 3's and Qwen2's tokenizer.json Split pre-tokenizers.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")

TRICKY = {
    "empty": "",
    "one_space": " ",
    "spaces_only": "    ",
    "leading_spaces": "   leading spaces",
    "trailing_spaces": "trailing spaces   ",
    "inner_space_runs": "multiple   internal    spaces  here",
    "tabs_newlines": "tabs\tand\nnewlines\r\nmixed\t\t\tend",
    "blank_lines": "para one.\n\n\npara two.\n \n  \n end",
    "newline_then_spaces": "x\n   y\n\t z",
    "contractions": "I'm sure they'll say it's fine, don't you think? We've seen it. I'D GO. You'RE 'tis",
    "apostrophes": "'s 't ''' rock'n'roll o'clock",
    "digits": "Numbers 12345 and 3.14159 and 1,000,000 or 007; year 2024-11-23",
    "digit_runs": "1 22 333 4444 55555 666666 x1y22z333",
    "unicode_latin": "Café naïve résumé façade Ångström señor Zürich",
    "combining": "e\u0301 a\u0308 n\u0303 (combining marks)",
    "cjk": "你好，世界！这是一个测试。日本語のテキストとカタカナ ー 한국어 텍스트입니다",
    "cyrillic_arabic": "Россия и Українa, مرحبا بالعالم, Ελληνικά",
    "emoji": "Emoji: 😀👍🏽🇺🇸 and ❤️ and 👨‍👩‍👧 family",
    "unicode_spaces": "nbsp\u00a0here, ideographic\u3000space, thin\u2009space, zero\u200bwidth",
    "unicode_digits": "Arabic-Indic ٣٤٥ and roman Ⅻ and superscript ² ½",
    "punctuation": "Punctuation!!! ??? ... --- (parens) [brackets] {braces} <angle> @#$%^&*_+=|\\/~`",
    "code": "def foo(x):\n    return x ** 2  # comment\n\nif __name__ == '__main__':\n\tfoo(3)\n",
    "quotes": "\u201cSmart quotes\u201d and \u2018single\u2019 \u2014 dashes \u2013 ellipsis\u2026",
    "special_spellings": "<|im_start|>user\nHi there<|im_end|>\n<|endoftext|><s></s><unk> <0x41>",
    "special_adjacent": "a<|im_start|>b <|im_end|> c<|im_start|><|im_start|>",
    "long_word": "Pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "mixed": "Hello, World! 123abc ABC def\n\n  indented\ttab 4.5e-3 x=y+z",
}


def read_texts():
    texts = {}
    stories = DATA / "text" / "tinystories_valid_head.txt"
    wiki = DATA / "text" / "wiki.test.raw"
    if not stories.exists() or not wiki.exists():
        return None
    texts["tinystories_head_4000"] = stories.read_text(encoding="utf-8")[:4000]
    lines = wiki.read_text(encoding="utf-8").split("\n")
    texts["wiki_head_300_lines"] = "\n".join(lines[:300]) + "\n"
    for i in range(100):
        texts[f"wiki_line_{i:03d}"] = lines[i] + "\n"
    texts.update({f"tricky_{k}": v for k, v in TRICKY.items()})
    return texts


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def without_whitespace_normalization(model_bytes):
    """ModelProto bytes with normalizer_spec (field 3) given remove_extra_whitespaces (field 4) = false.

    Protobuf keeps the last value of a repeated scalar field, so appending `field 4 = 0` to the
    normalizer_spec message overrides the default (true) without a protobuf dependency.
    """
    out, pos, patched = bytearray(), 0, False
    while pos < len(model_bytes):
        start = pos
        key, pos = read_varint(model_bytes, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = read_varint(model_bytes, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = read_varint(model_bytes, pos)
            if field == 3:
                body = model_bytes[pos:pos + length] + bytes([4 << 3 | 0, 0])
                out += varint(key) + varint(len(body)) + body
                pos += length
                patched = True
                continue
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out += model_bytes[start:pos]
    if not patched:
        raise ValueError("tok512.model has no normalizer_spec")
    return bytes(out)


def sentencepiece_default_applies(text):
    """True when sentencepiece's remove_extra_whitespaces leaves `text` unchanged."""
    return " ".join(part for part in text.split(" ") if part) == text


def gen_spm(texts):
    model_path = DATA / "stories260K" / "tok512.model"
    if not model_path.exists():
        print(f"  spm: SKIPPED: {model_path} not found")
        return
    model_bytes = model_path.read_bytes()
    default = spm.SentencePieceProcessor(model_proto=model_bytes)
    raw = spm.SentencePieceProcessor(model_proto=without_whitespace_normalization(model_bytes))
    cases, disagree = [], []
    for name, text in texts.items():
        ids_raw = raw.encode(text)
        ids_default = default.encode(text)
        applies = sentencepiece_default_applies(text)
        if applies and ids_raw != ids_default:
            raise SystemExit(f"gen_tokenizer: sentencepiece raw/default differ on unchanged text {name}")
        if ids_raw != ids_default:
            disagree.append(name)
        cases.append({"name": name, "text": text, "ids_raw": ids_raw, "ids_default": ids_default,
                      "default_applies": applies})
    head = raw.encode(texts["tinystories_head_4000"])[:11]
    print(f"  spm: {len(cases)} texts; tinystories head ids {head}; default normalizer changes "
          f"{len(disagree)} texts ({', '.join(disagree[:6])}{', ...' if len(disagree) > 6 else ''})")
    (OUT / "spm_tok512.json").write_text(json.dumps({
        "source": f"sentencepiece {spm.__version__} on {model_path.name}",
        "model": str(model_path), "cases": cases}, ensure_ascii=True))


def gen_pretokenize(texts):
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    splitters = {
        "gpt2": byte_level,
        "gpt2_digits": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]),
        "llama3": pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        "qwen2": pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
    }
    cases = []
    for name, text in texts.items():
        case = {"name": name, "text": text}
        for key, splitter in splitters.items():
            # Offsets index the Python string; slicing gives the pieces in the original spelling.
            case[key] = [text[a:b] for _, (a, b) in splitter.pre_tokenize_str(text)]
        cases.append(case)
    print(f"  pretokenize: {len(cases)} texts x {len(splitters)} pre-tokenizers")
    (OUT / "pretokenize.json").write_text(json.dumps({
        "source": f"tokenizers {tokenizers.__version__} pre_tokenizers", "llama3_regex": LLAMA3_REGEX,
        "qwen2_regex": QWEN2_REGEX, "cases": cases}, ensure_ascii=True))


def gen_smollm2(texts):
    out_json = OUT / "smollm2.json"
    if not SMOLLM2_GGUF.exists():
        out_json.unlink(missing_ok=True)
        print(f"  smollm2: SKIPPED: {SMOLLM2_GGUF} not found (run scripts/fetch_models.sh)")
        return
    import gguf  # the `gguf` package reads the vocabulary independently of lowbit's reader

    reader = gguf.GGUFReader(str(SMOLLM2_GGUF))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    pre = reader.fields["tokenizer.ggml.pre"].contents()
    if pre != "smollm" or len(set(tokens)) != len(tokens):
        raise SystemExit(f"gen_tokenizer: unexpected SmolLM2 vocabulary (pre={pre})")
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                     merges=[tuple(m.split(" ", 1)) for m in merges], dropout=None, unk_token=None,
                     fuse_unk=False, byte_fallback=False, ignore_merges=False)
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types) if ty == 3]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    cases = []
    for name, text in texts.items():
        ids = tk.encode(text, add_special_tokens=False).ids
        if tk.decode(ids, skip_special_tokens=False) != text:
            raise SystemExit(f"gen_tokenizer: HF tokenizers does not round-trip {name}")
        cases.append({"name": name, "text": text, "ids": ids})
    tk.save(str(OUT / "smollm2_tokenizer.json"))
    print(f"  smollm2: {len(cases)} texts, {len(tokens)} tokens, {len(merges)} merges, "
          f"{len(control)} special tokens")
    out_json.write_text(json.dumps({
        "source": f"tokenizers {tokenizers.__version__} BPE from {SMOLLM2_GGUF.name} vocab + merges",
        "gguf": str(SMOLLM2_GGUF), "cases": cases}, ensure_ascii=True))


def main():
    if spm is None:
        print(f"  tokenizer: SKIPPED: {IMPORT_ERROR} (run scripts/setup.sh)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    texts = read_texts()
    if texts is None:
        # The C++ test skips (fails under CI) when the golden files are missing.
        print(f"  tokenizer: SKIPPED: shared text data not found under {DATA}")
        return
    gen_spm(texts)
    gen_pretokenize(texts)
    gen_smollm2(texts)


if __name__ == "__main__":
    main()
