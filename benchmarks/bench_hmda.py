"""HMDA on real data: one HCP subject (94 AAL2 regions), its resting-state BOLD.

Generates a DTB-style network from the subject's connectome, assimilates the
first ``--n-tr`` TRs of the subject's BOLD (``--protocol`` brainsim or dtb),
and reports per region, as medians: the one-step forecast r, the persistence
baseline on the same volumes, the analysis r, the replay r (a fresh run driven
by the assimilated series) and the free run's (no assimilation); the replay's
and the free run's FC correlation with the empirical FC; the wall time per TR
and member, and the loop's overhead over a plain simulation of the same
ensemble (the same TRs' worth of steps, measured over ``--plain-tr`` TRs in the
same script).

    python benchmarks/bench_hmda.py --protocol dtb --neurons 10000 --k-in 20 \
        --members 30 --n-tr 400

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
    ap.add_argument("--protocol", choices=("brainsim", "dtb"), default="dtb")
    ap.add_argument("--sigma-walk", type=float, default=None)
    ap.add_argument("--obs-noise", type=float, default=None)
    ap.add_argument("--zscore", action="store_true",
                    help="map the observation to the prior ensemble's BOLD level and spread "
                    "(rescale=True) instead of the protocol's rescaling")
    ap.add_argument("--plain-tr", type=int, default=20,
                    help="TRs of the plain ensemble simulation that the overhead is "
                    "measured against")
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
    ds = hmda(net, conn, n_members=args.members, n_tr=args.n_tr, protocol=args.protocol,
              spinup_tr=args.spinup_tr, seed=args.seed, store=args.store, overwrite=True,
              sigma_walk=args.sigma_walk, obs_noise=args.obs_noise,
              rescale=True if args.zscore else None)
    wall = time.perf_counter() - t0
    plain = _plain_s_per_tr(net, ds.hp.values[-1], ds.attrs["tr"], args.plain_tr, args.seed,
                            list(map(str, ds.hyperparameter.values)))
    a = ds.attrs
    res = {
        "subject": str(subject), "protocol": args.protocol, "regions": len(net.regions),
        "neurons_per_member": net.n_neurons, "synapses_per_member": int(net.n_synapses),
        "members": args.members, "n_tr": int(ds.sizes["time"]), "tr_s": float(a["tr"]),
        "sigma_walk": a["sigma_walk"], "obs_var": a["obs_var"], "rescale": a["rescale"],
        "local": a["local"], "hyperparameters": list(map(str, ds.hyperparameter.values)),
        "r_forecast": _summary(ds.r_forecast.values),
        "r_persistence": _summary(ds.r_persistence.values),
        "r_analysis": _summary(ds.r_analysis.values),
        "r_change": _summary(ds.r_change.values),
        "forecast_beats_persistence": round(a["forecast_beats_persistence"], 3),
        "r_replay": _summary(ds.r_replay.values), "r_free": _summary(ds.r_free.values),
        "fc_r_replay": _round(a["fc_r_replay"]), "fc_r_free": _round(a["fc_r_free"]),
        "fc_r_replay_whole_recording_fc": _round(_fc_r_whole(ds.bold_replay, conn)),
        "fc_r_free_whole_recording_fc": _round(_fc_r_whole(ds.bold_free, conn)),
        "hemodynamic_updates_rejected": int(a["hemodynamic_updates_rejected"]),
        "build_s": round(build, 2), "wall_s": round(wall, 1),
        "wall_s_per_tr": round(a["wall_s_per_tr"], 3),
        "wall_s_per_tr_member": round(a["wall_s_per_tr_member"], 4),
        "plain_simulation_s_per_tr": round(plain, 3),  # at the last TR's scales
        "loop_overhead": round(a["wall_s_per_tr"] / plain - 1.0, 3),
        "recording_trs": int(conn.bold.shape[1]),
        "rate_hz_mean": round(float(ds.rate.mean()), 2),
        "hp_estimate": _summary(ds.hp_estimate.values.ravel()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "loadavg": os.getloadavg(),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps(res, indent=1))


def _plain_s_per_tr(net, scales, tr, n_tr, seed, names):
    """Wall s per TR of the same ensemble with the same per-neuron parameters
    (heterogeneity factors and the assimilation's last scales, ``scales``
    (member, region, hyperparameter): the scales set the rates, and the rates
    the cost), simulated without the loop (no parameter changes, no BOLD, no
    filter), after one TR of warm-up."""
    from brainsim import Simulation
    from brainsim.assimilation.hmda_loop import _Members
    mem = _Members(net, scales.shape[0], names, (5.0, 0.2), seed, "dtb")
    mem.apply(scales)
    sim = Simulation(mem.net, seed=seed, record={"spikes": False}, keep="aggregate")
    sim.run(tr * 1000.0)
    t0 = time.perf_counter()
    sim.run(n_tr * tr * 1000.0)
    return (time.perf_counter() - t0) / n_tr


def _fc_r_whole(bold, conn):
    """FC correlation of a simulated BOLD DataArray (time, region) with the FC
    of the subject's whole recording (1200 TRs), regions matched by name
    (the network's region order is not the connectome's)."""
    rows = [list(conn.names).index(r) for r in bold.region.values.tolist()]
    return fc_correlation(bold.values, conn.bold[rows].T)


def _round(x):
    return None if x is None else round(float(x), 3)


def _summary(x):
    x = np.asarray(x, float)
    return {"median": round(float(np.nanmedian(x)), 3), "mean": round(float(np.nanmean(x)), 3),
            "min": round(float(np.nanmin(x)), 3), "max": round(float(np.nanmax(x)), 3),
            "fraction_above_0.9": round(float(np.mean(x > 0.9)), 3)}


if __name__ == "__main__":
    main()
