"""The ``ginga-ccdcal`` command line.

Exit status: 0 all done; 1 done, but some files were skipped, not
calibrated or steps missing (each listed); 2 nothing could be done (bad
arguments, empty folder...); 130 interrupted (Ctrl-C); 143 terminated
(SIGTERM).

Lines on stderr start with what they are: ``skipped:`` (a file not used),
``not calibrated:`` (a light nothing could be applied to, not written),
``warning:`` (done, but look at this), ``note:``.
"""

import argparse
import os
import signal
import sys

from . import __version__
from .errors import CcdcalError

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as cleanly as after Ctrl-C (temporary files
    removed, finished outputs kept)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _clear_temps(*folders):
    """Remove the temporary files killed runs left under the output folders."""
    from .safe_write import remove_stale_temps
    for folder in folders:
        if folder and os.path.isdir(folder):
            removed = remove_stale_temps(folder)
            if removed:
                print(f"note: removed {len(removed)} temporary file(s) left in {folder} "
                      "by an interrupted run", file=sys.stderr)


class ProgressBar:
    """A tqdm bar fed by the core's ``progress(done, total, message)``."""

    def __init__(self, label, enabled=True):
        self.label, self.enabled, self.bar = label, enabled, None

    def __call__(self, done, total, message=""):
        if not self.enabled or not total:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=1000, desc=self.label, unit="", leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
                            file=sys.stderr)
        self.bar.n = int(1000 * done / total)
        self.bar.set_postfix_str(str(message)[-50:], refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _say(lines, stream=None, prefix=""):
    stream = stream or sys.stderr  # looked up now: tests and pipes swap it
    for line in lines:
        print(f"{prefix}{line}", file=stream)


def _aliases(args):
    """The user's vocabulary: --aliases, else the file the CCD Browser keeps
    beside Ginga's settings; --type TYPE=GLOB is added to it (and saved there).

    Read once per run; a broken file raises `classify.VocabularyError`, which
    `main` prints as one line (exit status 2).
    """
    if getattr(args, "_vocabulary", None) is not None:
        return args._vocabulary or None
    from .classify import add_file_types, default_aliases_path, load_aliases
    path = getattr(args, "aliases", None)
    if not path and os.path.exists(default_aliases_path()):
        path = default_aliases_path()
    file_types = dict(getattr(args, "type", None) or [])
    # --type may start a new vocabulary file; otherwise a missing one is an error
    starting = file_types and path and not os.path.lexists(path)
    vocabulary = load_aliases(path) if path and not starting else {}
    if file_types:
        path = path or default_aliases_path()
        vocabulary = add_file_types(file_types, path)
        _say((f"files '{glob}' are {kind} (saved in {path})"
              for glob, kind in file_types.items()), prefix="note: ")
    args._vocabulary = vocabulary
    return vocabulary or None


def _file_type(text):
    """``TYPE=GLOB`` of --type, e.g. ``flat=flat-*``, as (glob, type)."""
    from .classify import FRAME_TYPES
    kind, sep, glob = text.partition("=")
    kind, glob = kind.strip().lower(), glob.strip()
    if not sep or not glob or kind not in FRAME_TYPES:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not TYPE=GLOB with TYPE one of {', '.join(FRAME_TYPES)} "
            "(e.g. --type flat='flat-*')")
    return glob, kind


def _add_type_option(p):
    p.add_argument("--type", action="append", type=_file_type, metavar="TYPE=GLOB",
                   help="files matching GLOB are of TYPE whatever their header says, "
                        "e.g. --type flat='flat-*' (repeatable); kept in the vocabulary "
                        "file (--aliases) for later runs and the CCD Browser")
    p.set_defaults(uses_vocabulary=True)


def _scan(args, bar):
    from .scan import scan_folder
    result = scan_folder(args.raw, aliases=_aliases(args), progress=bar)
    bar.close()
    return result


