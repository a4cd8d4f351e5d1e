#!/usr/bin/env python3
"""Generates the cuGetProcAddress table of the driver libraries from NVIDIA's headers.

Output (committed, "do not edit"):
  driver-abi/src/proc_table.rs          every driver API base name with its variants
                                        (base, introduced-in CUDA version, exported symbol,
                                        per-thread-default-stream or not), and the list of every
                                        driver symbol libcuda exports that these headers declare.

Facts come from NVIDIA's public headers (installed by scripts/setup-cuda-deps.sh), of CUDA 12.9
(.deps/cuda) and of the newest CUDA 13.x (.deps/cuda-13.5), read alike and joined: a base's variants
are those either version declares (13.x adds e.g. cuCtxGetDevice_v13000 -> cuCtxGetDevice_v2, and
drops none a 12.x program may still ask for), and the exported symbols are both headers' symbols
(CUDA 13 removed some from cuda.h, e.g. cuCtxCreate_v2's plain name; 12.x programs still call them):
  - cudaTypedefs.h and the interop typedef headers (GL, EGL, VDPAU, profiler): one
    `PFN_<base>_v<version>[_ptds|_ptsz]` typedef per variant, older ones under
    __CUDA_API_VERSION_INTERNAL. A base's legacy variants, oldest first, are exported as <base>,
    <base>_v2, <base>_v3, ...; a per-thread variant is the symbol of the newest legacy variant at or
    before its version plus _ptds/_ptsz (cuMemcpyHtoD: 2000 cuMemcpyHtoD, 3020 cuMemcpyHtoD_v2,
    7000 cuMemcpyHtoD_v2_ptds). `#define PFN_<base> PFN_<other>_v<ver>` adds a cross-name alias
    (cuGraphInstantiate from 11040 is cuGraphInstantiateWithFlags).
  - cuda.h, cudaGL.h, cudaEGL.h, cudaVDPAU.h, read as libcuda itself is compiled
    (__CUDA_API_VERSION_INTERNAL defined, so __CUDA_API_PTDS(x) is x_ptds): the set of exported
    symbols. Every variant symbol must be in it (or come from a typedef header without a function
    header, i.e. the profiler); every `#define <base> <symbol>` must name one of the base's variants.

What each library implements is not read here: the driver surface is declared once in
driver-abi/src/surface/decl.rs, the compiler knows which methods each library implements, and
docs/driver-entry-points.md is generated from that by a test (tests/tests/entry_points.rs).

Run:    python3 scripts/gen-proc-table.py           (rewrites the file if it changed)
        python3 scripts/gen-proc-table.py --check   (exit 1 if the committed file is stale)
"""
import argparse
import pathlib
import re
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
# (label, include directory); the newest last.
INCLUDES = [
    ("12.9", ROOT / ".deps/cuda/nvidia/cuda_runtime/include"),
    ("13.5", ROOT / ".deps/cuda-13.5/nvidia/cu13/include"),
]
PROC_TABLE_RS = ROOT / "driver-abi/src/proc_table.rs"

# (function header or None, typedef header). The profiler's function header is not in the wheel.
HEADERS = [
    ("cuda.h", "cudaTypedefs.h"),
    ("cudaGL.h", "cudaGLTypedefs.h"),
    ("cudaEGL.h", "cudaEGLTypedefs.h"),
    ("cudaVDPAU.h", "cudaVDPAUTypedefs.h"),
    (None, "cudaProfilerTypedefs.h"),
]

