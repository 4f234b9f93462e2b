"""Training logs: TensorBoard event files written by tensorboard's own writer, CSV and JSONL logs, summaries, plots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from simsa.errors import InputError
from simsa.panel.blinding import MASK, Masker
from simsa.panel.files import sniff
from simsa.panel.log_plots import downsample, log_plot_svg
from simsa.panel.training_log import column_role, count_spikes, parse_training_log

STEPS = list(range(0, 300, 10))
LOSS = [float(np.float32(4.0 * np.exp(-s / 120) + 1.5)) for s in STEPS]
LR = [float(np.float32(3e-4 * min(1.0, (s + 10) / 50))) for s in STEPS]  # peak reached at step 40


def write_events(tmp_path: Path) -> bytes:
    writer = EventFileWriter(str(tmp_path))
    scalars = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    text = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    for step, loss, lr in zip(STEPS, LOSS, LR, strict=True):
        values = [
            Summary.Value(tag="train/loss", simple_value=loss),
            Summary.Value(tag="train/lr", metadata=scalars,
                          tensor=TensorProto(dtype=1, tensor_shape=TensorShapeProto(), float_val=[lr])),
            Summary.Value(tag="notes", metadata=text,
                          tensor=TensorProto(dtype=7, tensor_shape=TensorShapeProto(), string_val=[b"<script>x"])),
        ]
        writer.add_event(Event(step=step, wall_time=1.0e9 + step, summary=Summary(value=values)))
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    return path.read_bytes()


def test_tensorboard_parsed_as_written(tmp_path):
    data = write_events(tmp_path)
    assert sniff(data, "events.out.tfevents.123.host", "log").kind == "tensorboard"
    assert sniff(data, "run-log", "log").kind == "tensorboard"  # by content, whatever the name
    log = parse_training_log(data, "tensorboard")
    assert set(log.series) == {"train/loss", "train/lr"}  # the text summary is not a number: dropped
    assert (log.loss, log.lr, log.tokens) == ("train/loss", "train/lr", None)
    np.testing.assert_array_equal(log.series["train/loss"].steps, STEPS)
    np.testing.assert_array_equal(log.series["train/loss"].values, LOSS)
    np.testing.assert_array_equal(log.series["train/lr"].values, LR)
    s = log.summary()
    assert (s.first_step, s.last_step, s.first_loss, s.last_loss) == (0, 290, LOSS[0], LOSS[-1])
    assert s.warmup_steps == 40 and s.lr_peak == pytest.approx(3e-4) and s.steps_monotonic


def test_tensorboard_flipped_byte_refused(tmp_path):
    data = bytearray(write_events(tmp_path))
    for pos in (len(data) // 2, len(data) - 3, 20):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(InputError, match=r"checksum mismatch|not a training log|unrecognised"):
            sniff(bytes(bad), "events.out.tfevents.1", "log")
        with pytest.raises(InputError, match="checksum mismatch"):
            parse_training_log(bytes(bad), "tensorboard")
    with pytest.raises(InputError, match="truncated"):
        parse_training_log(bytes(data[:-7]), "tensorboard")


CSV_LOG = """step,train/loss,learning_rate,tokens_seen,run
0,5.0,0.0,0,<script>alert(1)</script>
100,4.0,0.0005,409600,x
200,3.5,0.001,819200,x
300,3.2,0.001,1228800,x
400,9.0,0.0009,1638400,x
500,3.0,0.0008,2048000,x
600,2.9,nan,2457600,x
700,2.8,0.0006,,x
"""


def test_csv_log_summary():
    assert sniff(CSV_LOG.encode(), "metrics.csv", "log").kind == "csv"
    log = parse_training_log(CSV_LOG.encode(), "csv")
    assert (log.loss, log.lr, log.tokens) == ("train/loss", "learning_rate", "tokens_seen")
    assert "run" not in log.series  # text column ignored
    s = log.summary()
    assert (s.points, s.first_step, s.last_step) == (8, 0, 700)
    assert (s.first_loss, s.last_loss, s.min_loss) == (5.0, 2.8, 2.8)
    assert (s.lr_peak, s.warmup_steps, s.tokens_last) == (0.001, 200, 2457600.0)
    assert s.nonfinite == 1 and s.steps_monotonic
    assert s.to_dict()["series"] == ["train/loss", "learning_rate", "tokens_seen"]
    assert json.dumps(s.to_dict())


def _jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_jsonl_log_summary_spikes_and_restart():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(400):
        loss = 3.0 * np.exp(-i / 150) + 2.0 + rng.normal(0, 0.01)
        if i in (200, 201, 320):
            loss += 1.5  # two spikes: 200-201 is one event, 320 another
        rows.append({"_step": i, "train": {"loss": loss, "tokens": 4096 * (i + 1)},
                     "lr": 1e-3 * min(1, (i + 1) / 50), "note": "<script>alert(1)</script>", "ok": True})
    rows.append({"_step": 150, "train": {"loss": 2.3}})  # resumed from a checkpoint (steps go back)
    data = _jsonl(rows)
    assert sniff(data, "wandb.jsonl", "log").kind == "jsonl"
    log = parse_training_log(data, "jsonl")
    assert set(log.series) == {"train/loss", "train/tokens", "lr"}
    assert (log.loss, log.lr, log.tokens) == ("train/loss", "lr", "train/tokens")
    s = log.summary()
    assert s.loss_spikes == 2 and not s.steps_monotonic and s.warmup_steps == 49
    assert s.last_loss == 2.3 and s.tokens_last == 4096 * 400
    assert "script" not in repr(log) and "<script" not in json.dumps(s.to_dict())


def test_spike_counting_ignores_smooth_decay():
    smooth = 3.0 * np.exp(-np.arange(5000) / 800) + 2.0
    assert count_spikes(smooth) == 0
    spiky = smooth.copy()
    spiky[[1000, 3000, 3001, 4500]] += 1.0
    assert count_spikes(spiky) == 3


def test_log_without_step_or_loss_refused():
    with pytest.raises(InputError, match=r"neither a step nor a loss column \(columns seen: epoch, acc\)"):
        parse_training_log(b"epoch,acc\n1,0.5\n2,0.6\n", "csv")
    with pytest.raises(InputError, match="no numeric series"):
        parse_training_log(b'{"msg": "<b>hi</b>"}\n', "jsonl")
    log = parse_training_log(b"loss\n3.0\n2.0\n", "csv")  # a loss without steps counts rows
    assert list(log.series["loss"].steps) == [0.0, 1.0]


def test_column_roles():
    assert column_role("trainer/global_step") == "step"
    assert column_role("_step") == "step"
    assert column_role("Train.Loss") == "loss"
    assert column_role("lr-AdamW") == "lr"
    assert column_role("run-7 - train/loss") == "loss"
    assert column_role("consumed_tokens") == "tokens"
    assert column_role("val/loss") is None


def test_plots(tmp_path):
    log = parse_training_log(write_events(tmp_path), "tensorboard")
    svg = log_plot_svg(log, "loss")
    assert svg.startswith("<svg") and "<?xml" not in svg and "DOCTYPE" not in svg
    assert "train/loss" in svg  # text stays text
    masked = log_plot_svg(log, "loss", masker=Masker.for_team(["train/loss"]))
    assert "train/loss" not in masked and MASK in masked
    assert log_plot_svg(log, "lr").startswith("<svg")
    assert log_plot_svg(log, "loss", x="tokens") == ""  # no token series

    csv_log = parse_training_log(CSV_LOG.encode(), "csv")
    on_tokens = log_plot_svg(csv_log, "loss", x="tokens")
    assert "tokens_seen" in on_tokens and re.search(r"<path", on_tokens)


def test_downsample_keeps_extremes():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 1000)
    y[54_321] = 50.0
    xs, ys = downsample(x, y)
    assert len(xs) <= 4000 and 54_321 in xs and ys.max() == 50.0 and np.all(np.diff(xs) > 0)
