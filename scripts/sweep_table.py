"""One Markdown row per evaluated run of a sweep folder (see scripts/sweep.sh)."""
import json
import pathlib
import sys


def last_metrics(path):
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    timed = [r for r in rows if "s_update" in r]
    return rows[-1] if rows else {}, timed[-1] if timed else {}


def mean(v):
    return sum(v) / len(v) if v else float("nan")


def row(run):
    e = json.loads((run / "eval" / "eval.json").read_text())
    last, timed = last_metrics(run / "metrics.jsonl")
    u, fd = e["unconditional"], e["frechet"]
    cond = {r["observed"]: r.get("with_langevin") for r in e["conditional"]["by_observed"]}
    agreed = u.get("revised_agreed_per_class") or [0]
    share = max(agreed) / max(1, sum(agreed))
    per_it = last.get("seconds", float("nan")) / max(1, last.get("iteration", 1))
    fit = u.get("prior_fit") or {}
    cells = [
        run.name, str(e["iteration"]), f"{per_it:.2f}",
        f"{u.get('generator', float('nan')):.3f}", f"{u.get('revised', float('nan')):.3f}", f"{share:.2f}",
        f"{u.get('fitted_generator', float('nan')):.3f}", f"{fit.get('kl_to_prior', float('nan')):.1f}",
        f"{mean(fd.get('generator', [])):.1f}", f"{mean(fd.get('revised', [])):.1f}",
        f"{cond.get(1, float('nan')):.3f}", f"{cond.get(4, float('nan')):.3f}",
        f"{timed.get('x_move', float('nan')):.3f}", f"{timed.get('z_sq', float('nan')):.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main():
    out = pathlib.Path(sys.argv[1])
    print("| run | iterations | s/it | uncond. gen | uncond. revised | top class share (revised) | uncond. from fitted N(μ̂,Σ̂) | KL(ẑ fit ‖ N(0,I)) | Fréchet gen | Fréchet revised | cond. 1 obs. | cond. 4 obs. | x_move | E ẑ² |")
    print("|" + "---|" * 14)
    for run in sorted(p for p in out.iterdir() if (p / "eval" / "eval.json").exists()):
        print(row(run))


main()