# Plain names each header version deliberately keeps on an older ABI: `#define <base> <symbol>`
# names a variant that is not the newest (the newer ones are reached only by their explicit _vN name,
# or through cuGetProcAddress). Reviewed by hand; a change here means the headers changed. CUDA 13
# moved cuCtxCreate, cuMemPrefetchAsync (and cuMemAdvise, cuDeviceGetUuid) to their newest variants.
OLDER_ABI_12_9 = {
    "cuCtxCreate": "cuCtxCreate_v2",  # _v3 (11040, affinity) and _v4 (12050, params) exist
    "cuStreamGetCaptureInfo": "cuStreamGetCaptureInfo_v2",  # _v3 (12030, edge data) exists
    "cuMemPrefetchAsync": "cuMemPrefetchAsync",  # _v2 (12020, CUmemLocation) exists
    "cuStreamGetCtx": "cuStreamGetCtx",  # _v2 (12050, green contexts) exists
    "cuStreamUpdateCaptureDependencies": "cuStreamUpdateCaptureDependencies",  # _v2 (12030) exists
    # Older than a variant only 13.x declares:
    "cuMemcpyBatchAsync": "cuMemcpyBatchAsync",  # _v2 (13000)
    "cuMemcpy3DBatchAsync": "cuMemcpy3DBatchAsync",  # _v2 (13000)
    "cuLaunchHostFunc": "cuLaunchHostFunc",  # _v2 (13010, syncMode)
}
OLDER_ABI_MACROS = {
    "12.9": OLDER_ABI_12_9,
    "13.5": {
        "cuStreamGetCtx": "cuStreamGetCtx",  # _v2 (12050, green contexts) exists
        "cuLaunchHostFunc": "cuLaunchHostFunc",  # _v2 (13010, syncMode) exists
        "cuGraphAddNode": "cuGraphAddNode_v2",  # _v3 (13040) exists
    },
}

# Anchors checked on every run (symbol expected for (base, version, per_thread)).
ANCHORS = [
    ("cuGetProcAddress", 11030, False, "cuGetProcAddress"),
    ("cuGetProcAddress", 12000, False, "cuGetProcAddress_v2"),
    ("cuMemAlloc", 2000, False, "cuMemAlloc"),
    ("cuMemAlloc", 3020, False, "cuMemAlloc_v2"),
    ("cuMemcpyHtoDAsync", 3020, False, "cuMemcpyHtoDAsync_v2"),
    ("cuMemcpyHtoDAsync", 7000, True, "cuMemcpyHtoDAsync_v2_ptsz"),
    ("cuCtxCreate", 12050, False, "cuCtxCreate_v4"),
    ("cuStreamGetCaptureInfo", 10010, False, "cuStreamGetCaptureInfo"),
    ("cuStreamGetCaptureInfo", 11030, False, "cuStreamGetCaptureInfo_v2"),
    ("cuStreamGetCaptureInfo", 12030, False, "cuStreamGetCaptureInfo_v3"),
    ("cuStreamGetCaptureInfo", 12030, True, "cuStreamGetCaptureInfo_v3_ptsz"),
    ("cuGraphInstantiate", 11040, False, "cuGraphInstantiateWithFlags"),
    ("cuTexRefSetAddress2D", 4010, False, "cuTexRefSetAddress2D_v3"),
    ("cuCtxGetDevice", 2000, False, "cuCtxGetDevice"),
    ("cuCtxGetDevice", 13000, False, "cuCtxGetDevice_v2"),
    ("cuCtxSynchronize", 13000, False, "cuCtxSynchronize_v2"),
    ("cuLaunchHostFunc", 13010, True, "cuLaunchHostFunc_v2_ptsz"),
]


def fail(msg):
    print(f"gen-proc-table: {msg}", file=sys.stderr)
    sys.exit(2)


# --- a small C preprocessor, enough for these headers -------------------------------------------


