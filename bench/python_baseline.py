"""Peer baseline: the original Python replicatoor's per-request crypto path, timed on this machine.

Per request the Python holder verifies the requester's quote with the `dcap-qvl` package (PyPI;
Python bindings over the same Rust library we link) and seals the secret to the requester with a
libsodium sealed box (PyNaCl `SealedBox`). We time both on the same genuine Intel TDX quote and
collateral as the Rust bench (tests/fixtures/dcap-qvl-samples, verified at 1751328000), single
threaded, and print one JSON object: ns/op and ops/s per step and for the sum.

Usage: python bench/python_baseline.py [--seconds S] [--out FILE]
A bench, not a test: nothing asserts a time.
"""

import argparse
import json
import os
import platform
import sys
import time

import dcap_qvl
import nacl
from nacl.public import PrivateKey, SealedBox

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "dcap-qvl-samples")
NOW = 1751328000


def bench(name, f, seconds, warmup=0.3):
    """Warm up, then call f in a loop for about `seconds`; returns ns/op."""
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        f()
    n, start = 0, time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    while True:
        for _ in range(8):
            f()
        n += 8
        now = time.perf_counter_ns()
        if now >= deadline:
            break
    ns = (now - start) / n
    print(f"  {name:<44} {ns:>12.0f} ns/op {1e9 / ns:>12.1f} ops/s", file=sys.stderr)
    return {"ns_per_op": round(ns, 1), "ops_per_s": round(1e9 / ns, 1), "iterations": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out")
    args = ap.parse_args()

    quote = open(os.path.join(FIXTURES, "tdx_quote"), "rb").read()
    collateral = dcap_qvl.QuoteCollateralV3.from_json(
        open(os.path.join(FIXTURES, "tdx_quote_collateral.json")).read()
    )
    report = dcap_qvl.verify(quote, collateral, NOW)
    assert report.status == "UpToDate", report.status

    recipient = PrivateKey.generate()
    recipient_pk = bytes(recipient.public_key)
    payload = os.urandom(1024)
    # The requester's key arrives as bytes on chain: build the box from bytes every request.
    seal = lambda: SealedBox(nacl.public.PublicKey(recipient_pk)).encrypt(payload)
    assert SealedBox(recipient).decrypt(seal()) == payload

    print("python baseline (single thread):", file=sys.stderr)
    results = {
        "seal_1k_sealedbox": bench("PyNaCl SealedBox seal, 1 KiB", seal, args.seconds),
        "verify_genuine_dcap_qvl": bench(
            "dcap-qvl verify (genuine TDX quote)", lambda: dcap_qvl.verify(quote, collateral, NOW), args.seconds
        ),
    }
    per_request = results["seal_1k_sealedbox"]["ns_per_op"] + results["verify_genuine_dcap_qvl"]["ns_per_op"]
    results["per_request"] = {"ns_per_op": round(per_request, 1), "ops_per_s": round(1e9 / per_request, 1)}
    from importlib.metadata import version

    out = {
        "python": platform.python_version(),
        "dcap_qvl": version("dcap-qvl"),
        "pynacl": version("pynacl"),
        "results": results,
    }
    text = json.dumps(out, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
