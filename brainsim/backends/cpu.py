"""CPU backend: one Numba function advances the network by many steps.

Per step: (1) in parallel over chunks of neurons (one model each), read and
clear this step's ring-buffer slot, add Poisson input, advance the OU current
and the neuron; (2) gather the spikes in ascending id order and record them;
(3) in parallel over target partitions, deliver each spike through the
partition's CSR row into the ring buffer slot ``(t + delay) % R``.

Every neuron and every buffer cell is written by one thread only, and each
target's input is summed in the same order (step, source id, creation order
of the synapses) whatever the partitioning: spikes are bit-identical for any
number of partitions and threads.
"""
import numba
import numpy as np
from numba import njit, prange

from brainsim.kernels import iaf_psc_exp, lif_dtb
from brainsim.kernels.inputs import ou_step, poisson_input

_iaf_update = iaf_psc_exp.update
_dtb_update = lif_dtb.update


@njit(parallel=True, cache=True, nogil=True)
def advance(t0, n_steps, t_base, seed, st, V, S, ref, I_ou, buf,
            chunk_lo, chunk_hi, chunk_model, q_iaf, q_dtb, ref_steps,
            pois_lam, pois_w, pois_d, ou_on, ou_mu, ou_dec, ou_amp,
            blk_indptr, targets, weights, delays, src_ch,
            rec_mode, rec_mask, spk_step, spk_gid, n_spk,
            pop_of, rate_pop, reg_of, rate_reg, bin_steps, vm_ids, vm_out):
    """Advance steps t0 .. t0 + n_steps - 1. Returns (steps done, spikes
    recorded); stops early when the spike record could overflow.

    ``st`` is scratch: (chunk_spk (n_chunks, max_len), chunk_nspk, step_spikes).
    """
    chunk_spk, chunk_nspk, step_spikes = st
    R = buf.shape[0]
    n_chunks = chunk_lo.size
    n_blocks = blk_indptr.shape[0]
    N = V.size
    has_pois = pois_lam.size > 0
    has_ou = ou_on.size > 0
    for it in range(n_steps):
        if rec_mode != 0 and n_spk + N > spk_step.size:
            return it, n_spk
        t = t0 + it
        slot = t % R
        for c in prange(n_chunks):
            cnt = 0
            model = chunk_model[c]
            for i in range(chunk_lo[c], chunk_hi[c]):
                in_e = buf[slot, 0, i]
                in_i = buf[slot, 1, i]
                buf[slot, 0, i] = 0.0
                buf[slot, 1, i] = 0.0
                if has_pois and pois_lam[i] > 0.0:
                    x = poisson_input(pois_lam[i], pois_w[i], pois_d[i], seed, i, t)
                    if pois_w[i] >= 0.0:
                        in_e += x
                    else:
                        in_i += x
                i_cur = 0.0
                if has_ou and ou_on[i] != 0:
                    I_ou[i] = ou_step(I_ou[i], ou_mu[i], ou_dec[i], ou_amp[i], seed, i, t)
                    i_cur = I_ou[i]
                if model == 0:
                    v, a, b, r, sp = _iaf_update(V[i], S[0, i], S[1, i], ref[i], in_e, in_i,
                                                 i_cur, q_iaf[i], ref_steps[i])
                    S[0, i] = a
                    S[1, i] = b
                else:
                    v, a, b, g1, g2, r, sp = _dtb_update(V[i], S[0, i], S[1, i], S[2, i], S[3, i],
                                                         ref[i], in_e, in_i, i_cur, q_dtb[i],
                                                         ref_steps[i])
                    S[0, i] = a
                    S[1, i] = b
                    S[2, i] = g1
                    S[3, i] = g2
                V[i] = v
                ref[i] = r
                if sp:
                    chunk_spk[c, cnt] = i
                    cnt += 1
            chunk_nspk[c] = cnt
        ns = 0
        row = (t - t_base) // bin_steps
        for c in range(n_chunks):
            for j in range(chunk_nspk[c]):
                i = chunk_spk[c, j]
                step_spikes[ns] = i
                ns += 1
                if rate_pop.shape[0] > 0:
                    rate_pop[row, pop_of[i]] += 1
                    rate_reg[row, reg_of[i]] += 1
                if rec_mode == 1 or (rec_mode == 2 and rec_mask[i]):
                    spk_step[n_spk] = t
                    spk_gid[n_spk] = i
                    n_spk += 1
        if ns > 0:
            for blk in prange(n_blocks):
                for j in range(ns):
                    s = step_spikes[j]
                    ch = src_ch[s]
                    for k in range(blk_indptr[blk, s], blk_indptr[blk, s + 1]):
                        pos = slot + delays[k]  # delays < R: one wrap at most, no division
                        if pos >= R:
                            pos -= R
                        buf[pos, ch, targets[k]] += weights[k]
        for j in range(vm_ids.size):
            vm_out[t - t_base, j] = V[vm_ids[j]]
    return n_steps, n_spk


def set_threads(threads):
    """Use ``threads`` Numba threads (None: all available)."""
    n = numba.config.NUMBA_NUM_THREADS if threads is None else int(threads)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def make_chunks(net, model_ids, size=2048):
    """Contiguous neuron ranges of one model and one partition, <= size long."""
    edges = {0, net.n_neurons}
    edges.update(p.lo for p in net.partitions)
    edges.update(q.start for q in net.populations.values())
    edges = np.array(sorted(edges))
    lo, hi, model = [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        for x in range(a, b, size):
            lo.append(x)
            hi.append(min(b, x + size))
            model.append(model_ids[x])
    return (np.array(lo, np.int64), np.array(hi, np.int64), np.array(model, np.int8))
