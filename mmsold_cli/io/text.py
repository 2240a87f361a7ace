"""Point clouds in delimited text: positions plus whatever columns a scanner or CloudCompare put beside them.

Text is how many scans leave a viewer: CloudCompare's ASCII export (``x y z r g b``, normals, scalar
fields, optionally a header line such as ``//X,Y,Z,R,G,B``), a scanner's XYZRGB or XYZI dump.  What a
column holds is read from a header line when there is one, else from the file's layout:

* a header (a first line with no number in it; a leading ``//`` is dropped) names every column:
  x, y and z are the position, and the others are attributes under their own names, with the usual
  short ones mapped to the names the attribute rules know (``r``/``g``/``b`` → ``red``/``green``/``blue``,
  ``i`` → ``intensity``, ``normal_x`` …);
* without one, ``.xyz``, ``.txt`` and ``.pts`` rows start with x, y, z (a headerless ``.csv`` must have
  exactly three columns: a table's first column is as likely an id as an x).  Among the columns after them,
  three whose rows have unit length are normals (``nx, ny, nz``); three whole-number columns within 0–255
  (or 0–65535) standing alone, or after one other column (the ``x y z i r g b`` of Leica's PTS rows), are a
  colour; any other column is ``scalar_<k>`` (k its 0-based column), except a PTS file's lone fourth
  column, its intensity.

A ``.pts`` file (Leica Cyclone's export) puts the number of points on a line of its own before each scan's
rows; the counts must add up to the rows, and a PTS file is written with one count line and its columns in
PTS order (x, y, z, then intensity and the colour where the cloud has them; :func:`pts_columns`).

Whole-number columns are read as integers, so they are copied from the nearest input point unless their
name says they are a measurement (:mod:`mmsold_cli.workflows.attributes`).  A cloud written back keeps its
input's column order, header line and delimiter, and each decimal column's notation: a column written with
a fixed number of decimals (a scanner's 3, CloudCompare's 6 or 8), or in exponent notation, is written the
same way with as many decimals, at least 6, so a densified cloud's new points are recorded as finely as its
input's and no finer than 1e-6 of a unit (of the mantissa); a column with more than :data:`MAX_DECIMALS`
decimals or in both notations is written to full precision (``%.17g``).  A cloud from another format gets the
columns x, y, z, then its attributes, under a header line of their names (none when it has no attributes:
the plain rows of :func:`mmsold_cli.io.arrays.save_points`); a LAS/LAZ file's coordinates are written with the
decimals of its scale (at least 6), a PLY's float32 properties and any float32 attribute with float32's 9
significant digits, and other decimal columns to full precision.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import MmsoldError
from .arrays import RowFileWriter, _is_number, not_numeric

__all__ = ["TEXT_EXTENSIONS", "header_names", "cloud_header", "read_text_cloud", "text_positions", "pts_columns",
           "TextCloudWriter", "save_text_cloud"]

#: Extensions read and written as delimited text.
TEXT_EXTENSIONS = (".xyz", ".txt", ".csv", ".pts")

#: Header spellings mapped to the attribute names :mod:`mmsold_cli.workflows.attributes` knows.
_SYNONYMS = {"r": "red", "g": "green", "b": "blue", "i": "intensity", "normal_x": "nx", "normal_y": "ny",
             "normal_z": "nz", "scalar_intensity": "intensity", "class": "classification"}
#: Largest value of an 8- and a 16-bit colour channel.
_COLOUR_MAX = (255, 65535)
#: A triple of columns is a normal when every row's length is within this of 1 (text keeps 6–8 digits).
_UNIT_TOL = 1e-3
#: Fewest and most decimals a fixed-point column is written with; past the most, full precision.
MIN_DECIMALS, MAX_DECIMALS = 6, 12
#: Data rows whose fields set each column's decimals.
_DECIMAL_ROWS = 1000
#: The columns of a PTS row, in order, that a PTS file can carry.
_PTS_COLUMNS = ("x", "y", "z", "intensity", "red", "green", "blue")


def header_names(path: str | os.PathLike) -> list[str] | None:
    """The column names of a text file's header line (lower case), or None when its first row is numbers."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("//"):  # CloudCompare's header
                line = line[2:]
            fields = [f.strip().strip("\"'") for f in re.split(r"[,;\s]+", line) if f.strip()]
            if any(_is_number(f) for f in fields):
                return None
            return [f.lower() for f in fields]
    return None


