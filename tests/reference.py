"""Slow, obviously-correct versions of brainsim's kernels, for the tests.

Everything here is plain Python (ints and floats) or NumPy/SciPy, written
from the published algorithms and model equations, not from the fast code:

- the counter-based RNG: splitmix64 finalizer (Steele, Lea & Flood 2014)
  chained over the key words with Python ints masked to 64 bits; uniform,
  ziggurat normal (Marsaglia & Tsang 2000; tables and branches with libm's
  exp and log), Poisson by inversion (lam < 12) or PTRS (Hoermann 1993);
- one step of NEST's ``iaf_psc_exp`` with propagators from the matrix
  exponential of the linear system (Taylor series with scaling and
  squaring, in plain NumPy), not from the closed forms;
- one forward-Euler step of the DTB neuron (shared/reference/dtb.md);
- a network simulator: a Python loop over steps and neurons with a dict of
  pending deliveries keyed by arrival step (``simulate``; other models plug
  in through its ``models`` argument, as the user model of tests/user_models.py
  does with ``qif_step``);
- the ODE models iaf_cond_exp, aeif_cond_exp and hh_psc_alpha integrated
  step by step with SciPy's ``solve_ivp`` (DOP853, tolerances 1e-10,
  threshold crossings as events), independent of brainsim's integrator;
- izhikevich (NEST's two Euler schemes) and gif_psc_exp (exact propagators
  from ``iaf_propagators``, escape noise from the same counter-based
  uniforms) with their own small network simulator ``simulate_izh_gif``.
"""
import math

import numpy as np
from scipy.integrate import solve_ivp

MASK64 = 0xFFFFFFFFFFFFFFFF
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
STREAM_POISSON = 1
STREAM_OU = 2
STREAM_NEURON = 3
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


ZIG_LAYERS = 256
ZIG_R = 3.654152885361009  # Marsaglia & Tsang's r for 256 layers


def ziggurat_tables():
    """The ziggurat of the standard normal's f(x) = exp(-x^2/2), x >= 0,
    from its definition with libm's exp and log: every layer has the area
    v = r f(r) + int_r^inf f; returns (x, f) with x[0] = v / f(r), x[1] = r,
    x[i+1] = f^-1(f(x[i]) + v / x[i]), x[256] = 0, f = f(x)."""
    v = ZIG_R * math.exp(-0.5 * ZIG_R**2) + math.sqrt(math.pi / 2) * math.erfc(ZIG_R / math.sqrt(2))
    x = [v / math.exp(-0.5 * ZIG_R**2), ZIG_R]
    f = [math.exp(-0.5 * ZIG_R**2)] * 2
    for i in range(1, ZIG_LAYERS - 1):
        f.append(f[i] + v / x[i])
        x.append(math.sqrt(-2.0 * math.log(f[-1])))
    return x + [0.0], f + [1.0]


_ZIG = ziggurat_tables()


def normal(seed, stream, neuron, step, k):
    """Ziggurat (Marsaglia & Tsang 2000) on the hashes of draws k, k+1, ...:
    layer = low 8 bits, sign = bit 8, abscissa = layer width x uniform (top 53
    bits); inside the layer's rectangle: done; base layer outside: tail
    (Marsaglia 1964) with pairs of uniforms; else the wedge test with the
    next uniform, and a rejected point retries with the draw after that."""
    x, f = _ZIG
    j = k
    while True:
        h = hash_key(seed, stream, neuron, step, j)
        i, sign = h & 255, -1.0 if (h >> 8) & 1 else 1.0
        z = (h >> 11) / 2.0**53 * x[i]
        if z < x[i + 1]:
            return sign * z
        if i == 0:
            while True:
                a = -math.log(1.0 - uniform(seed, stream, neuron, step, j + 1)) / ZIG_R
                b = -math.log(1.0 - uniform(seed, stream, neuron, step, j + 2))
                j += 2
                if 2.0 * b > a * a:
                    return sign * (ZIG_R + a)
        u = uniform(seed, stream, neuron, step, j + 1)
        if f[i] + u * (f[i + 1] - f[i]) < math.exp(-0.5 * z * z):
            return sign * z
        j += 2


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


