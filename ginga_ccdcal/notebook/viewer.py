"""One Ginga Jupyter viewer (`ginga.web.jupyterw`) with a title line."""

import threading

import ipywidgets as widgets
import numpy as np

__all__ = ["GingaView"]


class GingaView:
    """A Ginga viewer drawing into an ``ipywidgets.Image``.

    Mouse and keys work as in Ginga (scroll to zoom, drag with the right
    button to change the contrast) through ipyevents.  Every `show` draws
    at once, so the image widget holds the picture when the call returns
    (and an exported page shows it).

    Parameters
    ----------
    width, height : int
        Size of the picture in screen pixels.
    title : str
        Text above the picture.
    """

    def __init__(self, width=360, height=260, title=""):
        from ginga.misc.log import get_logger
        from ginga.web.jupyterw.ImageViewJpw import EnhancedCanvasView
        self.image_widget = widgets.Image(format="jpeg", width=width, height=height)
        self.title = widgets.HTML(value=_title_html(title))
        self.caption = widgets.HTML(value="")
        self.viewer = EnhancedCanvasView(logger=get_logger("ccdcal-notebook", null=True))
        self.viewer.set_widget(self.image_widget)
        self.viewer.get_bindings().enable_all(True)
        self.viewer.set_color_map("gray")
        self.viewer.set_bg(0.15, 0.15, 0.15)
        self.viewer.set_autocut_params("zscale")
        self.viewer.enable_autocuts("override")
        # The Ginga timer thread and a worker thread may both draw.
        self._lock = threading.Lock()
        self.widget = widgets.VBox([self.title, self.image_widget, self.caption],
                                   layout=widgets.Layout(margin="0 8px 0 0"))
        self.data = None

    def show(self, data, title=None, caption=None, cuts=None):
        """Show a 2-D array (or anything with ``.data``, such as CCDData).

        Parameters
        ----------
        data : array-like or astropy.nddata.CCDData
        title, caption : str, optional
            Text above and below the picture (plain text).
        cuts : (float, float), optional
            Display levels; default "zscale", which shows the sky noise.
        """
        from ginga.AstroImage import AstroImage
        array = np.asarray(getattr(data, "data", data), dtype=np.float32)
        image = AstroImage(data_np=array, logger=self.viewer.logger)
        with self._lock:
            if cuts is not None:
                self.viewer.enable_autocuts("off")
                self.viewer.cut_levels(float(cuts[0]), float(cuts[1]), no_reset=True)
            else:
                self.viewer.enable_autocuts("override")
            self.viewer.set_image(image)
            self.viewer.zoom_fit()
            self.viewer.redraw_now()
        self.data = array
        if title is not None:
            self.title.value = _title_html(title)
        if caption is not None:
            self.caption.value = _caption_html(caption)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _title_html(text):
    from html import escape
    return f"<b>{escape(text)}</b>" if text else ""


def _caption_html(text):
    from html import escape
    return (f"<div style='font-size: 90%; line-height: 1.3'>{escape(text)}</div>"
            if text else "")
