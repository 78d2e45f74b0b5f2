#!/usr/bin/env python3
"""The measuring half of integration/bench.sh (which sets up the world, the fixtures, the
delaying proxy and the daemon runs, and calls this).

    bench.py cli DIR         verify every fixture image once with each command-line verifier
                             (signet verify, cosign 2.5, cosign 3), one process at a time,
                             writing DIR/cli.json: each run's spawn and exit time and status
    bench.py rootfs REF...   for each image (by tag or digest, in containerd's k8s.io store),
                             prepare a rootfs snapshot from its layers as the CRI does for a
                             container (the world's $CTR), and print `REF#KEY` tokens for the
                             NRI driver: the plugin then finds the container's rootfs
    bench.py report B OUT    cut the proxy's request log (B/requests.jsonl) into the runs of
                             B/d*/cli.json and B/d*/nri.json, write B/results.json and OUT
                             (BENCHMARKS.md)

Per run, from the proxy's log lines that arrived between its start and its end: requests,
`GET /v2/` probes, connections opened, and the dependent depth: the longest chain of requests
each of which arrived after the one before it had been answered (a request sent together
with others, before any of them was answered, adds no depth). Start-up is the time from
spawn to the process's first contact with the registry (a connection or a request).

Environment (from bench.sh): REL, COSIGN3, COSIGN_PUB, PROXY, POLICIES, BENCH_HOME, TUF_ROOT.
"""
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

KINDS = ("sig", "bundle")
FLOOR = {"sig": 2, "bundle": 3}
SHORT = {"sig": "`.sig`", "bundle": "bundle"}
KIND_NAME = {"sig": "`.sig` (cosign 2.5)", "bundle": "cosign 3 bundle (referrers tag)"}
TOOLS = ("daemon", "signet", "cosign2", "cosign3")
TOOL_NAME = {
    "daemon": "signet daemon: first CreateContainer over NRI",
    "signet": "`signet verify` (a fresh process)",
    "cosign2": "`cosign verify` 2.5",
    "cosign3": "`cosign verify` 3.1.1",
}


def commands(ref):
    env = os.environ
    reg = ["--allow-insecure-registry", "--allow-http-registry"]
    return {
        "signet": [env["REL"], "verify", ref, "--policy-dir", env["POLICIES"], "--insecure-registry", env["PROXY"]],
        "cosign2": ["cosign", "verify", "--key", env["COSIGN_PUB"], *reg, "--insecure-ignore-tlog", ref],
        "cosign3": [env["COSIGN3"], "verify", "--key", env["COSIGN_PUB"], *reg, "--insecure-ignore-tlog", ref],
    }


def cli(d):
    fixtures = json.load(open(os.path.join(os.path.dirname(d.rstrip("/")), "fixtures.json")))
    runs = []
    env = dict(os.environ, HOME=os.environ["BENCH_HOME"])
    for kind in KINDS:
        for image in fixtures[kind]:
            for tool, cmd in commands(image["digest_ref"]).items():
                start = time.time()
                p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                end = time.time()
                runs.append({"tool": tool, "kind": kind, "image": image["digest_ref"], "start": start, "end": end,
                             "ms": (end - start) * 1000, "ok": p.returncode == 0,
                             "error": "" if p.returncode == 0 else p.stderr.decode(errors="replace")[-300:]})
    json.dump(runs, open(os.path.join(d, "cli.json"), "w"), indent=1)


# ------------------------------------------------------------------------------ report

def load_log(path):
    conns, reqs = [], []
    for line in open(path):
        e = json.loads(line)
        (conns if e["ev"] == "conn" else reqs).append(e)
    reqs.sort(key=lambda r: r["t0"])
    return conns, reqs


def depth(reqs):
    """The longest chain of requests each sent after the previous one was answered."""
    best = []
    for i, r in enumerate(reqs):
        best.append(1 + max((best[j] for j in range(i) if reqs[j]["t1"] <= r["t0"]), default=0))
    return max(best, default=0)


