"""Slow, obviously-correct versions of brainsim's kernels, for the tests.

Everything here is plain Python (ints and floats) or NumPy/SciPy, written
from the published algorithms and model equations, not from the fast code:

- the counter-based RNG: splitmix64 finalizer (Steele, Lea & Flood 2014)
  chained over the key words with Python ints masked to 64 bits; uniform,
  Box-Muller normal, Poisson by inversion (lam < 12) or PTRS (Hoermann 1993);
- one step of NEST's ``iaf_psc_exp`` with propagators from the matrix
  exponential of the linear system (Taylor series with scaling and
  squaring, in plain NumPy), not from the closed forms;
- one forward-Euler step of the DTB neuron (shared/reference/dtb.md);
- a network simulator: a Python loop over steps and neurons with a dict of
  pending deliveries keyed by arrival step.
"""
import math

import numpy as np

MASK64 = 0xFFFFFFFFFFFFFFFF
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
STREAM_POISSON = 1
STREAM_OU = 2
POISSON_INVERSION_MAX = 12.0


# ------------------------------------------------------------------ RNG
def mix64(z):
    """splitmix64 finalizer on a Python int in [0, 2**64)."""
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def hash_key(seed, stream, neuron, step, k):
    """64-bit hash of the key: mix(seed + golden), then fold in
    (stream << 32) + k, the neuron and the step, mixing after each."""
    h = mix64((seed + GOLDEN) & MASK64)
    h = mix64(h ^ (((stream << 32) + k) & MASK64))
    h = mix64(h ^ neuron)
    return mix64(h ^ step)


def uniform(seed, stream, neuron, step, k):
    """Top 53 bits of the hash divided by 2**53: a float in [0, 1)."""
    return (hash_key(seed, stream, neuron, step, k) >> 11) / 2.0**53


def normal(seed, stream, neuron, step, k):
    """Box-Muller (cosine branch) from uniforms k and k + 1."""
    u1 = 1.0 - uniform(seed, stream, neuron, step, k)
    u2 = uniform(seed, stream, neuron, step, k + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def poisson(lam, seed, stream, neuron, step):
    """Poisson count: inversion with uniform k = 0 below POISSON_INVERSION_MAX,
    PTRS with uniform pairs k = (1, 2), (3, 4), ... above."""
    if lam <= 0.0:
        return 0
    if lam < POISSON_INVERSION_MAX:
        return _poisson_inversion(lam, uniform(seed, stream, neuron, step, 0))
    return _poisson_ptrs(lam, lambda k: uniform(seed, stream, neuron, step, k))


def _poisson_inversion(lam, u):
    # smallest x with u <= P(X <= x), summing the pmf term by term
    x, pmf = 0, math.exp(-lam)
    cdf = pmf
    while u > cdf and x < 1000:
        x += 1
        pmf = pmf * lam / x
        cdf += pmf
    return x


def _poisson_ptrs(lam, draw):
    """Hoermann (1993), 'The transformed rejection method for generating
    Poisson random variables', Insurance Math. Econom. 12:39, algorithm PTRS."""
    b = 0.931 + 2.53 * math.sqrt(lam)
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    k = 1
    while True:
        u = draw(k) - 0.5
        v = draw(k + 1)
        k += 2
        us = 0.5 - abs(u)
        x = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return x
        if x < 0 or (us < 0.013 and v > us):
            continue
        log_accept = math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b)
        if log_accept <= -lam + x * math.log(lam) - math.lgamma(x + 1.0):
            return x


# -------------------------------------------------------- iaf_psc_exp
def expm(a):
    """Matrix exponential of square matrices stacked on leading axes: the
    Taylor series of a / 2**s (1-norm <= 1/4, 30 terms, remainder < 1e-40)
    squared s times. Plain NumPy: no LAPACK, so no BLAS threads."""
    a = np.asarray(a, float)
    norm = np.abs(a).sum(axis=-2).max(initial=0.0)
    s = max(0, math.ceil(math.log2(norm / 0.25))) if norm > 0 else 0
    b = a / 2.0**s
    out = np.broadcast_to(np.eye(a.shape[-1]), a.shape).copy()
    term = out.copy()
    for k in range(1, 31):
        term = term @ b / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


IAF_PARAMS = ("C_m", "tau_m", "t_ref", "E_L", "V_reset", "V_th", "tau_syn_ex", "tau_syn_in",
              "I_e", "V_m")


