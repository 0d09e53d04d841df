"""Building master bias, darks and flats from a notebook, with live progress."""

import os
from html import escape

import ipywidgets as widgets

from ..masters import (MasterOptions, MasterReport, build_master_bias, build_master_darks,
                       build_master_flats, load_master, load_masters)
from ..scan import ScanResult, scan_folder
from .tasks import BackgroundTask
from .viewer import GingaView

__all__ = ["MasterBuilder"]

_BUILDERS = {"bias": build_master_bias, "dark": build_master_darks,
             "flat": build_master_flats}
_LABELS = {"bias": "master bias", "dark": "master darks", "flat": "master flats"}


class MasterBuilder:
    """Buttons that build each kind of master, in a background thread.

    The combination is `ginga_ccdcal.masters`' (the CLI's and the plugins'):
    darks are bias-subtracted with the master bias already in
    ``out_dir``, flats have the bias and the matching dark removed and are
    normalised to a median of one.  While it runs, the bar moves and
    Cancel stops it; other cells can run meanwhile.

    Parameters
    ----------
    source : str, path-like or `~ginga_ccdcal.scan.ScanResult`
        The raw frames (a folder is scanned).
    out_dir : str or path-like
        Where the masters are written (created if needed).
    options : `~ginga_ccdcal.masters.MasterOptions`, optional
        Combination methods; the drop-downs start from these.

    Attributes
    ----------
    report : `~ginga_ccdcal.masters.MasterReport`
        What the last build made, reused, and could not do.
    view : GingaView
        The last master made.
    """

    def __init__(self, source, out_dir, options=None):
        self.scan = source if isinstance(source, ScanResult) else scan_folder(source)
        self.out_dir = os.fspath(out_dir)
        self.options = options or MasterOptions()
        self.report = MasterReport()
        self.task = BackgroundTask()
        self.methods = {kind: widgets.Dropdown(options=["average", "median"],
                                               value=self.options.method[kind],
                                               layout=widgets.Layout(width="110px"))
                        for kind in _BUILDERS}
        self.clip = widgets.Checkbox(value=any(self.options.sigma_clip.values()),
                                     description="sigma clip (3 sigma)", indent=False)
        self.overwrite = widgets.Checkbox(value=False, indent=False,
                                          description="rebuild masters that exist")
        rows = []
        for kind in _BUILDERS:
            count = len(self.scan.of_type(kind))
            button = widgets.Button(description=f"Build {_LABELS[kind]}",
                                    layout=widgets.Layout(width="170px"),
                                    disabled=count == 0)
            button.on_click(lambda _, kind=kind: self.build(kind))
            rows.append(widgets.HBox([button, self.methods[kind],
                                      widgets.HTML(f"&nbsp;{count} raw {kind} frames")]))
        all_button = widgets.Button(description="Build all", button_style="primary",
                                    layout=widgets.Layout(width="170px"))
        all_button.on_click(lambda _: self.build())
        self.log = widgets.HTML(value="")
        self.view = GingaView(width=360, height=250, title="")
        self.widget = widgets.VBox([
            widgets.HBox([widgets.VBox(rows + [all_button, self.clip, self.overwrite]),
                          self.view.widget]),
            self.task.widget, self.log],
            layout=widgets.Layout(border="1px solid #ccc", padding="6px"))
        self.widget.add_class("ccdcal-masters")

    @property
    def masters(self):
        """Every master in ``out_dir`` (`~ginga_ccdcal.masters.MasterFrame` list)."""
        return load_masters(self.out_dir)

    def current_options(self):
        """The `MasterOptions` the widgets say (methods, clipping)."""
        options = MasterOptions(**{**vars(self.options),
                                   "method": dict(self.options.method),
                                   "sigma_clip": dict(self.options.sigma_clip)})
        for kind, dropdown in self.methods.items():
            options.method[kind] = dropdown.value
            options.sigma_clip[kind] = self.clip.value
        return options

    def build(self, kinds=("bias", "dark", "flat")):
        """Build the masters of one kind (``'bias'``...) or of several, in the background.

        Returns at once; `wait` blocks until the build ends.
        """
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        options, overwrite = self.current_options(), self.overwrite.value
        os.makedirs(self.out_dir, exist_ok=True)

        def work(progress, cancel):
            report = MasterReport()
            for index, kind in enumerate(kinds):
                def staged(done, total, message="", index=index, kind=kind):
                    # One bar over all the kinds asked for.
                    progress(index + (done / total if total else 0), len(kinds),
                             f"{_LABELS[kind]} {message}".strip())
                extra = {} if kind == "bias" else {"masters": load_masters(self.out_dir)}
                _BUILDERS[kind](self.scan.of_type(kind), self.out_dir, options,
                                report=report, overwrite=overwrite, progress=staged,
                                cancel=cancel, **extra)
            return report

        label = "building " + ", ".join(_LABELS[k] for k in kinds)
        return self.task.run(work, self._built, label=label)

    def _built(self, report):
        self.report = report
        made = [m for m in report.masters if m not in report.kept]
        lines = [f"made {escape(m.name)}: {escape(m.describe())}" for m in made]
        lines += [f"kept {escape(m.name)} (already there; tick 'rebuild' to make it again)"
                  for m in report.kept]
        lines += [f"<span style='color:#b00'>{escape(p)}</span>" for p in report.problems]
        self.log.value = "<br>".join(lines)
        if report.masters:
            self.show_master(report.masters[-1])

    def show_master(self, master):
        """Show one master (a `MasterFrame` or a path) in the viewer."""
        path = getattr(master, "path", master)
        ccd = load_master(path)
        self.view.show(ccd, title=os.path.basename(path),
                       caption=f"median {float(_median(ccd.data)):.4g} {ccd.unit}")

    def wait(self, timeout=None):
        """Block until the current build ends; True if it has."""
        return self.task.wait(timeout)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _median(data):
    import numpy as np
    return np.nanmedian(data)
