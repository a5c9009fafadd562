"""Multi-area builder: counts, delays, chi, scaling, Poisson replacement,
the MAM converter and bad specifications.

Expected values are computed here from the specification file itself (the
JSON dict), not from the builder's own arrays.
"""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import brainsim
from brainsim.analysis import meanfield as mf
from brainsim.errors import ParameterError, UnknownNameError
from brainsim.generation import mam
from brainsim.generation import multi_area_spec as ma

EXAMPLE = Path(ma.__file__).parent / "data" / "three_areas.json"


@pytest.fixture
def raw():
    return json.loads(EXAMPLE.read_text())


def flat(raw):
    """(area, population) pairs in file order."""
    return [(a, p) for a in raw["areas"] for p in raw["populations"][a]]


def synapse_table(net):
    """Per synapse: target population, source population, weight, delay (ms)."""
    net.build()
    pop_of = net.pop_index()
    syn = net.synapses
    src = np.concatenate([np.repeat(p.sources, np.diff(p.indptr)) for p in net.partitions])
    order = np.concatenate([np.arange(p.offset, p.offset + p.n_synapses) for p in net.partitions])
    tgt = syn["targets"][order]
    return (pop_of[tgt], pop_of[src], syn["weights"][order].astype(float),
            syn["delays"][order] * net.dt)


def counts(net):
    t, s, _, _ = synapse_table(net)
    p = len(net.populations)
    return np.bincount(t * p + s, minlength=p * p).reshape(p, p)


def expected_synapses(raw, n_scale, k_scale, rule="fixed_total_number"):
    pops = flat(raw)
    n = {q: max(round(raw["populations"][q[0]][q[1]] * n_scale), 1) for q in pops}
    out = np.zeros((len(pops), len(pops)), np.int64)
    for i, (ta, tp) in enumerate(pops):
        row = raw["indegrees"][ta][tp]
        for j, (sa, sp) in enumerate(pops):
            k = row.get(sa, {}).get(sp, 0.0) if sa != "external" else 0.0
            out[i, j] = (round(k * k_scale) * n[(ta, tp)] if rule == "fixed_indegree"
                         else round(k * k_scale * n[(ta, tp)]))
    return np.array([n[q] for q in pops]), out


# ------------------------------------------------------------------ counts
def test_example_loads_and_matches_its_file(raw):
    spec = ma.example_spec()
    assert spec.areas == ("A", "B", "C")
    assert len(spec.names) == 22 and "C/4E" not in spec.names  # area C has no layer 4
    assert spec.n.sum() == sum(sum(v.values()) for v in raw["populations"].values()) == 5105
    assert spec.indegree_ext[spec.names.index("B/5I")] == raw["indegrees"]["B"]["5I"]["external"]


@pytest.mark.parametrize("n_scale,k_scale", [(1.0, 1.0), (0.5, 0.25)])
def test_neuron_and_synapse_counts_match_spec(raw, n_scale, k_scale):
    net = ma.multi_area(EXAMPLE, n_scale=n_scale, k_scale=k_scale, seed=2)
    n, n_syn = expected_synapses(raw, n_scale, k_scale)
    assert [p.n for p in net.populations.values()] == list(n)
    np.testing.assert_array_equal(counts(net), n_syn)
    assert net.n_synapses == n_syn.sum()
    assert net.regions == ["A", "B", "C"]
    assert all(p.region == p.name.split("/")[0] for p in net.populations.values())


def test_fixed_indegree_gives_every_neuron_the_rounded_indegree(raw):
    raw["rule"] = "fixed_indegree"
    net = ma.multi_area(raw, n_scale=0.3, k_scale=0.3, seed=1)
    _, n_syn = expected_synapses(raw, 0.3, 0.3, rule="fixed_indegree")
    np.testing.assert_array_equal(counts(net), n_syn)
    t, s, _, _ = synapse_table(net)
    a23e = list(net.populations).index("A/23E")
    a4e = list(net.populations).index("A/4E")
    k = round(raw["indegrees"]["A"]["23E"]["A"]["4E"] * 0.3)
    net_tgt = net.synapses["targets"][np.concatenate(
        [np.arange(p.offset, p.offset + p.n_synapses) for p in net.partitions])]
    per_neuron = np.bincount(net_tgt[(t == a23e) & (s == a4e)],
                             minlength=net.n_neurons)[net.populations["A/23E"].ids]
    assert k > 0 and np.all(per_neuron == k)


