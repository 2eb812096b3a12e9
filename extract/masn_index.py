"""Names of the four feature index files that the original MASN loaders open (DESIGN.md section 2).

The names are those of the public MASN code (Seo et al., ACL 2021; github.com/ahjeongseo/MASN-pytorch,
``data_utils/dataset*.py``), relative to its ``--feat_dir``. This module is the one place that
spells them; it imports nothing heavy so that the store and the CLI can use it freely.

Inside the files, for a video key ``K``:
    appearance_global   ``/K``                     (T, D_a) ResNet-152 avgpool
    motion_global       ``/K``                     (T, D_m) I3D avgpool per clip
    appearance_objects  ``/image_features/K``      (T, N, D_a) and ``/spatial_features/K`` (T, N, 6)
    motion_objects      ``/K``                     (T, N, D_m) I3D RoIAlign on the same N boxes
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["MASN_INDEX_FILES", "MasnIndexFiles", "index_paths"]

class MasnIndexFiles(NamedTuple):
    """The four index files of one dataset (relative names, or paths once joined to a feat_dir)."""

    appearance_global: str | Path
    motion_global: str | Path
    appearance_objects: str | Path
    motion_objects: str | Path


_TGIF = MasnIndexFiles(
    appearance_global="feat_r6_vsync2/res152_avgpool.hdf5",
    motion_global="feat_r6_vsync2/tgif_i3d_hw7_perclip_avgpool.hdf5",
    appearance_objects="feat_r6_vsync2/tgif_btup_f_obj10.hdf5",
    motion_objects="feat_r6_vsync2/tgif_i3d_roialign_hw7_perclip_avgpool_obj10.hdf5",
)


def _msvd_style(prefix: str) -> MasnIndexFiles:
    return MasnIndexFiles(
        appearance_global=f"vfeat/{prefix}_res152_avgpool.hdf5",
        motion_global=f"vfeat/{prefix}_i3d_avgpool_perclip.hdf5",
        appearance_objects=f"vfeat/{prefix}_btup_f_obj10.hdf5",
        motion_objects=f"vfeat/{prefix}_i3d_roialign_perclip_obj10.hdf5",
    )


MASN_INDEX_FILES: dict[str, MasnIndexFiles] = {
    "tgif": _TGIF,
    "demo": _TGIF,
    "folder": _TGIF,
    "nextqa": _TGIF,
    "demo-mc": _TGIF,
    "msvd": _msvd_style("msvd"),
    "msrvtt": _msvd_style("msrvtt"),
}


def index_paths(feat_dir: Path, dataset: str) -> MasnIndexFiles:
    """The four index files of ``dataset`` under ``feat_dir`` (the MASN ``--feat_dir``)."""
    try:
        names = MASN_INDEX_FILES[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(MASN_INDEX_FILES)}") from None
    return MasnIndexFiles(*(Path(feat_dir) / name for name in names))
