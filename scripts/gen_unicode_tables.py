#!/usr/bin/env python3
"""scripts/gen_unicode_tables.py — writes models/unicode_tables.h, the Unicode data behind the CLIP
tokenizer's text clean-up (models/unicode.c, models/clip_text.c).

The reference is transformers' slow CLIPTokenizer without ftfy (transformers < 5, `pip install regex
"transformers<5"`). Its clean-up runs on Python's own Unicode database (unicodedata, str.lower,
str.isspace) and its pre-tokenizer on the `regex` module's \\p{L} / \\p{N} under IGNORECASE, so every
table here is derived from what those two do, not from a Unicode data file:
  - per code point flags: dropped by BasicTokenizer._clean_text (NUL, U+FFFD, categories C* except
    \\t \\n \\r), turned into a space there (space, \\t, \\n, \\r, Zs), str.isspace (str.split),
    Cased and Case_Ignorable as str.lower's final-sigma rule sees them, and the class the CLIP pattern
    gives the character: letter ([\\p{L}]), number ([\\p{N}]), other ([^\\s\\p{L}\\p{N}]) or none;
  - str.lower's one-to-one mappings (U+0130, the one one-to-two mapping, is handled in code);
  - canonical combining classes, full canonical decompositions and the primary composites (NFC).
Before writing, the script re-implements the C algorithms on these tables in Python and checks them
against unicodedata.normalize("NFC") and str.lower on every code point and on random sequences.

Run from the repository root: `python3 scripts/gen_unicode_tables.py`. The output is committed and
names the Python, Unicode database and regex versions it came from: results for characters that a
different version assigns differently (new emoji, for instance) follow these versions.
"""
import random
import sys
import unicodedata

import regex

OUT = "models/unicode_tables.h"
MAX_CP = 0x110000
HANGUL_S, HANGUL_L, HANGUL_V, HANGUL_T = 0xAC00, 0x1100, 0x1161, 0x11A7
HANGUL_SCOUNT, HANGUL_TCOUNT, HANGUL_NCOUNT = 11172, 28, 588

# Flag bits; keep in sync with models/unicode.h.
F_DROP, F_BTSPACE, F_PYSPACE, F_CASED, F_IGNORABLE = 1, 2, 4, 8, 16
CLASS_SHIFT = 5
CLASS_NONE, CLASS_LETTER, CLASS_NUMBER, CLASS_OTHER = 0, 1, 2, 3


def flags_of(cp, re_l, re_n, re_o):
    c = chr(cp)
    cat = unicodedata.category(c)
    f = 0
    # BasicTokenizer._clean_text: cp 0, U+FFFD and _is_control are removed, _is_whitespace -> " ".
    if cp == 0 or cp == 0xFFFD or (cat.startswith("C") and c not in "\t\n\r"):
        f |= F_DROP
    if c in " \t\n\r" or cat == "Zs":
        f |= F_BTSPACE
    if c.isspace():
        f |= F_PYSPACE
    # str.lower's final sigma: U+03A3 after a cased letter (case-ignorables skipped) and not before one.
    before = (c + "\u03a3").lower()[-1] == "\u03c2"          # not ignorable and cased
    between = ("A" + c + "\u03a3").lower()[-1] == "\u03c2"   # ignorable or cased
    if before:
        f |= F_CASED
    elif between:
        f |= F_IGNORABLE                                     # cased-ness of an ignorable is never read
    cls = [CLASS_NONE]
    if re_l.fullmatch(c):
        cls.append(CLASS_LETTER)
    if re_n.fullmatch(c):
        cls.append(CLASS_NUMBER)
    if re_o.fullmatch(c):
        cls.append(CLASS_OTHER)
    assert len(cls) <= 2, f"U+{cp:04X} matches several classes"
    return f | (cls[-1] << CLASS_SHIFT)


def lower_ranges():
    """str.lower's single-character mappings as (first, last, stride, delta) runs."""
    pairs = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        lo = chr(cp).lower()
        if lo != chr(cp):
            if len(lo) != 1:
                assert cp == 0x130 and lo == "i\u0307", f"unexpected one-to-many lower U+{cp:04X}"
                continue
            pairs.append((cp, ord(lo) - cp))
    runs = []
    i = 0
    while i < len(pairs):
        cp, delta = pairs[i]
        stride, j = 1, i + 1
        if j < len(pairs) and pairs[j][1] == delta and pairs[j][0] - cp in (1, 2):
            stride = pairs[j][0] - cp
            while j < len(pairs) and pairs[j][1] == delta and pairs[j][0] == pairs[j - 1][0] + stride:
                j += 1
        runs.append((cp, pairs[j - 1][0], stride, delta))
        i = j
    return runs


