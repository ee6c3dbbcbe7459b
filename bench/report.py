"""Merge the bench's pieces (bench/tmp/) into bench/results.json and print one table.

Usage: python3 bench/report.py OUT_DIR RESULTS_JSON RESULTS_MD   (called by script/bench.sh)
Each row: figure, value, goal, met? ("-" where the brief sets no goal). Standard library only.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

OUT, RESULTS, MD = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    p = os.path.join(OUT, name)
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def env():
    d = {}
    try:
        for line in open(os.path.join(OUT, "e2e.env")):
            k, _, v = line.strip().partition("=")
            d[k] = v
    except OSError:
        pass
    return d


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = ""
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "rustc": sh("rustc", "--version"),
        "anvil": sh("anvil", "--version").splitlines()[0] if sh("anvil", "--version") else "",
        "loadavg_at_start": open(os.path.join(OUT, "loadavg-start.txt")).read().strip()
        if os.path.exists(os.path.join(OUT, "loadavg-start.txt")) else "",
        "loadavg_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


rows = []  # (section, figure, value, goal, met)


def row(section, figure, value, goal="-", met=None):
    rows.append((section, figure, value, goal, "-" if met is None else ("yes" if met else "NO")))


def us(ns):
    return f"{ns / 1000:,.1f} µs" if ns >= 1000 else f"{ns:,.0f} ns"


results = {}
e = env()

# 1. gas
gas = load("gas.json")
results["gas"] = gas
if gas:
    for o in gas["operations"]:
        goal, goal_gas = o["goal_max_ratio"], o.get("goal_max_gas")
        if goal_gas is not None:
            goal_text, met = f"≤ {goal_gas:,} gas", o["gas_used"] <= goal_gas
        else:
            goal_text, met = (f"≤ {goal} × floor" if goal else "-"), (None if goal is None else o["ratio"] <= goal)
        row(
            "1 gas",
            f"{o['operation']} ({o['calldata_bytes']:,} B calldata)",
            f"{o['gas_used']:,} gas = {o['ratio']:.3f} × floor {o['floor']:,}",
            goal_text,
            met,
        )
    lo, hi = gas["ratio_to_onchain_full_verify"]
    row(
        "1 gas",
        "genuine Dstack request + 1 KiB delivery vs verifying 1 quote on chain (Automata, published ~4-5M gas)",
        f"{gas['request_plus_delivery_1k_gas']:,} gas = {hi:.2f}-{lo:.2f} ×",
    )
    zlo, zhi = gas["ratio_to_zk_verify"]
    row(
        "1 gas",
        "genuine Dstack request + 1 KiB delivery vs a ZK-proof quote verification (RISC Zero/SP1, published ~0.3-0.5M gas)",
        f"{zhi:.2f}-{zlo:.2f} ×",
    )
    if "commit_gas" in gas:
        cm = gas["commit_gas"]
        row(
            "1 gas",
            "added per delivery by a pinned holder: its batch commitment (protocol v5, one per batch)",
            f"{cm['later']:,} gas ({cm['first']:,} the first time); request + 1 KiB delivery + commitment = "
            f"{gas['request_plus_delivery_1k_plus_commit_gas']:,} gas",
        )
    if "dstack_request_gas" in gas:
        g = gas["dstack_request_gas"]
        row(
            "1 gas",
            "requestSecret, genuine Dstack quote + its real event log: compact form vs raw form",
            f"{g['compact']:,} vs {g['raw']:,} gas",
            f"≤ {g['goal']:,} (stretch {g['stretch_goal']:,})",
            g["compact"] <= g["goal"],
        )

# 2. pipeline
pipe = load("pipeline.json")
results["pipeline"] = pipe
if pipe:
    for key, c in pipe["cases"].items():
        is_request = key.startswith("request_")
        ops = c["ops_per_s"]
        row(
            "2 pipeline",
            c["what"],
            f"{us(c['ns_per_op'])}/op, {ops:,.0f}/s",
            "≥ 500 requests/s per core" if is_request else "-",
            ops >= 500 if is_request else None,
        )

# 3. end to end
single, burst = load("single.json"), load("burst.json")
results["e2e_single"] = single
results["e2e_burst"] = burst
if single and single.get("single"):
    s = single["single"]
    row(
        "3 e2e",
        "one request: request inclusion → delivery inclusion",
        f"{s['blocks']} blocks, {s['block_time_ms']} ms by block time; "
        f"{s['wall_ms_receipt_to_delivery_seen']} ms wall (request receipt → delivery log seen)",
        "≤ 4 blocks (with the commitment round, protocol v5)",
        s["blocks"] <= 4,
    )
elif single:
    row("3 e2e", "one request", "not answered in time", "≤ 4 blocks", False)
if burst:
    n = burst["requests"]
    row(
        "3 e2e",
        f"burst of {n}: first request → last delivery (2 holders)",
        f"{burst['chain_seconds_first_request_to_last_answer']} s by block time "
        f"({burst['wall_seconds_first_send_to_last_answer_seen']} s wall), "
        f"{burst['requests_per_second_chain']} requests/s; answered {burst['answered']}/{n} "
        f"({burst['delivered']} delivered, {burst['refused']} refused)",
    )
    d = burst["delay_blocks"]
    row(
        "3 e2e",
        f"burst of {n}: delivery delay in blocks p50 / p95 / max",
        f"{d['p50']} / {d['p95']} / {d['max']} ({burst['within_4_blocks']}/{n} within 4 blocks)",
        "every delivery ≤ 4 blocks (with the commitment round, protocol v5)",
        burst["answered"] == n and d["max"] is not None and d["max"] <= 4,
    )
    row(
        "3 e2e",
        f"burst of {n}: duplicated deliveries on chain",
        str(burst["duplicate_answers_on_chain"]),
        "0",
        burst["duplicate_answers_on_chain"] == 0,
    )
    row(
        "3 e2e",
        f"burst of {n}: failed (reverted) txs / lost races (holders' metrics)",
        f"{burst['failed_txs_to_contract']} reverted on chain / {e.get('burst_lost_race', '?')} lost races "
        f"(served: holder A {e.get('burst_served_a', '?')}, holder B {e.get('burst_served_b', '?')}; "
        f"deferred {e.get('burst_deferred', '?')})",
    )

# 4. catch-up and memory
sprinkle = load("sprinkle.json")
results["catchup_requests"] = sprinkle
catchup = {k: e.get(k) for k in ("catchup_from_block", "catchup_head_at_start", "catchup_seconds", "mine_seconds")}
results["catchup"] = catchup
def scan_rate():
    """Blocks/s of the restarted holder's steps that answered no request, from its last_processed_block
    samples (every 0.1 s): a step that took under a second answered nothing (an answer waits for a block)."""
    try:
        samples = [tuple(map(float, line.split())) for line in open(os.path.join(OUT, "catchup-progress.txt"))]
    except (OSError, ValueError):
        return None
    steps, last = [], None
    try:
        start_block = float(e["catchup_from_block"])
    except (KeyError, ValueError):
        return None
    for t, c in samples:
        if c <= 0:  # endpoint up, first step not done yet: the scan starts from the old checkpoint
            last = (t, start_block)
            continue
        if last is None or c != last[1]:
            if last is not None:
                steps.append((t - last[0], c - last[1]))
            last = (t, c)
    scan = [(dt, db) for dt, db in steps if dt < 1.0]
    secs, blocks = sum(dt for dt, _ in scan), sum(db for _, db in scan)
    if not scan or secs <= 0:
        return None
    return {"blocks": int(blocks), "seconds": round(secs, 2), "blocks_per_second": round(blocks / secs, 1),
            "note": "bounded by the 0.1 s sampling of /metrics"}


try:
    blocks = int(e["catchup_head_at_start"]) - int(e["catchup_from_block"])
    secs = float(e["catchup_seconds"])
    catchup["blocks"] = blocks
    catchup["blocks_per_second"] = round(blocks / secs, 1)
    catchup["empty_history_scan"] = scan_rate()
    row(
        "4 catch-up",
        f"restarted holder reaches the head over {blocks:,} blocks (answering 10 requests on the way)",
        f"{secs:.1f} s = {blocks / secs:,.0f} blocks/s",
    )
    if catchup["empty_history_scan"]:
        r = catchup["empty_history_scan"]
        row("4 catch-up", "scan of history alone (steps that answered no request)",
            f"{r['blocks']:,} blocks in ≤ {r['seconds']} s = ≥ {r['blocks_per_second']:,.0f} blocks/s (0.1 s sampling)")
    row("4 catch-up", "request evaluations deferred during catch-up (old state unreadable at the node)",
        e.get("catchup_deferred", "?"))
except (KeyError, ValueError, ZeroDivisionError):
    if "catchup_from_block" in e:  # the e2e part ran (BENCH_PARTS may leave it out)
        row("4 catch-up", "catch-up", "did not reach the head in time", "-", False)
if sprinkle:
    row(
        "4 catch-up",
        "requests posted while no holder ran, answered after restart",
        f"{sprinkle['delivered']}/{sprinkle['requests']} delivered ({sprinkle['refused']} refused)",
        "all",
        sprinkle["delivered"] == sprinkle["requests"],
    )


def mb(kb):
    try:
        return int(kb) / 1024
    except (TypeError, ValueError):
        return None


idle = mb(e.get("idle_rss_kb"))
results["memory"] = {k: e.get(k) for k in e if "rss" in k or "hwm" in k}
if idle is not None:
    row("4 memory", "holder RSS idle, after catch-up", f"{idle:.1f} MiB (peak {mb(e.get('idle_hwm_kb')):.1f} MiB)",
        "≤ 30 MB", idle * 1.048576 <= 30)
end = mb(e.get("burst_rss_end_kb_a"))
if end is not None:
    row("4 memory", "holder RSS at the end of the burst", f"{end:.1f} MiB / {mb(e.get('burst_rss_end_kb_b')):.1f} MiB "
        f"(max sampled {mb(e.get('burst_rss_max_kb')):.1f} MiB)")

# 6. junk flood (issue 26; BENCH_PARTS=flood)
base, during, junk = load("flood-baseline.json"), load("flood-genuine.json"), load("flood-junk.json")
if junk:
    def num(k):
        try:
            return float(e.get(k) or 0)
        except ValueError:
            return 0.0
    results["flood"] = {"junk": junk, "baseline": base, "genuine": during,
                        **{k: e.get(k) for k in e if k.startswith("flood_")}}
    row("6 flood", f"requests mined during the flood ({e.get('flood_seconds', '?')} s, 8 junk accounts; 1 genuine)",
        f"{junk['junk_requests']:,} requests, {junk['per_second']:,.1f}/s, blocks {junk['first_block']}-{junk['last_block']}")
    t0 = base and base.get("wall_seconds_first_send_to_last_answer_seen")
    t1 = during and during.get("wall_seconds_first_send_to_last_answer_seen")
    if t0 and t1 and not during.get("timed_out"):
        row("6 flood", "genuine request, post to delivery seen: during the flood vs without",
            f"{t1:.2f} s vs {t0:.2f} s = {t1 / t0:.2f} ×", "≤ 3 ×", t1 <= 3 * t0)
    else:
        row("6 flood", "genuine request during the flood", "not delivered in time", "≤ 3 ×", False)
    rss = mb(e.get("flood_rss_max_kb"))
    if rss is not None:
        row("6 flood", "holder RSS, max sampled during the flood", f"{rss:.1f} MiB (peak {mb(e.get('flood_hwm_kb')):.1f} MiB)",
            "≤ 64 MiB", rss <= 64)
    micros, triaged = num("flood_triage_microseconds_total"), num("flood_requests_triaged_total")
    if micros > 0:
        rate = triaged / (micros / 1e6)
        row("6 flood", "junk evaluated per second (holder's cheap checks on arrival)",
            f"{rate:,.0f}/s ({triaged:,.0f} requests in {micros / 1e6:.2f} s of triage; "
            f"{num('flood_junk_triaged_total'):,.0f} junk)", "≥ 1,000/s", rate >= 1000)
    row("6 flood", "refusals mined / refusal gas / budget-spent steps / junk left queued, dropped",
        f"{num('flood_refused_total'):,.0f} / {num('flood_refusal_gas_total'):,.0f} gas / "
        f"{num('flood_refusal_gas_budget_spent_total'):,.0f} / {num('flood_junk_queue'):,.0f}, "
        f"{num('flood_junk_dropped_total'):,.0f}")

# 7. the production image (BENCH_PARTS=image)
binary = e.get("release_binary_bytes")
if binary:
    base = e.get("image_base_bytes")
    if base:
        total = (int(binary) + int(base)) / 1e6
        row("7 image", "production image: release binary + Debian base", f"{total:.1f} MB ({int(base) / 1e6:.1f} MB base)",
            "≤ 40 MB", total <= 40)
    else:
        row("7 image", "production binary, release (no image base at hand)", f"{int(binary) / 1e6:.1f} MB")

# 5. peer baseline
py = load("python.json")
results["python_baseline"] = py
if py and pipe:
    r = py["results"]
    theirs = r["per_request"]["ns_per_op"]
    c = pipe["cases"]
    ours = c["request_genuine"]["ns_per_op"]
    row("5 baseline", "Python replicatoor per request: dcap-qvl verify + SealedBox 1 KiB",
        f"{us(theirs)}/request ({1e9 / theirs:,.0f}/s)")
    row("5 baseline", "ours per request, genuine path (key check + verify + replay + seal + sign)",
        f"{us(ours)}/request = {ours / theirs:.2f} × the Python time ({theirs / ours:.2f} × its throughput)")
    row("5 baseline", "quote verification: ours (dcap-qvl crate) vs Python (dcap-qvl wheel)",
        f"{us(c['verify_genuine']['ns_per_op'])} vs {us(r['verify_genuine_dcap_qvl']['ns_per_op'])} "
        f"= {c['verify_genuine']['ns_per_op'] / r['verify_genuine_dcap_qvl']['ns_per_op']:.2f} ×")
    row("5 baseline", "sealing 1 KiB: ours (HPKE) vs Python (libsodium sealed box)",
        f"{us(c['hpke_seal_1k']['ns_per_op'])} vs {us(r['seal_1k_sealedbox']['ns_per_op'])} "
        f"= {c['hpke_seal_1k']['ns_per_op'] / r['seal_1k_sealedbox']['ns_per_op']:.2f} ×")

# output
m = machine()
dirty = sh("git", "status", "--porcelain")
out = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git_commit": sh("git", "rev-parse", "HEAD") + ("-dirty" if dirty else ""),
    "machine": m,
    "wall_seconds": {"total": e.get("total_seconds"), "install_and_build": e.get("build_seconds")},
    "table": [dict(zip(("section", "figure", "value", "goal", "met"), r)) for r in rows],
    "figures": results,
}
with open(RESULTS, "w") as f:
    json.dump(out, f, indent=2, ensure_ascii=False)
    f.write("\n")

head = (f"Machine: {m['nproc']} cores, {m['cpu']}, {m['memory']}; {out['date']}, commit {out['git_commit'][:12]}; "
        f"bench wall time {e.get('total_seconds', '?')} s (install and build {e.get('build_seconds', '?')} s); "
        f"load average at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']}")
w = [max(len(r[i]) for r in rows + [("", "figure", "value", "goal", "met?")]) for i in range(5)]
w[1], w[2] = min(w[1], 70), min(w[2], 100)
print("\n" + head)
print(f"{'':<11} {'figure':<{w[1]}}  {'value':<{w[2]}}  {'goal':<{w[3]}}  met?")
for s, fig, val, goal, met in rows:
    print(f"{s:<11} {fig:<{w[1]}}  {val:<{w[2]}}  {goal:<{w[3]}}  {met}")

with open(MD, "w") as f:
    f.write(head + "\n\n| | figure | value | goal | met? |\n|---|---|---|---|---|\n")
    for s, fig, val, goal, met in rows:
        f.write(f"| {s} | {fig} | {val} | {goal} | {met} |\n")
print(f"\nwrote {os.path.relpath(RESULTS, ROOT)} and {os.path.relpath(MD, ROOT)}")
