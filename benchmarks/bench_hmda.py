"""HMDA on real data: one HCP subject (94 AAL2 regions), its resting-state BOLD.

Generates a DTB-style network from the subject's connectome, assimilates the
first ``--n-tr`` TRs of the subject's BOLD into per-region g_AMPA scales
(ensemble Kalman filter), re-simulates open loop with the assimilated series
and reports per-region Pearson r (analysis and open loop vs observed), the FC
correlation of the open loop with the empirical FC (over the same TRs and
over the whole recording) and the wall time per TR per member.

    python benchmarks/bench_hmda.py --neurons 9400 --members 16 --n-tr 100

Writes benchmarks/out/hmda_hcp.json and (``--store``) the HMDA Dataset.
"""
import argparse
import json
import os
import platform
import time

import numpy as np

from brainsim import datasets
from brainsim.assimilation import fc_correlation, hmda
from brainsim.generation import from_connectome


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subject", default=None, help="HCP subject id (default: the first)")
    ap.add_argument("--neurons", type=int, default=9400, help="neurons per member")
    ap.add_argument("--k-in", type=int, default=50)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--n-tr", type=int, default=100)
    ap.add_argument("--spinup-tr", type=int, default=20)
    ap.add_argument("--sigma-walk", type=float, default=0.05)
    ap.add_argument("--obs-noise", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default=None)
    ap.add_argument("--out", default="benchmarks/out/hmda_hcp.json")
    args = ap.parse_args()

    group = datasets.load_hcp()
    subject = args.subject or group.meta["bold_subject"]
    conn = datasets.load_hcp(subject=subject)
    t0 = time.perf_counter()
    net = from_connectome(conn, args.neurons, args.k_in, partitions=2, seed=args.seed).build()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = hmda(net, conn, {"g_AMPA": (0.5, 2.0)}, n_members=args.members, n_tr=args.n_tr,
              spinup_tr=args.spinup_tr, seed=args.seed, store=args.store, overwrite=True,
              sigma_walk=args.sigma_walk, obs_noise=args.obs_noise)
    wall = time.perf_counter() - t0
    obs_all = conn.bold.T
    emp_fc_full = fc_correlation(ds.bold_open_loop.values, ds.bold_observed.values)
    r_an = _pearson(ds.bold_analysis.values, ds.bold_observed.values)
    res = {
        "subject": str(subject), "sigma_walk": args.sigma_walk, "obs_noise": args.obs_noise, "regions": len(net.regions), "neurons_per_member": net.n_neurons,
        "synapses_per_member": int(net.n_synapses), "members": args.members,
        "n_tr": int(ds.sizes["time"]), "tr_s": float(ds.attrs["tr"]),
        "build_s": round(build, 2), "wall_s": round(wall, 1),
        "wall_s_per_tr": round(ds.attrs["wall_s_per_tr"], 3),
        "wall_s_per_tr_member": round(ds.attrs["wall_s_per_tr_member"], 4),
        "r_analysis": _summary(r_an), "r_open_loop": _summary(ds.r.values),
        "fc_correlation_open_loop": round(float(ds.attrs["fc_correlation"]), 3),
        "fc_correlation_open_loop_same_trs": round(emp_fc_full, 3),
        "recording_trs": int(obs_all.shape[0]),
        "rate_hz_mean": round(float(ds.rate.mean()), 2),
        "hp_estimate": _summary(ds.hp_estimate.values.ravel()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "loadavg": os.getloadavg(),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps(res, indent=1))


def _pearson(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def _summary(x):
    x = np.asarray(x, float)
    return {"median": round(float(np.nanmedian(x)), 3), "mean": round(float(np.nanmean(x)), 3),
            "min": round(float(np.nanmin(x)), 3), "max": round(float(np.nanmax(x)), 3),
            "fraction_above_0.9": round(float(np.mean(x > 0.9)), 3)}


if __name__ == "__main__":
    main()
