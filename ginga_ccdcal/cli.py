"""The ``ginga-ccdcal`` command line.

Exit status: 0 all done; 1 done, but some files were skipped or steps
missing (each listed); 2 nothing could be done (bad arguments, empty
folder...); 130 interrupted.
"""

import argparse
import os
import sys

from . import __version__
from .errors import CcdcalError

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    """--aliases, else the file the CCD Browser keeps beside Ginga's settings."""
    import os
    from .classify import default_aliases_path, load_aliases
    path = getattr(args, "aliases", None)
    if not path and os.path.exists(default_aliases_path()):
        path = default_aliases_path()
    return load_aliases(path) if path else None


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
    guessed = [f for f in result.frames if f.guessed]
    if guessed:
        print(f"{len(guessed)} frame type(s) guessed from the pixels "
              "(no usable IMAGETYP/OBSTYPE/FRAMETYP):")
        _say((f.name + " -> " + f.frametype for f in guessed), sys.stdout, "  ")
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
    if args.mem_limit:
        options.mem_limit = int(args.mem_limit * 2**20)
    return options


def _print_masters(report):
    for master in report.masters:
        kept = " (existing, kept)" if master in report.kept else ""
        print(f"  {master.name}: {master.describe()}{kept}")


def cmd_masters(args):
    from .masters import build_masters
    result = _scan(args, ProgressBar("scan", not args.quiet))
    bar = ProgressBar("masters", not args.quiet)
    report = build_masters(result.frames, args.out, _options(args),
                           overwrite=args.overwrite, progress=bar)
    bar.close()
    print(f"masters in {args.out}:")
    _print_masters(report)
    problems = [str(p) for p in result.problems] + report.problems
    _say(problems, prefix="warning: ")
    if not report.masters:
        return EXIT_FAILED
    return EXIT_PARTIAL if problems else EXIT_OK


def cmd_calibrate(args):
    from .masters import load_masters
    from .reduce import calibrate_lights
    from .scan import scan_files
    masters = load_masters(args.masters)
    if not masters:
        raise CcdcalError(f"{args.masters}: no masters made by ginga-ccdcal there "
                          "(run 'ginga-ccdcal masters RAW --out DIR' first)")
    files = []
    for item in args.lights:
        if os.path.isdir(item):
            from .fitsfile import is_fits_name
            files += sorted(os.path.join(item, f) for f in os.listdir(item)
                            if is_fits_name(f))
        else:
            files.append(item)
    scanned = scan_files(files, aliases=_aliases(args))
    lights = scanned.frames
    not_light = [f for f in lights if f.frametype != "light"]
    _say((f"{f.path}: header says {f.frametype}, calibrating as a light anyway"
          for f in not_light), prefix="note: ")
    bar = ProgressBar("calibrate", not args.quiet)
    report = calibrate_lights(lights, masters, args.out, _calibration(args),
                              overwrite=args.overwrite, progress=bar)
    bar.close()
    return _print_calibration(report, [str(p) for p in scanned.problems])


def _print_calibration(report, problems):
    print(f"{len(report.written)} calibrated, {len(report.existing)} already there "
          "(kept; --overwrite to redo)" if report.existing else
          f"{len(report.written)} calibrated")
    _say(report.warnings, prefix="warning: ")
    problems = problems + report.problems
    _say(problems, prefix="skipped: ")
    if not report.written and not report.existing:
        return EXIT_FAILED
    return EXIT_PARTIAL if problems or report.warnings else EXIT_OK