def cmd_scan(args):
    from .group import format_tree, group_frames
    result = _scan(args, ProgressBar("scan", not args.quiet))
    keys = args.group_by or ["frametype", "exptime"]
    print(f"{result.folder}: {len(result.frames)} frames")
    print(format_tree(group_frames(result.frames, keys), show_files=args.files))
    notes = result.type_notes()
    if notes:
        print(f"{len(notes)} frame type(s) guessed, corrected or unknown, and why "
              "(settle one with --type TYPE=GLOB):")
        _say(notes, sys.stdout, "  ")
    if result.problems:
        print(f"{len(result.problems)} file(s) skipped:", file=sys.stderr)
        _say(result.problems, prefix="  ")
        return EXIT_PARTIAL
    return EXIT_OK if result.frames else EXIT_FAILED


def _calibration(args):
    """How to calibrate lights, from the options `_add_calibration_options` made."""
    from .calibrate import CalibrationOptions
    return CalibrationOptions(strict=args.strict, gain=args.gain,
                              dark_scale=args.dark_scale, readnoise=args.readnoise,
                              cosmics=args.cosmics)


def _options(args):
    from .masters import MasterOptions
    options = MasterOptions()
    for kind in ("bias", "dark", "flat"):
        method = getattr(args, f"{kind}_method", None)
        if method:
            options.method[kind] = method
        if args.sigma_clip and kind in args.sigma_clip:
            options.sigma_clip[kind] = True
    options.sigma_low, options.sigma_high = args.clip_low, args.clip_high
    options.flat_norm = args.flat_norm
    if args.mem_limit:
        options.mem_limit = int(args.mem_limit * 2**20)
    return options


def _print_masters(report):
    for master in report.masters:
        kept = " (existing, kept)" if master in report.kept else ""
        print(f"  {master.name}: {master.describe()}{kept}")
        for line in report.summary(master):
            print(f"    {line}")


def _refuse_raw_as_out(out, raw_folders):
    """The output folder must never be a folder of raw frames."""
    for folder in raw_folders:
        if os.path.abspath(out) == os.path.abspath(folder):
            raise CcdcalError(f"{out}: the output folder must differ from the raw folder")


def cmd_masters(args):
    from .reduce import NightPlan, build_night_masters, calibration_frames_text
    _refuse_raw_as_out(args.out, [args.raw])
    _clear_temps(args.out)
    result = _scan(args, ProgressBar("scan", not args.quiet))
    counts = result.counts()
    if not any(counts.get(k) for k in ("bias", "dark", "flat")):
        unreadable = f"; {len(result.problems)} unreadable" if result.problems else ""
        raise CcdcalError(calibration_frames_text(args.raw, counts) + unreadable)
    bar = ProgressBar("masters", not args.quiet)
    plan = NightPlan(os.path.abspath(args.raw), os.path.abspath(args.out),
                     os.path.abspath(args.out), result, result.frames)
    report = build_night_masters(plan, _options(args), overwrite=args.overwrite,
                                 progress=bar)
    bar.close()
    print(f"{args.raw}: {calibration_frames_text(args.raw, counts)}")
    print(f"masters in {args.out}:")
    _print_masters(report)
    _say(result.type_notes(), prefix="note: ")
    skipped = [str(p) for p in result.problems]
    _say(report.problems, prefix="warning: ")
    _say(skipped, prefix="skipped: ")
    if not report.masters:
        return EXIT_FAILED
    return EXIT_PARTIAL if skipped or report.problems else EXIT_OK


def _calibrate_inputs(items):
    """The files ``calibrate`` was given: (named files, {folder: files}).

    Raises `CcdcalError` for a path that does not exist.
    """
    from .fitsfile import is_fits_name
    named, folders = [], {}
    for item in map(str, items):
        if os.path.isdir(item):
            folders[item] = sorted(os.path.join(item, f) for f in os.listdir(item)
                                   if is_fits_name(f))
        elif os.path.exists(item):
            named.append(item)
        else:
            raise CcdcalError(f"{item}: no such file or folder")
    return named, folders