def busy(reqs):
    """Seconds during which at least one request was at the registry."""
    total, until = 0.0, None
    for r in reqs:
        lo = r["t0"] if until is None else max(r["t0"], until)
        if r["t1"] > lo:
            total += r["t1"] - lo
        until = r["t1"] if until is None else max(until, r["t1"])
    return total


def window(log, start, end):
    conns, reqs = log
    mine = [r for r in reqs if start <= r["t0"] <= end]
    opened = [c["t"] for c in conns if start <= c["t"] <= end]
    contact = min(opened + [r["t0"] for r in mine], default=None)
    return {
        "requests": len(mine),
        "probes": sum(1 for r in mine if r["m"] == "GET" and r["path"].split("?")[0].rstrip("/") == "/v2"),
        "connections": len(opened),
        "depth": depth(mine),
        # The verifier's own time: no request of it at the registry (start-up, parsing,
        # verification, the image-store lookup).
        "own_ms": ((end - start) - busy(mine)) * 1000,
        "busy_ms": busy(mine) * 1000,
        # cosign tries TLS first on an insecure registry: its first contact is that connection.
        "first_contact_ms": (contact - start) * 1000 if contact is not None else None,
        "paths": [f'{r["m"]} {r["path"]} {r["status"]}' for r in mine],
    }


def med(xs):
    return statistics.median(xs) if xs else None


def summary(runs):
    """Median wall time and counts over the runs of one tool, kind and delay."""
    ok = [r for r in runs if r["ok"]]
    out = {"runs": len(runs), "ok": len(ok)}
    if not ok:
        out["error"] = next((r.get("error") or r.get("message") for r in runs), "")
        return out
    for k in ("ms", "requests", "probes", "connections", "depth", "own_ms", "proxy_ms"):
        xs = [r[k] for r in ok]
        out[k] = {"median": med(xs), "min": min(xs), "max": max(xs)}
    return out