def test_partitions_follow_areas():
    net = ma.multi_area(EXAMPLE, n_scale=0.2, k_scale=0.2, seed=0).build(3)
    starts = [net.populations[f"{a}/23E"].start for a in "ABC"]
    assert [p.lo for p in net.partitions] == starts
    assert net.partitions[-1].hi == net.n_neurons


# ------------------------------------------------------------------ delays, chi
def test_delays_follow_distance_over_speed(raw):
    raw["delay"] = {"rel_sd": 0.0}
    net = ma.multi_area(raw, n_scale=0.2, k_scale=0.2, seed=0)
    t, s, _, d = synapse_table(net)
    area = np.array([ma.example_spec().pop_area[ma.example_spec().names.index(n)]
                     for n in net.populations])
    kind = np.array([p.kind for p in net.populations.values()])
    dist = {("A", "B"): 10.0, ("B", "C"): 14.0, ("A", "C"): 21.0}
    for (x, y), mm in dist.items():
        ax, ay = "ABC".index(x), "ABC".index(y)
        sel = ((area[t] == ax) & (area[s] == ay)) | ((area[t] == ay) & (area[s] == ax))
        assert sel.sum() > 0
        np.testing.assert_allclose(d[sel], round(mm / 3.5 / 0.1) * 0.1)
    local = area[t] == area[s]
    np.testing.assert_allclose(d[local & (kind[s] == "E")], 1.5)
    np.testing.assert_allclose(d[local & (kind[s] == "I")], 0.8)  # 0.75 rounds to 8 steps


def test_interarea_delay_mean_with_relative_sd():
    """Normal delays with sd 0.5 x mean, redrawn below dt (NEST's
    normal_clipped): the mean is that of the truncated normal; rounding to
    steps adds at most dt/2 (mean-free for a smooth density). Bound: 5
    standard errors + 0.01 ms."""
    net = ma.multi_area(EXAMPLE, seed=3, areas=["A", "C"])
    t, s, _, d = synapse_table(net)
    spec = ma.example_spec()
    area = np.array([spec.pop_area[spec.names.index(n)] for n in net.populations])
    sel = (area[t] == 2) & (area[s] == 0)  # A -> C, 21 mm
    mean, sd = 21.0 / 3.5, 0.5 * 21.0 / 3.5
    expected = stats.truncnorm((0.1 - mean) / sd, np.inf, loc=mean, scale=sd).mean()
    assert abs(d[sel].mean() - expected) < 5 * sd / math.sqrt(sel.sum()) + 0.01
    assert abs(np.std(d[sel]) / sd - 1.0) < 0.1


def test_chi_scales_cortico_cortical_weights_only(raw):
    raw["synapse"]["rel_sd"] = 0.0
    net = ma.multi_area(raw, n_scale=0.2, k_scale=0.2, chi=1.9, chi_I=2.0, seed=0)
    t, s, w, _ = synapse_table(net)
    pops = list(net.populations.values())
    psc = raw["synapse"]["psc_e"] / math.sqrt(0.2)
    checked = {"cc onto E": 0, "cc onto I": 0, "local": 0}
    for ti in range(len(pops)):
        for si in range(len(pops)):
            sel = (t == ti) & (s == si)
            if not sel.any():
                continue
            tgt, src = pops[ti], pops[si]
            base = psc if src.kind == "E" else -4.0 * psc
            if tgt.region == src.region and tgt.name.endswith("23E") and src.name.endswith("4E"):
                base *= 2.0
            if tgt.region != src.region:
                base *= 1.9 * (2.0 if tgt.kind == "I" else 1.0)
            np.testing.assert_allclose(w[sel], base, rtol=1e-6)
            checked["local" if tgt.region == src.region else f"cc onto {tgt.kind}"] += sel.sum()
    assert min(checked.values()) > 100


# ------------------------------------------------------- mean input by hand
def rate_of(raw, area, pop):
    return raw["rates"][area][pop]


