"""What bench.run prints and draws: the row of one run, the tables per resolution,
which worker count did better, the check against the targets, and the plot.

Pure functions of the run records (dicts, as written to bench/results/latest.json),
called by bench.run's main thread; only `print_tables` prints and `plot` writes a file.
"""

from __future__ import annotations

import os
from pathlib import Path

TARGET_CLIENTS = 500
TARGET_FPS = 29.0
TARGET_P95_MS = 100.0
TARGET_RES = "640x480"
CAMERA_FPS = 30
DISTURBED_PCT = 25.0  # CPU used by other processes (% of a core) above which a run is flagged

HEAD = (f"{'server':13s} {'clients':>7s} {'slow':>4s} | {'fps med':>7s} {'fps min':>7s} "
        f"{'p50 ms':>7s} {'p95 ms':>7s} {'1st ms':>7s} | {'slow fps':>8s} {'slow p95':>8s} | "
        f"{'CPU %':>5s} {'node/web %':>11s} {'RSS MB':>6s} | {'lg CPU':>6s} {'host':>5s}")


def fmt_row(r: dict) -> str:
    def num(v, w, d=1):
        return f"{v:{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}s}"
    if "error" in r or "skipped" in r:
        why = r.get("skipped") or r.get("error", "").splitlines()[-1][:80]
        return (f"{r['server']:13s} {r['clients']:7d} {r.get('slow_clients', 0):4d} | "
                f"{'skipped' if 'skipped' in r else 'FAILED'}: {why}")
    n, s = r["normal"], r["slow"]
    parts = r.get("server_cpu_parts", {})
    nw = f"{parts.get('node', 0):.0f}/{parts.get('web', 0):.0f}"
    if parts.get("other"):
        nw += f"+{parts['other']:.0f}"
    return (f"{r['server']:13s} {r['clients']:7d} {r['slow_clients']:4d} | "
            f"{num(n.get('fps_median'), 7)} {num(n.get('fps_min'), 7)} "
            f"{num(n.get('lat_p50_ms'), 7)} {num(n.get('lat_p95_ms'), 7)} "
            f"{num(n.get('ttff_median_ms'), 7, 0)} | "
            f"{num(s.get('fps_median'), 8)} {num(s.get('lat_p95_ms'), 8, 0)} | "
            f"{num(r.get('server_cpu_pct'), 5, 0)} {nw:>11s} {num(r.get('server_peak_rss_mb'), 6, 0)} | "
            f"{num(r.get('loadgen_cpu_pct'), 6, 0)} {num(r.get('host_cpu', {}).get('busy_pct'), 5, 0)}"
            f"{' *' if disturbed(r) else ''}")


def disturbed(r: dict) -> bool:
    return r.get("other_load_pct", 0.0) > DISTURBED_PCT


def notes_for(r: dict) -> list[str]:
    notes = []
    if "error" in r:
        return notes
    n = r["normal"]
    if n.get("failed") or n.get("no_frame"):
        notes.append(f"{n.get('failed')} normal clients failed, {n.get('no_frame')} got no frame; "
                     f"errors {r.get('errors')}")
    for p in r.get("web_worker_cpu_pct", []) or []:
        if p >= 90:
            notes.append(f"a web worker used {p:.0f}% of a core (saturated)")
    if n.get("seq_backwards"):
        notes.append(f"{n['seq_backwards']} frames arrived with a non-increasing X-Frame-Seq")
    return notes


def print_tables(records: list[dict]) -> None:
    for res in dict.fromkeys(r["resolution"] for r in records):
        rows = [r for r in records if r["resolution"] == res]
        print(f"\n=== {res} @ {CAMERA_FPS} fps"
              f"{', JPEG ~%s KB' % rows[0]['frame_kb'] if rows[0].get('frame_kb') else ''} ===")
        print(HEAD)
        keys = sorted({(r["clients"], r.get("slow_fraction", 0)) for r in rows})
        for c, sf in keys:
            for r in rows:
                if r["clients"] == c and r.get("slow_fraction", 0) == sf:
                    print(fmt_row(r))
            print("-" * len(HEAD))


def best_workers(records: list[dict], res: str) -> tuple[str | None, str]:
    """Which camnode worker count serves the heavy runs better at `res`."""
    scores = {}
    for r in records:
        if r["resolution"] != res or not r["server"].startswith("camnode") or "error" in r \
                or "skipped" in r or r["slow_clients"] or r["clients"] < 200:
            continue
        s = scores.setdefault(r["server"], [])
        s.append((r["clients"], r["normal"]["fps_median"], r["normal"]["lat_p95_ms"] or 1e9))
    if len(scores) < 2:
        return (next(iter(scores)) if scores else None), "only one worker count measured"
    def key(label):
        runs = sorted(scores[label])
        return (sum(f for _, f, _ in runs), -sum(p for _, _, p in runs))
    ranked = sorted(scores, key=key, reverse=True)
    detail = "; ".join(f"{lab}: " + ", ".join(f"{c} cl {f:.1f} fps p95 {p:.0f} ms"
                                                for c, f, p in sorted(scores[lab]))
                       for lab in ranked)
    return ranked[0], detail


