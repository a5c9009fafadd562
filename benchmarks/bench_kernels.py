"""Cost of one neuron-step in the CPU engine's two kinds of chunk loop: the
per-neuron reference loop and the fast loops (one per input combination,
``brainsim.kernels.loops.FAST_VARIANTS``), for each built-in neuron model, on
unconnected neurons (1 thread, no synapses, nothing recorded), with DC only
and with a Poisson drive.

    python benchmarks/bench_kernels.py [--n 77169] [--steps 200] [--repeats 3]
        [--models iaf_psc_exp lif_dtb ...] [--dtype float32]

Prints one line per model and drive: median process CPU ns per neuron-step of
each loop, their ratio, and whether both loops left identical states (they
must: the fast loops are the reference loop specialised, not a different
integration). Timing is ``Simulation.run`` of ``--steps`` steps, so it includes
the engine's per-step work (spike exchange with no synapses, rate binning);
at 77k neurons that is well under 1 % of a step.
"""
import argparse
import statistics
import time

import numpy as np

import brainsim as bs
from brainsim.neurons import get_model

#: Per model: parameters, a DC amplitude (pA) that keeps neurons below
#: threshold, and the Poisson weight (in the model's excitatory receptor unit).
#: iaf_psc_exp is PD14's L23E without synapses (the numbers of earlier
#: campaigns in RESULTS.md were taken with these).
DRIVE = {"iaf_psc_exp": ({"tau_syn_ex": 0.5, "tau_syn_in": 0.5, "E_L": -65.0, "V_m": -65.0,
                          "V_reset": -65.0, "V_th": -50.0, "I_e": 300.0}, 0.0, 87.81),
         "lif_dtb": ({}, 0.0, 0.05), "iaf_cond_exp": ({}, 300.0, 2.0),
         "aeif_cond_exp": ({}, 500.0, 2.0), "hh_psc_alpha": ({}, 300.0, 87.8),
         "izhikevich": ({}, 4.0, 2.0), "gif_psc_exp": ({}, 30.0, 87.8)}


def build(model, n, lam_hz):
    net = bs.Network(dt=0.1, seed=3)
    params, dc, w = DRIVE[model]
    net.add_population("P", n, model=model, params=params)
    if dc:
        net.add_dc("P", dc)
    if lam_hz:
        net.add_poisson("P", rate=lam_hz, weight=w, indegree=1, delay=1.5)
    return net


def timed(model, n, lam_hz, steps, repeats, fast, dtype):
    sim = bs.Simulation(build(model, n, lam_hz), threads=1, dtype=dtype, keep="aggregate",
                        seed=5)
    sim.engine.fast = fast
    sim.run(1.0)  # compile
    ts = []
    for _ in range(repeats):
        c0 = time.process_time()
        sim.run(steps * sim.net.dt)
        ts.append((time.process_time() - c0) / (steps * n) * 1e9)
    state = {v.name: sim.get_state(v.name) for v in get_model(model).state}
    return statistics.median(ts), state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=77169)
    ap.add_argument("--steps", type=int, default=200, help="a multiple of 10 (1 ms rate bins)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["iaf_psc_exp", "lif_dtb"],
                    choices=sorted(DRIVE))
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    a = ap.parse_args()
    print(f"{a.n} unconnected neurons, {a.steps} steps, 1 thread, {a.dtype}, median of "
          f"{a.repeats} (process CPU ns per neuron-step)")
    for model in a.models:
        # Poisson rate x indegree 1 x dt: 0.128 and 1.28 expected events per step
        for lam_hz in (0.0, 1280.0, 12800.0):
            ref_t, ref_s = timed(model, a.n, lam_hz, a.steps, a.repeats, False, a.dtype)
            fast_t, fast_s = timed(model, a.n, lam_hz, a.steps, a.repeats, True, a.dtype)
            same = all(np.array_equal(ref_s[k], fast_s[k], equal_nan=True) for k in ref_s)
            print(f"{model:14s} Poisson {lam_hz * 1e-4:5.3f}/step: reference {ref_t:7.2f} ns, "
                  f"fast {fast_t:7.2f} ns, ratio {fast_t / ref_t:.2f}, identical states: {same}")


if __name__ == "__main__":
    main()