def hand_moments(raw, targets, tau_s=0.5, c_m=250.0, tau_m=10.0):
    """Full-scale mean (mV) and sd (mV) of the free membrane potential of
    ``targets`` at the spec's rates, every area present, chi = 1."""
    syn = raw["synapse"]
    mu, var = [], []
    for ta, tp in targets:
        mean_q, var_q = 0.0, 0.0  # pA ms / ms and pA^2 ms^2 / ms
        for sa, sources in raw["indegrees"][ta][tp].items():
            if sa == "external":
                lam = sources * raw["external"]["rate"] * 1e-3
                mean_q += lam * syn["psc_ext"] * tau_s
                var_q += lam * (syn["psc_ext"] * tau_s) ** 2
                continue
            for sp, k in sources.items():
                w = syn["psc_e"] if sp.endswith("E") else syn["g"] * syn["psc_e"]
                if sa == ta and tp == "23E" and sp == "4E":
                    w *= 2.0
                lam = k * rate_of(raw, sa, sp) * 1e-3
                mean_q += lam * w * tau_s
                var_q += lam * (w * tau_s) ** 2 * (1 + syn["rel_sd"] ** 2)
        mu.append(-65.0 + tau_m / c_m * mean_q)
        var.append(tau_m * var_q / c_m ** 2)
    return np.array(mu), np.sqrt(var)


def network_moments(net, raw):
    model = mf.from_network(net)
    rates = [rate_of(raw, *name.split("/")) for name in model.names]
    mu, sigma, _ = mf.input_moments(model, rates)
    return mu, sigma


@pytest.mark.parametrize("n_scale,k_scale", [(1.0, 1.0), (0.5, 0.5), (0.3, 0.1)])
def test_k_scaling_keeps_the_mean_input(raw, n_scale, k_scale):
    """Mean input of the built, scaled network (counted from its synapses
    and inputs) equals the full-scale mean written out by hand; the variance
    is kept too (K x w^2 is invariant) up to the rounding of synapse numbers."""
    raw["synapse"]["rel_sd"] = 0.0  # weights exact, so the comparison is to float32
    net = ma.multi_area(raw, n_scale=n_scale, k_scale=k_scale, seed=5)
    mu, sigma = network_moments(net, raw)
    mu_hand, sigma_hand = hand_moments(raw, flat(raw))
    np.testing.assert_allclose(mu, mu_hand, atol=1e-3)
    np.testing.assert_allclose(sigma, sigma_hand, rtol=0.03)
    model = ma.population_model(raw, n_scale=n_scale, k_scale=k_scale)
    mu_model, _, _ = mf.input_moments(model, [rate_of(raw, *q) for q in flat(raw)])
    np.testing.assert_allclose(mu_model, mu_hand, atol=1e-9)
    if k_scale < 1:  # the compensation is doing work
        dc = np.array([p.params["I_e"] for p in net.populations.values()])
        assert np.abs(dc).max() > 10.0


def test_population_model_matches_built_network():
    spec = ma.example_spec()
    net = ma.multi_area(spec, n_scale=0.4, k_scale=0.5, areas=["A", "B"], seed=1)
    from_net = mf.from_network(net)
    planned = spec.population_model(n_scale=0.4, k_scale=0.5, areas=["A", "B"])
    np.testing.assert_allclose(from_net.K, planned.K, rtol=1e-12)
    np.testing.assert_allclose(from_net.ext_rate, planned.ext_rate, rtol=1e-12)
    np.testing.assert_allclose(from_net.I_e, planned.I_e, rtol=1e-12)
    n_syn = planned.K * np.array([p.n for p in net.populations.values()])[:, None]
    on = n_syn > 0  # sample means of normal weights (sd 10 %): within 5 standard errors
    err = np.abs(from_net.J[on] / planned.J[on] - 1.0)
    assert np.all(err < 5 * 0.1 / np.sqrt(n_syn[on]))
    big = n_syn >= 1000  # second moment <w^2> = (1 + 0.1^2) mean^2, sampled
    np.testing.assert_allclose(from_net.J2[big] / from_net.J[big] ** 2, 1.01, atol=0.003)
    np.testing.assert_allclose(planned.J2 / planned.J ** 2, 1.01)