def _target_figures(run: dict) -> tuple[float, float | None, bool]:
    """Median fps and p95 latency of a run's normal clients, and whether they meet the
    targets."""
    f, p = run["normal"]["fps_median"], run["normal"]["lat_p95_ms"]
    return f, p, f >= TARGET_FPS and p is not None and p <= TARGET_P95_MS


def target_check(records: list[dict]) -> list[str]:
    lines = [f"\n=== Targets: {TARGET_CLIENTS} clients at {TARGET_RES}: median fps >= {TARGET_FPS:g}, "
             f"p95 latency <= {TARGET_P95_MS:g} ms; 20% slow readers change neither ==="]
    labels = sorted({r["server"] for r in records if r["server"].startswith("camnode")})
    def find(label, slow):
        for r in records:
            if r["server"] == label and r["resolution"] == TARGET_RES and \
                    r["clients"] == TARGET_CLIENTS and bool(r.get("slow_fraction")) == slow \
                    and "normal" in r:
                return r
        return None
    for label in labels:
        plain, slowr = find(label, False), find(label, True)
        if plain is None:
            lines.append(f"{label}: not measured")
            continue
        f, p, ok = _target_figures(plain)
        lines.append(f"{label}: {f:.2f} fps median, p95 {p} ms -> {'PASS' if ok else 'FAIL'}"
                     + (" (run disturbed by other load)" if disturbed(plain) else ""))
        if slowr is None:
            lines.append(f"{label} with slow readers: not measured")
            continue
        f2, p2, ok2 = _target_figures(slowr)
        lines.append(f"{label} + {slowr['slow_clients']} slow readers: normal clients {f2:.2f} fps "
                     f"median (change {f2 - f:+.2f}), p95 {p2} ms (change {p2 - p:+.1f}) -> "
                     f"{'PASS' if ok2 else 'FAIL'}; slow readers got "
                     f"{slowr['slow']['fps_median']:.2f} fps, p95 {slowr['slow']['lat_p95_ms']} ms"
                     + (" (run disturbed by other load)" if disturbed(slowr) else ""))
    b = find("baseline", False)
    if b:
        lines.append(f"baseline: {b['normal']['fps_median']:.2f} fps median, p95 "
                     f"{b['normal']['lat_p95_ms']} ms")
    else:
        lines.append("baseline: no result at this size (skipped or collapsed earlier)")
    return lines


def plot(records: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolutions = list(dict.fromkeys(r["resolution"] for r in records))
    fig, axes = plt.subplots(2, len(resolutions), figsize=(6 * len(resolutions), 8),
                             squeeze=False, sharex=True)
    styles = {"baseline": dict(color="tab:red", marker="s")}
    palette = iter(["tab:blue", "tab:green", "tab:purple", "tab:orange"])
    for col, res in enumerate(resolutions):
        ax_f, ax_l = axes[0][col], axes[1][col]
        labels = list(dict.fromkeys(r["server"] for r in records if r["resolution"] == res))
        for label in labels:
            st = styles.setdefault(label, dict(color=next(palette, "black"), marker="o"))
            for slow, ls in ((False, "-"), (True, "--")):
                rs = sorted((r for r in records if r["resolution"] == res and r["server"] == label
                             and bool(r.get("slow_fraction")) == slow and "normal" in r),
                            key=lambda r: r["clients"])
                if not rs:
                    continue
                x = [r["clients"] for r in rs]
                name = label + (" (20% slow readers; normal clients)" if slow else "")
                ax_f.plot(x, [r["normal"]["fps_median"] for r in rs], ls=ls, label=name, **st)
                ax_f.fill_between(x, [r["normal"]["fps_min"] for r in rs],
                                  [r["normal"]["fps_median"] for r in rs],
                                  color=st["color"], alpha=0.08)
                ax_l.plot(x, [r["normal"]["lat_p95_ms"] or float("nan") for r in rs], ls=ls,
                          label=name, **st)
        ax_f.axhline(TARGET_FPS, color="grey", lw=0.8, ls=":")
        ax_l.axhline(TARGET_P95_MS, color="grey", lw=0.8, ls=":")
        ax_f.set_title(f"{res} @ {CAMERA_FPS} fps")
        ax_f.set_ylabel("delivered fps (median; band down to min)")
        ax_f.set_ylim(0, CAMERA_FPS * 1.1)
        ax_l.set_ylabel("latency p95 (ms, log)")
        ax_l.set_yscale("log")
        ax_l.set_xlabel("concurrent stream clients")
        ax_f.grid(alpha=0.3)
        ax_l.grid(alpha=0.3, which="both")
        ax_f.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"camnode MJPEG fan-out vs naive threaded relay ({os.cpu_count()} cores, loopback)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
