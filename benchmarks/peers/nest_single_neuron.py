"""NEST side of the single-neuron comparisons (runs in NEST's venv).

    /work/peers-venv/bin/python benchmarks/peers/nest_single_neuron.py SPEC.json OUT.json

SPEC (JSON): model, params (NEST names), dt (ms), n (neurons, default 1),
seed, dc (list of [t_ms, I_e pA]: I_e is set with SetStatus at t_ms, between
Simulate calls; the first entry must be at 0), t_sim (ms), spikes_ex /
spikes_in (spike times, ms, played by spike_generators into every neuron),
weight_ex / weight_in (NEST's units and signs), delay (ms), record_vm (bool).
OUT (JSON): times and senders (0-based) of the neurons' spikes, V_m sampled
every dt (list per neuron, at t = dt, 2 dt, ...), wall_s of the simulation.
Only the standard library, NumPy and nest are imported here.
"""
import json
import sys
import time

import nest


def run(spec):
    nest.ResetKernel()
    try:
        nest.verbosity = nest.VerbosityLevel.ERROR
    except AttributeError:  # older NEST
        nest.set_verbosity("M_ERROR")
    nest.SetKernelStatus({"resolution": spec["dt"], "rng_seed": int(spec.get("seed", 1)),
                          "local_num_threads": 1})
    n = int(spec.get("n", 1))
    nrn = nest.Create(spec["model"], n, params=spec.get("params", {}))
    for key, sign in (("ex", 1), ("in", -1)):
        times = spec.get(f"spikes_{key}") or []
        if times:
            gen = nest.Create("spike_generator", params={"spike_times": sorted(times)})
            nest.Connect(gen, nrn, "all_to_all",
                         {"weight": spec[f"weight_{key}"], "delay": spec["delay"]})
    rec = nest.Create("spike_recorder")
    nest.Connect(nrn, rec)
    mm = None
    if spec.get("record_vm", True):
        mm = nest.Create("multimeter", params={"record_from": ["V_m"],
                                               "interval": spec["dt"]})
        nest.Connect(mm, nrn)
    dc = [list(x) for x in spec.get("dc", [[0.0, spec.get("params", {}).get("I_e", 0.0)]])]
    edges = [t for t, _ in dc] + [spec["t_sim"]]
    t0 = time.perf_counter()
    for (t, amp), t_next in zip(dc, edges[1:]):
        nrn.set({"I_e": float(amp)})
        if t_next > t:
            nest.Simulate(t_next - t)
    wall = time.perf_counter() - t0
    ev = rec.get("events")
    first = nrn.tolist()[0]
    out = {"times": [float(x) for x in ev["times"]],
           "senders": [int(s) - first for s in ev["senders"]], "wall_s": wall}
    if mm is not None:
        mev = mm.get("events")
        vm = [[] for _ in range(n)]
        for s, v in zip(mev["senders"], mev["V_m"]):
            vm[int(s) - first].append(float(v))
        out["V_m"] = vm
        out["vm_times"] = sorted({float(t) for t in mev["times"]})
    return out


def main():
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    out = run(spec)
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