def cloud_header(names: list[str] | None) -> bool:
    """Whether header names describe a point cloud: x, y, z and, beside them, only attributes a scan carries
    (colours, normals, intensity, classes and the other names :mod:`mmsold_cli.workflows.attributes` knows,
    ``scalar_<k>``, a point id).  A table with other columns (``x, y, z, w``) is data of that many dimensions."""
    from ..workflows.attributes import CATEGORICAL, CONTINUOUS, NORMAL_NAMES

    if not names or not all(c in names for c in "xyz"):
        return False
    known = CATEGORICAL | CONTINUOUS | set(_SYNONYMS) | {n for triple in NORMAL_NAMES for n in triple} | {"id", "index"}
    return all(n in ("x", "y", "z") or n in known or n.startswith("scalar_") for n in names)


def _layout(path: Path, k: int) -> tuple[list[int], list[tuple[str, int]], list[str] | None]:
    """(position columns, [(attribute name, its column)], header names) of a text file of k columns."""
    names = header_names(path)
    ext = path.suffix.lower()
    if names is not None:
        if len(names) != k:
            raise MmsoldError(f"{path}: the header names {len(names)} columns, the rows have {k}")
        if all(c in names for c in "xyz"):
            pos = [names.index(c) for c in "xyz"]
        elif ext != ".csv" and k >= 3:
            pos = [0, 1, 2]
        else:
            raise MmsoldError(f"{path}: the header names no x, y and z columns (it names {', '.join(names)})")
        rest = [j for j in range(k) if j not in pos]
        used = {"x", "y", "z"}
        attrs = []
        for j in rest:
            name = _SYNONYMS.get(names[j], names[j])
            if name in used:  # two columns of one name: keep both, the second by its position
                name = f"{name}_{j}"
            used.add(name)
            attrs.append((name, j))
        return pos, attrs, names
    if k == 3 or (k > 3 and ext != ".csv"):
        return [0, 1, 2], [], None  # the attributes' names come from the values (:func:`_name_columns`)
    raise MmsoldError(f"{path}: expected 3-D points (x, y, z), got {k} columns"
                      + (" (name them in a header line: x,y,z,…)" if k > 3 else ""))


def _whole(v: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(v)) and np.all(v == np.round(v)))


def _colour(values: np.ndarray, js: list[int]) -> bool:
    """Whether columns js are three adjacent whole-number channels within 0–65535."""
    return len(js) == 3 and js[2] - js[0] == 2 and all(
        _whole(values[:, j]) and values[:, j].min(initial=0) >= 0 and values[:, j].max(initial=0) <= _COLOUR_MAX[1]
        for j in js)


def _name_columns(values: np.ndarray, first: int, pts: bool = False) -> list[tuple[str, int]]:
    """(name, column) of a headerless file's columns from ``first`` on, from their values (module docstring)."""
    k = values.shape[1]
    if pts and k == first + 1:
        return [("intensity", first)]
    normal = next((a for a in range(first, k - 2)
                   if np.all(np.abs(np.linalg.norm(values[:, a:a + 3], axis=1) - 1.0) <= _UNIT_TOL)), None)
    normals = () if normal is None else range(normal, normal + 3)
    other = [j for j in range(first, k) if j not in normals]
    names = {j: f"scalar_{j}" for j in other}
    names.update({j: axis for j, axis in zip(normals, ("nx", "ny", "nz"))})
    if _colour(values, other):
        names.update(zip(other, ("red", "green", "blue")))
    elif len(other) == 4 and _colour(values, other[1:]):  # PTS rows: x y z i r g b
        names.update(zip(other, ("intensity", "red", "green", "blue")))
    return [(names[j], j) for j in range(first, k)]


def _typed(name: str, v: np.ndarray) -> np.ndarray:
    """A column as the type it holds: colour channels as uint8/uint16, other whole numbers as int64."""
    if not _whole(v):
        return v
    if name in ("red", "green", "blue") and v.min(initial=0) >= 0:
        return v.astype(np.uint8 if v.max(initial=0) <= _COLOUR_MAX[0] else np.uint16)
    if name in ("nx", "ny", "nz"):
        return v  # a normal along an axis has whole components
    return v.astype(np.int64)


def read_text_cloud(path: str | os.PathLike):
    """A :class:`~mmsold_cli.io.cloud.PointCloud` of a text file: positions and every other column."""
    from .arrays import _read_text
    from .cloud import PointCloud

    path = Path(path)
    pts = path.suffix.lower() == ".pts"
    values = _read_pts(path) if pts else _read_text(path)
    if values.size == 0:
        raise MmsoldError(f"{path}: has no point positions (x, y, z)")
    k = values.shape[1]
    pos, attrs, names = _layout(path, k)
    if names is None and k > 3:
        attrs = _name_columns(values, 3, pts)
    attributes = {name: _typed(name, values[:, j]) for name, j in attrs}
    column = {j: "xyz"[i] for i, j in enumerate(pos)} | {j: name for name, j in attrs}
    columns = [column[j] for j in range(k)]
    meta = {"text_columns": columns,
            "text_header": _header_line(path) if names is not None else None,
            "text_delimiter": _delimiter(path),
            "text_formats": dict(zip(columns, _number_formats(path, k)))}
    return PointCloud(values[:, pos], attributes, path.suffix.lower(), meta)