# ------------------------------------------------------- Poisson replacement
@pytest.mark.parametrize("k_scale", [1.0, 0.5])
def test_replaced_areas_give_the_specified_poisson_drive(raw, k_scale):
    """Simulate A only: its neurons' Poisson input carries the external
    drive plus in-degree x rate from B and C (weights psc_e / sqrt(k)), as
    one input with the same mean and variance; the mean-field input of the
    reduced network equals the full model's."""
    raw["synapse"]["rel_sd"] = 0.0
    net = ma.multi_area(raw, k_scale=k_scale, areas=["A"], seed=0)
    assert net.regions == ["A"]
    sq = math.sqrt(k_scale)
    for name, pop in net.populations.items():
        _, tp = name.split("/")
        row = raw["indegrees"]["A"][tp]
        lam = [row["external"] * k_scale * 8.0]
        w = [87.81 / sq]
        for sa in ("B", "C"):
            for sp, k in row.get(sa, {}).items():
                lam.append(k * k_scale * rate_of(raw, sa, sp))
                w.append(raw["synapse"]["psc_e"] / sq)
        lam, w = np.array(lam), np.array(w)
        got_lam = net.inputs["poisson_rate"][pop.ids]
        got_w = net.inputs["poisson_weight"][pop.ids]
        np.testing.assert_allclose(got_lam * got_w, np.sum(lam * w), rtol=1e-12)
        np.testing.assert_allclose(got_lam * got_w ** 2, np.sum(lam * w ** 2), rtol=1e-12)
    mu, sigma = network_moments(net, raw)
    mu_hand, sigma_hand = hand_moments(raw, [q for q in flat(raw) if q[0] == "A"])
    np.testing.assert_allclose(mu, mu_hand, atol=1e-3)
    np.testing.assert_allclose(sigma, sigma_hand, rtol=0.02)


def test_replaced_drive_is_delivered_in_simulation(raw):
    """Area C alone, thresholds out of reach (no spikes, so no recurrent
    input): the time-averaged V_m equals E_L + tau_m / C_m (I_e + rate x
    weight x tau_s) for the specified Poisson drive. V_m has sd ~2.5 mV and
    ~10 ms correlation; 60 neurons x 1 s give a standard error of ~0.05 mV,
    tolerance 0.2 mV (a rate error of 1 % moves the mean by ~0.4 mV)."""
    net = ma.multi_area(raw, n_scale=0.12, areas=["C"], seed=0)
    net.set_property({"region": "C"}, "V_th", 1e4)
    probe = np.concatenate([net.populations[n].ids[:10] for n in net.populations])
    sim = brainsim.Simulation(net, seed=4, record={"spikes": False, "rates": False,
                                                   "V_m": probe}, threads=1)
    sim.run(200.0)
    v = sim.run(1000.0).V_m.values.mean(axis=0)
    rate = net.inputs["poisson_rate"][probe]
    w = net.inputs["poisson_weight"][probe]
    i_e = net.neuron_param("I_e")[probe]
    expected = -65.0 + 10.0 / 250.0 * (i_e + rate * 1e-3 * w * 0.5)
    pop_of = net.pop_index()[probe]
    for p in np.unique(pop_of):
        assert abs(v[pop_of == p].mean() - expected[pop_of == p].mean()) < 0.2
    row = raw["indegrees"]["C"]["23E"]
    drive = row["external"] * 8.0 * 87.81 + sum(
        k * rate_of(raw, sa, sp) * raw["synapse"]["psc_e"]
        for sa in ("A", "B") for sp, k in row.get(sa, {}).items())
    first = net.populations["C/23E"].ids[0]
    assert net.inputs["poisson_rate"][first] * net.inputs["poisson_weight"][first] == \
        pytest.approx(drive, rel=1e-12)