def full_decomposition(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return [cp]
    out = []
    for part in d.split():
        out.extend(full_decomposition(int(part, 16)))
    return out


def nfc_tables():
    ccc = [unicodedata.combining(chr(cp)) for cp in range(MAX_CP)]
    decomp = {}
    comp = {}
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        decomp[cp] = full_decomposition(cp)
        parts = [int(x, 16) for x in d.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(cp):
            comp[(parts[0], parts[1])] = cp
    return ccc, decomp, comp


# ---------------------------------------------------------------- Python models of the C code


def model_lower_map(lower_runs):
    """The runs expanded back into a dict (the C code binary-searches them)."""
    m = {}
    for first, last, stride, delta in lower_runs:
        for cp in range(first, last + 1, stride):
            m[cp] = cp + delta
    return m


def model_nfc(cps, ccc, decomp, comp):
    d = []
    for cp in cps:
        if HANGUL_S <= cp < HANGUL_S + HANGUL_SCOUNT:
            s = cp - HANGUL_S
            d.append(HANGUL_L + s // HANGUL_NCOUNT)
            d.append(HANGUL_V + (s % HANGUL_NCOUNT) // HANGUL_TCOUNT)
            if s % HANGUL_TCOUNT:
                d.append(HANGUL_T + s % HANGUL_TCOUNT)
        else:
            d.extend(decomp.get(cp, [cp]))
    for i in range(1, len(d)):  # canonical ordering: stable insertion sort of non-starter runs
        j = i
        while j > 0 and ccc[d[j]] != 0 and ccc[d[j - 1]] > ccc[d[j]]:
            d[j - 1], d[j] = d[j], d[j - 1]
            j -= 1
    out = []
    starter, prev_cc = -1, 0
    for c in d:
        cc = ccc[c]
        if starter >= 0 and (len(out) - 1 == starter or (prev_cc != 0 and prev_cc < cc)):
            a = out[starter]
            composite = None
            if HANGUL_L <= a < HANGUL_L + 19 and HANGUL_V <= c < HANGUL_V + 21:
                composite = HANGUL_S + ((a - HANGUL_L) * 21 + (c - HANGUL_V)) * HANGUL_TCOUNT
            elif (HANGUL_S <= a < HANGUL_S + HANGUL_SCOUNT and (a - HANGUL_S) % HANGUL_TCOUNT == 0
                  and HANGUL_T < c < HANGUL_T + HANGUL_TCOUNT):
                composite = a + (c - HANGUL_T)
            else:
                composite = comp.get((a, c))
            if composite is not None:
                out[starter] = composite
                continue
        if cc == 0:
            starter = len(out)
        out.append(c)
        prev_cc = cc
    return out


def check_models(ccc, decomp, comp, lower_runs):
    lower_map = model_lower_map(lower_runs)
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        want = [ord(x) for x in unicodedata.normalize("NFC", c)]
        assert model_nfc([cp], ccc, decomp, comp) == want, f"NFC U+{cp:04X}"
        lo = c.lower()
        if len(lo) == 1 and cp != 0x3A3:
            assert lower_map.get(cp, cp) == ord(lo), f"lower U+{cp:04X}"
    rng = random.Random(1)
    marks = [cp for cp in range(MAX_CP) if ccc[cp]]
    starters = [cp for cp in decomp] + [cp for cp, _ in comp] + list(range(0x1100, 0x1113)) + \
        list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3)) + list(range(0xAC00, 0xAC40)) + \
        [ord(x) for x in "aeiouAEIOUnNcCsS"]
    for _ in range(200000):
        cps = [rng.choice(starters if rng.random() < 0.5 else marks) for _ in range(rng.randint(1, 6))]
        want = [ord(x) for x in unicodedata.normalize("NFC", "".join(map(chr, cps)))]
        assert model_nfc(cps, ccc, decomp, comp) == want, f"NFC {[hex(x) for x in cps]}"


# ---------------------------------------------------------------- output


def runs_of(values):
    """(start, value) where the value changes, over all code points."""
    out = [(0, values[0])]
    for cp in range(1, MAX_CP):
        if values[cp] != values[cp - 1]:
            out.append((cp, values[cp]))
    return out


def emit_array(f, ctype, name, items, per_line):
    f.write(f"static const {ctype} {name}[{len(items)}] = {{\n")
    for i in range(0, len(items), per_line):
        f.write("    " + " ".join(x + "," for x in items[i:i + per_line]) + "\n")
    f.write("};\n\n")


def main():
    re_l = regex.compile(r"[\p{L}]", regex.IGNORECASE)
    re_n = regex.compile(r"[\p{N}]", regex.IGNORECASE)
    re_o = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)
    flags = []
    for cp in range(MAX_CP):
        flags.append(0 if 0xD800 <= cp < 0xE000 else flags_of(cp, re_l, re_n, re_o))
    lower = lower_ranges()
    ccc, decomp, comp = nfc_tables()
    check_models(ccc, decomp, comp, lower)

    # Literals of the pattern: the only case-insensitive match outside ASCII is U+017F for 's'.
    for ch in "<|>'startofextndvml":
        m = [cp for cp in range(MAX_CP) if regex.fullmatch(regex.escape(ch), chr(cp), regex.IGNORECASE)]
        extra = [cp for cp in m if cp not in (ord(ch.lower()), ord(ch.upper()))]
        assert extra == ([0x17F] if ch == "s" else []), f"literal {ch!r} also matches {extra}"

    flag_runs = runs_of(flags)
    ccc_runs = runs_of(ccc)
    pool = []
    decomp_rows = []
    for cp in sorted(decomp):
        decomp_rows.append(f"{{0x{cp:X}, {len(pool)}, {len(decomp[cp])}}}")
        pool.extend(decomp[cp])
    comp_keys = sorted(comp)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("// models/unicode_tables.h — generated by scripts/gen_unicode_tables.py; do not edit.\n")
        f.write(f"// Python {sys.version.split()[0]}, unicodedata {unicodedata.unidata_version}, "
                f"regex {regex.__version__}. Included by models/unicode.c only.\n")
        f.write("#pragma once\n#include <stdint.h>\n\n")
        f.write("// The longest full canonical decomposition, in code points.\n")
        f.write(f"#define UC_DECOMP_MAX_LEN {max(len(v) for v in decomp.values())}\n\n")
        f.write("// Code point flags (UC_* in models/unicode.h) as runs: (first code point << 8) | flags,\n"
                "// valid up to the next entry's first code point.\n")
        emit_array(f, "uint32_t", "uc_flag_runs", [f"0x{(s << 8) | v:08X}" for s, v in flag_runs], 8)
        f.write("// Canonical combining classes as runs: (first code point << 8) | class.\n")
        emit_array(f, "uint32_t", "uc_ccc_runs", [f"0x{(s << 8) | v:08X}" for s, v in ccc_runs], 8)
        f.write("// str.lower one-to-one mappings: code points first, first+stride, ..., last map to cp + delta.\n")
        f.write("typedef struct UcLowerRun { uint32_t first, last; int32_t stride, delta; } UcLowerRun;\n")
        emit_array(f, "UcLowerRun", "uc_lower_runs",
                   [f"{{0x{a:X}, 0x{b:X}, {s}, {d}}}" for a, b, s, d in lower], 4)
        f.write("// Full canonical decompositions (Hangul syllables are algorithmic), sorted by code point:\n"
                "// uc_decomp_pool[offset .. offset + length).\n")
        f.write("typedef struct UcDecomp { uint32_t cp; uint16_t offset, length; } UcDecomp;\n")
        emit_array(f, "UcDecomp", "uc_decomp", decomp_rows, 5)
        emit_array(f, "uint32_t", "uc_decomp_pool", [f"0x{x:X}" for x in pool], 10)
        f.write("// Primary composites (Hangul algorithmic): key (first << 21) | second, sorted, and the composite.\n")
        emit_array(f, "uint64_t", "uc_comp_keys", [f"0x{(a << 21) | b:X}ull" for a, b in comp_keys], 5)
        emit_array(f, "uint32_t", "uc_comp_values", [f"0x{comp[k]:X}" for k in comp_keys], 8)
    print(f"{OUT}: {len(flag_runs)} flag runs, {len(ccc_runs)} ccc runs, {len(lower)} lower runs, "
          f"{len(decomp)} decompositions ({len(pool)} code points), {len(comp)} composites")


if __name__ == "__main__":
    main()