def _data_lines(path: Path):
    """(line number, stripped line) of a text file's rows (with a PTS file's count lines): no blank or ``#``
    lines, no header line."""
    header = header_names(path) is not None
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if header:
                header = False
                continue
            yield lineno, line


def _read_pts(path: Path) -> np.ndarray:
    """The rows of a PTS file, whose scans each start with a line holding their number of points."""
    import warnings

    from .arrays import _fields

    first = next(_data_lines(path), None)
    if first is not None and first[1].isdigit():  # one scan: numpy's C parser after its count line
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data"
                a = np.loadtxt(path, skiprows=first[0], comments="#", ndmin=2, dtype=np.float64, encoding="utf-8-sig")
            if len(a) == int(first[1]):
                return a
        except (ValueError, UnicodeDecodeError):
            pass  # several scans, or a bad line: the parser below names it
    counts, rows, bad = [], [], None
    for lineno, line in _data_lines(path):
        fields = _fields(line)
        if len(fields) == 1:
            try:
                counts.append(int(fields[0]))
                continue
            except ValueError:
                pass
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            bad = bad or (lineno, line)
            break
        if len(rows[-1]) != len(rows[0]):
            raise MmsoldError(f"{path}: ragged rows: line {lineno} has {len(rows[-1])} values, "
                              f"expected {len(rows[0])}")
    if bad is not None:
        raise not_numeric(path, bad[0], bad[1])
    if not counts:
        raise MmsoldError(f"{path}: a PTS file starts with its number of points; its first row has "
                          f"{len(rows[0]) if rows else 0} values")
    if sum(counts) != len(rows):
        raise MmsoldError(f"{path}: the PTS count lines promise {sum(counts)} points, the file has {len(rows)}")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def _number_formats(path: Path, k: int) -> list[str]:
    """Each column's printf format for decimals, from its first :data:`_DECIMAL_ROWS` rows (module docstring)."""
    from .arrays import _fields

    notation: list[set] = [set() for _ in range(k)]
    most = [0] * k
    for i, (_, line) in enumerate(_data_lines(path)):
        if i == _DECIMAL_ROWS:
            break
        fields = _fields(line)
        if len(fields) != k:  # a PTS count line
            continue
        for j, f in enumerate(fields):
            mantissa, e, _ = f.lower().partition("e")
            notation[j].add("e" if e else "n" if "n" in mantissa else "f")  # nan, inf: no notation of their own
            if "." in mantissa:
                most[j] = max(most[j], len(mantissa) - mantissa.index(".") - 1)
    formats = []
    for kinds, dec in zip(notation, most):
        kinds.discard("n")
        if len(kinds) > 1 or dec > MAX_DECIMALS:
            formats.append("%.17g")
        else:
            formats.append(f"%.{max(dec, MIN_DECIMALS)}{kinds.pop() if kinds else 'f'}")
    return formats


def text_positions(path: str | os.PathLike, values: np.ndarray) -> np.ndarray:
    """The (n, 3) positions among a text file's columns ``values`` (its header's x, y, z, else the first three)."""
    path = Path(path)
    if values.ndim != 2 or values.shape[1] <= 3:
        return values
    pos, _, _ = _layout(path, values.shape[1])
    return values[:, pos]


def _header_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for raw in fh:
            line = raw.strip()
            if line and not line.startswith("#"):
                return line
    return ""


def _delimiter(path: Path) -> str:
    """The first data row's delimiter: ``,``, ``;``, a tab or a space."""
    first = next(_data_lines(path), (0, ""))[1]
    return next((c for c in ",;\t" if c in first), " ")


def _columns(attributes: dict, meta: dict, fmt: str, ext: str):
    """(column names, header line or None, delimiter) of a text file of a cloud's positions and ``attributes``;
    ``meta``, ``fmt``: the format details of the cloud whose layout it keeps (a text input's)."""
    names = []
    for name, v in attributes.items():
        v = np.asarray(v)
        names += [name] if v.ndim == 1 else [f"{name}_{c}" for c in range(v.shape[1])]
    cols = meta.get("text_columns")
    if cols is not None:
        # a text input's layout, for the columns the output shares with it; attributes it did not have (normals)
        # follow them, and the header line names them the same way
        delim = meta.get("text_delimiter", " ") if fmt == ext else ("," if ext == ".csv" else " ")
        keep = [c for c in cols if c in ("x", "y", "z") or c in names]
        added = [c for c in names if c not in cols]
        header = meta.get("text_header")
        if header is not None and (keep + added != cols or delim != meta.get("text_delimiter", " ")):
            header = _header_for(header, cols, keep + added, meta.get("text_delimiter", " "), delim)
        return keep + added, header, delim
    delim = "," if ext == ".csv" else " "
    return ["x", "y", "z"] + names, (delim.join(["x", "y", "z"] + names) if attributes else None), delim


