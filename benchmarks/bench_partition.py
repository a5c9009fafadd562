"""Partition quality on the HCP connectome: load balance and spike traffic
across partitions, for P = 2, 4, 8, 16, 64.

Network: HCP group connectome (94 AAL2 regions), E/I per region, 1e6 neurons,
k_in 100 (DTB fractions); traffic = expected synapses x source rate (1
spike/s for every neuron unless --rate-e/--rate-i), so the cut fraction is
the share of synaptic events whose spike must cross a partition boundary.

Methods:
- ``size``: DTB's size-only balancing (regions in atlas order, cut by load);
- ``traffic``: order and cuts optimised for this P (``partition``);
- ``traffic-fixed``: what ``from_connectome`` uses by default: one region
  order optimised once (for 16 partitions) and kept for every P, so that
  neuron ids and simulation results do not depend on P; only the cuts change.

    python benchmarks/bench_partition.py --out benchmarks/out/partition.json
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--partitions", type=int, nargs="+", default=[2, 4, 8, 16, 64])
    ap.add_argument("--neurons", type=int, default=1_000_000)
    ap.add_argument("--k-in", type=int, default=100)
    ap.add_argument("--rate-e", type=float, default=1.0)
    ap.add_argument("--rate-i", type=float, default=1.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from brainsim.datasets import load_hcp
    from brainsim.generation import connectome as gc
    from brainsim.generation.partitioning import partition_units

    conn = load_hcp()
    rates = {"E": args.rate_e, "I": args.rate_i}
    plan = gc.make_plan(conn, args.neurons, args.k_in)
    size, kin, region = plan.unit_arrays()
    traffic = gc._traffic(plan, rates)
    partition_units(size, kin, region, traffic, 4, method="traffic")  # compile
    rows = []
    print(f"{'P':>4} {'method':<14}{'balance':>9}{'cut %':>8}{'split pops':>11}{'time s':>9}")
    for n_parts in args.partitions:
        for method in ("size", "traffic", "traffic-fixed"):
            t0 = time.perf_counter()
            if method == "traffic-fixed":
                res = gc._layout(plan, n_parts, "traffic", rates)
            else:
                res = partition_units(size, kin, region, traffic, n_parts, method=method)
            wall = time.perf_counter() - t0
            row = {"P": n_parts, "method": method, "balance": res.balance,
                   "cut_fraction": res.cut_fraction, "cut_traffic": res.cut_traffic,
                   "n_split_units": res.n_split_units, "seconds": wall}
            rows.append(row)
            print(f"{n_parts:>4} {method:<14}{res.balance:>9.3f}{100 * res.cut_fraction:>8.1f}"
                  f"{res.n_split_units:>11}{wall:>9.2f}", flush=True)
    for n_parts in args.partitions:
        by = {r["method"]: r for r in rows if r["P"] == n_parts}
        print(f"P={n_parts}: traffic / size cut ratio "
              f"{by['traffic']['cut_fraction'] / by['size']['cut_fraction']:.3f}, "
              f"traffic-fixed / size {by['traffic-fixed']['cut_fraction'] / by['size']['cut_fraction']:.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"neurons": args.neurons, "k_in": args.k_in, "rates": rates,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
