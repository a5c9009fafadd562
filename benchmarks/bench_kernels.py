"""Cost of one neuron-step in the CPU backend's two chunk loops: the per-neuron
reference loop (``cpu._update_chunk``) and the split, vectorised loops
(``cpu._fast_iaf``), on the same unconnected iaf_psc_exp neurons (1 thread, no
parallel region, no synapses), with DC only and with a shared Poisson drive.

    python benchmarks/bench_kernels.py [--n 77169] [--steps 200] [--repeats 3]

Prints one line per case: median process CPU ns per neuron-step of each loop and
their ratio; also checks that both loops left identical states.
"""
import argparse
import statistics
import time

import numpy as np
from numba import njit

from brainsim.backends import cpu
from brainsim.kernels import iaf_psc_exp, rng

CHUNK = 2048
# full-scale PD14 L23E without synapses: I_e = 300 pA keeps V below threshold (DC only)
PARAMS = {**iaf_psc_exp.DEFAULTS, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "E_L": -65.0,
          "V_reset": -65.0, "V_th": -50.0, "I_e": 300.0}


@njit(nogil=True)
def _run_fast(n_steps, chunk_lo, chunk_hi, pmode, prow, buf, V, S, ref, I_ou, inp, q, ref_steps,
              lam, tab, pkey, w, d, z):
    total = 0
    for t in range(n_steps):
        for c in range(chunk_lo.size):
            total += cpu._fast_iaf(c, t, 1, chunk_lo[c], chunk_hi[c], pmode, prow, 0, buf, V, S,
                                   ref, I_ou, inp, q, ref_steps, lam, tab, pkey, w, d, z, z, z)
    return total


@njit(nogil=True)
def _run_reference(n_steps, chunk_lo, chunk_hi, buf, V, S, ref, I_ou, inp, q_iaf, q_dtb, qrow,
                   ref_steps, lam, tab, idx, w, d, ou_on, z):
    total = 0
    for t in range(n_steps):
        for c in range(chunk_lo.size):
            total += cpu._update_chunk(c, t, 1, chunk_lo[c], chunk_hi[c], 0, buf, V, S, ref, I_ou,
                                       inp, q_iaf, q_dtb, qrow, ref_steps, lam, tab, idx, w, d,
                                       ou_on, z, z, z)
    return total


def _state(n, lam_value):
    V = np.full(n, -65.0, np.float32)
    S = np.zeros((2, n), np.float32)
    ref = np.zeros(n, np.int32)
    inp = np.zeros((2, n), np.float32)
    lam = np.full(n, lam_value) if lam_value > 0 else np.zeros(0)
    tab, idx = rng.poisson_tables(lam) if lam.size else (np.zeros((0, rng.TABLE_LEN + 1)),
                                                         np.zeros(0, np.int32))
    w = np.full(lam.size, 87.81, np.float32)
    d = np.full(lam.size, 15, np.int64)
    return V, S, ref, inp, lam, tab, idx, w, d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=77169)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    n = a.n
    lo = np.arange(0, n, CHUNK, dtype=np.int64)
    hi = np.minimum(lo + CHUNK, n)
    buf = np.zeros((lo.size, CHUNK), np.int32)
    q_iaf = iaf_psc_exp.derived(PARAMS, 0.1).astype(np.float32)
    q_tuple = tuple(np.float32(x) for x in q_iaf[0])
    qrow = np.zeros(n, np.int32)
    ref_steps = np.full(n, 20, np.int64)
    z = np.zeros(0, np.float32)
    I_ou = np.zeros(n, np.float32)
    print(f"{n} iaf_psc_exp neurons, chunks of {CHUNK}, {a.steps} steps, 1 thread, "
          f"median of {a.repeats} (process CPU ns per neuron-step)")
    for lam_value in (0.0, 0.128, 1.28):
        times, finals = {}, {}
        for name in ("reference", "fast"):
            V, S, ref, inp, lam, tab, idx, w, d = _state(n, lam_value)
            _, pkey = cpu._chunk_plan(lo, hi, qrow, lam, idx, w, d, np.zeros(0, np.int8), True,
                                      1)
            if name == "fast":
                def go(k):
                    return _run_fast(k, lo, hi, int(lam.size > 0), 0, buf, V, S, ref, I_ou, inp,
                                     q_tuple, ref_steps, lam, tab, pkey, w, d, z)
            else:
                def go(k):
                    return _run_reference(k, lo, hi, buf, V, S, ref, I_ou, inp, q_iaf,
                                          np.zeros((0, 18), np.float32), qrow, ref_steps, lam,
                                          tab, idx, w, d, np.zeros(0, np.int8), z)
            go(1)  # compile
            ts = []
            for _ in range(a.repeats):
                c0 = time.process_time()
                go(a.steps)
                ts.append((time.process_time() - c0) / (a.steps * n) * 1e9)
            times[name] = statistics.median(ts)
            finals[name] = (V.copy(), S.copy(), ref.copy())
        same = all(np.array_equal(x, y) for x, y in zip(finals["fast"], finals["reference"]))
        print(f"lam {lam_value:5.3f} per step: reference {times['reference']:5.2f} ns, "
              f"fast {times['fast']:5.2f} ns, ratio {times['fast'] / times['reference']:.2f}, "
              f"identical states: {same}")


if __name__ == "__main__":
    main()
