"""Training logs (CSV, JSONL, TensorBoard event files) read into numeric series and a summary an expert can check.

Only numbers are kept: string fields of a log (run names, commands, notes) are dropped while parsing, so HTML or
script in a log field never reaches a page. Which series is the loss, the learning rate or the token count is decided
by common column names (`train/loss`, `trainer/global_step`, `lr-AdamW`…), compared case-insensitively with `/`,
`.`, `_`, `-` and spaces all treated as one separator. Steps are float64 arrays (CSV exports write `100.0`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeGuard

import numpy as np

from simsa.errors import InputError

if TYPE_CHECKING:
    from simsa.panel.files import Kind

Role = Literal["step", "tokens", "loss", "lr"]
MAX_ROWS = 2_000_000
MAX_COLUMNS = 200
MAX_DEPTH = 4
SPIKE_WINDOW = 20
SPIKE_MIN_HISTORY = 5
SPIKE_RELATIVE = 0.10
SPIKE_SPREADS = 6.0
WARMUP_REACHED = 0.999

ROLE_NAMES: dict[Role, tuple[str, ...]] = {
    "step": ("step", "global/step", "trainer/global/step", "train/global/step", "iteration", "iter", "train/step",
             "steps", "train/iteration", "iterations"),
    "tokens": ("tokens", "tokens/seen", "consumed/tokens", "num/tokens", "train/tokens", "train/tokens/seen",
               "total/tokens", "train/consumed/tokens", "tokens/consumed", "train/num/tokens",
               "num/input/tokens/seen", "train/num/input/tokens/seen", "trainer/tokens"),
    "loss": ("loss", "train/loss", "lm/loss", "loss/train", "train/lm/loss", "training/loss", "train/loss/step",
             "loss/lm", "train/lm/loss/step"),
    "lr": ("lr", "learning/rate", "train/lr", "train/learning/rate", "lr/adamw", "lr/adam", "lr/sgd", "optimizer/lr",
           "train/learning/rate/adamw", "lr/pg0"),
}
_FAMILY: dict[Role, re.Pattern[str]] = {"lr": re.compile(r"^(train/)?(lr|learning/rate)(/[a-z0-9]+)*$")}


def normalise(name: str) -> str:
    """`Run 3 - train/Loss` → `train/loss`: the run prefix of W&B exports dropped, separators unified."""
    text = str(name).strip().lower()
    if " - " in text:
        text = text.rsplit(" - ", 1)[1]
    return re.sub(r"[\s/._\-]+", "/", text).strip("/")


def column_role(name: str) -> Role | None:
    """Which role a column or tag name plays, if any."""
    key = normalise(name)
    for role, names in ROLE_NAMES.items():
        if key in names:
            return role
    for role, pattern in _FAMILY.items():
        if pattern.match(key):
            return role
    return None


def pick(names: list[str], role: Role) -> str | None:
    """The name playing `role`, preferring the earlier entries of ROLE_NAMES (`train/loss` over `loss/lm`)."""
    rank = {n: i for i, n in enumerate(ROLE_NAMES[role])}
    hits = [(rank.get(normalise(n), len(rank)), i, n) for i, n in enumerate(names) if column_role(n) == role]
    return min(hits)[2] if hits else None


@dataclass(frozen=True)
class Series:
    """One logged quantity: values in file order with the step each was logged at."""

    name: str
    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class LogSummary:
    """What an expert checks first: how far the run went, where the loss ended, warm-up, restarts and spikes.

    `points` counts the loss series (the longest series when there is no loss); `warmup_steps` is the number of steps
    from the first learning-rate point to the first one within 0.1 % of the peak (0 when the run starts at its peak);
    `loss_spikes` counts runs of consecutive points more than 10 % above, and more than six robust standard deviations
    above, the median of the 20 points before; `steps_monotonic` is false when some series goes back in steps (a
    restart or resumed run); `nonfinite` counts NaN/inf values dropped while parsing.
    """

    points: int
    first_step: int | None
    last_step: int | None
    first_loss: float | None
    last_loss: float | None
    min_loss: float | None
    tokens_last: float | None
    lr_peak: float | None
    warmup_steps: int | None
    nonfinite: int
    steps_monotonic: bool
    loss_spikes: int
    series: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "points": self.points, "first_step": self.first_step, "last_step": self.last_step,
            "first_loss": self.first_loss, "last_loss": self.last_loss, "min_loss": self.min_loss,
            "tokens_last": self.tokens_last, "lr_peak": self.lr_peak, "warmup_steps": self.warmup_steps,
            "nonfinite": self.nonfinite, "steps_monotonic": self.steps_monotonic, "loss_spikes": self.loss_spikes,
            "series": list(self.series),
        }


@dataclass(frozen=True)
class TrainingLog:
    """Series by name, and which of them play the loss, learning-rate and token roles."""

    format: Kind
    series: dict[str, Series]
    loss: str | None
    lr: str | None
    tokens: str | None
    nonfinite: int = field(default=0)

    def summary(self) -> LogSummary:
        return summarise(self)


def _int(x: float | None) -> int | None:
    return None if x is None else round(float(x))


def _float(x: float | np.floating | None) -> float | None:
    return None if x is None else float(x)


def summarise(log: TrainingLog) -> LogSummary:
    """The summary of a parsed log (pure: the same log always gives the same numbers)."""
    loss = log.series.get(log.loss) if log.loss else None
    lr = log.series.get(log.lr) if log.lr else None
    tokens = log.series.get(log.tokens) if log.tokens else None
    nonempty = [s for s in log.series.values() if len(s.steps)]
    steps = np.concatenate([s.steps for s in nonempty]) if nonempty else np.empty(0)
    losses = loss.values if loss is not None else np.empty(0)
    has_loss = len(losses) > 0
    return LogSummary(
        points=len(losses) if loss is not None else max((len(s.values) for s in log.series.values()), default=0),
        first_step=_int(steps.min()) if len(steps) else None,
        last_step=_int(steps.max()) if len(steps) else None,
        first_loss=_float(losses[0]) if has_loss else None,
        last_loss=_float(losses[-1]) if has_loss else None,
        min_loss=_float(losses.min()) if has_loss else None,
        tokens_last=_float(tokens.values[-1]) if tokens is not None and len(tokens.values) else None,
        lr_peak=_float(lr.values.max()) if lr is not None and len(lr.values) else None,
        warmup_steps=warmup_steps(lr) if lr is not None else None,
        nonfinite=log.nonfinite,
        steps_monotonic=all(bool(np.all(np.diff(s.steps) >= 0)) for s in log.series.values()),
        loss_spikes=count_spikes(losses) if has_loss else 0,
        series=tuple(log.series),
    )


def warmup_steps(lr: Series) -> int | None:
    """Steps from the first learning-rate point to the first point within 0.1 % of the peak."""
    if not len(lr.values):
        return None
    peak = lr.values.max()
    reached = int(np.argmax(lr.values >= peak * WARMUP_REACHED)) if peak > 0 else 0
    return round(float(lr.steps[reached] - lr.steps[0]))


def count_spikes(values: np.ndarray) -> int:
    """Loss spikes: runs of points far above the median of the 20 points before them (see LogSummary)."""
    n = len(values)
    if n <= SPIKE_MIN_HISTORY:
        return 0
    flags = np.zeros(n, dtype=bool)
    chunk = 100_000
    for start in range(SPIKE_MIN_HISTORY, n, chunk):
        stop = min(start + chunk, n)
        idx = np.arange(start, stop)
        lo = np.maximum(idx - SPIKE_WINDOW, 0)
        # windows of the up-to-20 previous values, padded with NaN where the run is younger than the window
        offsets = np.arange(-SPIKE_WINDOW, 0)
        pos = idx[:, None] + offsets[None, :]
        window = np.where(pos >= lo[:, None], values[np.clip(pos, 0, n - 1)], np.nan)
        med = np.nanmedian(window, axis=1)
        spread = 1.4826 * np.nanmedian(np.abs(window - med[:, None]), axis=1)
        jump = values[start:stop] - med
        flags[start:stop] = (jump > SPIKE_RELATIVE * np.abs(med)) & (jump > SPIKE_SPREADS * spread)
    starts = flags & ~np.concatenate(([False], flags[:-1]))
    return int(starts.sum())


class _Builder:
    """Collects (step, value) pairs per name, dropping non-finite values and counting them."""

    def __init__(self) -> None:
        self.points: dict[str, tuple[list[float], list[float]]] = {}
        self.nonfinite = 0

    def add(self, name: str, step: float, value: float) -> None:
        if not math.isfinite(value) or not math.isfinite(step):
            self.nonfinite += 1
            return
        if name not in self.points:
            if len(self.points) >= MAX_COLUMNS:
                raise InputError(f"the log has more than {MAX_COLUMNS} numeric series")
            self.points[name] = ([], [])
        steps, values = self.points[name]
        steps.append(step)
        values.append(value)

    def series(self) -> dict[str, Series]:
        return {name: Series(name, np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64))
                for name, (s, v) in self.points.items()}


def _finish(kind: Kind, series: dict[str, Series], nonfinite: int, seen: list[str], has_step: bool) -> TrainingLog:
    names = list(series)
    loss = pick(names, "loss")
    if not series:
        shown = ", ".join(seen[:30]) or "none"
        raise InputError(f"the log has no numeric series (numeric fields seen: {shown})")
    if not has_step and loss is None:
        shown = ", ".join(seen[:30]) or "none"
        raise InputError(f"the log has neither a step nor a loss column (columns seen: {shown}); name them e.g. "
                         "step and train/loss")
    return TrainingLog(kind, series, loss, pick(names, "lr"), pick(names, "tokens"), nonfinite)


def parse_training_log(data: bytes, kind: str) -> TrainingLog:
    """Numeric series of a CSV, JSONL or TensorBoard log; InputError when it has no step and no loss, or when `kind`
    (a stored document's kind) is none of these."""
    if kind == "csv":
        return _parse_csv(data)
    if kind == "jsonl":
        return _parse_jsonl(data)
    if kind == "tensorboard":
        return _parse_tensorboard(data)
    raise InputError(f"a training log must be csv, jsonl or tensorboard, not {kind}")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"the log is not UTF-8 text (byte {exc.start})") from None