def _neurons(net, models):
    """Per neuron: (model, kind, params dict) from the network's populations
    and per-neuron columns."""
    names = set(IAF_PARAMS) | set(DTB_PARAMS)
    for spec in models.values():
        names |= set(spec["params"])
    cols = {nm: net.neuron_param(nm) for nm in names}
    out = []
    for pop in net.populations.values():
        wanted = {"iaf_psc_exp": IAF_PARAMS, "lif_dtb": DTB_PARAMS}.get(pop.model) or models[
            pop.model]["params"]
        for i in range(pop.start, pop.stop):
            out.append((pop.model, pop.kind, {nm: float(cols[nm][i]) for nm in wanted}))
    return out


def simulate(net, n_steps, seed, poisson_inputs=(), ou_inputs=(), record_v=(), synapses=None,
             models=None):
    """Simulate a built Network for ``n_steps`` steps.

    poisson_inputs: dicts (ids, rate Hz, weight, indegree, delay ms) as given
        to Network.add_poisson; ou_inputs: dicts (ids, mean, sigma, tau) as
        given to Network.add_ou; synapses: list of (src, tgt, w, delay_steps)
        (default: read from the network); models: other models by name, each
        a dict with "params" (names), "init" (params -> state list, V first)
        and "step" ((state, in_e, in_i, i_cur, params, dt) -> (state, spiked)).
    Returns (spikes: list of (step, neuron) in emission order, V: array
    (n_steps, len(record_v)) after each step, final state dict).
    """
    dt = net.dt
    models = models or {}
    neurons = _neurons(net, models)
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
           if m == "lif_dtb" else models[m]["init"](p)[1:] for m, _, p in neurons]
    ref = [0] * n
    i_ou = [ou_of[i][0] if i in ou_of else 0.0 for i in range(n)]
    ref_steps = [refractory_steps(p["t_ref"], dt) if "t_ref" in p else 0 for _, _, p in neurons]
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
            elif model == "lif_dtb":
                v[i], syn[i], ref[i], sp = dtb_step(v[i], syn[i], ref[i], in_e, in_i, i_cur, p,
                                                    dt, ref_steps[i])
            else:
                state, sp = models[model]["step"]([v[i]] + list(syn[i]), in_e, in_i, i_cur, p,
                                                  dt)
                v[i], syn[i] = state[0], state[1:]
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


# ------------------------------------------------ user model (tests/user_models)
def qif_step(v, i_ex, i_in, in_ex, in_in, i_ext, p, dt):
    """One forward-Euler step of the quadratic integrate-and-fire neuron of
    tests/user_models.py, written from its equations. Returns
    (v, i_ex, i_in, spiked)."""
    dv = (p["k"] * (v - p["V_r"]) * (v - p["V_t"]) + i_ex + i_in + p["I_e"] + i_ext) / p["C_m"]
    v = v + dt * dv
    spiked = v >= p["V_peak"]
    if spiked:
        v = p["V_reset"]
    decay = math.exp(-dt / p["tau_syn"])
    return v, i_ex * decay + in_ex, i_in * decay + in_in, spiked


# ======================================================================
# ODE models: iaf_cond_exp, aeif_cond_exp, hh_psc_alpha
# Slow, obviously-correct references for the ODE neuron models
# (iaf_cond_exp, aeif_cond_exp, hh_psc_alpha), independent of brainsim's
# adaptive integrator.
#
# Each step of length dt is integrated by ``scipy.integrate.solve_ivp``
# (DOP853, tight tolerances) with the per-step semantics of NEST 3.10 that the
# models document: the input that arrives in a step is added after that
# step's integration; iaf_cond_exp tests V >= V_th at the end of the step and
# holds V at V_reset while refractory; aeif_cond_exp stops the integration at
# the exact crossing of V_peak (an event of solve_ivp), resets V, adds b to w
# and goes on to the end of the step (held at V_reset when t_ref > 0);
# hh_psc_alpha detects a spike at the end of a step where V >= 0 mV and V fell
# during the step, and refractoriness only blocks detection.
#
# Units: mV, ms, nS, pA, pF. Inputs per step: ``i_e`` (pA, the I_e in force
# in each step), ``w_ex`` and ``w_in`` (summed weights arriving in each step,
# in the receptor's unit and sign: nS or pA, inhibitory <= 0).
ODE_RTOL = 1e-10
ODE_ATOL = 1e-10


def _solve(fun, y, t0, t1, events=None):
    sol = solve_ivp(fun, (t0, t1), y, method="DOP853", rtol=ODE_RTOL, atol=ODE_ATOL,
                    events=events)
    if sol.status == -1:
        raise RuntimeError(sol.message)
    return sol


def _per_step(x, n):
    return np.broadcast_to(np.asarray(x, float), (n,))


