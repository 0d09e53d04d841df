"""Is a product already on disk still right?  One answer for every caller.

`reduce` (resuming a night), ``calibrate`` and the watcher all meet outputs
made earlier: by a run that was stopped, by a watcher that ran beside a
``reduce``, from a raw file that has since been overwritten, or with
masters that have since been rebuilt.  Such a product is kept only if it
is what calibrating now would give:

calibrated lights (`check_light_product`)
    the file is whole and written by this package; the raw file is the one
    it was made from (size and modification time, else its checksum:
    RAWSIZE, RAWMTIME, RAWSUM recorded by `record_raw`); every master it
    used is the one `ginga_ccdcal.match.match_light` chooses now, in the
    same version (BIASFILE/BIASSUM... against the file's checksum); and
    every step it lacks is still impossible.
masters (`check_masters`)
    the set of raw frames it was combined from (its HISTORY ``input``
    lines) is the set of frames present now that belong to it, none of
    them changed since; and the masters it was made with (a bias for a
    dark; a bias and darks for a flat) have not been rebuilt since.

Anything else is redone, and the reason says why.
"""

import os
from dataclasses import dataclass, field

from .errors import CcdcalError, FrameError
from .fitsfile import read_header
from .group import DEFAULT_TOLERANCES
from .match import TEMP_TOLERANCE, compatible, setup_key
from .provenance import file_checksum
from .scan import is_product

__all__ = ["RawIdentity", "Verdict", "MasterCheck", "raw_identity", "raw_touched",
           "CHANGED_WHILE_READ", "record_raw",
           "recorded_raw", "raw_changed", "check_light_product", "master_inputs",
           "masters_lacking", "check_masters", "belongs_to_master"]

#: Masters of these kinds are made with masters of the kinds listed.
DEPENDS_ON = {"bias": (), "dark": ("bias",), "flat": ("bias", "dark")}

_ROLES = ("bias", "dark", "flat")


@dataclass(frozen=True)
class RawIdentity:
    """What identifies the bytes of a raw file: size, mtime (ns), SHA-1 (16 hex)."""

    size: int
    mtime_ns: int
    checksum: str


def raw_identity(path):
    """The `RawIdentity` of ``path`` now.

    Take it *before* reading the file for calibration: a change while it is
    read then shows as a difference next time, and the product is redone.

    Raises
    ------
    FrameError
        The file cannot be read.
    """
    try:
        stat = os.stat(path)
        checksum = file_checksum(path)
    except OSError as exc:
        raise FrameError(path, f"cannot read ({exc.strerror or exc})") from None
    return RawIdentity(stat.st_size, stat.st_mtime_ns, checksum)


#: RAWSUM of a product whose raw file changed while it was read: it
#: matches no file, so the product is redone next time.
CHANGED_WHILE_READ = "changed-in-read"


def raw_touched(identity, path):
    """True if ``path``'s size or modification time is no longer ``identity``'s
    (or it cannot be read): the one test of "the same file, unread".

    `raw_changed` asks it before reading any checksum; a calibration asks
    it after reading the file while its `raw_identity` was being taken
    (a change in between makes that checksum unreliable).
    """
    try:
        stat = os.stat(path)
    except OSError:
        return True
    return (stat.st_size, stat.st_mtime_ns) != (identity.size, identity.mtime_ns)


def record_raw(header, identity):
    """Write ``identity`` into a product's header (RAWSIZE, RAWMTIME, RAWSUM)."""
    header["RAWSIZE"] = (int(identity.size), "bytes of the raw file calibrated")
    header["RAWMTIME"] = (int(identity.mtime_ns), "its modification time, ns since 1970")
    header["RAWSUM"] = (identity.checksum, "SHA-1 (16 hex) of the raw file"
                        if identity.checksum != CHANGED_WHILE_READ
                        else "raw file changed while read: redo")


def recorded_raw(header):
    """The `RawIdentity` a product records, or None if it records none."""
    try:
        return RawIdentity(int(header["RAWSIZE"]), int(header["RAWMTIME"]),
                           str(header["RAWSUM"]).strip())
    except (KeyError, TypeError, ValueError):
        return None


def raw_changed(recorded, path):
    """Why the raw file at ``path`` is not the one ``recorded``, or None.

    Size and modification time equal: the same file (no need to read it).
    Otherwise the checksum decides, so a file merely touched or copied
    with a new time still counts as the same.
    """
    if not raw_touched(recorded, path):
        return None
    try:
        size = os.stat(path).st_size
        if file_checksum(path) == recorded.checksum:
            return None
    except OSError as exc:
        return f"the raw file cannot be read ({exc.strerror or exc})"
    if size != recorded.size:
        return (f"the raw file changed since it was calibrated "
                f"({recorded.size} -> {size} bytes)")
    return "the raw file changed since it was calibrated (new content)"


