"""How long the expert panel's document handling and statistics take on realistic and worst-case inputs.

Prints one line per measurement (and `--json`): checking an upload by content, rendering a PDF page with the team's
names blacked out, Markdown to sanitised HTML, parsing and summarising training logs (CSV and TensorBoard), and
Krippendorff's α with its 1,000-round bootstrap interval for panels of realistic size.

    .venv/bin/python benchmarks/panel_documents.py [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
import zipfile
from collections.abc import Callable

import numpy as np


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def pdf_bytes(pages: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for i in range(pages):
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.1, 0.9, f"Team Halla technical report, page {i + 1}", fontsize=16)
            for line in range(40):
                fig.text(0.1, 0.85 - line * 0.02, f"Halla AI trained the model on shard {line} of the corpus.")
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def csv_log(rows: int) -> bytes:
    steps = np.arange(1, rows + 1)
    loss = 2.0 + 8.4 * np.exp(-steps / (rows / 5))
    lr = 3e-4 * np.minimum(1.0, steps / 2000)
    out = io.StringIO()
    out.write("step,tokens,loss,lr\n")
    for s, l_, r in zip(steps, loss, lr, strict=True):
        out.write(f"{s},{s * 4194304},{l_:.5f},{r:.3e}\n")
    return out.getvalue().encode()


def tensorboard_log(points: int) -> bytes:
    import tempfile
    from pathlib import Path

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    with tempfile.TemporaryDirectory() as folder:
        writer = EventFileWriter(folder)
        for s in range(points):
            summary = Summary(value=[Summary.Value(tag="train/loss", simple_value=2 + 8 * math.exp(-s / 1000)),
                                     Summary.Value(tag="train/lr", simple_value=3e-4)])
            writer.add_event(Event(step=s, wall_time=1.0 + s, summary=summary))
        writer.close()
        return next(Path(folder).iterdir()).read_bytes()


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("log.csv", b"\0" * 200_000_000)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from simsa.panel.agreement import alpha_interval
    from simsa.panel.blinding import Masker
    from simsa.panel.files import sniff
    from simsa.panel.markdown_view import render_markdown
    from simsa.panel.pdf_pages import render_page
    from simsa.panel.training_log import parse_training_log

    masker = Masker.for_team(["halla", "Team Halla", "Halla AI", "Jeju Speech Lab"])
    results: list[dict] = []

    def record(name: str, seconds: float, **extra: object) -> None:
        results.append({"measure": name, "seconds": round(seconds, 4), **extra})
        if not args.json:
            shown = ", ".join(f"{k} {v}" for k, v in extra.items())
            print(f"{name:<52} {seconds * 1000:10.1f} ms  {shown}")

    pdf = pdf_bytes(60)
    record("sniff PDF (60 pages)", timed(lambda: sniff(pdf, "report.pdf", "report")), bytes=len(pdf))
    record("render one PDF page, names blacked out", timed(lambda: render_page(pdf, 7, masker=masker)),
           width_px=1100)
    bomb = zip_bomb()
    record("refuse a zip bomb (200 MB inside)", timed(lambda: _refused(lambda: sniff(bomb, "log.csv", "log"))),
           bytes=len(bomb))
    md = ("# Report of Team Halla\n\n" + "Halla AI trained **the model** on [data](https://example.org).\n\n"
          "| a | b |\n|---|---|\n| 1 | 2 |\n\n" * 8000).encode()
    record("Markdown → sanitised, masked HTML", timed(lambda: render_markdown(md.decode(), masker), 1),
           bytes=len(md))
    log = csv_log(1_000_000)
    record("CSV log: sniff", timed(lambda: sniff(log, "train.csv", "log"), 1), rows=1_000_000, bytes=len(log))
    record("CSV log: parse and summarise", timed(lambda: parse_training_log(log, "csv").summary(), 1),
           rows=1_000_000)
    tb = tensorboard_log(100_000)
    record("TensorBoard log: parse and summarise", timed(lambda: parse_training_log(tb, "tensorboard").summary(), 1),
           events=100_000, bytes=len(tb))
    rng = np.random.default_rng(0)
    for experts, teams in ((10, 6), (50, 25)):
        values = np.clip(np.round(rng.normal(3, 1, (experts, teams))), 1, 5)
        values[rng.random(values.shape) < 0.5] = np.nan
        record(f"α with a 1,000-round bootstrap ({experts} experts × {teams} items)",
               timed(lambda v=values: alpha_interval(v, "interval", rounds=1000, seed=0), 1))
    if args.json:
        print(json.dumps(results, indent=2))


def _refused(fn: Callable[[], object]) -> None:
    from simsa.errors import InputError

    try:
        fn()
    except InputError:
        return
    raise AssertionError("accepted")


if __name__ == "__main__":
    main()
