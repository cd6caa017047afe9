#!/usr/bin/env python3
"""Lists the top-level imports and exports of a WebAssembly component (or says it is a core module).

Usage: component-imports.py FILE.wasm...   (a stand-in for `wasm-tools component wit`, names only)
"""
import sys


def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1
        r |= (x & 0x7F) << s; s += 7
        if x < 0x80:
            return r, i


def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode(), i + n


def externdesc(b, i):
    k = b[i]; i += 1
    if k == 0x00:  # core module: 0x11 typeidx
        i += 1; _, i = leb(b, i)
    elif k in (0x01, 0x04, 0x05):
        _, i = leb(b, i)
    elif k in (0x02, 0x03):
        t = b[i]; i += 1
        if t == 0x00:
            _, i = leb(b, i)
        elif k == 0x02:
            _, i = leb(b, i)  # valtype: a primitive byte or typeidx (both fit one leb read)
    return k, i


def main(path):
    b = open(path, "rb").read()
    if b[:4] != b"\0asm":
        sys.exit(f"{path}: not wasm")
    if b[4:8] == b"\x01\0\0\0":
        imports = set()
        i = 8
        while i < len(b):
            sid = b[i]; size, j = leb(b, i + 1)
            if sid == 2:
                cnt, k = leb(b, j)
                for _ in range(cnt):
                    m, k = name(b, k); f, k = name(b, k)
                    kind = b[k]; k += 1
                    if kind == 0: _, k = leb(b, k)
                    elif kind == 1: k += 1; fl = b[k]; k += 1; _, k = leb(b, k); k = leb(b, k)[1] if fl & 1 else k
                    elif kind == 2: fl = b[k]; k += 1; _, k = leb(b, k); k = leb(b, k)[1] if fl & 1 else k
                    elif kind == 3: k += 2
                    imports.add(m)
            if sid == 0:
                cname, _ = name(b, j)
                if cname.startswith("component-type"):
                    print(f"{path}: custom section {cname}")
            i = j + size
        print(f"{path}: core module; imports from modules: {', '.join(sorted(imports))}")
        return
    i = 8
    while i < len(b):
        sid = b[i]; size, j = leb(b, i + 1)
        if sid in (10, 11):
            cnt, k = leb(b, j)
            for _ in range(cnt):
                if sid == 10:
                    tag = b[k]; k += 1
                    n, k = name(b, k)
                    if tag == 0x01:
                        _, k = name(b, k)
                    kind, k = externdesc(b, k)
                    print(f"import {n}")
                else:
                    tag = b[k]; k += 1
                    n, k = name(b, k)
                    if tag == 0x01:
                        _, k = name(b, k)
                    k += 1  # sort
                    if b[k - 1] == 0x00:
                        k += 1
                    _, k = leb(b, k)
                    if b[k] == 0x01:
                        k += 1; _, k = externdesc(b, k)
                    else:
                        k += 1
                    print(f"export {n}")
        i = j + size


for p in sys.argv[1:]:
    print(f"== {p}")
    main(p)