def _n_ref(p, dt):
    return int(round(p["t_ref"] / dt))


# ---------------------------------------------------------- iaf_cond_exp
def iaf_cond_exp(p, dt, i_e, w_ex, w_in):
    """V_m after each step (mV) and the steps with a spike."""
    n = len(i_e)
    i_e, w_ex, w_in = (_per_step(x, n) for x in (i_e, w_ex, w_in))
    v, g_ex, g_in, r = p["V_m"], 0.0, 0.0, 0
    vm, spikes = np.empty(n), []
    for k in range(n):
        refr, cur = r > 0, i_e[k]

        def f(t, y):
            v = y[0]
            dv = 0.0 if refr else (cur - p["g_L"] * (v - p["E_L"]) - y[1] * (v - p["E_ex"])
                                   - y[2] * (v - p["E_in"])) / p["C_m"]
            return [dv, -y[1] / p["tau_syn_ex"], -y[2] / p["tau_syn_in"]]

        v, g_ex, g_in = _solve(f, [v, g_ex, g_in], 0.0, dt).y[:, -1]
        if r > 0:
            r -= 1
            v = p["V_reset"]
        elif v >= p["V_th"]:
            spikes.append(k)
            r = _n_ref(p, dt)
            v = p["V_reset"]
        g_ex += w_ex[k]
        g_in -= w_in[k]
        vm[k] = v
    return vm, np.array(spikes, int)


# --------------------------------------------------------- aeif_cond_exp
def aeif_cond_exp(p, dt, i_e, w_ex, w_in):
    """V_m and w after each step (mV, pA) and the steps with a spike (a
    step with several crossings is listed once)."""
    n = len(i_e)
    i_e, w_ex, w_in = (_per_step(x, n) for x in (i_e, w_ex, w_in))
    v_spike = p["V_peak"] if p["Delta_T"] > 0 else p["V_th"]
    y = np.array([p["V_m"], 0.0, 0.0, 0.0])
    r = 0
    vm, wm, spikes = np.empty(n), np.empty(n), []
    for k in range(n):
        state = {"refr": r > 0}
        cur = i_e[k]

        def f(t, y):
            # V capped at the detection potential (the event stops the
            # integration there; trial stages of the solver may overshoot)
            v = p["V_reset"] if state["refr"] else min(y[0], v_spike)
            i_sp = 0.0
            if p["Delta_T"] > 0:
                i_sp = p["g_L"] * p["Delta_T"] * math.exp((v - p["V_th"]) / p["Delta_T"])
            dv = 0.0 if state["refr"] else (
                cur + i_sp - p["g_L"] * (v - p["E_L"]) - y[1] * (v - p["E_ex"])
                - y[2] * (v - p["E_in"]) - y[3]) / p["C_m"]
            return [dv, -y[1] / p["tau_syn_ex"], -y[2] / p["tau_syn_in"],
                    (p["a"] * (v - p["E_L"]) - y[3]) / p["tau_w"]]

        def cross(t, y):  # Delta_T = 0: no event, the test is at the step's end
            return -1.0 if state["refr"] or p["Delta_T"] == 0 else y[0] - v_spike
        cross.terminal, cross.direction = True, 1.0

        t, fired = 0.0, False
        while dt - t > 1e-12 * dt:
            sol = _solve(f, y, t, dt, events=cross)
            y = sol.y[:, -1].copy()
            if sol.status == 1:  # V reached V_peak: reset inside the step
                t = float(sol.t_events[0][0])
                y = sol.y_events[0][0].copy()
                y[0] = p["V_reset"]
                y[3] += p["b"]
                fired = True
                state["refr"] = _n_ref(p, dt) > 0
            else:
                t = dt
        if p["Delta_T"] == 0 and not state["refr"] and y[0] >= v_spike:
            y[0] = p["V_reset"]
            y[3] += p["b"]
            fired = True
        if fired:
            spikes.append(k)
            r = _n_ref(p, dt)
        elif r > 0:
            r -= 1
        y[1] += w_ex[k]
        y[2] -= w_in[k]
        vm[k], wm[k] = y[0], y[3]
    return vm, wm, np.array(spikes, int)