def cmd_reduce(args):
    from .reduce import reduce_night
    bar = ProgressBar("reduce", not args.quiet)
    night = reduce_night(args.raw, args.out, masters_dir=args.masters,
                         options=_options(args), overwrite=args.overwrite,
                         calibration=_calibration(args), aliases=_aliases(args),
                         progress=bar)
    bar.close()
    counts = night.scan.counts()
    print(f"{args.raw}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print("masters:")
    _print_masters(night.masters)
    problems = [str(p) for p in night.scan.problems] + night.guessed + night.masters.problems
    return _print_calibration(night.calibration, problems)


def cmd_watch(args):
    from .watch import FolderWatcher
    masters_dir = args.masters or os.path.join(args.out, "masters")
    if not os.path.isdir(masters_dir):
        print(f"note: {masters_dir} does not exist yet; lights are calibrated "
              "as far as the masters that appear there allow", file=sys.stderr)

    def show(result):
        stream = sys.stderr if result.status == "problem" else sys.stdout
        print(result.summary(), file=stream, flush=True)

    watcher = FolderWatcher(args.raw, args.out, masters_dir=masters_dir, on_result=show,
                            on_event=lambda text: print(f"watch: {text}", flush=True),
                            poll=args.poll, existing=not args.new_only,
                            aliases=_aliases(args), rebuild_masters=args.live_masters,
                            calibration=_calibration(args))
    print(f"watching {args.raw} (Ctrl-C to stop)", flush=True)
    with watcher:
        try:
            watcher.wait(args.duration)
        except KeyboardInterrupt:
            pass
    counts = ", ".join(f"{n} {k}" for k, n in watcher.counts.items() if n)
    print(f"stopped: {counts or 'nothing new'}")
    return EXIT_PARTIAL if watcher.counts.get("problem") else EXIT_OK


def cmd_characterise(args):
    from .characterise import characterise_folder
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
    p.add_argument("--gain", metavar="E_PER_ADU",
                   type=lambda s: s if s == "header" else float(s),
                   help="convert to electrons with this gain, or 'header' for GAIN/EGAIN")
    p.add_argument("--readnoise", metavar="ELECTRONS", type=float,
                   help="write a per-pixel uncertainty (UNCERT extension) from this "
                        "read noise and the photon noise; needs --gain")
    p.add_argument("--cosmics", action="store_true",
                   help="remove cosmic rays from the calibrated lights (L.A.Cosmic)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ginga-ccdcal",
        description="CCD calibration: scan a night, build masters, calibrate lights.",
        epilog="Raw files are never modified; outputs are never overwritten "
               "unless --overwrite is given.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--aliases", metavar="JSON",
                        help="your own IMAGETYP/FILTER spellings, e.g. "
                             '{"type": {"calib-z": "bias"}, "filter": {"Halpha": "Ha"}}; '
                             "default: ~/.ginga/ccdcal_aliases.json, kept by the CCD Browser")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("scan", help="show a folder's frames grouped by header values")
    p.add_argument("raw", help="folder of raw frames (searched recursively)")
    p.add_argument("--group-by", nargs="+", metavar="KEY",
                   help="keywords to group by, outermost first "
                        "(default: frametype exptime; any header keyword works)")
    p.add_argument("--files", action="store_true", help="list every file")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("masters", help="build master bias, darks and flats")
    p.add_argument("raw", help="folder of raw frames")
    p.add_argument("--out", required=True, help="folder for the masters")
    p.add_argument("--overwrite", action="store_true", help="rebuild existing masters")
    _add_master_options(p)
    p.set_defaults(func=cmd_masters)

    p = sub.add_parser("calibrate", help="calibrate lights with existing masters")
    p.add_argument("lights", nargs="+", help="light frames (files or folders)")
    p.add_argument("--masters", required=True, help="folder with the masters")
    p.add_argument("--out", required=True, help="folder for calibrated frames")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_calibration_options(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("reduce", help="the whole night: masters, then every light")
    p.add_argument("raw", help="folder of raw frames")
    p.add_argument("--out", required=True, help="folder for calibrated frames")
    p.add_argument("--masters", help="folder for masters (default OUT/masters)")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild masters and recalibrate existing outputs")
    _add_master_options(p)
    _add_calibration_options(p)
    p.set_defaults(func=cmd_reduce)

    p = sub.add_parser("watch", help="calibrate each new light as the camera writes it")
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
    _add_calibration_options(p)
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("characterise",
                       help="read noise, gain, dark current, hot pixels, vignetting")
    p.add_argument("raw", help="folder with bias, dark and flat frames")
    p.add_argument("--out", help="write an HTML/text report with plots here")
    p.add_argument("--masters", help="folder of masters to use where they fit")
    p.set_defaults(func=cmd_characterise)

    p = sub.add_parser("sample", help="write a sample night (real headers, synthetic pixels)")
    p.add_argument("dir", help="folder to create")
    p.add_argument("--scale", type=float, default=0.25,
                   help="image size relative to the real 3085x2048 camera (0.25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("gui", help="start Ginga with the CCD plugins")
    p.add_argument("raw", nargs="?", help="folder to open in the CCD Browser")
    p.add_argument("--screenshot", metavar="PNG",
                   help="save a screenshot once the folder is scanned, then exit")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("demo", help="sample night -> masters -> calibrated frame in Ginga")
    p.add_argument("dir", nargs="?", default="ccdcal-demo",
                   help="working folder (default ./ccdcal-demo)")
    p.add_argument("--scale", type=float, default=0.25, help="see 'sample'")
    p.add_argument("--screenshot", metavar="PNG",
                   help="save a screenshot and exit (automatic without a display)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CcdcalError as exc:
        print(f"ginga-ccdcal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ginga-ccdcal: interrupted; finished outputs are kept, run again "
              "to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
