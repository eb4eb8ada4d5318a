"""One Markdown row per evaluated run of a sweep folder (see scripts/sweep.sh).

Image data (PolyMNIST) and image–caption data (the birds, CUB) get different columns: a caption
run's eval.json has `caption_attributes` and its coherence is per direction, with the chance of
each attribute beside it (docs/CAPTIONS.md, "How captions are judged")."""
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


def seconds_per_iteration(last):
    return last["seconds"] / max(1, last["iteration"]) if "seconds" in last else None


IMAGE_HEADER = ["run", "iterations", "s/it", "uncond. gen", "uncond. revised",
                "top class share (revised)", "uncond. from fitted N(μ̂,Σ̂)", "KL(ẑ fit ‖ N(0,I))",
                "Fréchet gen", "Fréchet revised", "cond. 1 obs.", "cond. 4 obs.", "x_move", "E ẑ²"]


def top_share(u):
    """The share of the agreeing revised samples held by the most common class: agreement alone
    rewards collapse (above 0.25 is collapse)."""
    agreed = u.get("revised_agreed_per_class") or [0]
    return f"{max(agreed) / max(1, sum(agreed)):.2f}"


def image_row(run, e, last, timed):
    u, fd = e["unconditional"], e["frechet"]
    cond = {r["observed"]: r.get("with_langevin") for r in e["conditional"]["by_observed"]}
    fit = u.get("prior_fit") or {}
    return [
        run.name, str(e["iteration"]), fmt(seconds_per_iteration(last), 2),
        fmt(u.get("generator"), 3), fmt(u.get("revised"), 3), top_share(u),
        fmt(u.get("fitted_generator"), 3), fmt(fit.get("kl_to_prior"), 1),
        fmt(mean(fd.get("generator", [])), 1), fmt(mean(fd.get("revised", [])), 1),
        fmt(cond.get(1), 3), fmt(cond.get(4), 3),
        fmt(timed.get("x_move"), 3), fmt(timed.get("z_sq"), 2),
    ]


CAPTION_HEADER = ["run", "iterations", "s/it", "text → image body", "image → text body",
                  "text → image, every stated attribute / chance",
                  "image → text, every stated attribute / chance", "captions well-formed",
                  "body from the caption's own z", "uncond. pairs gen / revised",
                  "top colour share (revised)", "… from fitted N(μ̂,Σ̂)", "KL(ẑ fit ‖ N(0,I))", "latent probe"]


def with_chance(r):
    return "–" if r is None else f"{r['agreement']:.3f} / {r['chance']:.3f}"


def caption_row(run, e, last, timed):
    """Both directions with the posterior chain (eval's `with_langevin` column); the body is the
    attribute both classifiers and the caption parser read best."""
    c, u = e["conditional"], e["unconditional"]
    body = {(tuple(p["given"]), p["target"]): p.get("with_langevin") for p in c["per_subset"]}
    captions = {r["mode"]: r for r in c["caption_attributes"]}
    images = {r["mode"]: r for r in c["image_attributes"]}
    rebuilt = {r["modality"]: r["coherence"] for r in c["reconstruction"]}
    chained = captions.get("with_langevin") or {}
    return [
        run.name, str(e["iteration"]), fmt(seconds_per_iteration(last), 2),
        fmt(body.get(((1,), 0)), 3), fmt(body.get(((0,), 1)), 3),
        with_chance(images.get("with_langevin")), with_chance(captions.get("with_langevin")),
        fmt(chained.get("well_formed"), 3), fmt(rebuilt.get(1), 3),
        f"{fmt(u.get('generator'), 3)} / {fmt(u.get('revised'), 3)}", top_share(u),
        fmt(u.get("fitted_revised"), 3), fmt((u.get("prior_fit") or {}).get("kl_to_prior"), 1),
        fmt(e.get("latent_probe", {}).get("accuracy"), 3),
    ]


def table(runs):
    """One table per kind of data: a sweep runs one config, but a folder may hold both."""
    rows = {}
    for run in runs:
        e = json.loads((run / "eval" / "eval.json").read_text())
        last, timed = last_metrics(run / "metrics.jsonl")
        caption = "caption_attributes" in e["conditional"]
        cells = (caption_row if caption else image_row)(run, e, last, timed)
        rows.setdefault(caption, []).append(cells)
    for caption, cells in sorted(rows.items()):
        header = CAPTION_HEADER if caption else IMAGE_HEADER
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for c in cells:
            print("| " + " | ".join(c) + " |")
        print()


def main():
    out = pathlib.Path(sys.argv[1])
    table(sorted(p for p in out.iterdir() if (p / "eval" / "eval.json").exists()))


main()
