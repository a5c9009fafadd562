"""Ensembles of one network: M members simulated as one network.

Data assimilation runs M copies of a network that differ only in their
(hyper)parameters. ``replicate`` builds one network holding the M members
side by side: member k owns neuron ids ``k N .. (k + 1) N - 1``, its
populations and regions are named ``"m<k>/<name>"`` and its synapses are
those of the base network shifted by ``k N``; no synapse crosses members.
Member 0 has the base network's ids, so with the same simulation seed it
reproduces the base network's spikes exactly; the other members get their
own noise (the counter-based draws are keyed by neuron id).
"""
import numpy as np

from .errors import ParameterError
from .network import Network, Partition
from .synapses import SynapseTable
from .validation import integer


def member_name(k, name):
    """Name of population or region ``name`` in member ``k``."""
    return f"m{k}/{name}"


def replicate(net, n_members):
    """A built network holding ``n_members`` copies of ``net`` (built now
    if needed); each base partition gives one partition per member, so the
    CPU backend steps members on separate threads."""
    n_members = integer("n_members", n_members, low=1, strict=True)
    net.build()
    out = Network(dt=net.dt, seed=net.seed)
    for k in range(n_members):
        for pop in net.populations.values():
            out.add_population(member_name(k, pop.name), pop.n, pop.model, dict(pop.params),
                               region=member_name(k, pop.region), kind=pop.kind)
    out.columns = {name: np.tile(col, n_members) for name, col in net.columns.items()}
    out.inputs = {name: np.tile(arr, n_members) for name, arr in net.inputs.items()}
    n, n_syn = net.n_neurons, net.n_synapses
    syn = net.synapses
    parts = [Partition(p.lo + k * n, p.hi + k * n, p.sources + k * n, p.indptr.copy(),
                       p.offset + k * n_syn)
             for k in range(n_members) for p in net.partitions]
    # targets are local to their partition, so a member's copy is the same array
    out.synapses = SynapseTable(parts, np.tile(syn.local, n_members),
                                np.tile(syn.weights, n_members),
                                np.tile(syn["delays"], n_members))
    out.partitions = parts
    out.meta = {**net.meta, "members": int(n_members), "member_neurons": int(n)}
    return out


def member_ids(net, k):
    """Neuron ids (int64) of member ``k`` of a replicated network."""
    n = net.meta.get("member_neurons")
    members = net.meta.get("members")
    if n is None or members is None:
        raise ParameterError("member_ids needs a network made by brainsim.ensemble.replicate")
    k = integer("member k", k, low=0, high=members - 1, strict=True)
    return np.arange(k * n, (k + 1) * n)