def strip_c_comments(text):
    """Removes /* */ and // comments, keeping line breaks so line structure survives."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def eval_condition(expr, defined):
    e = re.sub(r"defined\s*\(\s*(\w+)\s*\)", lambda m: " 1 " if m.group(1) in defined else " 0 ", expr)
    e = re.sub(r"defined\s+(\w+)", lambda m: " 1 " if m.group(1) in defined else " 0 ", e)
    e = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", e)
    e = e.replace("&&", " and ").replace("||", " or ")
    e = re.sub(r"!(?!=)", " not ", e)
    e = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: m.group(0) if m.group(0) in ("and", "or", "not") else "0", e)
    try:
        return bool(eval(e, {"__builtins__": {}}))  # noqa: S307 (digits and boolean operators only)
    except Exception as ex:  # pragma: no cover
        fail(f"cannot evaluate #if {expr!r}: {ex}")


def exported_declarations(path):
    """Symbols a header declares as libcuda compiles it: (active symbols, inactive names).

    Inactive names are declarations in branches not taken (e.g. `#ifdef _WIN32`)."""
    text = strip_c_comments(path.read_text())
    text = re.sub(r"\\\n", " ", text)
    text = re.sub(r"\bCUresult\s+CUDAAPI\s*\n\s*", "CUresult CUDAAPI ", text)  # `CUresult CUDAAPI\ncuLinkCreate(`
    defined = {"__CUDA_API_VERSION_INTERNAL", "__GNUC__"}
    macros = {}
    stack = []
    active = True
    symbols, inactive = [], set()
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"#\s*(if|ifdef|ifndef|elif|else|endif|define|undef)\b(.*)", s)
        if m:
            d, rest = m.group(1), m.group(2).strip()
            if d in ("if", "ifdef", "ifndef"):
                if d == "if":
                    c = eval_condition(rest, defined)
                elif d == "ifdef":
                    c = rest.split()[0] in defined
                else:
                    c = rest.split()[0] not in defined
                stack.append((active, c))
                active = active and c
            elif d == "elif":
                parent, taken = stack[-1]
                c = (not taken) and eval_condition(rest, defined)
                stack[-1] = (parent, taken or c)
                active = parent and c
            elif d == "else":
                parent, taken = stack[-1]
                active = parent and not taken
                stack[-1] = (parent, True)
            elif d == "endif":
                active, _ = stack.pop()
            elif active and d == "define":
                mm = re.match(r"(\w+)(\([^)]*\))?\s*(.*)", rest)
                name, value = mm.group(1), mm.group(3).strip()
                defined.add(name)
                pt = re.fullmatch(r"__CUDA_API_PT(DS|SZ)\((\w+)\)", value)
                if pt:
                    macros[name] = pt.group(2) + "_pt" + pt.group(1).lower()
                elif re.fullmatch(r"cu\w+", value):
                    macros[name] = value
            elif active and d == "undef":
                name = rest.split()[0]
                defined.discard(name)
                macros.pop(name, None)
            continue
        for mm in re.finditer(r"\bCUresult\s+CUDAAPI\s+(cu\w+)\s*\(", line):
            if not active:
                inactive.add(mm.group(1))
                continue
            name, seen = mm.group(1), set()
            while name in macros and name not in seen:
                seen.add(name)
                name = macros[name]
            symbols.append(name)
    if stack:
        fail(f"{path.name}: unbalanced #if")
    return symbols, inactive


def plain_name_macros(path):
    """`#define <cuName> <target>` of a function header, expanded as libcuda users see them with
    CUDA_API_PER_THREAD_DEFAULT_STREAM off (__CUDA_API_PTDS(x) = x)."""
    out = {}
    for name, value in re.findall(r"^\s*#\s*define\s+(cu\w+)\s+(\S.*?)\s*$", strip_c_comments(path.read_text()), re.M):
        pt = re.fullmatch(r"__CUDA_API_PT(?:DS|SZ)\((\w+)\)", value)
        target = pt.group(1) if pt else value
        if re.fullmatch(r"cu\w+", target):
            out.setdefault(name, target)
    return out


# --- the variant table --------------------------------------------------------------------------


def typedef_variants(path):
    """[(base, version, suffix)] from `typedef CUresult (CUDAAPI *PFN_...)` plus cross-name aliases."""
    text = path.read_text()
    pfn_defines = dict(re.findall(r"^\s*#\s*define\s+PFN_(\w+)\s+PFN_(\w+)\s*$", text, re.M))
    out = []
    for name in re.findall(r"typedef\s+CUresult\s*\(\s*CUDAAPI\s*\*\s*PFN_(\w+)\s*\)", text):
        m = re.fullmatch(r"(\w+?)_v(\d{4,5})(_ptds|_ptsz)?", name)
        if m:
            out.append((m.group(1), int(m.group(2)), m.group(3) or ""))
            continue
        # A few 12.4 typedefs lack the version suffix; their `#define PFN_x PFN_x_vN` gives it.
        target = re.fullmatch(r"(\w+?)_v(\d{4,5})", pfn_defines.get(name, ""))
        if not target or target.group(1) != name:
            fail(f"{path.name}: typedef PFN_{name} has no version")
        out.append((name, int(target.group(2)), ""))
    aliases = []
    for alias, target in pfn_defines.items():
        m = re.fullmatch(r"(\w+?)_v(\d{4,5})", target)
        # `PFN_cuMemAdvise_v2 PFN_cuMemAdvise_v12020` names a version, not a lookup name; and
        # `PFN_GraphConditionalHandleCreate` is a header typo (no "cu").
        if m and m.group(1) != alias and alias.startswith("cu") and not re.search(r"_v\d+$", alias):
            aliases.append((alias, m.group(1), int(m.group(2))))
    return out, aliases


def build_table():
    exported, inactive, headerless = set(), set(), set()
    raw, aliases, macros = set(), set(), {}
    for label, include in INCLUDES:
        macros[label] = {}
        for func_header, typedef_header in HEADERS:
            if not (include / typedef_header).exists():
                fail(f"{include / typedef_header} missing: run scripts/setup-cuda-deps.sh")
            variants, al = typedef_variants(include / typedef_header)
            raw |= set(variants)
            aliases |= set(al)
            if func_header is None:
                headerless |= {base for base, _, _ in variants}
                continue
            syms, inact = exported_declarations(include / func_header)
            exported |= set(syms)
            inactive |= inact
            macros[label].update(plain_name_macros(include / func_header))
    inactive -= exported

    by_base = defaultdict(list)
    for base, version, suffix in sorted(raw):
        by_base[base].append((version, suffix))
    rows = []  # (base, version, symbol, per_thread)
    for base, variants in by_base.items():
        legacy = sorted(v for v, s in variants if not s)
        if len(set(legacy)) != len(legacy) or not legacy:
            fail(f"{base}: legacy versions {legacy}")
        symbol_of = {v: base if i == 0 else f"{base}_v{i + 1}" for i, v in enumerate(legacy)}
        rows += [(base, v, symbol_of[v], False) for v in legacy]
        for version, suffix in variants:
            if suffix:
                partner = max(v for v in legacy if v <= version)
                rows.append((base, version, symbol_of[partner] + suffix, True))
    symbols = {r[2] for r in rows}
    for alias, target, version in sorted(aliases):
        sym = next((s for b, v, s, pt in rows if b == target and v == version and not pt), None)
        if sym is None:
            fail(f"alias {alias} -> {target}@{version}: no such variant")
        rows.append((alias, version, sym, False))

    # Every variant must be an exported symbol; drop those declared only for another platform.
    dropped = sorted({r[2] for r in rows if r[2] not in exported and r[0] not in headerless and r[2] in inactive})
    unknown = sorted({r[2] for r in rows if r[2] not in exported and r[0] not in headerless and r[2] not in inactive})
    if unknown:
        fail(f"variant symbols no header declares: {unknown}")
    rows = [r for r in rows if r[2] not in dropped]
    exported |= {r[2] for r in rows if r[0] in headerless}
    rows.sort(key=lambda r: (r[0], r[1], r[3], r[2]))
    if len(set(rows)) != len(rows):
        fail("duplicate variants")

    # The headers' own `#define <base> <symbol>` must name one of the base's variants: the newest
    # legacy one, except where the header keeps an older ABI for the plain name (reviewed list).
    variants_of = defaultdict(list)
    for r in rows:
        variants_of[r[0]].append(r)
    for label, header_macros in macros.items():
        seen_older = {}
        for name, target in header_macros.items():
            if name not in variants_of:
                continue
            legacy = [r for r in variants_of[name] if not r[3]]
            if target not in {r[2] for r in legacy}:
                fail(f"{label}: #define {name} {target}: not a variant of {name}")
            newest = max(legacy, key=lambda r: r[1])[2]
            if target != newest:
                seen_older[name] = target
        if seen_older != OLDER_ABI_MACROS[label]:
            fail(f"{label}: plain-name macros on an older ABI changed: {seen_older} "
                 f"(expected {OLDER_ABI_MACROS[label]})")
    table = {(b, v, pt): s for b, v, s, pt in rows}
    for base, version, pt, want in ANCHORS:
        if table.get((base, version, pt)) != want:
            fail(f"anchor {base}@{version}{' pt' if pt else ''}: {table.get((base, version, pt))} != {want}")
    not_in_table = sorted(exported - {r[2] for r in rows})
    return rows, sorted(exported), dropped, not_in_table


# --- output -------------------------------------------------------------------------------------


def render_proc_table(rows, exported, dropped, not_in_table):
    bases = len({r[0] for r in rows})
    pt = sum(1 for r in rows if r[3])
    out = [
        "//! Driver API entry-point variants for `cuGetProcAddress`, generated by",
        "//! scripts/gen-proc-table.py from NVIDIA's cudaTypedefs.h, cuda.h and the GL/EGL/VDPAU/profiler",
        "//! headers (CUDA 12.9 and 13.5, joined). Do not edit by hand: re-run the script.",
        "//!",
        f"//! [`PROC_TABLE`]: {bases} base names, {len(rows)} variants ({pt} per-thread-default-stream).",
        "//! A base's legacy variants, oldest first, are `<base>`, `<base>_v2`, `<base>_v3`, ...; a",
        "//! per-thread variant is the `_ptds`/`_ptsz` form of the newest legacy variant at or before its",
        "//! version. `cuGraphInstantiate` from 11040 resolves to `cuGraphInstantiateWithFlags`",
        "//! (`PFN_cuGraphInstantiate` in cudaTypedefs.h).",
        f"//! [`EXPORTED_SYMBOLS`]: the {len(exported)} symbols libcuda exports that these headers declare.",
    ]
    if dropped:
        out.append(f"//! Left out (declared for another platform only): {', '.join(dropped)}.")
    if not_in_table:
        out.append(f"//! Exported but reachable through no base name: {', '.join(not_in_table)}.")
    out += [
        "",
        "/// One variant of a driver API function.",
        "#[derive(Clone, Copy, Debug, PartialEq, Eq)]",
        "pub struct ProcEntry {",
        "    /// The name passed to `cuGetProcAddress`, e.g. `cuMemAlloc`.",
        "    pub base: &'static str,",
        "    /// The CUDA version (1000 * major + 10 * minor) that introduced this variant.",
        "    pub version: i32,",
        "    /// The exported symbol implementing it, e.g. `cuMemAlloc_v2`.",
        "    pub symbol: &'static str,",
        "    /// Whether this is a per-thread-default-stream (`_ptds`/`_ptsz`) variant.",
        "    pub per_thread: bool,",
        "}",
        "",
        "macro_rules! proc_table {",
        "    (@pt) => { false };",
        "    (@pt per_thread) => { true };",
        "    ($($base:ident $version:literal => $symbol:ident $($pt:ident)?;)*) => {",
        "        /// Every variant, sorted by base name, then version, legacy before per-thread.",
        "        pub const PROC_TABLE: &[ProcEntry] = &[$(ProcEntry {",
        "            base: stringify!($base),",
        "            version: $version,",
        "            symbol: stringify!($symbol),",
        "            per_thread: proc_table!(@pt $($pt)?),",
        "        },)*];",
        "    };",
        "}",
        "",
        "macro_rules! exported_symbols {",
        "    ($($name:ident)*) => {",
        "        /// Every driver symbol libcuda 12.9 or 13.5 exports that the headers declare, sorted.",
        "        pub const EXPORTED_SYMBOLS: &[&str] = &[$(stringify!($name),)*];",
        "    };",
        "}",
        "",
        "proc_table! {",
    ]
    for base, version, symbol, per_thread in rows:
        out.append(f"    {base} {version} => {symbol}{' per_thread' if per_thread else ''};")
    out += ["}", "", "exported_symbols! {"]
    out += [f"    {name}" for name in exported]
    out += ["}", ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    args = ap.parse_args()

    rows, exported, dropped, not_in_table = build_table()
    text = render_proc_table(rows, exported, dropped, not_in_table)
    summary = (f"{len({r[0] for r in rows})} base names, {len(rows)} variants "
               f"({sum(r[3] for r in rows)} per-thread), {len(exported)} exported symbols")
    stale = not PROC_TABLE_RS.exists() or PROC_TABLE_RS.read_text() != text
    if args.check:
        if stale:
            print(f"stale: {PROC_TABLE_RS.relative_to(ROOT)} (run python3 scripts/gen-proc-table.py)",
                  file=sys.stderr)
            sys.exit(1)
        print(f"up to date: {summary}", file=sys.stderr)
        return
    if stale:
        PROC_TABLE_RS.write_text(text)
        print(f"wrote {PROC_TABLE_RS.relative_to(ROOT)}", file=sys.stderr)
    print(summary, file=sys.stderr)


if __name__ == "__main__":
    main()