# ---------------------------------------------------------- hh_psc_alpha
def hh_rates(v):
    """(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n), 1/ms, at V (mV)."""
    def lin(c, x):  # c x / (1 - exp(-x / 10)), its limit 10 c at x = 0
        return 10.0 * c if abs(x) < 1e-9 else c * x / (1.0 - math.exp(-x / 10.0))
    return (lin(0.1, v + 40.0), 4.0 * math.exp(-(v + 65.0) / 18.0),
            0.07 * math.exp(-(v + 65.0) / 20.0), 1.0 / (1.0 + math.exp(-(v + 35.0) / 10.0)),
            lin(0.01, v + 55.0), 0.125 * math.exp(-(v + 65.0) / 80.0))


def hh_psc_alpha(p, dt, i_e, w_ex, w_in):
    """V_m after each step (mV) and the steps with a spike."""
    n = len(i_e)
    i_e, w_ex, w_in = (_per_step(x, n) for x in (i_e, w_ex, w_in))
    y = np.array([p["V_m"], p["Act_m"], p["Inact_h"], p["Act_n"], 0.0, 0.0, 0.0, 0.0])
    r = 0
    vm, spikes = np.empty(n), []
    for k in range(n):
        cur = i_e[k]

        def f(t, y):
            v, m, h, nn, di_ex, i_ex, di_in, i_in = y
            a_m, b_m, a_h, b_h, a_n, b_n = hh_rates(v)
            i_ion = (p["g_Na"] * m ** 3 * h * (v - p["E_Na"]) + p["g_K"] * nn ** 4 * (v - p["E_K"])
                     + p["g_L"] * (v - p["E_L"]))
            return [(cur + i_ex + i_in - i_ion) / p["C_m"],
                    a_m * (1 - m) - b_m * m, a_h * (1 - h) - b_h * h, a_n * (1 - nn) - b_n * nn,
                    -di_ex / p["tau_syn_ex"], di_ex - i_ex / p["tau_syn_ex"],
                    -di_in / p["tau_syn_in"], di_in - i_in / p["tau_syn_in"]]

        v_old = y[0]
        y = _solve(f, y, 0.0, dt).y[:, -1].copy()
        y[4] += w_ex[k] * math.e / p["tau_syn_ex"]
        y[6] += w_in[k] * math.e / p["tau_syn_in"]
        if r > 0:
            r -= 1
        elif y[0] >= 0.0 and v_old > y[0]:
            spikes.append(k)
            r = _n_ref(p, dt)
        vm[k] = y[0]
    return vm, np.array(spikes, int)


MODELS = {"iaf_cond_exp": iaf_cond_exp, "aeif_cond_exp": aeif_cond_exp,
          "hh_psc_alpha": hh_psc_alpha}


def arrivals(spike_times, weight, delay, dt, n):
    """Summed weight arriving in each of n steps from spikes at
    ``spike_times`` (ms) with ``delay`` (ms): a spike stamped T reaches its
    target in the step that ends at T + delay (index round((T + d) / dt) - 1)."""
    out = np.zeros(n)
    for t in spike_times:
        k = int(round((t + delay) / dt)) - 1
        if k < n:
            out[k] += weight
    return out


# ======================================================================
# Discrete-time models: izhikevich, gif_psc_exp
# Slow, obviously-correct versions of the ``izhikevich`` and ``gif_psc_exp``
# models (plain Python floats and lists, written from the model equations and
# NEST 3.10's documented and observed update order, not from the fast code),
# and a small network simulator for networks of these models and of
# ``spike_source`` nodes.
#
# - Izhikevich (2003): forward Euler of dV/dt = 0.04 V^2 + 5 V + 140 - U + I,
#   dU/dt = a (b V - U); NEST's ``consistent_integration`` choice between the
#   standard step and the published two half steps (spike input then a
#   current); V bounded below by V_min; V >= V_th resets.
# - gif_psc_exp (Mensi et al. 2012): membrane and synaptic propagators from
#   the matrix exponential of the linear system (``reference.iaf_propagators``
#   with tau_m = C_m / g_L), spike-triggered currents and threshold kernels as
#   lists, escape noise lambda_0 exp((V - V_T) / Delta_V) (lambda_0 in 1/s),
#   spike probability 1 - exp(-lambda h) compared with the same counter-based
#   uniform the engine draws (stream 3, k = 0), refractory steps counted in
#   NEST's integer tics (1 us).

IZH_PARAMS = ("a", "b", "c", "d", "V_th", "V_min", "I_e", "consistent_integration", "V_m",
              "U_m")
GIF_PARAMS = ("C_m", "g_L", "E_L", "V_reset", "V_T_star", "Delta_V", "lambda_0", "t_ref",
              "tau_syn_ex", "tau_syn_in", "I_e", "V_m")
