"""What the report needs to know of a job, said by the job: labels, comparisons, columns.

The report draws every card from row fields and these hints; it never branches on a job's
name, so a new job kind gets a fitting report by declaring its hints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportHints:
    """How a job's images are shown and compared in ``report.html``.

    Attributes
    ----------
    input_label, output_label : str
        Captions of the input and the output panels ("original" / "quantized").
    diff_against_input : bool
        The difference map compares the output with its input (quantize, denoise): the
        output should stay close to it. Otherwise only with a clean reference, when the row
        names one.
    input_is_damage_source : bool
        The input is the clean image the job damages (corrupt): it is never relabelled as
        "clean original" and the panels keep their order.
    key_color_panel : bool
        Missing pixels (a mask in the row, or the mask file beside the input) are painted in
        the config's ``key_color`` on the input panel, and the mask is shown (inpaint).
    columns : tuple of str
        Metrics shown first in the table and the overview, in this order.
    marks : tuple of str
        Row keys only this job writes: they name the job of a run whose summary.json is lost.
    """

    input_label: str = "input"
    output_label: str = "output"
    diff_against_input: bool = False
    input_is_damage_source: bool = False
    key_color_panel: bool = False
    columns: tuple[str, ...] = ()
    marks: tuple[str, ...] = ()


GENERIC = ReportHints()