def report(b, out_path):
    log = load_log(os.path.join(b, "requests.jsonl"))
    fixtures = json.load(open(os.path.join(b, "fixtures.json")))
    kind_of = {img["tag_ref"]: kind for kind in KINDS for img in fixtures[kind]}
    kind_of.update({img["digest_ref"]: kind for kind in KINDS for img in fixtures[kind]})
    delays = sorted(int(d[1:]) for d in os.listdir(b) if d.startswith("d") and d[1:].isdigit())
    # When the measuring ended (the proxy's last log line), whenever the report is written.
    results = {"delays": {}, "fixtures": fixtures, "measured": os.path.getmtime(os.path.join(b, "requests.jsonl"))}
    startup = {t: [] for t in TOOLS if t != "daemon"}
    for delay in delays:
        d = os.path.join(b, f"d{delay}")
        nri = json.load(open(os.path.join(d, "nri.json")))
        runs = []
        for r in json.load(open(os.path.join(d, "cli.json"))):
            r.update(window(log, r["start"], r["end"]))
            runs.append(r)
            if r["first_contact_ms"] is not None:
                startup[r["tool"]].append(r["first_contact_ms"])
        for r in nri["sequential"]:
            r.update(window(log, r["start"], r["end"]), tool="daemon", kind=kind_of[r["image"]], ok=r["allowed"])
            runs.append(r)
        for r in runs:
            # Registry time beyond the D of each dependent round: the proxy's own forwarding.
            r["proxy_ms"] = r["busy_ms"] - r["depth"] * delay
        first = nri.get("first")
        if first:
            first.update(window(log, first["start"], first["end"]))
        cells = {t: {k: summary([r for r in runs if r["tool"] == t and r["kind"] == k]) for k in KINDS} for t in TOOLS}
        entry = {"cells": cells, "runs": runs, "rss_idle_kib": nri["rss_idle_kib"], "first": first,
                 "warm": nri.get("warm", [])}
        if "burst" in nri:
            bu = nri["burst"]
            res = bu.pop("results")
            lat = sorted(r["ms"] for r in res)
            still = [r for r in res if "continues in the background" in r["message"]]
            other = [r for r in res if not r["allowed"] and r not in still]
            bu["registry"] = window(log, bu["start"], bu["end"])
            bu["registry"].pop("paths")
            bu.update(admitted=sum(r["allowed"] for r in res), still_verifying=len(still), other_denials=len(other),
                      first_other_denial=other[0]["message"] if other else None,
                      past_deadline=sum(1 for x in lat if x > nri["timeout_ms"]),
                      p50_ms=lat[len(lat) // 2], max_ms=lat[-1])
            entry["burst"] = bu
        entry["timeout_ms"] = nri["timeout_ms"]
        results["delays"][delay] = entry
    results["startup_ms"] = {t: med(xs) for t, xs in startup.items()}
    results["startup_samples"] = {t: len(xs) for t, xs in startup.items()}
    json.dump(results, open(os.path.join(b, "results.json"), "w"), indent=1)
    write_markdown(results, out_path)


def fmt(c, key, unit=""):
    v = c[key]
    m = v["median"]
    text = f"{m:.0f}{unit}" if key == "ms" else f"{m:g}"
    if v["min"] != v["max"]:
        text += f" ({v['min']:.0f}–{v['max']:.0f})" if key == "ms" else f" ({v['min']:g}–{v['max']:g})"
    return text


def cell(c, kind, tool):
    if c["ok"] == 0:
        if tool == "cosign2" and kind == "bundle":
            return ["cannot verify (fails on all " + str(c["runs"]) + ")", "", "", "", ""]
        return [f"**failed** {c['runs']} of {c['runs']}: {c.get('error', '')[:80]!s}", "", "", "", ""]
    failed = c["runs"] - c["ok"]
    wall = fmt(c, "ms", " ms") + (f"; **{failed} failed**" if failed else "")
    return [wall, fmt(c, "requests"), fmt(c, "probes"), fmt(c, "depth"), fmt(c, "connections")]


def tool_versions():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"
    c2 = run(["dpkg-query", "-W", "-f=${Version}", "cosign"])
    c3 = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.environ["COSIGN3"]))), ".extracted")).read().strip() \
        if os.environ.get("COSIGN3") else "?"
    ctr = run(["containerd", "--version"])
    reg = run(["dpkg-query", "-W", "-f=${Version}", "docker-registry"])
    return c2, c3, ctr, reg


def mark(ok):
    return "met" if ok else "**missed**"