GIF_LISTS = ("tau_stc", "q_stc", "tau_sfa", "q_sfa")


# ------------------------------------------------------------ izhikevich
def izhikevich_step(v, u, jump, i_cur, p, dt):
    """One step of NEST's izhikevich. ``jump``: summed weights (mV) of the
    spikes arriving in this step; ``i_cur``: external current (pA) besides
    I_e. Returns (v, u, spiked)."""
    current = p["I_e"] + i_cur
    if p["consistent_integration"]:
        # standard Euler from the values at the start of the step, then the jump
        dv = 0.04 * v * v + 5.0 * v + 140.0 - u + current
        u = u + dt * p["a"] * (p["b"] * v - u)
        v = v + (dt * dv + jump)  # NEST's association, to the last bit
    else:
        # Izhikevich (2003): two half steps of V, U from the new V; input is a current
        current = current + jump
        for _ in range(2):
            v = v + 0.5 * dt * (0.04 * v * v + 5.0 * v + 140.0 - u + current)
        u = u + dt * p["a"] * (p["b"] * v - u)
    v = max(v, p["V_min"])
    spiked = v >= p["V_th"]
    if spiked:
        v = p["c"]
        u = u + p["d"]
    return v, u, spiked


# ----------------------------------------------------------- gif_psc_exp
def tics(t_ms):
    """A time in NEST's integer tics of 1 us."""
    return int(round(t_ms * 1000.0))