@dataclass
class Verdict:
    """`check_light_product`'s answer for one product.

    Attributes
    ----------
    path : str
    exists : bool
        Whether there is a file at ``path`` at all.
    keep : bool
        The product is right as it is.
    reasons : list of str
        Why it must be redone (empty when kept or absent).
    """

    path: str
    exists: bool
    keep: bool
    reasons: list = field(default_factory=list)

    @property
    def reason(self):
        """The reasons as one phrase."""
        return "; ".join(self.reasons)


def _used_master(header, role):
    """(file name, checksum) of the master a product records for ``role``."""
    tag = role.upper()[:4]
    name = header.get(f"{tag}FILE")
    if name is None:
        return None, None
    return str(name).strip(), str(header.get(f"{tag}SUM", "")).strip()


def _master_differs(header, choice):
    """Why the master recorded for ``choice.role`` is not ``choice``, or None."""
    role = choice.role
    used, used_sum = _used_master(header, role)
    now = choice.master
    if used is None and now is None:
        return None
    if used is None:
        return f"{role} now available ({now.name}) but not applied in it"
    if now is None:
        return f"it used {used} for the {role}, which would not be chosen now ({choice.reason})"
    if used != now.name:
        return f"{now.name} would be chosen now for the {role}, not {used}"
    try:
        current = file_checksum(now.path)
    except OSError:
        return f"{now.name} cannot be read"
    if current != used_sum:
        return f"{now.name} was rebuilt since ({now.version})"
    return None


def check_light_product(path, frame, match):
    """Whether the calibrated light at ``path`` is still right.

    Parameters
    ----------
    path : str
        Where the calibrated ``frame`` is (or would be) written.
    frame : `~ginga_ccdcal.scan.Frame`
        The raw light.
    match : `~ginga_ccdcal.match.MatchResult`
        The masters that would be used now (`~ginga_ccdcal.match.match_light`).

    Returns
    -------
    Verdict

    Raises
    ------
    CcdcalError
        A whole FITS file is at ``path`` that this package did not write:
        it is never replaced.
    """
    if not os.path.exists(path):
        return Verdict(path, False, False)
    try:
        header = read_header(path).header
    except FrameError as exc:
        return Verdict(path, True, False, [f"the output is incomplete ({exc.problem})"])
    if not is_product(header):
        raise CcdcalError(f"{path}: exists and was not written by ginga_ccdcal; "
                          "not replaced")
    reasons = []
    recorded = recorded_raw(header)
    if recorded is None:
        reasons.append("it records no checksum of its raw file")
    else:
        changed = raw_changed(recorded, frame.path)
        if changed:
            reasons.append(changed)
    for choice in (match.bias, match.dark, match.flat):
        differs = _master_differs(header, choice)
        if differs:
            reasons.append(differs)
    return Verdict(path, True, not reasons, reasons)


# -- masters ---------------------------------------------------------------------

def _history_items(header):
    """Our HISTORY sentences, re-joined where FITS wrapped them at 72 chars."""
    items = []
    for card in header.get("HISTORY", []) if "HISTORY" in header else []:
        text = str(card)
        if text.startswith("ccdcal: ") or not items:
            items.append(text)
        else:
            items[-1] += text
    return items


def master_inputs(master, present=()):
    """The raw files ``master`` was combined from, as absolute paths.

    Read from the ``input`` lines `ginga_ccdcal.provenance.record_sources`
    writes to HISTORY.  Those name the files relative to the folder the
    inputs had in common (never as absolute paths), so relative names are
    placed by finding that folder among the files ``present``: the folder
    below which most of the names exist.  Names that cannot be placed (a
    master made from another folder) are left out.

    Parameters
    ----------
    master : `~ginga_ccdcal.masters.MasterFrame`
    present : iterable of str
        Paths of the raw files there are now.

    Returns
    -------
    list of str
    """
    names = []
    for item in _history_items(master.header or {}):
        if item.startswith("ccdcal: input "):
            names.append(item[len("ccdcal: input "):].strip())
    paths = [os.path.abspath(n) for n in names if os.path.isabs(n)]
    relative = [n.replace("/", os.sep) for n in names if not os.path.isabs(n)]
    root = _inputs_root(relative, present)
    if root is not None:
        paths += [os.path.join(root, n) for n in relative]
    return paths


def _inputs_root(names, present):
    """The folder below which most of the relative ``names`` are ``present``."""
    by_name = {}
    for path in present:
        path = os.path.abspath(path)
        by_name.setdefault(os.path.basename(path), []).append(path)
    votes = {}
    for name in names:
        for path in by_name.get(os.path.basename(name), ()):
            if path == name or path.endswith(os.sep + name):
                root = path[: len(path) - len(name) - 1]
                votes[root] = votes.get(root, 0) + 1
    if not votes:
        return None
    return max(sorted(votes), key=votes.get)


def belongs_to_master(frame, master):
    """Whether ``frame`` would be combined into ``master``: of its kind and
    `ginga_ccdcal.match.compatible` in the very same setup, at the same
    cooler set-point (masters are split by temperature), the rule the
    master builder's own stale check (`~ginga_ccdcal.masters.stale_masters`)
    uses."""
    return frame.frametype == master.kind and compatible(
        frame, master, subframe=False, tolerance=DEFAULT_TOLERANCES["exptime"],
        temp_tolerance=TEMP_TOLERANCE)