def _lights_to_calibrate(args):
    """Lights of the folders given, and any file named; notes on the rest.

    In a folder only the lights are calibrated (its bias, darks and flats
    made the masters); a calibration frame named on its own is calibrated
    as asked, with a note.
    """
    from .scan import scan_files
    named, folders = _calibrate_inputs(args.lights)
    _refuse_raw_as_out(args.out, list(folders) + [os.path.dirname(os.path.abspath(p))
                                                  for p in named])
    aliases = _aliases(args)
    explicit = scan_files(named, aliases=aliases)
    lights = list(explicit.frames)
    problems = [str(p) for p in explicit.problems]
    _say((f"{f.path}: header says {f.frametype}; calibrated as a light because it was "
          "named on the command line" for f in lights if f.frametype != "light"),
         prefix="note: ")
    for folder, files in folders.items():
        scanned = scan_files(files, folder=folder, aliases=aliases)
        problems += [str(p) for p in scanned.problems]
        found = scanned.of_type("light")
        others = {k: n for k, n in scanned.counts().items() if k != "light"}
        if not found:
            found_text = ", ".join(f"{n} {k}" for k, n in sorted(others.items()))
            raise CcdcalError(f"no light frames in {folder}"
                              + (f": {found_text}" if found_text else ": no FITS frames")
                              + (f"; {len(scanned.problems)} unreadable"
                                 if scanned.problems else ""))
        if others:
            print(f"{folder}: {len(found)} light(s); {sum(others.values())} calibration "
                  "frames left alone (" + ", ".join(
                      f"{n} {k}" for k, n in sorted(others.items())) + ")")
        lights += found
    seen, unique = set(), []
    for frame in lights:             # a file named and inside a folder given
        if os.path.abspath(frame.path) not in seen:
            seen.add(os.path.abspath(frame.path))
            unique.append(frame)
    # Outputs mirror the inputs' folders below the folder they share, so
    # 'a/light_001.fit' and 'b/light_001.fit' both survive.
    roots = list(folders) + [os.path.dirname(os.path.abspath(p)) for p in named]
    root = os.path.commonpath([os.path.abspath(r) for r in roots]) if roots else None
    return unique, problems, root


def cmd_calibrate(args):
    from .masters import load_masters
    from .reduce import calibrate_lights
    _clear_temps(args.out)
    masters = load_masters(args.masters)
    if not masters:
        raise CcdcalError(f"{args.masters}: no masters made by ginga-ccdcal there "
                          "(run 'ginga-ccdcal masters RAW --out DIR' first)")
    lights, problems, root = _lights_to_calibrate(args)
    bar = ProgressBar("calibrate", not args.quiet)
    report = calibrate_lights(lights, masters, args.out, _calibration(args),
                              raw_root=root, overwrite=args.overwrite, progress=bar)
    bar.close()
    return _print_calibration(report, problems)


def _print_calibration(report, problems, warnings=()):
    print(report.summary())
    warnings = list(warnings) + report.warnings
    _say(warnings, prefix="warning: ")
    _say((f"{path}: {reason}" for path, reason in report.not_calibrated.items()),
         prefix="not calibrated: ")
    problems = problems + report.problems
    _say(problems, prefix="skipped: ")
    if not (report.written or report.existing or report.not_calibrated):
        return EXIT_FAILED
    return (EXIT_PARTIAL if problems or warnings or report.not_calibrated
            else EXIT_OK)


def cmd_reduce(args):
    from .cluster import night_jobs, reduce_nights
    jobs = night_jobs(args.raw, args.out, args.masters)
    _clear_temps(args.out, args.masters)
    settings = dict(options=_options(args), overwrite=args.overwrite,
                    calibration=_calibration(args), aliases=_aliases(args))
    bar = ProgressBar("reduce", not args.quiet)
    if len(jobs) == 1 and not args.scheduler:
        from .reduce import reduce_night
        night = reduce_night(args.raw[0], args.out, masters_dir=args.masters,
                             progress=bar, **settings)
        bar.close()
        return _print_night(args.raw[0], night)
    outcomes = reduce_nights(jobs, scheduler=args.scheduler, progress=bar,
                             say=lambda line: print(line, flush=True), **settings)
    bar.close()
    if len(outcomes) == 1:
        if outcomes[0].error:
            raise CcdcalError(outcomes[0].error)
        return _print_night(args.raw[0], outcomes[0].report)
    return _print_nights(args.raw, outcomes)