def csv_table(text: str, limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a comma-, tab- or semicolon-separated table (the delimiter that splits the header most)."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = max(",\t;", key=first.count)
    reader = csv.reader(io.StringIO(text if limit is None else "\n".join(lines[: limit + 1])), delimiter=delimiter)
    rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        return [], []
    return [h.strip() for h in rows[0]], rows[1:]


def _number(cell: str) -> float | None:
    cell = cell.strip()
    if not cell:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _column(rows: list[list[str]], j: int) -> tuple[np.ndarray, int]:
    """Column j as floats, NaN where a cell is blank or not a number; and how many cells were numbers but not finite
    (`nan`, `inf`), which count as dropped values, unlike blanks and text."""
    cells = [r[j] if j < len(r) else "" for r in rows]
    try:
        values = np.array(cells, dtype=np.float64)
        return values, int((~np.isfinite(values)).sum())
    except ValueError:
        parsed = [_number(c) for c in cells]
        bad = sum(1 for v in parsed if v is not None and not math.isfinite(v))
        return np.array([np.nan if v is None else v for v in parsed], dtype=np.float64), bad


def _parse_csv(data: bytes) -> TrainingLog:
    header, rows = csv_table(_text(data))
    if not header:
        raise InputError("the CSV log is empty")
    if len(header) > MAX_COLUMNS:
        raise InputError(f"the CSV log has {len(header)} columns; logs are limited to {MAX_COLUMNS}")
    if len(rows) > MAX_ROWS:
        raise InputError(f"the CSV log has {len(rows)} rows; logs are limited to {MAX_ROWS:,}")
    step_name = pick(header, "step")
    steps = _column(rows, header.index(step_name))[0] if step_name else np.arange(len(rows), dtype=np.float64)
    keep = np.isfinite(steps)
    series: dict[str, Series] = {}
    nonfinite = 0
    for j, name in enumerate(header):
        if name == step_name or not name or name in series or name.lower().endswith(("__min", "__max")):
            continue
        values, bad = _column(rows, j)
        ok = keep & np.isfinite(values)
        if not ok.any():
            continue
        nonfinite += bad
        series[name] = Series(name, steps[ok], values[ok])
    return _finish("csv", series, nonfinite, header, step_name is not None)


def flatten(obj: dict, prefix: str = "", depth: int = 0) -> dict[str, object]:
    """Nested objects as `outer/inner` keys (W&B and Lightning nest metrics), four levels deep at most."""
    out: dict[str, object] = {}
    for key, value in obj.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict) and depth < MAX_DEPTH:
            out.update(flatten(value, name, depth + 1))
        else:
            out[name] = value
    return out