def masters_lacking(frame, masters, present=()):
    """The masters ``frame`` belongs to but was not combined into as it is
    now (not among its inputs, or changed since the master was made).

    ``present`` are the raw files there are now (see `master_inputs`).

    Examples
    --------
    >>> [m.name for m in masters_lacking(new_dark, masters)]   # doctest: +SKIP
    ['master_dark_300s.fits']
    """
    path = os.path.abspath(frame.path)
    present = {path, *map(os.path.abspath, present)}
    return [m for m in masters if belongs_to_master(frame, m)
            and (path not in master_inputs(m, present) or frame.mtime > m.mtime)]


@dataclass
class MasterCheck:
    """`check_masters`' answer.

    Attributes
    ----------
    outdated : dict
        ``{master path: reason}`` for masters to rebuild.
    unaccounted : list of `~ginga_ccdcal.scan.Frame`
        Calibration frames in no master and fitting none: a master is
        missing for them.
    """

    outdated: dict = field(default_factory=dict)
    unaccounted: list = field(default_factory=list)

    def __bool__(self):
        return bool(self.outdated or self.unaccounted)


def check_masters(masters, frames, *, raw_root, seen=()):
    """Which masters no longer match the raw frames present.

    Parameters
    ----------
    masters : list of `~ginga_ccdcal.masters.MasterFrame`
    frames : list of `~ginga_ccdcal.scan.Frame`
        The raw frames present now (all of ``raw_root``).
    raw_root : str
        The folder ``frames`` come from.  Inputs of a master outside it
        are not judged (they cannot be seen from here).
    seen : collection of (path, mtime)
        Frames already offered to the builder as they are now: they do not
        make a master outdated again (a saturated flat is left out of its
        master every time).

    Returns
    -------
    MasterCheck
    """
    root = os.path.abspath(raw_root) + os.sep
    present = {os.path.abspath(f.path): f for f in frames}
    inputs = {m.path: set(master_inputs(m, present)) for m in masters}
    recorded = {}
    for m in masters:
        recorded.setdefault(m.kind, set()).update(inputs[m.path])
    new = [f for p, f in present.items()
           if f.frametype in DEPENDS_ON and p not in recorded.get(f.frametype, ())
           and (p, f.mtime) not in seen]
    check = MasterCheck()
    order = {kind: i for i, kind in enumerate(DEPENDS_ON)}
    for m in sorted(masters, key=lambda m: (order.get(m.kind, 9), m.path)):
        reasons = _input_changes(m, inputs[m.path], present, root, seen)
        joining = [f for f in new if belongs_to_master(f, m)]
        if joining:
            reasons.append(f"{len(joining)} new frame(s) not in it "
                           f"({', '.join(sorted(f.name for f in joining)[:3])}"
                           + (", ..." if len(joining) > 3 else "") + ")")
        reasons += _dependency_changes(m, masters, check.outdated)
        if reasons:
            check.outdated[m.path] = "; ".join(reasons)
    check.unaccounted = [f for f in new if not any(belongs_to_master(f, m) for m in masters)]
    return check


def _input_changes(master, inputs, present, root, seen):
    """Inputs gone from, or changed in, the raw folder since ``master`` was made."""
    gone = [p for p in inputs if p.startswith(root)
            and (p not in present or present[p].frametype != master.kind)]
    changed = [p for p in inputs if p in present and present[p].mtime > master.mtime
               and (p, present[p].mtime) not in seen]
    reasons = []
    if gone:
        reasons.append(f"{len(gone)} of its frames gone or no longer "
                       f"{master.kind} ({os.path.basename(sorted(gone)[0])}...)")
    if changed:
        reasons.append(f"{len(changed)} of its frames changed since it was made "
                       f"({os.path.basename(sorted(changed)[0])}...)")
    return reasons


def _same_set_point(one, other):
    """Whether two masters are of one cooler set-point (or either's is unknown):
    a -5 C dark is never made with the -10 C master bias."""
    if one.ccd_temp is None or other.ccd_temp is None:
        return True
    return abs(one.ccd_temp - other.ccd_temp) <= TEMP_TOLERANCE


def _dependency_changes(master, masters, outdated):
    """Masters ``master`` was made with that were rebuilt since, or will be."""
    reasons = []
    for other in masters:
        if (other.kind not in DEPENDS_ON[master.kind]
                or setup_key(other) != setup_key(master)
                or not (_same_set_point(other, master)
                        or _used_master(master.header or {}, other.kind)[0] == other.name)):
            continue
        if other.path in outdated:
            reasons.append(f"{other.name} is being rebuilt")
        elif other.mtime > master.mtime:
            reasons.append(f"{other.name} is newer")
        else:
            used, used_sum = _used_master(master.header or {}, other.kind)
            if used == other.name and used_sum and file_checksum(other.path) != used_sum:
                reasons.append(f"{other.name} changed since")
    return reasons