def iaf_propagators(p, dt):
    """Propagators of one step dt (ms) from expm of the linear system.

    State x = (I_ex, I_in, I_const, C_m (V - E_L)):
    dI_ex/dt = -I_ex/tau_syn_ex, dI_in/dt = -I_in/tau_syn_in, dI_const/dt = 0,
    d[C_m (V - E_L)]/dt = -C_m (V - E_L)/tau_m + I_ex + I_in + I_const.
    (Scaling the last row by C_m keeps all entries of the matrix O(1/tau).)
    Parameters may be arrays (one batched expm); returns a dict of arrays.
    """
    tau_ex, tau_in, tau_m, c = np.broadcast_arrays(
        *(np.asarray(p[k], float) for k in ("tau_syn_ex", "tau_syn_in", "tau_m", "C_m")))
    a = np.zeros(tau_m.shape + (4, 4))
    a[..., 0, 0] = -1.0 / tau_ex
    a[..., 1, 1] = -1.0 / tau_in
    a[..., 3, :3] = 1.0
    a[..., 3, 3] = -1.0 / tau_m
    e = expm(a * dt)
    return {"P11ex": e[..., 0, 0], "P11in": e[..., 1, 1], "P22": e[..., 3, 3],
            "P21ex": e[..., 3, 0] / c, "P21in": e[..., 3, 1] / c, "P20": e[..., 3, 2] / c}


def refractory_steps(t_ref, dt):
    """Whole steps of the refractory period (NEST: round(t_ref / dt))."""
    return int(round(t_ref / dt))


def iaf_step(v, i_ex, i_in, ref, in_ex, in_in, i_cur, p, prop, ref_steps):
    """One step of NEST's iaf_psc_exp (iaf_psc_exp::update, NEST 3):
    V propagated with the currents of the previous step unless refractory,
    currents decay and take this step's input, then the threshold test.
    Returns (v, i_ex, i_in, ref, spiked)."""
    if ref == 0:
        u = v - p["E_L"]
        u = (prop["P22"] * u + prop["P21ex"] * i_ex + prop["P21in"] * i_in
             + prop["P20"] * (p["I_e"] + i_cur))
        v = p["E_L"] + u
    else:
        ref = ref - 1
    i_ex = prop["P11ex"] * i_ex + in_ex
    i_in = prop["P11in"] * i_in + in_in
    spiked = v >= p["V_th"]
    if spiked:
        v = p["V_reset"]
        ref = ref_steps
    return v, i_ex, i_in, ref, spiked


# ------------------------------------------------------------ lif_dtb
DTB_CHANNELS = ("AMPA", "NMDA", "GABA_A", "GABA_B")
DTB_PARAMS = ("C_m", "t_ref", "g_L", "E_L", "V_th", "V_reset", "I_e", "V_m") + tuple(
    f"{x}_{ch}" for x in ("g", "E", "tau") for ch in DTB_CHANNELS)


def dtb_step(v, j, ref, in_e, in_i, i_cur, p, dt, ref_steps):
    """One forward-Euler step of the DTB neuron (dtb.md, steps 2-4).

    ``j`` is a dict channel -> trace. I_syn uses V and J of the previous
    step; refractory neurons are held at V_reset. Returns (v, j, ref, spiked).
    """
    i_syn = sum(p["g_" + ch] * (p["E_" + ch] - v) * j[ch] for ch in DTB_CHANNELS)
    if ref > 0:
        ref = ref - 1
        v = p["V_reset"]
    else:
        dv = (p["g_L"] * (p["E_L"] - v) + i_syn + p["I_e"] + i_cur) / p["C_m"]
        v = v + dt * dv
    spiked = v >= p["V_th"]
    if spiked:
        v = p["V_reset"]
        ref = ref_steps
    arriving = {"AMPA": in_e, "NMDA": in_e, "GABA_A": in_i, "GABA_B": in_i}
    j = {ch: j[ch] * math.exp(-dt / p["tau_" + ch]) + arriving[ch] for ch in DTB_CHANNELS}
    return v, j, ref, spiked


# ------------------------------------------------------------ network
def synapse_list(net):
    """(source, target, weight, delay_steps) of a built Network, read from
    its per-partition CSR, sources ascending, each source's synapses in
    stored order (which is the order the fast code adds them in)."""
    out = []
    tgt, w, d = (net.synapses[key] for key in ("targets", "weights", "delays"))
    for part in net.partitions:
        for r, s in enumerate(part.sources):
            for k in range(part.offset + part.indptr[r], part.offset + part.indptr[r + 1]):
                out.append((int(s), int(tgt[k]), float(w[k]), int(d[k])))
    out.sort(key=lambda syn: syn[0])  # stable: keeps each source's stored order
    return out


