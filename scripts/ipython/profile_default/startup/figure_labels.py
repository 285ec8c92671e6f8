"""Loaded by the notebook kernels `make refresh-outputs` starts (IPYTHONDIR=scripts/ipython): before a
figure is drawn into the notebook, name on stderr every axis of it that has no label
(`lessonlib.plots.unlabelled`), so the refresh, and the hygiene test reading its outputs, catch it."""

import sys

from matplotlib.backend_bases import FigureCanvasBase

from lessonlib.plots import UNLABELLED_MARKER, unlabelled

_print_figure = FigureCanvasBase.print_figure


def _checked_print_figure(self, *args, **kwargs):
    missing = unlabelled(self.figure)
    if missing:
        sys.stderr.write(f"{UNLABELLED_MARKER}: {'; '.join(missing)}\n")
    return _print_figure(self, *args, **kwargs)


FigureCanvasBase.print_figure = _checked_print_figure
