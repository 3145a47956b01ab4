#!/usr/bin/env python3
"""Decode a Chime .xlog file to plain text, from docs/logging.md alone (block format v1).

Usage: decode_xlog.py FILE > FILE.log   (damage is summarised on stderr)
"""
import binascii, struct, sys, zlib

HEADER = struct.Struct("<4sBBHIQQIIII")  # 44 bytes


def header_at(data, pos):
    if len(data) - pos < HEADER.size:
        return None
    magic, ver, comp, _res, seq, first, last, lines, blen, bcrc, hcrc = HEADER.unpack_from(data, pos)
    if magic != b"CXLG" or binascii.crc32(data[pos:pos + 40]) != hcrc:
        return None
    if ver != 1 or comp != 1 or blen > 16 << 20:
        return None
    return seq, lines, blen, bcrc


def decode(data, out, err):
    pos = 0
    while pos < len(data):
        h = header_at(data, pos)
        if (h is None and len(data) - pos < HEADER.size) or (h and pos + 44 + h[2] > len(data)):
            err.write(f"truncated at {pos}: {len(data) - pos} bytes skipped\n")
            return
        if h is not None:
            seq, count, blen, bcrc = h
            body = data[pos + 44:pos + 44 + blen]
            try:
                text = zlib.decompressobj(-15).decompress(body) if binascii.crc32(body) == bcrc else None
            except zlib.error:
                text = None
            lines = text.decode("utf-8", "replace").split("\n")[:-1] if text is not None else None
            if lines is not None and len(lines) == count:
                out.write("".join(line + "\n" for line in lines))
                pos += 44 + blen
                continue
        nxt = pos + 1
        while True:
            nxt = data.find(b"CXLG", nxt)
            if nxt < 0 or header_at(data, nxt) or len(data) - nxt < HEADER.size:
                break
            nxt += 1
        nxt = len(data) if nxt < 0 else nxt
        err.write(f"damage at {pos}: {nxt - pos} bytes skipped\n")
        pos = nxt


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        decode(f.read(), sys.stdout, sys.stderr)
