"""Plots keep their whole title inside the image, however long the model's label is."""

from ml.plots import roc_figure, roc_png

LONG = "Validation ROC: vgg16 HED-derived VGG16 (not ImageNet) file vgg16_hed_bsds500_notop.weights.h5"


def test_a_long_roc_title_stays_inside_the_figure(tmp_path):
    y, p = [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    fig = roc_figure(y, p, title=LONG, threshold=0.5)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig.axes[0].title.get_window_extent(renderer)
    box = fig.bbox
    assert box.x0 <= title.x0 and title.x1 <= box.x1 and title.y1 <= box.y1
    assert " ".join(fig.axes[0].get_title().split()) == LONG  # wrapped, nothing dropped
    assert roc_png(y, p, tmp_path / "roc.png", title=LONG).stat().st_size > 1000
