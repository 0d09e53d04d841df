"""Running the CCD lab notebook once per test session, and exporting it as a page.

Used by tests/test_notebook.py (the notebook runs top to bottom in a real
kernel) and tests/test_notebook_browser.py (its page in headless Chromium).
"""

import functools
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "docs", "notebooks", "ccd_lab.ipynb")
#: The standalone widget renderer nbconvert's export loads (ipywidgets 8).
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

#: Run in the page once the widgets are drawn: measures every picture of our
#: widgets as the browser decoded it (size, mean and spread of its pixels)
#: into a hidden ``<pre id="ccdcal-probe">`` that ``--dump-dom`` shows; with
#: ``?show=ccdcal-browser`` (a widget's class) it hides every other cell,
#: for a screenshot of that widget.
PROBE_SCRIPT = r"""
window.addEventListener('load', function () {
  function stats(img) {
    var canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    if (!canvas.width) { return {width: 0, height: 0}; }
    var context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    var pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    var n = pixels.length / 4, sum = 0, sum2 = 0;
    for (var i = 0; i < pixels.length; i += 4) { sum += pixels[i]; sum2 += pixels[i] * pixels[i]; }
    var mean = sum / n;
    return {width: canvas.width, height: canvas.height, mean: mean,
            std: Math.sqrt(Math.max(sum2 / n - mean * mean, 0))};
  }
  function probe() {
    var found = {};
    ['ccdcal-browser', 'ccdcal-masters', 'ccdcal-calibrate', 'ccdcal-steps'].forEach(function (name) {
      var box = document.querySelector('.' + name);
      found[name] = box ? Array.prototype.map.call(box.querySelectorAll('img'), function (img) {
        try { return stats(img); } catch (e) { return {error: String(e)}; }
      }) : null;
    });
    var pre = document.createElement('pre');
    pre.id = 'ccdcal-probe';
    pre.style.display = 'none';
    pre.textContent = JSON.stringify(found);
    document.body.appendChild(pre);
    var wanted = new URLSearchParams(location.search).get('show');
    var target = wanted ? document.querySelector('.' + wanted) : null;
    if (target) {
      // For a screenshot of one widget: keep only the cell that shows it.
      Array.prototype.forEach.call(document.querySelectorAll('.jp-Cell'), function (cell) {
        if (!cell.contains(target)) { cell.style.display = 'none'; }
      });
    }
  }
  setTimeout(probe, 1500);
});
"""


@functools.lru_cache(maxsize=None)
def executed_notebook():
    """The lab notebook executed in a fresh kernel (nbclient), with widget state.

    The kernel imports this checkout's ginga_ccdcal, and runs in a
    temporary folder.  Any error in any cell raises
    ``nbclient.exceptions.CellExecutionError``.
    """
    import nbformat
    from nbclient import NotebookClient
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tempfile.mkdtemp(prefix="ccdcal-lab-run-")
    # The kernel inherits the environment: this checkout first on its path,
    # and its temporary folders (the lab's night) inside workdir.
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "TMPDIR")}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, saved["PYTHONPATH"]) if p)
    os.environ["TMPDIR"] = workdir
    try:
        NotebookClient(notebook, timeout=180, kernel_name="python3",
                       store_widget_state=True,
                       resources={"metadata": {"path": workdir}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(workdir, ignore_errors=True)
    return notebook


def html_manager_dist():
    """The folder holding ``embed.js`` of @jupyter-widgets/html-manager.

    The exported page renders its widgets with it.  Taken from
    ``$CCDCAL_HTML_MANAGER`` or a cache folder; fetched there once with
    ``npm pack`` (what .ci/setup does) when missing.
    """
    given = os.environ.get("CCDCAL_HTML_MANAGER")
    if given:
        return given
    cache = os.path.join(os.path.expanduser("~"), ".cache", "ginga-ccdcal",
                         HTML_MANAGER.replace("/", "-").replace("@", ""))
    dist = os.path.join(cache, "package", "dist")
    if not os.path.exists(os.path.join(dist, "embed.js")):
        fetch_html_manager(cache)
    return dist


def fetch_html_manager(cache):
    """``npm pack`` the renderer into ``cache`` and unpack it."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch " + HTML_MANAGER)
    os.makedirs(cache, exist_ok=True)
    name = subprocess.run([npm, "pack", "--silent", HTML_MANAGER], cwd=cache, check=True,
                          capture_output=True, text=True, timeout=300).stdout.split()[-1]
    shutil.unpack_archive(os.path.join(cache, name), cache)


def export_html(notebook, folder, extra_script=""):
    """Write the executed notebook as one HTML page with its widget state.

    The widgets are drawn by the page itself (html-manager's ``embed.js``,
    copied beside it): no server, no kernel.  Widget models of other
    libraries (ipyevents, which only listens to the mouse) are left out,
    since the standalone renderer only knows the built-in widgets and
    would otherwise refuse the whole state.

    Returns
    -------
    str
        The path of ``index.html`` in ``folder``.
    """
    import copy

    from nbconvert import HTMLExporter
    notebook = copy.deepcopy(notebook)
    state = notebook.metadata["widgets"][WIDGET_STATE]["state"]
    for model_id in [k for k, v in state.items()
                     if not v["model_module"].startswith("@jupyter-widgets/")]:
        del state[model_id]
    os.makedirs(folder, exist_ok=True)
    shutil.copytree(html_manager_dist(), os.path.join(folder, "widgets"),
                    ignore=shutil.ignore_patterns("*.map", "*amd*"), dirs_exist_ok=True)
    exporter = HTMLExporter(template_name="lab", widget_renderer_url="widgets/embed.js",
                            require_js_url="", mathjax_url="")
    body, _ = exporter.from_notebook_node(notebook)
    if extra_script:
        body = body.replace("</body>", f"<script>{extra_script}</script></body>")
    path = os.path.join(folder, "index.html")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(body)
    return path
