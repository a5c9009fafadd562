"""Why the DTB-style network's FC was noise, in two measurements.

1. A bound from linear theory: regions as nodes of a noise-driven linear
   network x = G W x + noise have the covariance (I - G W)^-1 D (I - G W)^-T
   (D the noise variances). Its correlation matrix against the HCP group FC,
   for the connectome as DTB uses it (rows normalised) and as mean-field
   models use it (scaled by the largest eigenvalue), with equal noise or
   noise variance ~ 1/region size (finite-size noise of a spiking region).
2. Within-region coherence of a simulation: the Pearson r between the spike
   counts (0.72 s bins) of two random halves of each region's neurons. A
   region whose halves do not agree has no regional signal for its remote
   synapses to carry, whatever the connectome.

    python benchmarks/bench_fc_mechanism.py --linear
    python benchmarks/bench_fc_mechanism.py --coherence --set coupling=0.8 --t-ms 40000
"""
import argparse

import numpy as np


def linear_bound():
    from brainsim.analysis import fc_correlation
    from brainsim.datasets import load_hcp
    from brainsim.demo import empirical_fc
    hcp = load_hcp()
    fc = empirical_fc(hcp).values
    w = np.array(hcp.weights, float)
    np.fill_diagonal(w, 0.0)
    size = np.asarray(hcp.region_size, float)
    mats = {"rows normalised (DTB)": w / w.sum(1, keepdims=True),
            "raw / largest eigenvalue": w / np.abs(np.linalg.eigvals(w)).max()}
    iu = np.triu_indices(len(w), 1)
    print("linear noise-driven model: FC r against the HCP group FC (mean FC in brackets)")
    print(f"{'connectome':26s} {'noise':>10s} " + " ".join(f"G={g:<10g}" for g in GAINS))
    for name, m in mats.items():
        for noise, d in (("equal", np.ones(len(w))), ("1/size", 1 / size)):
            cells = []
            for g in GAINS:
                a = np.linalg.inv(np.eye(len(w)) - g * m)
                c = a @ np.diag(d) @ a.T
                s = np.sqrt(np.diag(c))
                r = c / np.outer(s, s)
                cells.append(f"{fc_correlation(r, fc):.3f} ({r[iu].mean():.2f})")
            print(f"{name:26s} {noise:>10s} " + " ".join(f"{c:12s}" for c in cells))


GAINS = (0.3, 0.6, 0.8, 0.9, 0.95, 0.99)


def coherence(params, n_neurons, k_in, t_ms, remote, seed):
    from brainsim.simulation import Simulation
    from brainsim.wholebrain import WholeBrainFC
    m = WholeBrainFC(n_neurons=n_neurons, k_in=k_in, t_ms=t_ms, seed=seed, remote=remote)
    net = m.build(params)
    with Simulation(net, seed=seed + 1, threads=1) as sim:
        ds = sim.run(t_ms)
    t, ids = ds.spike_time.values, ds.spike_neuron.values
    keep = t > 2000.0
    t, ids = t[keep], ids[keep]
    bins = np.arange(2000.0, t_ms + 1, 720.0)
    rng = np.random.default_rng(0)
    halves, series = [], []
    for name in m.connectome.names:
        sel = rng.permutation(net.select({"region": name}))
        a, b = sel[:sel.size // 2], sel[sel.size // 2:]
        ha = np.histogram(t[np.isin(ids, a)], bins)[0]
        hb = np.histogram(t[np.isin(ids, b)], bins)[0]
        if ha.std() > 0 and hb.std() > 0:
            halves.append(np.corrcoef(ha, hb)[0, 1])
        series.append(ha + hb)
    r = np.corrcoef(np.array(series, float))
    iu = np.triu_indices(len(series), 1)
    rate = t.size / net.n_neurons / ((t_ms - 2000.0) * 1e-3)
    print(f"{params} remote {remote}, {n_neurons} neurons, k_in {k_in}, {t_ms / 1e3:g} s: "
          f"rate {rate:.1f} Hz; within-region half-half r median {np.median(halves):.3f} "
          f"(IQR {np.percentile(halves, 25):.3f}-{np.percentile(halves, 75):.3f}); "
          f"between-region mean r {r[iu].mean():.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--linear", action="store_true")
    ap.add_argument("--coherence", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="parameter=value")
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--k-in", type=int, default=10)
    ap.add_argument("--t-ms", type=float, default=40_000.0)
    ap.add_argument("--remote", choices=("uniform", "strength"), default="uniform")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.linear:
        linear_bound()
    if a.coherence:
        params = {k: float(v) for k, _, v in (s.partition("=") for s in a.set)}
        coherence(params, a.neurons, a.k_in, a.t_ms, a.remote, a.seed)


if __name__ == "__main__":
    main()