def _neurons(net):
    """Per neuron: (model, kind, params dict) from the network's populations
    and per-neuron columns."""
    names = set(IAF_PARAMS) | set(DTB_PARAMS)
    cols = {nm: net.neuron_param(nm) for nm in names}
    out = []
    for pop in net.populations.values():
        wanted = IAF_PARAMS if pop.model == "iaf_psc_exp" else DTB_PARAMS
        for i in range(pop.start, pop.stop):
            out.append((pop.model, pop.kind, {nm: float(cols[nm][i]) for nm in wanted}))
    return out


def simulate(net, n_steps, seed, poisson_inputs=(), ou_inputs=(), record_v=(), synapses=None):
    """Simulate a built Network for ``n_steps`` steps.

    poisson_inputs: dicts (ids, rate Hz, weight, indegree, delay ms) as given
        to Network.add_poisson; ou_inputs: dicts (ids, mean, sigma, tau) as
        given to Network.add_ou; synapses: list of (src, tgt, w, delay_steps)
        (default: read from the network).
    Returns (spikes: list of (step, neuron) in emission order, V: array
    (n_steps, len(record_v)) after each step, final state dict).
    """
    dt = net.dt
    neurons = _neurons(net)
    n = len(neurons)
    synapses = synapse_list(net) if synapses is None else synapses
    outgoing = {}
    for s, t, w, d in synapses:
        outgoing.setdefault(s, []).append((t, w, d))
    poisson_of, ou_of = {}, {}
    for spec in poisson_inputs:
        lam = spec["rate"] * spec.get("indegree", 1) * dt / 1000.0
        d = max(1, int(round(spec.get("delay", dt) / dt)))
        for i in np.atleast_1d(spec["ids"]):
            poisson_of[int(i)] = (lam, float(spec["weight"]), d)
    for spec in ou_inputs:
        e = math.exp(-dt / spec["tau"])
        for i in np.atleast_1d(spec["ids"]):
            ou_of[int(i)] = (float(spec["mean"]), float(spec["sigma"]), e)

    v = [p["V_m"] for _, _, p in neurons]
    syn = [[0.0, 0.0] if m == "iaf_psc_exp" else dict.fromkeys(DTB_CHANNELS, 0.0)
           for m, _, _ in neurons]
    ref = [0] * n
    i_ou = [ou_of[i][0] if i in ou_of else 0.0 for i in range(n)]
    ref_steps = [refractory_steps(p["t_ref"], dt) for _, _, p in neurons]
    iaf = [i for i in range(n) if neurons[i][0] == "iaf_psc_exp"]
    props = [None] * n
    if iaf:
        table = iaf_propagators({k: [neurons[i][2][k] for i in iaf] for k in IAF_PARAMS}, dt)
        for row, i in enumerate(iaf):
            props[i] = {k: float(x[row]) for k, x in table.items()}

    pending = {}  # arrival step -> [excitatory sums, inhibitory sums]
    spikes = []
    v_rec = np.zeros((n_steps, len(record_v)))
    for t in range(n_steps):
        arriving = pending.pop(t, [[0.0] * n, [0.0] * n])
        fired = []
        for i in range(n):
            model, _, p = neurons[i]
            in_e, in_i = arriving[0][i], arriving[1][i]
            if i in poisson_of:
                lam, w, d = poisson_of[i]
                if t >= d:
                    x = poisson(lam, seed, STREAM_POISSON, i, t - d) * w
                    if w >= 0:
                        in_e += x
                    else:
                        in_i += x
            i_cur = 0.0
            if i in ou_of:
                mu, sigma, e = ou_of[i]
                xi = normal(seed, STREAM_OU, i, t, 0)
                i_ou[i] = i_ou[i] + (1.0 - e) * (mu - i_ou[i]) + sigma * math.sqrt(1.0 - e * e) * xi
                i_cur = i_ou[i]
            if model == "iaf_psc_exp":
                v[i], a, b, ref[i], sp = iaf_step(v[i], syn[i][0], syn[i][1], ref[i], in_e, in_i,
                                                  i_cur, p, props[i], ref_steps[i])
                syn[i] = [a, b]
            else:
                v[i], syn[i], ref[i], sp = dtb_step(v[i], syn[i], ref[i], in_e, in_i, i_cur, p,
                                                    dt, ref_steps[i])
            if sp:
                fired.append(i)
        for col, i in enumerate(record_v):
            v_rec[t, col] = v[i]
        for s in fired:
            spikes.append((t, s))
            ch = 0 if neurons[s][1] == "E" else 1
            for tgt, w, d in outgoing.get(s, ()):
                slot = pending.setdefault(t + d, [[0.0] * n, [0.0] * n])
                slot[ch][tgt] += w
    state = {"V": np.array(v), "ref": np.array(ref), "I_ou": np.array(i_ou), "syn": syn}
    return spikes, v_rec, state