def write_markdown(r, out_path):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    c2, c3, ctr, reg = tool_versions()
    D = r["delays"]
    L = []
    w = L.append
    w("# Benchmarks\n")
    w("Generated by `bash integration/bench.sh` (do not edit by hand); the raw numbers, every run's requests "
      "included, are in `target/e2e-state/signet-1.7/bench/results.json` after a run. Targets are from "
      "issue #14; they are checked here and never asserted in tests.\n")
    w(f"- Run: {datetime.datetime.fromtimestamp(r['measured'], datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    w(f"- Machine: {cpu}, {os.cpu_count()} cores, {int(mem) // 1024} MiB RAM, Linux {platform.release()} "
      "(shared with other work while measured)")
    w(f"- {ctr}; cosign {c2} (Debian) and {c3} (Debian sid); docker-registry {reg} (no referrers API) on "
      "loopback, plain HTTP, behind `integration/faulty-registry.py` in `delay:D` mode; signet release build\n")

    # Targets first.
    d100 = D.get(100) or D.get(max(D))
    dmax = max(D)
    targets = []
    at_floor = []
    for delay in sorted(D):
        if delay == 0:
            continue
        for tool in ("daemon", "signet"):
            for kind in KINDS:
                c = D[delay]["cells"][tool][kind]
                if c["ok"] == 0 or c["ok"] < c["runs"]:
                    at_floor.append(False)
                else:
                    at_floor.append(c["depth"]["max"] <= FLOOR[kind] and c["probes"]["max"] == 0)
    depths = "; ".join(
        f"{SHORT[k]} {', '.join(sorted({str(x['depth']) for x in D[dmax]['runs'] if x['tool'] in ('daemon', 'signet') and x['kind'] == k and x['ok']}))}"
        for k in KINDS)
    targets.append(("dependent depth at the floor (`.sig` 2, bundle 3) and no `GET /v2/`, daemon and `signet verify`, "
                    "every image at D > 0", f"depths seen at D = {dmax} ms: {depths}", mark(all(at_floor) and at_floor)))
    for kind, limit in (("sig", 230), ("bundle", 330)):
        c = d100["cells"]["daemon"][kind]
        ms = c["ms"]["median"] if c["ok"] else None
        targets.append((f"D = 100 ms: the daemon's cold {SHORT[kind]} <= {limit} ms (median)",
                        f"{ms:.0f} ms" if ms is not None else "failed", mark(ms is not None and ms <= limit
                                                                              and c["ok"] == c["runs"])))
    bu = d100.get("burst")
    if bu:
        ok = bu["past_deadline"] == 0 and bu["still_verifying"] == 0 and bu["admitted"] == bu["requests"]
        targets.append((f"burst of {bu['requests']} over {bu['images']} never-verified images at D = 100 ms: all decided "
                        f"inside the {d100['timeout_ms'] / 1000:g} s deadline, none denied \"still verifying\"",
                        f"slowest {bu['max_ms']:.0f} ms; {bu['admitted']} admitted, {bu['still_verifying']} still "
                        f"verifying, {bu['other_denials']} other denials, {bu['past_deadline']} past the deadline",
                        mark(ok)))
    s = r["startup_ms"]
    ok = s["signet"] is not None and all(s[t] is not None and s["signet"] <= s[t] for t in ("cosign2", "cosign3"))
    targets.append(("`signet verify` start-up (spawn to its first contact with the registry) no slower than cosign's (median)",
                    f"signet {s['signet']:.1f} ms (100 policies); cosign 2.5 {s['cosign2']:.1f} ms; "
                    f"cosign 3.1.1 {s['cosign3']:.1f} ms", mark(ok)))
    rss = max(D[d]["rss_idle_kib"] for d in D)
    targets.append(("idle RSS of `signet run` with 100 policies (release build) < 20 MiB",
                    f"{rss / 1024:.1f} MiB (the largest of {len(D)} daemons)", mark(rss < 20 * 1024)))
    w("## Targets\n")
    w("| target | result | |\n|---|---|---|")
    for t in targets:
        w("| " + " | ".join(t) + " |")
    c = d100["cells"]["daemon"]
    if all(c[k]["ok"] for k in KINDS):
        w(f"\nAt D = 100 ms the daemon's cold verifications (`.sig` / bundle) spent "
          f"{c['sig']['own_ms']['median']:.0f} / {c['bundle']['own_ms']['median']:.0f} ms with no request at the "
          f"registry, and the proxy took {c['sig']['proxy_ms']['median']:.0f} / {c['bundle']['proxy_ms']['median']:.0f} ms "
          "in all beyond the D ms of each round to forward them: what separates the wall times from the floor (200 / 300 ms) is "
          "mostly the proxy's, on a shared 2-core machine, so the margins to 230 / 330 ms move from run to run.")
    w("")

    w("## Cold verification through a registry D ms away\n")
    w("Each cell is the median over the images (range in brackets when they differ): wall time, "
      "registry requests, `GET /v2/` probes, dependent depth (round trips that had to wait for one "
      "another) and connections opened. The daemon had verified one other image first, so its "
      "connections were open, as in a node that has been running.\n")
    n_images = {k: len(r["fixtures"][k]) for k in KINDS}
    for delay in sorted(D):
        e = D[delay]
        w(f"### D = {delay} ms\n")
        w("| | " + " | ".join(f"{KIND_NAME[k]}: wall | req | `/v2/` | depth | conns" for k in KINDS) + " |")
        w("|---|" + "---|" * 10)
        for tool in TOOLS:
            row = [TOOL_NAME[tool]]
            for kind in KINDS:
                row += cell(e["cells"][tool][kind], kind, tool)
            w("| " + " | ".join(row) + " |")
        w("| the floor | " + " | ".join(f"{FLOOR[k] * delay} ms + work | | 0 | {FLOOR[k]} | 0 (kept alive) "
                                           for k in KINDS) + "|")
        own = "; ".join(
            f"{TOOL_NAME[t].split(':')[0].split(' (')[0]} {' / '.join(str(round(e['cells'][t][k]['own_ms']['median'])) if e['cells'][t][k]['ok'] else '–' for k in KINDS)} ms"
            for t in TOOLS)
        w(f"\nTime with no request at the registry (`.sig` / bundle, median): {own}.")
        c = e["cells"]["daemon"]
        if all(c[k]["ok"] for k in KINDS):
            w("Time at the registry beyond the D ms of each dependent round, in all (the proxy's forwarding, "
              "which opens a new connection to the registry for each request), for the daemon's: "
              + " / ".join(f"{c[k]['proxy_ms']['median']:.0f}" for k in KINDS) + " ms.")
        f = e.get("first")
        if f:
            w(f"\nThe daemon's very first verification (a `.sig` image, no connection open yet): {f['ms']:.0f} ms, "
              f"{f['requests']} requests, depth {f['depth']}, {f['connections']} connections opened.")
        w("")
    w(f"Images: {n_images['sig']} signed by cosign 2.5 (`.sig` tag), {n_images['bundle']} signed by cosign 3.1.1 "
      "(a sigstore bundle, which distribution 2.8 keeps under the `sha256-<hex>` referrers fallback tag), all by "
      "key, without a transparency log. The floor counts the requests that must wait for an answer: `.sig`: "
      "the tag's manifest, then its layer; bundle: the fallback tag's index, then the bundle's manifest, then "
      "its blob. signet sends the `.sig` tag, the referrers API and the fallback tag together in its first "
      "round, so it makes those requests for both kinds (the referrers API answers 404 here).\n")

    if bu:
        w("## The burst\n")
        w(f"{bu['requests']} CreateContainer at once over {bu['images']} images never verified before "
          f"(half `.sig`, half bundle), D = 100 ms: all answered in {bu['wall_ms']:.0f} ms, median {bu['p50_ms']:.0f} ms, "
          f"slowest {bu['max_ms']:.0f} ms against the runtime's {d100['timeout_ms']} ms; {bu['admitted']} admitted, "
          f"{bu['still_verifying']} denied as still verifying, {bu['other_denials']} denied otherwise"
          + (f" (first: {bu['first_other_denial']})" if bu["first_other_denial"] else "")
          + f". The registry saw {bu['registry']['requests']} requests of which {bu['registry']['probes']} "
          f"`GET /v2/`, over {bu['registry']['connections']} new connections, depth {bu['registry']['depth']}. "
          "signet's RSS peaked at "
          f"{bu['rss_peak_kib'] / 1024:.1f} MiB.\n")

    warm = [x for delay in sorted(D) for x in D[delay]["warm"]]
    if warm:
        w("## Warm decisions\n")
        w("A CreateContainer for an image already verified (answered from the cache), asked again and again "
          "over the NRI socket: by tag, signet asks containerd's image store for the digest each time "
          "(README, \"Which digest is checked\"); by digest it does not.\n")
        w("| image named | p50 | p99 | max | requests | denied |\n|---|---|---|---|---|---|")
        for x in warm:
            named = "by digest" if "@sha256:" in x["image"] else "by tag"
            w(f"| {named} | {x['p50_ms']:.3f} ms | {x['p99_ms']:.3f} ms | {x['max_ms']:.3f} ms | {x['count']} | {x['denied']} |")
        w("")

    w("## How it is measured\n")
    w("""- **The proxy.** `integration/faulty-registry.py` in `delay:D` mode sits in front of the world's
  registry (127.0.0.1:5000) and holds every request D ms before forwarding it: one network round trip
  per request. Opening a connection costs no delay (loopback), so connections are counted instead;
  over TLS each new one would add its handshake's round trips. It logs each connection and each
  request's arrival and answer times; a run's requests are those that arrived between its start and
  its end.
- **The daemon** (`signet run`, 100 policies) is driven by `crates/nri/examples/nri_bench.rs`, which plays
  containerd's side of the NRI socket (the same multiplexer and ttrpc). Each image was pulled into the
  world's containerd 1.7 first (through the proxy), and the CreateContainer names it by tag, so signet
  asks containerd's image store for its digest, as on a node. One fresh daemon per D; each image is
  asked once, one at a time; the time is CreateContainer's round trip.
- **The command-line verifiers** get `REF@DIGEST` (no tag to resolve), one process at a time, each
  image once per D: `signet verify` with the same 100 policies, `cosign verify --key
  --insecure-ignore-tlog --allow-insecure-registry --allow-http-registry` for both cosigns. The time
  is from spawn to exit, start-up included. cosign 2.5 cannot read sigstore bundles stored as
  referrers; it is run on them anyway and fails, which the table shows.
- **Start-up** is the time from spawn to the process's first contact with the proxy (a connection
  opened, or a request), median over every command-line run above. cosign, told the registry is
  insecure, first tries TLS on a connection of its own: that connection counts as its first contact.
- **Idle RSS** is VmRSS after registration, Configure and Synchronize, before any image is asked.
- Depth at D = 0 can read higher than the client's real depth: with no delay a request of a
  concurrent round may arrive after another of the same round was already answered.""")
    open(out_path, "w").write("\n".join(L) + "\n")


def ctr(*args):
    # $CTR: the world's ctr for this runtime, with its address and the k8s.io namespace.
    return subprocess.run([*os.environ["CTR"].split(), *args], check=True, capture_output=True).stdout


def chain_of(digest):
    """The layer chain (OCI ChainID) of the image at `digest`: its first manifest held."""
    doc = json.loads(ctr("content", "get", digest))
    for m in doc.get("manifests", [doc]):
        try:
            manifest = json.loads(ctr("content", "get", m["digest"])) if "manifests" in doc else doc
        except subprocess.CalledProcessError:
            continue
        diff_ids = json.loads(ctr("content", "get", manifest["config"]["digest"]))["rootfs"]["diff_ids"]
        chain = diff_ids[0]
        for d in diff_ids[1:]:
            chain = "sha256:" + hashlib.sha256(f"{chain} {d}".encode()).hexdigest()
        return chain
    sys.exit(f"bench: no manifest of {digest} is held")


def rootfs(refs):
    tokens = []
    for ref in refs:
        if "@" in ref:
            digest = ref.split("@", 1)[1]
        else:
            rows = ctr("images", "ls", f"name=={ref}").decode().splitlines()[1:]
            digest = next(c for c in rows[0].split() if c.startswith("sha256:"))
        key = "bench-rootfs-" + digest.split(":", 1)[1][:16]
        try:
            ctr("snapshots", "prepare", key, chain_of(digest))
        except subprocess.CalledProcessError as e:
            if b"already exists" not in e.stderr:
                raise
        tokens.append(f"{ref}#{key}")
    print(" ".join(tokens))


if __name__ == "__main__":
    if sys.argv[1:2] == ["cli"]:
        cli(sys.argv[2])
    elif sys.argv[1:2] == ["rootfs"]:
        rootfs(sys.argv[2:])
    elif sys.argv[1:2] == ["report"]:
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
