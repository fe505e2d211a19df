"""A static HTML report of a localisation evaluation: metrics table, curve, overlays.

One folder, no external assets, relative links only, so it can be opened from
disk, zipped or served as is::

    REPORT/index.html      metrics table (model beside the baselines), notes
    REPORT/success.png     success-rate curve: IoU threshold vs fraction of clips
    REPORT/best-1.png ...  the frames the model localises best, map over frame
    REPORT/worst-1.png ... and worst (green: ground truth, white dot: map peak)

:func:`write_report` takes metric rows (``EvalResult.to_dict()`` dicts), the
model's per-sample scores and maps, the frames and the ground-truth boxes;
:func:`report_from_eval` builds the same from an ``avmodels eval --report``
folder (``metrics.json``, ``per_sample.csv``, ``maps.npz``). :func:`text_table`
is the plain-text version of the table that ``make demo`` prints.
"""

from avmodels.report.compare import (
    GROUP_KEYS,
    METRIC_KEYS,
    compare_markdown,
    compare_runs,
    find_evals,
    write_compare,
)
from avmodels.report.from_eval import (
    BASELINE_NOTES,
    baseline_rows,
    boxes_of,
    class_table,
    examples_for,
    pick_examples,
    provenance,
    report_from_eval,
    store_frames,
)
from avmodels.report.images import (
    GT_COLOUR,
    OVERLAY_SIDE,
    PEAK_COLOUR,
    overlay,
    plot_success,
    save_png,
)
from avmodels.report.page import (
    COLUMNS,
    KINDS,
    Example,
    Row,
    render_html,
    text_table,
    write_report,
)

__all__ = [
    "BASELINE_NOTES",
    "COLUMNS",
    "GROUP_KEYS",
    "GT_COLOUR",
    "KINDS",
    "METRIC_KEYS",
    "OVERLAY_SIDE",
    "PEAK_COLOUR",
    "Example",
    "Row",
    "baseline_rows",
    "boxes_of",
    "class_table",
    "compare_markdown",
    "compare_runs",
    "examples_for",
    "find_evals",
    "overlay",
    "pick_examples",
    "plot_success",
    "provenance",
    "render_html",
    "report_from_eval",
    "save_png",
    "store_frames",
    "text_table",
    "write_compare",
    "write_report",
]
