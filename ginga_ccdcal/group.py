"""Grouping frames by header values into the tree the browser and CLI show."""

from dataclasses import dataclass, field

__all__ = ["Group", "group_frames", "format_tree", "DEFAULT_GROUP_KEYS",
           "DEFAULT_TOLERANCES"]

#: The lab's default: image type, then exposure.
DEFAULT_GROUP_KEYS = ("frametype", "exptime")

#: Numeric keys whose values within this distance form one group
#: (300, 300.1 and 300.2 s are one exposure).
DEFAULT_TOLERANCES = {"exptime": 0.5, "ccd_temp": 1.0, "ccd-temp": 1.0}

_TYPE_ORDER = {"bias": 0, "dark": 1, "flat": 2, "light": 3, "unknown": 4}


@dataclass
class Group:
    """Frames sharing one value of ``key``; ``children`` split them further."""

    key: str
    value: object
    frames: list = field(default_factory=list)
    children: list = field(default_factory=list)

    @property
    def label(self):
        """Short text for the tree, e.g. ``'exptime = 30'``."""
        value = self.value
        if isinstance(value, float):
            value = f"{value:g}"
        if value is None:
            value = "(none)"
        return f"{self.key} = {value}"

    def walk(self, depth=0):
        """Yield ``(depth, group)`` for this group and every descendant."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


def _sort_key(key, value):
    if key == "frametype":
        return (0, _TYPE_ORDER.get(value, 9), "")
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _cluster(key, frames, tolerance):
    """Split frames by value; numbers within ``tolerance`` share a group."""
    buckets = {}
    numeric = []
    for frame in frames:
        value = frame.value(key)
        if tolerance and isinstance(value, (int, float)) and not isinstance(value, bool):
            numeric.append((float(value), frame))
        else:
            if isinstance(value, str):
                # A blank value is a missing one: one "(none)" group, not two.
                value = value.strip() or None
            buckets.setdefault(value, []).append(frame)
    numeric.sort(key=lambda pair: pair[0])
    run = []
    for value, frame in numeric:
        if run and value - run[-1][0] > tolerance:
            _close_run(buckets, run)
            run = []
        run.append((value, frame))
    if run:
        _close_run(buckets, run)
    return buckets


def _close_run(buckets, run):
    # Name the group by its most common value (the nominal exposure).
    values = [v for v, _ in run]
    label = max(set(values), key=values.count)
    buckets.setdefault(label, []).extend(f for _, f in run)


def group_frames(frames, keys=DEFAULT_GROUP_KEYS, tolerances=None):
    """Group frames by one or more keys, outermost first.

    Parameters
    ----------
    frames : list of `~ginga_ccdcal.scan.Frame`
    keys : sequence of str
        Derived names (``frametype``, ``exptime``, ``filter``,
        ``ccd_temp``, ``binning``) or any header keyword.
    tolerances : dict, optional
        ``{key: tolerance}`` for numeric keys; defaults to
        `DEFAULT_TOLERANCES`.

    Returns
    -------
    list of Group
        Top-level groups, sorted (types in calibration order, numbers
        ascending); the leaves hold the frames in path order.
    """
    if not keys:
        return []
    tolerances = DEFAULT_TOLERANCES if tolerances is None else tolerances
    key, rest = keys[0], tuple(keys[1:])
    buckets = _cluster(key, frames, tolerances.get(key.lower()))
    groups = []
    for value in sorted(buckets, key=lambda v: _sort_key(key, v)):
        members = sorted(buckets[value], key=lambda f: f.path)
        groups.append(Group(key, value, members,
                            group_frames(members, rest, tolerances)))
    return groups


def _type_mark(frame):
    """``'  [why the type is what it is]'`` for a file line, or ''."""
    note = getattr(frame, "type_note", "")
    if note:
        return f"  [{note}]"
    return "  [guessed]" if frame.guessed else ""


def format_tree(groups, show_files=False, indent="  "):
    """The grouped tree as text, one line per group (and file).

    With ``show_files`` each file whose type is not plainly its header's
    carries the reason in brackets (`Frame.type_note`).
    """
    lines = []
    for group in groups:
        for depth, node in group.walk():
            lines.append(f"{indent * depth}{node.label}  ({len(node.frames)} frames)")
            if show_files and not node.children:
                for frame in node.frames:
                    lines.append(f"{indent * (depth + 1)}{frame.name}{_type_mark(frame)}")
    return "\n".join(lines)
