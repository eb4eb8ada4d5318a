"""One Markdown row per evaluated run of a sweep folder (see scripts/sweep.sh)."""
import json
import pathlib
import sys


def last_metrics(path):
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    timed = [r for r in rows if "s_update" in r]
    return rows[-1] if rows else {}, timed[-1] if timed else {}


def mean(v):
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else None


def fmt(v, digits):
    """A number with `digits` decimals, or – where the report has none (EBM alone, non-finite)."""
    return "–" if v is None else f"{v:.{digits}f}"


def row(run):
    e = json.loads((run / "eval" / "eval.json").read_text())
    last, timed = last_metrics(run / "metrics.jsonl")
    u, fd = e["unconditional"], e["frechet"]
    cond = {r["observed"]: r.get("with_langevin") for r in e["conditional"]["by_observed"]}
    agreed = u.get("revised_agreed_per_class") or [0]
    share = max(agreed) / max(1, sum(agreed))
    per_it = last["seconds"] / max(1, last["iteration"]) if "seconds" in last else None
    fit = u.get("prior_fit") or {}
    cells = [
        run.name, str(e["iteration"]), fmt(per_it, 2),
        fmt(u.get("generator"), 3), fmt(u.get("revised"), 3), f"{share:.2f}",
        fmt(u.get("fitted_generator"), 3), fmt(fit.get("kl_to_prior"), 1),
        fmt(mean(fd.get("generator", [])), 1), fmt(mean(fd.get("revised", [])), 1),
        fmt(cond.get(1), 3), fmt(cond.get(4), 3),
        fmt(timed.get("x_move"), 3), fmt(timed.get("z_sq"), 2),
    ]
    return "| " + " | ".join(cells) + " |"


def main():
    out = pathlib.Path(sys.argv[1])
    print("| run | iterations | s/it | uncond. gen | uncond. revised | top class share (revised) | uncond. from fitted N(μ̂,Σ̂) | KL(ẑ fit ‖ N(0,I)) | Fréchet gen | Fréchet revised | cond. 1 obs. | cond. 4 obs. | x_move | E ẑ² |")
    print("|" + "---|" * 14)
    for run in sorted(p for p in out.iterdir() if (p / "eval" / "eval.json").exists()):
        print(row(run))


main()