def json_lines(text: str) -> list[dict]:
    """Every non-blank line parsed as a JSON object; InputError naming the first line that is not one."""
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            raise InputError(f"line {number} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise InputError(f"line {number} is not a JSON object")
        objects.append(obj)
        if len(objects) > MAX_ROWS:
            raise InputError(f"the JSONL log has more than {MAX_ROWS:,} rows")
    return objects


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_jsonl(data: bytes) -> TrainingLog:
    records = [flatten(obj) for obj in json_lines(_text(data))]
    seen: dict[str, None] = {}
    for rec in records:
        seen.update(dict.fromkeys(k for k, v in rec.items() if _is_number(v)))
    step_name = pick(list(seen), "step")
    builder = _Builder()
    for row, rec in enumerate(records):
        step = rec.get(step_name, None) if step_name else row
        if not _is_number(step):
            continue
        for name, value in rec.items():
            if name != step_name and _is_number(value):
                builder.add(name, float(step), float(value))
    return _finish("jsonl", builder.series(), builder.nonfinite, list(seen), step_name is not None)


# TensorBoard: TFRecord framing around serialized Event protos.

_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_HALF = 1, 2, 3, 9, 19


def tfrecords(data: bytes, verify_bytes: int | None = None) -> list[bytes]:
    """The records of a TFRecord file, each length and data checksum verified (data ones up to `verify_bytes`).

    Layout per record: uint64 length, masked CRC32C of the length, data, masked CRC32C of the data (little-endian).
    """
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    records = []
    pos, checked = 0, 0
    while pos < len(data):
        if len(data) - pos < 12:
            raise InputError(f"the event file ends inside a record header at byte {pos} (truncated)")
        header = data[pos: pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[pos + 8: pos + 12])
        if masked_crc32c(header) != crc:
            raise InputError(f"the event file is corrupt: record header checksum mismatch at byte {pos}")
        end = pos + 12 + length + 4
        if end > len(data):
            raise InputError(f"the event file ends inside a record at byte {pos} (truncated)")
        body = data[pos + 12: pos + 12 + length]
        if verify_bytes is None or checked < verify_bytes:
            (crc,) = struct.unpack("<I", data[end - 4: end])
            if masked_crc32c(body) != crc:
                raise InputError(f"the event file is corrupt: record data checksum mismatch at byte {pos}")
            checked += length
        records.append(body)
        if len(records) > MAX_ROWS:
            raise InputError(f"the event file has more than {MAX_ROWS:,} records")
        pos = end
    return records


def parse_event(record: bytes, number: int):
    """One Event proto; InputError when the bytes are not one."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    try:
        return Event.FromString(record)
    except (DecodeError, RecursionError, ValueError):
        raise InputError(f"the event file's record {number} is not a TensorBoard event") from None


def _scalar(value) -> float | None:
    """A summary value's number: simple_value, or a numeric rank-0 tensor; None for anything else (text, images)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor":
        return None
    plugin = value.metadata.plugin_data.plugin_name
    tensor = value.tensor
    if (plugin and plugin != "scalars") or len(tensor.tensor_shape.dim) or tensor.tensor_shape.unknown_rank:
        return None
    fields = {_DT_FLOAT: ("float_val", "<f"), _DT_DOUBLE: ("double_val", "<d"), _DT_INT32: ("int_val", "<i"),
              _DT_INT64: ("int64_val", "<q"), _DT_HALF: ("half_val", "<e")}
    if tensor.dtype not in fields:
        return None
    name, fmt = fields[tensor.dtype]
    if tensor.tensor_content:
        if len(tensor.tensor_content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, tensor.tensor_content)[0])
    vals = getattr(tensor, name)
    if len(vals) != 1:
        return None
    if tensor.dtype == _DT_HALF:
        return float(struct.unpack("<e", struct.pack("<H", vals[0] & 0xFFFF))[0])
    return float(vals[0])


def _parse_tensorboard(data: bytes) -> TrainingLog:
    builder = _Builder()
    seen: dict[str, None] = {}
    for number, record in enumerate(tfrecords(data), start=1):
        event = parse_event(record, number)
        if event.WhichOneof("what") != "summary":
            continue
        for value in event.summary.value:
            number_value = _scalar(value)
            if number_value is not None:
                seen[value.tag] = None
                builder.add(value.tag, float(event.step), number_value)
    series = builder.series()
    return _finish("tensorboard", series, builder.nonfinite, list(seen), True)