def _print_nights(nights, outcomes):
    """Each night's summary, a total line, and the exit status of them all."""
    codes = []
    for raw, outcome in zip(nights, outcomes):
        print(f"== {raw} -> {outcome.job.out_dir}")
        if outcome.error:
            print(f"ginga-ccdcal: {outcome.error}", file=sys.stderr)
            codes.append(EXIT_FAILED)
        else:
            codes.append(_print_night(raw, outcome.report))
    print(f"{len(codes)} nights: {codes.count(EXIT_OK)} done, "
          f"{codes.count(EXIT_PARTIAL)} with files skipped or steps missing, "
          f"{codes.count(EXIT_FAILED)} not reduced")
    if all(code == EXIT_FAILED for code in codes):
        return EXIT_FAILED
    return EXIT_OK if all(code == EXIT_OK for code in codes) else EXIT_PARTIAL


def _print_night(raw, night):
    """A night's summary (`reduce_night`'s report) and its exit status."""
    counts = night.scan.counts()
    print(f"{raw}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print("masters:")
    _print_masters(night.masters)
    _say(night.scan.type_notes(guessed=False), prefix="note: ")
    return _print_calibration(night.calibration, [str(p) for p in night.scan.problems],
                              night.guessed + night.masters.problems)


def cmd_watch(args):
    from .watch import FolderWatcher
    masters_dir = args.masters or os.path.join(args.out, "masters")
    _clear_temps(args.out, masters_dir if args.live_masters else None)
    if not os.path.isdir(masters_dir):
        print(f"note: {masters_dir} does not exist yet; masters are built there from "
              "the calibration frames in the folder, and lights are calibrated as "
              "far as the masters allow", file=sys.stderr)

    def show(result):
        # Problems and lights left uncalibrated go where the other
        # commands put theirs.
        stream = sys.stderr if result.status in ("problem", "uncalibrated") else sys.stdout
        print(result.summary(), file=stream, flush=True)

    watcher = FolderWatcher(args.raw, args.out, masters_dir=masters_dir, on_result=show,
                            on_event=lambda text: print(f"watch: {text}", flush=True),
                            poll=args.poll, existing=not args.new_only,
                            settle=args.settle, aliases=_aliases(args),
                            rebuild_masters=args.live_masters,
                            calibration=_calibration(args))
    print(f"watching {args.raw} (Ctrl-C to stop)", flush=True)
    try:
        with watcher:
            watcher.wait(args.duration)
    except KeyboardInterrupt:
        # Ctrl-C is how a night of watching ends: stop cleanly, not an error.
        watcher.stop()
    counts = ", ".join(f"{n} {k}" + (f" ({watcher.redone} redone)"
                                     if k == "calibrated" and watcher.redone else "")
                       for k, n in watcher.counts.items() if n)
    print(f"stopped: {counts or 'nothing new'}", flush=True)
    return EXIT_OK


def cmd_characterise(args):
    from .characterise import REPORT_FILES, characterise_folder
    if args.out and not args.overwrite:
        there = [name for name in REPORT_FILES.values()
                 if os.path.exists(os.path.join(args.out, name))]
        if there:
            raise CcdcalError(f"{args.out}: a report is already there ({', '.join(there)}); "
                              "use --overwrite to replace it")
    bar = ProgressBar("characterise", not args.quiet)
    report = characterise_folder(args.raw, args.out, progress=bar,
                                 masters_dir=args.masters)
    bar.close()
    print("\n".join(report.lines()))
    if args.out:
        print(f"report written to {args.out}")
    return EXIT_OK


def cmd_sample(args):
    from .sample import make_sample_night
    bar = ProgressBar("sample night", not args.quiet)
    paths = make_sample_night(args.dir, scale=args.scale, seed=args.seed,
                              overwrite=args.overwrite, progress=bar)
    bar.close()
    print(f"{len(paths)} frames written to {args.dir} (Feder Observatory "
          "2013-07-04 headers, synthetic pixels)")
    return EXIT_OK


def _gui_viewer():
    """The viewer module, or None after saying how to install it (extra ``gui``)."""
    try:
        from .gui import viewer
    except ImportError as exc:
        print(f"ginga-ccdcal: the viewer needs Ginga and a Qt binding ({exc}); "
              "pip install 'ginga-ccdcal[gui]'", file=sys.stderr)
        return None
    return viewer


def cmd_gui(args):
    viewer = _gui_viewer()
    if viewer is None:
        return EXIT_FAILED
    return viewer.start_viewer(args.raw, screenshot=args.screenshot)


def cmd_demo(args):
    viewer = _gui_viewer()
    if viewer is None:
        return EXIT_FAILED
    return viewer.run_demo(args.dir, screenshot=args.screenshot, scale=args.scale)


def _add_master_options(p):
    methods = ("average", "median")
    p.add_argument("--bias-method", choices=methods, help="default: average")
    p.add_argument("--dark-method", choices=methods, help="default: median")
    p.add_argument("--flat-method", choices=methods, help="default: median")
    p.add_argument("--sigma-clip", nargs="+", choices=("bias", "dark", "flat"),
                   metavar="KIND", help="sigma-clip these kinds before combining")
    p.add_argument("--clip-low", type=float, default=3.0, help="low clip, sigma (3)")
    p.add_argument("--clip-high", type=float, default=3.0, help="high clip, sigma (3)")
    p.add_argument("--flat-norm", choices=("mean", "median"), default="mean",
                   help="divide the master flat by its mean (default, as ccdproc "
                        "and IRAF do) or its median")
    p.add_argument("--mem-limit", type=float, metavar="MB",
                   help="memory the combination may use (default: a quarter of RAM, "
                        "at most 2 GB)")


def _add_calibration_options(p):
    p.add_argument("--strict", action="store_true",
                   help="skip a light if any master is missing (default: apply "
                        "what exists and record the gaps in the header)")
    p.add_argument("--dark-scale", choices=("exposure", "fit"), default="exposure",
                   help="scale the dark by the exposure ratio (default), or fit the "
                        "factor that best removes its hot pixels from each light")
    p.add_argument("--gain", metavar="E_PER_ADU", type=_gain_value,
                   help="convert to electrons with this gain, or 'header' for GAIN/EGAIN")
    p.add_argument("--readnoise", metavar="ELECTRONS", type=float,
                   help="write a per-pixel uncertainty (UNCERT extension) from this "
                        "read noise and the photon noise; needs --gain")
    p.add_argument("--cosmics", action="store_true",
                   help="remove cosmic rays from the calibrated lights (L.A.Cosmic)")


def _gain_value(text):
    """--gain: a number (e-/ADU) or 'header'."""
    if text == "header":
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'header'"
                                         if value is None else
                                         f"{text!r}: the gain must be a positive number")
    return value