def test_replacement_rates_override_the_spec_rates(raw):
    repl = {a: dict(raw["rates"][a]) for a in ("B", "C")}  # only the replaced areas
    repl["B"]["23E"] = 10.0
    a = ma.multi_area(raw, areas=["A"], seed=0)
    b = ma.multi_area(raw, areas=["A"], replacement_rates=repl, seed=0)
    ids = a.populations["A/23E"].ids  # B/23E projects onto A/23E (feedback)
    extra = raw["indegrees"]["A"]["23E"]["B"]["23E"] * (10.0 - raw["rates"]["B"]["23E"])
    got = (b.inputs["poisson_rate"][ids] * b.inputs["poisson_weight"][ids]
           - a.inputs["poisson_rate"][ids] * a.inputs["poisson_weight"][ids])
    np.testing.assert_allclose(got, extra * raw["synapse"]["psc_e"], rtol=1e-9)


# ------------------------------------------------------------ formats
def test_matrix_form_and_yaml_give_the_same_spec(raw, tmp_path):
    yaml = pytest.importorskip("yaml")
    pops = flat(raw)
    rows = []
    for ta, tp in pops:
        row = raw["indegrees"][ta][tp]
        rows.append([row.get(sa, {}).get(sp, 0.0) for sa, sp in pops] + [row["external"]])
    matrix = {**{k: v for k, v in raw.items() if k != "indegrees"}, "indegree_matrix": rows}
    matrix["distances"] = [[0, 10, 21], [10, 0, 14], [21, 14, 0]]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(matrix))
    a, b = ma.load_spec(EXAMPLE), ma.load_spec(path)
    for field in ("n", "indegree", "indegree_ext", "weight", "weight_ext", "distances", "rates"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_synapse_numbers_instead_of_indegrees(raw):
    syn = copy.deepcopy(raw["indegrees"])
    for ta in syn:
        for tp, row in syn[ta].items():
            n = raw["populations"][ta][tp]
            for sa in row:
                if sa == "external":
                    row[sa] *= n
                else:
                    row[sa] = {sp: k * n for sp, k in row[sa].items()}
    other = {**{k: v for k, v in raw.items() if k != "indegrees"}, "synapses": syn}
    np.testing.assert_allclose(ma.load_spec(other).indegree, ma.load_spec(raw).indegree,
                               rtol=1e-12)


# ------------------------------------------------------------ bad specs
def edit(raw, path, value):
    d = raw
    for key in path[:-1]:
        d = d[key]
    if value is KeyError:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    return raw


@pytest.mark.parametrize("path,value,error,match", [
    (["colour"], 1, UnknownNameError, "unknown key 'colour'"),
    (["synapse", "chii"], 1.0, UnknownNameError, r"synapse\['chii'\]"),
    (["indegrees", "A", "5I"], KeyError, ParameterError,
     r"lacks target population indegrees\['A'\]\['5I'\]"),
    (["indegrees", "B", "4E", "A", "7E"], 3.0, UnknownNameError,
     r"indegrees\['B'\]\['4E'\]\['A'\]\['7E'\]: area 'A' has no population '7E'"),
    (["indegrees", "A", "23E", "A", "4E"], -2.0, ParameterError,
     r"indegrees\['A'\]\['23E'\]\['A'\]\['4E'\] must be a finite number >= 0, got -2.0"),
    (["indegrees", "A", "23E", "D"], {"23E": 1.0}, UnknownNameError, "unknown area 'D'"),
    (["populations", "B", "4I"], -5, ParameterError, r"populations\['B'\]\['4I'\]"),
    (["populations", "C"], KeyError, ParameterError, r"populations\['C'\]"),
    (["distances", "A", "B"], -1.0, ParameterError,
     r"distances\['A'\]\['B'\] must be a finite number >= 0, got -1.0"),
    (["distances", "A", "B"], "1.0", ParameterError,
     r"distances\['A'\]\['B'\] must be a finite number >= 0, got '1.0'"),
    (["indegrees", "A", "23E", "A", "4E"], True, ParameterError,
     r"indegrees\['A'\]\['23E'\]\['A'\]\['4E'\] must be a finite number >= 0, got True"),
    (["synapse", "g"], True, ParameterError, r"synapse\['g'\] must be a finite number, got True"),
    (["synapse", "g"], "-4", ParameterError, r"synapse\['g'\] must be a finite number, got '-4'"),
    (["distances", "B"], KeyError, ParameterError, r"distances lacks distances\['B'\]\['C'\]"),
    (["rates", "A", "6I"], KeyError, ParameterError, r"rates lacks rates\['A'\]\['6I'\]"),
    (["rule"], "random", ParameterError, "rule must be one of"),
    (["synapse", "g"], 4.0, ParameterError, "g <= 0"),
    (["schema_version"], 2, ParameterError, "schema_version must be 1"),
])
def test_bad_specs_name_the_key(raw, path, value, error, match):
    with pytest.raises(error, match=match):
        ma.load_spec(edit(raw, path, value))


def test_wrong_matrix_shapes(raw):
    rows = np.zeros((22, 22)).tolist()
    bad = {**{k: v for k, v in raw.items() if k != "indegrees"}, "indegree_matrix": rows}
    with pytest.raises(ParameterError, match=r"indegree_matrix must have shape \(22, 23\)"):
        ma.load_spec(bad)
    raw["distances"] = [[0, 1], [1, 0]]
    with pytest.raises(ParameterError, match=r"distances must have shape \(3, 3\)"):
        ma.load_spec(raw)
    both = {**raw, "indegree_matrix": rows}
    with pytest.raises(ParameterError, match="exactly one of indegrees"):
        ma.load_spec(both)


def test_bad_build_options(raw):
    with pytest.raises(UnknownNameError, match="unknown area 'V1'"):
        ma.multi_area(raw, areas=["A", "V1"])
    with pytest.raises(ParameterError,
                       match=r"k_scale must be a finite number in \(0, 1\], got 0.0"):
        ma.multi_area(raw, k_scale=0.0)
    for bad in (True, "0.5", 1.5):
        with pytest.raises(ParameterError, match=r"n_scale must be a finite number in \(0, 1\], "
                                                 r"got " + repr(bad)):
            ma.multi_area(raw, n_scale=bad)
    no_rates = {k: v for k, v in raw.items() if k != "rates"}
    with pytest.raises(ParameterError, match="k_scale < 1 needs full-scale rates"):
        ma.multi_area(no_rates, k_scale=0.5)
    with pytest.raises(ParameterError, match="needs their rates"):
        ma.multi_area(no_rates, areas=["A"])
    ma.multi_area(no_rates, n_scale=0.1)  # all areas, K unscaled: no rates needed
    with pytest.raises(ParameterError, match=r"replacement_rates lacks"):
        ma.multi_area(raw, areas=["A"], replacement_rates={"B": {"23E": 1.0}})
    with pytest.raises(ParameterError, match="does not exist"):
        ma.load_spec("/nonexistent/spec.json")


def test_mixed_sign_replacement_is_refused(raw):
    raw["indegrees"]["A"]["23E"]["B"] = {"23I": 5.0}  # an inhibitory long-range source
    with pytest.raises(ParameterError, match="'A/23E'.*mix excitatory and inhibitory"):
        ma.multi_area(raw, areas=["A"])


# ------------------------------------------------------------ MAM converter
POPS = ["23E", "23I", "4E", "4I"]


def fake_mam(chi=1.9, chi_i=2.0):
    """A two-area model in the layout of the MAM code's custom_Data_Model
    file (all of population_list in every dict, the missing layer 4 of area
    Y with zeros, 'total' in neuron_numbers, {'external': {'external': x}})."""
    structure = {"X": POPS, "Y": ["23E", "23I"]}
    n = {"X": {"23E": 400.0, "23I": 120.0, "4E": 380.0, "4I": 100.0},
         "Y": {"23E": 300.0, "23I": 90.0, "4E": 0.0, "4I": 0.0}}
    for counts_ in n.values():
        counts_["total"] = sum(counts_.values())
    rng = np.random.default_rng(0)
    syn, w, w_sd = {}, {}, {}
    for t in "XY":
        syn[t], w[t], w_sd[t] = {}, {}, {}
        for tp in POPS:
            syn[t][tp], w[t][tp], w_sd[t][tp] = {}, {}, {}
            for s in "XY":
                syn[t][tp][s], w[t][tp][s], w_sd[t][tp][s] = {}, {}, {}
                for sp in POPS:
                    exists = tp in structure[t] and sp in structure[s]
                    cc = s != t
                    k = rng.uniform(20, 80) if exists and (not cc or sp == "23E") else 0.0
                    syn[t][tp][s][sp] = k * n[t][tp]
                    base = 87.81 if sp.endswith("E") else -11 * 87.81
                    if not cc and tp == "23E" and sp == "4E":
                        base *= 2
                    if cc:
                        base *= chi * (chi_i if tp.endswith("I") else 1.0)
                    w[t][tp][s][sp] = base
                    w_sd[t][tp][s][sp] = 0.1 * abs(base)
            syn[t][tp]["external"] = {"external": 1000.0 * n[t][tp]}
            w[t][tp]["external"] = {"external": 87.81}
    return {"area_list": ["X", "Y"], "structure": structure, "neuron_numbers": n,
            "synapses": syn, "synapse_weights_mean": w, "synapse_weights_sd": w_sd,
            "distances": {"X": {"X": 0.0, "Y": 12.3}, "Y": {"X": 12.3, "Y": 0.0}},
            "population_list": POPS}


def test_convert_mam_output(tmp_path):
    data = fake_mam()
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "cfg").write_text(json.dumps({
        "connection_params": {"cc_weights_factor": 1.9, "cc_weights_I_factor": 2.0},
        "delay_params": {"interarea_speed": 3.5}, "input_params": {"rate_ext": 10.0}}))
    rates = {"X": {p: 3.0 for p in POPS}, "Y": {"23E": 2.0, "23I": 5.0}}
    out = tmp_path / "spec.json"
    raw = mam.convert_mam(tmp_path / "data.json", config=tmp_path / "cfg", rates=rates, out=out)
    spec = ma.load_spec(out)
    assert spec.names == ("X/23E", "X/23I", "X/4E", "X/4I", "Y/23E", "Y/23I")
    assert (spec.chi, spec.chi_I) == (1.9, 2.0) and raw["rule"] == "fixed_total_number"
    idx = [(a, p) for a in "XY" for p in data["structure"][a]]
    w = spec.weights()  # chi applied again: the data's weights
    for i, (t, tp) in enumerate(idx):
        assert spec.indegree_ext[i] == pytest.approx(1000.0)
        for j, (s, sp) in enumerate(idx):
            assert w[i, j] == pytest.approx(data["synapse_weights_mean"][t][tp][s][sp])
            k = data["synapses"][t][tp][s][sp] / data["neuron_numbers"][t][tp]
            assert spec.indegree[i, j] == pytest.approx(k)
    assert spec.weight[0, 4] == pytest.approx(87.81)  # base cc weight, chi divided out
    net = ma.multi_area(spec, seed=0)
    expected = np.array([[round(data["synapses"][t][tp][s][sp]) for s, sp in idx]
                         for t, tp in idx])
    np.testing.assert_array_equal(counts(net), expected)
    v0 = net.neuron_param("V_m")  # MAM's initial V ~ N(-150, 50) mV
    assert abs(v0.mean() + 150.0) < 5 * 50.0 / math.sqrt(v0.size)
    no_cfg = mam.convert_mam(data)
    assert no_cfg["synapse"]["chi"] == 1.0
    np.testing.assert_allclose(ma.load_spec(no_cfg).weights(), w)


def test_convert_mam_with_stabilised_indegrees(tmp_path):
    data = fake_mam()
    k = np.arange(36, dtype=float).reshape(6, 6)
    np.save(tmp_path / "K.npy", k)
    spec = ma.load_spec(mam.convert_mam(data, k_stable=tmp_path / "K.npy"))
    np.testing.assert_array_equal(spec.indegree, k)
    np.testing.assert_allclose(spec.indegree_ext, 1000.0)
    with pytest.raises(ParameterError, match=r"k_stable must have shape \(6, 6\)"):
        np.save(tmp_path / "K5.npy", np.zeros((5, 5)))
        mam.convert_mam(data, k_stable=tmp_path / "K5.npy")


def test_convert_mam_rejects_other_files():
    with pytest.raises(ParameterError, match="lacks the keys"):
        mam.convert_mam({"area_list": ["X"]})
    with pytest.raises(ParameterError, match="lognormal_weights"):
        mam.convert_mam(fake_mam(), config={"connection_params": {"lognormal_weights": True}})
