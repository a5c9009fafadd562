"""Cost of one neuron-step (iaf_psc_exp update, with and without Poisson input) in
brainsim and Brian2 C++ standalone, no synapses: where the microcircuit's time goes when
synaptic events are few (scale 0.1).

N unconnected neurons (default 77,169), DC I_e = 300 pA (subthreshold), optional Poisson
drive of K_ext = 1600 sources at 8 Hz, 87.81 pA (lam = 1.28 per step, full-scale L23E);
100 ms warm-up, ``--t-ms`` timed; reports wall and process CPU seconds per neuron-step.
Run with brainsim's interpreter for ``--sim brainsim`` and the Brian2 venv's for
``--sim brian2`` (one JSON line each):

    /work/venv/bin/python benchmarks/peers/microbench_update.py --sim brainsim --threads 1
    /work/peers-venv-brian2/bin/python benchmarks/peers/microbench_update.py --sim brian2 \
        --threads 1
"""
import argparse
import json
import os
import time

N, K_EXT, RATE, W, I_E = 77169, 1600, 8.0, 87.81, 300.0
NEURON = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0,
          "E_L": -65.0, "V_reset": -65.0, "V_th": -50.0}


def run_brainsim(a):
    os.environ.setdefault("NUMBA_NUM_THREADS", str(a.threads))
    import brainsim

    def make(n):
        net = brainsim.Network(dt=0.1, seed=1)
        net.add_population("P", n, "iaf_psc_exp", params={**NEURON, "I_e": I_E})
        if a.poisson:
            net.add_poisson("P", rate=RATE, weight=W, indegree=K_EXT, delay=1.5)
        net.build(a.threads)
        return brainsim.Simulation(net, seed=1, threads=a.threads, dtype="float32",
                                   record={"spikes": False})
    make(100).run(10.0)  # compile (disk cache)
    sim = make(a.n)
    sim.run(100.0)
    t0, c0 = time.perf_counter(), time.process_time()
    sim.run(a.t_ms)
    return time.perf_counter() - t0, time.process_time() - c0, brainsim.__version__


def run_brian2(a):
    import brian2 as b2
    b2.prefs.logging.console_log_level = "ERROR"
    bdir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "out", "brian2_build",
                                        f"micro_p{int(a.poisson)}_t{a.threads}_n{a.n}"))
    stamp = os.path.join(bdir, "timing.txt")
    os.makedirs(bdir, exist_ok=True)
    if os.path.exists(stamp):
        os.remove(stamp)
    b2.set_device("cpp_standalone", directory=bdir, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = a.threads if a.threads > 1 else 0
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    b2.prefs.codegen.cpp.headers += ["<chrono>", "<fstream>", "<iomanip>"]
    b2.defaultclock.dt = 0.1 * b2.ms
    code = ('{{ std::ofstream _f("%s", std::ios::app); _f << std::setprecision(17) << '
            'std::chrono::duration<double>(std::chrono::steady_clock::now()'
            '.time_since_epoch()).count() << " " << (double)std::clock() / CLOCKS_PER_SEC '
            '<< "\\n"; }}') % stamp
    ns = {k: v * u for (k, v), u in zip(NEURON.items(), (
        b2.pF, b2.ms, b2.ms, b2.ms, b2.ms, b2.mV, b2.mV, b2.mV))}
    G = b2.NeuronGroup(a.n, """
        dv/dt = (E_L - v)/tau_m + (I_ex + I_in + I_e)/C_m : volt (unless refractory)
        dI_ex/dt = -I_ex/tau_syn_ex : amp
        dI_in/dt = -I_in/tau_syn_in : amp
        I_e : amp (constant)""", threshold="v >= V_th", reset="v = V_reset",
        refractory=NEURON["t_ref"] * b2.ms, method="exact", namespace=ns)
    G.v = NEURON["E_L"] * b2.mV
    G.I_e = I_E * b2.pA
    objs = [G]
    if a.poisson:
        objs.append(b2.PoissonInput(G, "I_ex", N=K_EXT, rate=RATE * b2.Hz, weight=W * b2.pA))
    net = b2.Network(*objs)
    net.run(100 * b2.ms)
    b2.device.insert_code("main", code)
    net.run(a.t_ms * b2.ms)
    b2.device.insert_code("main", code)
    b2.device.build(directory=bdir, compile=True, run=True, with_output=False)
    with open(stamp) as f:
        (w0, c0), (w1, c1) = [map(float, line.split()) for line in f]
    return w1 - w0, c1 - c0, b2.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", choices=("brainsim", "brian2"), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=N)
    ap.add_argument("--t-ms", type=float, default=1000.0)
    ap.add_argument("--poisson", type=int, default=1, choices=(0, 1))
    a = ap.parse_args()
    load0 = os.getloadavg()
    wall, cpu, version = (run_brainsim if a.sim == "brainsim" else run_brian2)(a)
    steps = a.n * round(a.t_ms / 0.1)
    print(json.dumps({"sim": a.sim, "version": version, "threads": a.threads, "n": a.n,
                      "poisson": a.poisson, "wall_s": wall, "cpu_s": cpu,
                      "wall_ns_per_neuron_step": wall / steps * 1e9,
                      "cpu_ns_per_neuron_step": cpu / steps * 1e9,
                      "loadavg_before": load0, "loadavg_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