def _global_options(parser, default):
    """-q and --aliases, accepted before the command and after it."""
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bars")
    parser.add_argument("--aliases", metavar="JSON", default=default,
                        help="your own IMAGETYP/FILTER spellings, e.g. "
                             '{"type": {"calib-z": "bias"}, "filter": {"Halpha": "Ha"}}; '
                             "default: ~/.ginga/ccdcal_aliases.json, kept by the CCD "
                             "Browser")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ginga-ccdcal",
        description="CCD calibration: scan a night, build masters, calibrate lights.",
        epilog="Raw files are never modified; outputs are never overwritten "
               "unless --overwrite is given.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, None)
    parser.set_defaults(quiet=False)
    # After the command as well; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, **kwargs):
        return sub.add_parser(name, parents=[common], **kwargs)

    p = command("scan", help="show a folder's frames grouped by header values")
    p.add_argument("raw", help="folder of raw frames (searched recursively)")
    p.add_argument("--group-by", nargs="+", metavar="KEY",
                   help="keywords to group by, outermost first "
                        "(default: frametype exptime; any header keyword works)")
    p.add_argument("--files", action="store_true", help="list every file")
    _add_type_option(p)
    p.set_defaults(func=cmd_scan)

    p = command("masters", help="build master bias, darks and flats")
    p.add_argument("raw", help="folder of raw frames")
    p.add_argument("--out", required=True, help="folder for the masters")
    p.add_argument("--overwrite", action="store_true", help="rebuild existing masters")
    _add_type_option(p)
    _add_master_options(p)
    p.set_defaults(func=cmd_masters)

    p = command("calibrate", help="calibrate lights with existing masters")
    p.add_argument("lights", nargs="+", help="light frames (files or folders)")
    p.add_argument("--masters", required=True, help="folder with the masters")
    p.add_argument("--out", required=True, help="folder for calibrated frames")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_type_option(p)
    _add_calibration_options(p)
    p.set_defaults(func=cmd_calibrate)

    p = command("reduce", help="the whole night: masters, then every light")
    p.add_argument("raw", nargs="+", metavar="NIGHT",
                   help="folder of raw frames; with several nights, each one's "
                        "products go to OUT/<night folder name>/")
    p.add_argument("--scheduler", metavar="ADDRESS|local:N",
                   help="run on a dask.distributed cluster: a scheduler address "
                        "(tcp://host:8786), or local:N to start N worker processes "
                        "here; folders must be shared by all workers (extra 'cluster')")
    p.add_argument("--out", required=True, help="folder for calibrated frames")
    p.add_argument("--masters", help="folder for masters (default OUT/masters; "
                                     "with several nights, MASTERS/<night>)")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild masters and recalibrate existing outputs")
    _add_type_option(p)
    _add_master_options(p)
    _add_calibration_options(p)
    p.set_defaults(func=cmd_reduce)

    p = command("watch", help="calibrate each new light as the camera writes it")
    p.add_argument("raw", help="the camera's folder")
    p.add_argument("--out", required=True, help="folder for calibrated frames")
    p.add_argument("--masters", help="folder of masters, reloaded when it changes "
                                     "(default OUT/masters)")
    p.add_argument("--poll", action="store_true",
                   help="poll instead of file-system notifications (network drives)")
    p.add_argument("--new-only", action="store_true",
                   help="ignore the frames already in the folder")
    p.add_argument("--live-masters", action="store_true",
                   help="rebuild masters when new bias/dark/flat frames arrive; later "
                        "lights use the new ones")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="a file unchanged this long counts as written when the "
                        "system does not say it was closed; one that then will not "
                        "parse is reported (default 2)")
    _add_type_option(p)
    _add_calibration_options(p)
    p.set_defaults(func=cmd_watch)

    p = command("characterise",
                       help="read noise, gain, dark current, hot pixels, vignetting")
    p.add_argument("raw", help="folder with bias, dark and flat frames")
    p.add_argument("--out", help="write an HTML/text report with plots here")
    p.add_argument("--masters", help="folder of masters to use where they fit")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report already in --out")
    p.set_defaults(func=cmd_characterise)

    p = command("sample", help="write a sample night (real headers, synthetic pixels)")
    p.add_argument("dir", help="folder to create")
    p.add_argument("--scale", type=float, default=0.25,
                   help="image size relative to the real 3085x2048 camera (0.25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = command("gui", help="start Ginga with the CCD plugins")
    p.add_argument("raw", nargs="?", help="folder to open in the CCD Browser")
    p.add_argument("--screenshot", metavar="PNG",
                   help="save a screenshot once the folder is scanned, then exit")
    p.set_defaults(func=cmd_gui)

    p = command("demo", help="sample night -> masters -> calibrated frame in Ginga")
    p.add_argument("dir", nargs="?", default="ccdcal-demo",
                   help="working folder (default ./ccdcal-demo)")
    p.add_argument("--scale", type=float, default=0.25, help="see 'sample'")
    p.add_argument("--screenshot", metavar="PNG",
                   help="save a screenshot and exit (automatic without a display)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    previous = _on_sigterm(_raise_terminated)
    try:
        return _run(argv)
    finally:
        _on_sigterm(previous)


def _run(argv):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "readnoise", None) is not None and args.gain is None:
            parser.error("--readnoise needs --gain (e-/ADU, or 'header'): the noise "
                         "is computed in electrons")
        if getattr(args, "uses_vocabulary", False):
            _aliases(args)  # a broken vocabulary file stops before any output
        return args.func(args)
    except CcdcalError as exc:
        print(f"ginga-ccdcal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"ginga-ccdcal: {what}; finished outputs are kept, run again "
              "to continue", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM; returns the one it replaces.

    Signals can only be handled in the main thread (a caller embedding
    `main` elsewhere keeps its own handling).
    """
    import threading
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
