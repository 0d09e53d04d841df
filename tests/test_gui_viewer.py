"""Starting the viewer: display detection, the Qt-binding guard, the command
line's screenshot mode and the demo (each in its own process: one Qt
application per process)."""

import os
import subprocess
import sys

import pytest
from astropy.io import fits

from ginga_ccdcal.gui import qtcompat
from ginga_ccdcal.gui import viewer as viewer_module
from ginga_ccdcal.gui.viewer import ensure_qt_platform

pytestmark = pytest.mark.gui

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("env, expected", [
    ({}, "offscreen"),
    ({"DISPLAY": ":0"}, None),
    ({"WAYLAND_DISPLAY": "wayland-0"}, None),
    ({"QT_QPA_PLATFORM": "xcb"}, "xcb"),
])
def test_offscreen_only_without_a_display(env, expected, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    environ = dict(env)
    assert ensure_qt_platform(environ) == expected
    assert environ.get("QT_QPA_PLATFORM") == expected


def test_the_interpreter_is_left_alone():
    # importing the GUI (done above) must not touch None's reference count
    from qtpy import QtGui
    assert sys.getrefcount(None) < 2 ** 40
    assert not hasattr(qtcompat, "protect_none")
    color = QtGui.QColor()
    before = sys.getrefcount(None)
    for _ in range(2000):
        color.setRgbF(0.1, 0.2, 0.3, 1.0)
    # the installed binding (setup.cfg excludes the leaking release) keeps
    # its references; 2000 leaked ones would show here
    assert sys.getrefcount(None) >= before - 100
    assert qtcompat.binding_problem() is None


def test_a_leaking_binding_refuses_to_start_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(qtcompat, "void_call_leaks_none", lambda calls=200: True)
    monkeypatch.setattr(sys, "version_info", (3, 11, 7, "final", 0))
    problem = qtcompat.binding_problem()
    assert "crashes the viewer" in problem
    assert "pip install 'PySide6-Essentials>=6.5,!=6.12.0'" in problem
    assert "\n" not in problem
    # before any Qt application or window is made
    existing = viewer_module.current_viewer()
    assert viewer_module.start_viewer(None, screenshot="x.png") == 2
    err = capsys.readouterr().err
    assert err.strip() == f"ginga-ccdcal: {problem}"
    assert viewer_module.current_viewer() is existing


def test_gui_without_a_display_says_so_and_exits_2(night, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "ginga_ccdcal", "gui", str(night.path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ginga-ccdcal: no display; use --screenshot FILE"


def run(args, cwd, timeout=240):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "ginga_ccdcal.gui.viewer"] + args,
                          cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_command_line_screenshot_of_a_scanned_folder(night, tmp_path):
    png = tmp_path / "browser.png"
    proc = run([str(night.path), "--screenshot", str(png), "--geometry", "1200x700"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10000
    assert "Traceback" not in proc.stderr


def test_demo_runs_the_whole_workflow(tmp_path):
    code = ("import sys; from ginga_ccdcal.gui.viewer import run_demo; "
            f"sys.exit(run_demo({str(tmp_path / 'demo')!r}, scale=0.05))")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 10000
    calibrated = [n for n in os.listdir(tmp_path / "demo" / "reduced")
                  if n.lower().endswith(".fit")]
    # The first light by one click, the other 37 by "Calibrate all".
    assert len(calibrated) == 38
    for name in calibrated:
        assert fits.getheader(tmp_path / "demo" / "reduced" / name)["CALSTAT"].endswith("BDF")
    assert "4 master(s) built" in proc.stdout