def _header_for(line: str, cols: list, out: list, src_delim: str, delim: str) -> str:
    """A text input's header ``line`` (naming its columns ``cols``) for the columns ``out``: the input's own
    spelling of each column it had (and its ``//``), the canonical name of each new one, joined by ``delim``."""
    prefix = "//" if line.startswith("//") else ""
    body = line[len(prefix):]
    tokens = [t.strip() for t in (body.split(src_delim) if src_delim.strip() else body.split())]
    spelled = dict(zip(cols, tokens)) if len(tokens) == len(cols) else {}
    return prefix + delim.join(spelled.get(c, c) for c in out)


def _source_formats(meta: dict) -> dict:
    """{column: printf format} for the decimal columns of a cloud read with ``meta`` (module docstring)."""
    if "text_formats" in meta:
        return meta["text_formats"]
    formats = {name: "%.9g" for name, t in (meta.get("ply_types") or {}).items() if np.dtype(t) == np.float32}
    header = meta.get("las_header")
    if header is not None:
        for axis, scale in zip("xyz", np.asarray(header.scales, dtype=float)):
            decimals = int(np.ceil(-np.log10(scale) - 1e-9)) if scale > 0 else MAX_DECIMALS + 1
            formats[axis] = "%.17g" if decimals > MAX_DECIMALS else f"%.{max(decimals, MIN_DECIMALS)}f"
    return formats


def _table(cloud, names, formats):
    """The columns in file order (float64) and their printf formats; ``formats``: {column: the input's format}."""
    by_name = {}
    for name, v in cloud.attributes.items():
        v = np.asarray(v)
        if v.ndim == 1:
            by_name[name] = v
        else:
            by_name.update({f"{name}_{c}": v[:, c] for c in range(v.shape[1])})
    cols, fmts = [], []
    for n in names:
        col = cloud.positions[:, "xyz".index(n)] if n in ("x", "y", "z") else by_name[n]
        cols.append(col)
        default = "%.7g" if n in ("nx", "ny", "nz") else "%.9g" if col.dtype == np.float32 else "%.17g"  # unit vectors
        fmts.append("%d" if col.dtype.kind in "iub" else formats.get(n, default))
    return np.column_stack(cols), fmts


def pts_columns(attributes) -> list[str]:
    """The columns of a PTS file of a cloud with these attributes (names): x, y, z, then intensity and the
    colour (only the three channels together) where it has them; a PTS row has no place for any other."""
    rgb = all(c in attributes for c in ("red", "green", "blue"))
    return [c for c in _PTS_COLUMNS if c in ("x", "y", "z") or (c == "intensity" and c in attributes)
            or (rgb and c in ("red", "green", "blue"))]


class TextCloudWriter(RowFileWriter):
    """A text cloud of ``n`` points written part by part: the bytes :func:`save_text_cloud` writes for the whole.

    ``like``: the cloud whose column order, header line and delimiter the file keeps when the parts carry
    its attributes (a text input's); parts must share their attributes.
    """

    def __init__(self, path: str | os.PathLike, n: int, *, like=None):
        self.path, self.n, self.rows = Path(path), int(n), 0
        self._like = like
        self._names = None
        self._fh = open(self.path, "wb")

    def write(self, part) -> None:
        """Append the points of ``part``."""
        if self._names is None:
            like = self._like if self._like is not None else part
            ext = self.path.suffix.lower()
            self._names, header, self._delim = _columns(part.attributes, like.meta, like.fmt, ext)
            self._formats = _source_formats(like.meta)
            if ext == ".pts":
                if like.fmt != ".pts" or self._names != like.meta.get("text_columns"):  # not a PTS input's own
                    self._names = pts_columns(part.attributes)
                header, self._delim = str(self.n), " "
            if header is not None:
                self._fh.write((header + "\n").encode())
        if len(part):
            table, fmts = _table(part, self._names, self._formats)
            np.savetxt(self._fh, table, delimiter=self._delim, fmt=fmts)
        self.rows += len(part)

    unit = "points"

    def _expected(self) -> int:
        return self.n


def save_text_cloud(path: str | os.PathLike, cloud, *, like=None) -> None:
    """Write a cloud as text (not atomically: see :func:`mmsold_cli.io.cloud.write_cloud`)."""
    with TextCloudWriter(path, len(cloud), like=like) as w:
        w.write(cloud)
