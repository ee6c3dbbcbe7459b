#!/usr/bin/env python3
"""A tiny app that keeps working across Replicatoor key rotations (PROTOCOL.md §5.4).

Replicatoor installs the newest secret at <secret_file> and every epoch's secret in
<secret_file>.keyring (JSON). This app stores records in a JSON-lines file, each tagged with the
epoch whose secret authenticates it (HMAC-SHA256 under a key derived from that epoch's secret).
It writes with the newest secret, reads each record with its own epoch's secret, and can re-tag
old records under the newest secret ("rewrap"), which is what an app does when data protected by
an old secret should stop depending on it.

It authenticates records; it does not encrypt them. An app that encrypts would select its key by
epoch in exactly the same way, with a real AEAD from a maintained library. Python standard library
only.

  python3 app.py --secret-file PATH status
  python3 app.py --secret-file PATH write --store FILE --id ID --data TEXT
  python3 app.py --secret-file PATH read  --store FILE
  python3 app.py --secret-file PATH rewrap --store FILE
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import tempfile

KEYRING_VERSION = 1
# Domain separation: the installed secret may serve other purposes in the app; this key is only for
# record tags, and a tag cannot be mistaken for anything else computed from the same secret.
MAC_LABEL = b"keyring-app/record-mac/v1"


class AppError(Exception):
    """An error the user should read (bad files, unknown epochs, forged records)."""


def load_keyring(secret_file):
    """Every epoch's secret, {epoch: bytes}, and the newest epoch, from <secret_file>.keyring."""
    path = secret_file + ".keyring"
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise AppError(f"{path} not found: is the node installed and on protocol version 6 or later?")
    except (OSError, ValueError) as e:
        raise AppError(f"cannot read the keyring {path}: {e}")
    version = doc.get("version") if isinstance(doc, dict) else None
    if version != KEYRING_VERSION:
        # A newer format may mean something this reader would get wrong: refuse it (PROTOCOL.md §5.4).
        raise AppError(f"{path}: keyring version {version!r} is not {KEYRING_VERSION}")
    newest = doc.get("epoch")
    entries = doc.get("secrets")
    if not isinstance(newest, int) or not isinstance(entries, list) or not entries:
        raise AppError(f"{path}: expected an integer 'epoch' and a non-empty 'secrets' list")
    ring = {}
    before = 0
    for i, entry in enumerate(entries):
        epoch = entry.get("epoch") if isinstance(entry, dict) else None
        secret_hex = entry.get("secret_hex") if isinstance(entry, dict) else None
        if not isinstance(epoch, int) or epoch <= before or not isinstance(secret_hex, str):
            raise AppError(f"{path}: entry {i} is malformed or out of order (epochs must strictly increase)")
        try:
            ring[epoch] = bytes.fromhex(secret_hex)
        except ValueError:
            raise AppError(f"{path}: entry {i} (epoch {epoch}) is not hex")
        before = epoch
    if before != newest:
        raise AppError(f"{path}: the last entry is epoch {before}, the keyring says {newest}")
    # The node writes the keyring first, then the secret file. A reader between the two sees a newer
    # keyring than secret file; the keyring is then the truth, and the next read agrees again.
    try:
        with open(secret_file, "rb") as f:
            installed = f.read()
        if not hmac.compare_digest(installed, ring[newest]):
            print(
                f"note: {secret_file} is not yet epoch {newest}'s secret (install under way); using the keyring",
                file=sys.stderr,
            )
    except OSError:
        pass
    return ring, newest


def record_key(secret):
    """The per-epoch record key: HMAC-SHA256(secret, label). Never the raw secret."""
    return hmac.new(secret, MAC_LABEL, hashlib.sha256).digest()


def tag(secret, epoch, record_id, data):
    # Length-prefixed fields, so ("ab", "c") and ("a", "bc") never tag alike; the epoch is covered,
    # so a record cannot be moved to another epoch's key.
    msg = b"".join(
        len(part).to_bytes(4, "big") + part
        for part in (str(epoch).encode(), record_id.encode(), data.encode())
    )
    return hmac.new(record_key(secret), msg, hashlib.sha256).hexdigest()


def load_store(path):
    if not os.path.exists(path):
        return []
    records = []
    with open(path, "r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise AppError(f"{path}:{n}: not JSON: {e}")
    return records


def save_store(path, records):
    """Replace the store atomically (temp file, fsync, rename), as the node installs its files."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".store-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def verify(ring, record):
    """The record's data if its tag verifies under its own epoch's secret."""
    epoch, rid, data, got = record.get("epoch"), record.get("id"), record.get("data"), record.get("tag")
    if not isinstance(epoch, int) or not all(isinstance(x, str) for x in (rid, data, got)):
        raise AppError(f"malformed record {record!r}")
    secret = ring.get(epoch)
    if secret is None:
        raise AppError(f"record {rid!r}: epoch {epoch} is not in the keyring (epochs {sorted(ring)})")
    if not hmac.compare_digest(tag(secret, epoch, rid, data), got):
        raise AppError(f"record {rid!r}: tag does not verify under epoch {epoch}'s secret")
    return data


def cmd_status(args):
    ring, newest = load_keyring(args.secret_file)
    print(f"newest epoch {newest}; secrets for epochs {sorted(ring)}")


def cmd_write(args):
    ring, newest = load_keyring(args.secret_file)
    records = [r for r in load_store(args.store) if r.get("id") != args.id]
    t = tag(ring[newest], newest, args.id, args.data)
    records.append({"epoch": newest, "id": args.id, "data": args.data, "tag": t})
    save_store(args.store, records)
    print(f"wrote {args.id!r} under epoch {newest}")


def cmd_read(args):
    ring, _ = load_keyring(args.secret_file)
    for r in load_store(args.store):
        data = verify(ring, r)
        print(f"{r['id']}\tepoch {r['epoch']}\t{data}")


def cmd_rewrap(args):
    ring, newest = load_keyring(args.secret_file)
    records = load_store(args.store)
    out, moved = [], 0
    for r in records:
        data = verify(ring, r)  # never re-tag what does not verify
        if r["epoch"] != newest:
            moved += 1
        out.append({"epoch": newest, "id": r["id"], "data": data, "tag": tag(ring[newest], newest, r["id"], data)})
    save_store(args.store, out)
    print(f"re-tagged {moved} of {len(out)} records under epoch {newest}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--secret-file", required=True, help="the node's secret_file; its keyring is <secret_file>.keyring")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="list the keyring's epochs")
    w = sub.add_parser("write", help="write a record under the newest secret")
    w.add_argument("--store", required=True)
    w.add_argument("--id", required=True)
    w.add_argument("--data", required=True)
    r = sub.add_parser("read", help="read every record, each with its own epoch's secret")
    r.add_argument("--store", required=True)
    rw = sub.add_parser("rewrap", help="re-tag every record under the newest secret")
    rw.add_argument("--store", required=True)
    args = p.parse_args(argv)
    try:
        {"status": cmd_status, "write": cmd_write, "read": cmd_read, "rewrap": cmd_rewrap}[args.cmd](args)
    except AppError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
