"""Structural check of ISO base media files (MP4, MOV, 3GP): walk the top-level atoms.

A copy cut short leaves an atom whose declared size runs past the end of the file, and
usually no ``moov`` (the index that ffmpeg needs; without ``+faststart`` it is written
last). Walking the atom headers finds both by reading 16 bytes per atom.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from style_pipeline.contracts.media import RejectReason
from style_pipeline.media.errors import MediaRejected

# Top-level atoms of MP4/QuickTime files; an overrun in one of these means truncation.
KNOWN_ATOMS = frozenset(
    {b"ftyp", b"moov", b"mdat", b"moof", b"mfra", b"free", b"skip", b"wide", b"uuid", b"meta"}
    | {b"sidx", b"styp", b"pdin", b"udta", b"pnot", b"prfl", b"emsg", b"ssix", b"junk"}
)


@dataclass(frozen=True, slots=True)
class Atom:
    type: str
    offset: int
    size: int


def _name(raw: bytes) -> str:
    return raw.decode("latin-1")


def check_top_level_atoms(path: str | os.PathLike) -> list[Atom]:
    """The top-level atoms of ``path``; raises ``MediaRejected`` when the file is cut short.

    ``TRUNCATED``: a known atom extends past the end of the file, or there is no ``moov``.
    ``CORRUPT``: an atom declares a size smaller than its own header.
    Unknown trailing bytes after the last known atom (some cameras pad files) end the walk.
    """
    file_size = os.path.getsize(path)
    atoms: list[Atom] = []
    offset = 0
    with open(path, "rb") as handle:
        while offset < file_size:
            handle.seek(offset)
            header = handle.read(16)
            kind = header[4:8]
            if len(header) < 8 or kind not in KNOWN_ATOMS:
                if not atoms:
                    raise MediaRejected(RejectReason.CORRUPT, "no MP4/QuickTime atom at byte 0")
                break  # trailing bytes that are not an atom
            size = int.from_bytes(header[0:4], "big")
            header_len = 8
            if size == 1:  # 64-bit "largesize" follows the type
                if len(header) < 16:
                    raise MediaRejected(
                        RejectReason.TRUNCATED, f"file ends inside the header of {_name(kind)!r}"
                    )
                size, header_len = int.from_bytes(header[8:16], "big"), 16
            elif size == 0:  # atom extends to the end of the file
                size = file_size - offset
            if size < header_len:
                raise MediaRejected(
                    RejectReason.CORRUPT,
                    f"atom {_name(kind)!r} at byte {offset} declares an impossible size {size}",
                )
            if offset + size > file_size:
                has_moov = any(a.type == "moov" for a in atoms)
                missing = "" if has_moov else "; moov atom not found"
                raise MediaRejected(
                    RejectReason.TRUNCATED,
                    f"file ends inside the {_name(kind)!r} atom at byte {offset}: it declares "
                    f"{size} bytes, only {file_size - offset} present{missing}",
                )
            atoms.append(Atom(_name(kind), offset, size))
            offset += size
    if not any(a.type == "moov" for a in atoms):
        raise MediaRejected(
            RejectReason.TRUNCATED,
            f"moov atom not found (top-level atoms: {[a.type for a in atoms]}); "
            "the index is missing, typically because the copy was cut short",
        )
    return atoms