def gif_refractory_steps(t_ref, dt):
    """NEST's refractory steps: t_ref in tics, rounded up to whole steps."""
    return -(-tics(t_ref) // tics(dt))


def gif_constants(p, dt):
    """Propagators (matrix exponential), kernel decays, refractory steps."""
    prop = iaf_propagators({"tau_syn_ex": p["tau_syn_ex"], "tau_syn_in":
                                      p["tau_syn_in"], "tau_m": p["C_m"] / p["g_L"],
                                      "C_m": p["C_m"]}, dt)
    out = {k: float(v) for k, v in prop.items()}
    out["d_stc"] = [math.exp(-dt / tau) for tau in p["tau_stc"]]
    out["d_sfa"] = [math.exp(-dt / tau) for tau in p["tau_sfa"]]
    out["n_ref"] = gif_refractory_steps(p["t_ref"], dt)
    return out


def gif_init(p):
    """State dict of a gif_psc_exp neuron at t = 0."""
    return {"V_m": p["V_m"], "I_syn_ex": 0.0, "I_syn_in": 0.0, "r": 0,
            "stc": [0.0] * len(p["q_stc"]), "sfa": [0.0] * len(p["q_sfa"])}


def gif_step(st, in_ex, in_in, i_cur, p, k, dt, uniform):
    """One step of NEST's gif_psc_exp on state dict ``st`` (changed in
    place); ``k``: constants of ``gif_constants``; ``uniform``: the step's
    draw in [0, 1). Returns True if the neuron spiked."""
    i_stc = sum(st["stc"])  # the kernels as the last step left them
    v_t = p["V_T_star"] + sum(st["sfa"])
    st["stc"] = [x * d for x, d in zip(st["stc"], k["d_stc"])]
    st["sfa"] = [x * d for x, d in zip(st["sfa"], k["d_sfa"])]
    st["I_syn_ex"] = k["P11ex"] * st["I_syn_ex"] + in_ex
    st["I_syn_in"] = k["P11in"] * st["I_syn_in"] + in_in
    if st["r"] > 0:
        st["r"] -= 1
        st["V_m"] = p["V_reset"]
        return False
    v = (p["E_L"] + k["P22"] * (st["V_m"] - p["E_L"]) + k["P21ex"] * st["I_syn_ex"]
         + k["P21in"] * st["I_syn_in"] + k["P20"] * (p["I_e"] + i_cur - i_stc))
    st["V_m"] = v
    x = (v - v_t) / p["Delta_V"]
    rate = p["lambda_0"] * (math.exp(x) if x < 700.0 else math.inf)  # 1/s
    if not uniform < 1.0 - math.exp(-rate * dt / 1000.0):
        return False
    st["stc"] = [x + q for x, q in zip(st["stc"], p["q_stc"])]
    st["sfa"] = [x + q for x, q in zip(st["sfa"], p["q_sfa"])]
    st["r"] = k["n_ref"]
    return True


# --------------------------------------------------------------- network
def _izh_gif_neurons(net):
    """Per neuron: (model, kind, params dict with lists for list parameters)."""
    cols = {}
    out = []
    for pop in net.populations.values():
        names = {"izhikevich": IZH_PARAMS, "gif_psc_exp": GIF_PARAMS,
                 "spike_source": ("spike_time",)}[pop.model]
        for nm in names:
            if nm not in cols:
                cols[nm] = net.neuron_param(nm)
        lists = {nm: list(pop.params[nm]) for nm in GIF_LISTS if nm in pop.params}
        for i in range(pop.start, pop.stop):
            p = {nm: float(cols[nm][i]) for nm in names}
            out.append((pop.model, pop.kind, {**p, **lists}))
    return out


def _step_neuron(model, st, p, k, in_e, in_i, i_cur, dt, seed, i, t):
    """Advance neuron i (any model) by step t; returns (state, spiked)."""
    if model == "izhikevich":
        v, u, sp = izhikevich_step(st[0], st[1], in_e + in_i, i_cur, p, dt)
        return (v, u), sp
    if model == "gif_psc_exp":
        return st, gif_step(st, in_e, in_i, i_cur, p, k, dt,
                            uniform(seed, STREAM_NEURON, i, t, 0))
    return st, t == round(p["spike_time"] / dt) - 1  # spike_source


def _init(model, p):
    if model == "izhikevich":
        return (p["V_m"], p["U_m"])
    if model == "gif_psc_exp":
        return gif_init(p)
    return None


def _membrane(model, st):
    if model == "izhikevich":
        return st[0]
    if model == "gif_psc_exp":
        return st["V_m"]
    return 0.0


def simulate_izh_gif(net, n_steps, seed, poisson_inputs=(), record_v=(), changes=None):
    """Simulate a built Network of izhikevich, gif_psc_exp and spike_source
    populations for ``n_steps`` steps.

    poisson_inputs: dicts (ids, rate Hz, weight, indegree, delay ms) as given
        to Network.add_poisson; changes: {step: [(ids, parameter, value)]},
        parameter changes that apply from that step on (set_property between
        runs).
    Returns (spikes: list of (step, neuron), V: array (n_steps,
    len(record_v)) after each step, final states).
    """
    dt = net.dt
    neurons = _izh_gif_neurons(net)
    n = len(neurons)
    outgoing = {}
    for s, tgt, w, d in synapse_list(net):
        outgoing.setdefault(s, []).append((tgt, w, d))
    poisson_of = {}
    for spec in poisson_inputs:
        lam = spec["rate"] * spec.get("indegree", 1) * dt / 1000.0
        d = max(1, int(round(spec.get("delay", dt) / dt)))
        for i in np.atleast_1d(spec["ids"]):
            poisson_of[int(i)] = (lam, float(spec["weight"]), d)
    consts = [gif_constants(p, dt) if m == "gif_psc_exp" else None for m, _, p in neurons]
    states = [_init(m, p) for m, _, p in neurons]
    pending, spikes = {}, []
    v_rec = np.zeros((n_steps, len(record_v)))
    for t in range(n_steps):
        for ids, name, value in (changes or {}).get(t, ()):
            for i in np.atleast_1d(ids):
                model, _, prm = neurons[int(i)]
                prm[name] = float(value)
                if model == "gif_psc_exp":
                    consts[int(i)] = gif_constants(prm, dt)
        arriving = pending.pop(t, [[0.0] * n, [0.0] * n])
        fired = []
        for i, (model, _, p) in enumerate(neurons):
            in_e, in_i = arriving[0][i], arriving[1][i]
            if i in poisson_of and t >= poisson_of[i][2]:
                lam, w, d = poisson_of[i]
                x = poisson(lam, seed, STREAM_POISSON, i, t - d) * w
                if w >= 0:
                    in_e += x
                else:
                    in_i += x
            states[i], sp = _step_neuron(model, states[i], p, consts[i], in_e, in_i, 0.0, dt,
                                         seed, i, t)
            if sp:
                fired.append(i)
        for col, i in enumerate(record_v):
            v_rec[t, col] = _membrane(neurons[i][0], states[i])
        for s in fired:
            spikes.append((t, s))
            ch = 0 if neurons[s][1] == "E" else 1
            for tgt, w, d in outgoing.get(s, ()):
                slot = pending.setdefault(t + d, [[0.0] * n, [0.0] * n])
                slot[ch][tgt] += w
    return spikes, v_rec, states
