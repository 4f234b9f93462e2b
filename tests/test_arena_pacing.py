"""The paced merge of two streamed answers (simsa.arena.pacing): what is shown hides which side is faster.

Property tests over arbitrary answers and arbitrary orders of arrival: everything is shown in the end and nothing
twice; while both sides run, both show the same number of characters, the least either has produced; for a given
slower side, every schedule of the faster side (whichever side it is) shows exactly the same thing; once a side has
finished, the other is shown at its own pace.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsa.arena.pacing import SIDES, Pacer, Shown
from simsa.errors import InputError

chunk = st.text(alphabet=st.sampled_from("ab 가나\n.\ufffd"), min_size=1, max_size=6)
chunks = st.lists(chunk, min_size=1, max_size=12)


def feed(pacer: Pacer, steps: list[tuple[str, str | None]]) -> list[list[Shown]]:
    """Run `steps` ((side, text) pushes, (side, None) finishes); what each step released."""
    return [pacer.push(side, text) if text is not None else pacer.finish(side) for side, text in steps]  # type: ignore[arg-type]


def interleave(left: list[str], right: list[str], order: list[bool]) -> list[tuple[str, str | None]]:
    """Both sides' pushes merged in the order `order` draws (True: left next), each side finishing after its last."""
    steps: list[tuple[str, str | None]] = []
    li = ri = 0
    picks = iter(order)
    while li <= len(left) or ri <= len(right):
        take_left = ri > len(right) or (li <= len(left) and next(picks, True))
        if take_left:
            steps.append(("left", left[li] if li < len(left) else None))
            li += 1
        else:
            steps.append(("right", right[ri] if ri < len(right) else None))
            ri += 1
    return steps


def display(pacer: Pacer) -> tuple[int, int]:
    return len(pacer.shown("left")), len(pacer.shown("right"))


@settings(max_examples=300, deadline=None)
@given(chunks, chunks, st.lists(st.booleans(), max_size=40))
def test_everything_is_shown_once_and_in_order(left: list[str], right: list[str], order: list[bool]) -> None:
    pacer = Pacer()
    released = feed(pacer, interleave(left, right, order))
    for side, parts in (("left", left), ("right", right)):
        assert "".join(s.text for step in released for s in step if s.side == side) == "".join(parts)
        assert pacer.shown(side) == "".join(parts)  # type: ignore[arg-type]
    assert pacer.done
    for step in released:  # a release lists left before right, whichever side's arrival caused it
        assert [s.side for s in step] == sorted({s.side for s in step}, key=SIDES.index)
        assert all(s.text for s in step)


@settings(max_examples=300, deadline=None)
@given(chunks, chunks, st.lists(st.booleans(), max_size=40))
def test_while_both_run_both_show_the_slower_sides_length(left: list[str], right: list[str],
                                                         order: list[bool]) -> None:
    pacer = Pacer()
    produced = {"left": 0, "right": 0}
    finished: set[str] = set()
    for side, text in interleave(left, right, order):
        if text is None:
            pacer.finish(side)  # type: ignore[arg-type]
            finished.add(side)
        else:
            pacer.push(side, text)  # type: ignore[arg-type]
            produced[side] += len(text)
        shown = display(pacer)
        if not finished:
            level = min(produced.values())
            assert shown == (level, level)
        elif len(finished) == 1:  # the other runs: it shows what it has; the finished one keeps up to it
            [running] = {"left", "right"} - finished
            [done] = finished
            assert shown[SIDES.index(running)] == produced[running]  # type: ignore[arg-type]
            assert shown[SIDES.index(done)] == min(produced[done], produced[running])  # type: ignore[arg-type]
        else:
            assert shown == (produced["left"], produced["right"])


@settings(max_examples=200, deadline=None)
@given(chunks, st.lists(chunk, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_the_faster_side_and_its_schedule_cannot_be_told(slow: list[str], fast_pool: list[str], rnd) -> None:  # type: ignore[no-untyped-def]
    """For one slower side's arrivals, any schedule of a faster side (always ahead of the slower one) on either
    side gives the same sequence of shown lengths, until a side finishes."""
    slow_total = sum(map(len, slow))
    fast = list(fast_pool)
    while sum(map(len, fast)) < slow_total:
        fast += fast_pool

    def trace(fast_side: str) -> list[tuple[int, int]]:
        slow_side = "right" if fast_side == "left" else "left"
        pacer, seen, fast_at, produced = Pacer(), [], 0, 0
        for piece in slow:
            produced += len(piece)
            burst = rnd.randint(0, 3)  # the fast side arrives in bursts of its own, but stays ahead
            while fast_at < len(fast) and (burst > 0 or sum(map(len, fast[:fast_at])) < produced):
                pacer.push(fast_side, fast[fast_at])  # type: ignore[arg-type]
                fast_at += 1
                burst -= 1
                seen.append(display(pacer))
            pacer.push(slow_side, piece)  # type: ignore[arg-type]
            seen.append(display(pacer))
        return [state for i, state in enumerate(seen) if i == 0 or state != seen[i - 1]]

    expected = []
    for n in range(1, len(slow) + 1):
        level = sum(map(len, slow[:n]))
        if not expected or expected[-1] != (level, level):
            expected.append((level, level))
    if expected and expected[0] == (0, 0):
        expected = expected[1:]
    runs = [trace("left"), trace("right"), trace("left")]
    for seen in runs:
        assert [s for s in seen if s != (0, 0)] == expected


def test_after_one_side_finishes_the_other_goes_at_its_own_pace() -> None:
    pacer = Pacer()
    assert pacer.push("left", "short") == []
    assert pacer.push("right", "lo") == [Shown("left", "sh"), Shown("right", "lo")]
    assert pacer.finish("left") == [] and display(pacer) == (2, 2)  # the left answer waits for the right's pace
    assert pacer.push("right", "ng answer") == [Shown("left", "ort"), Shown("right", "ng answer")]
    assert display(pacer) == (5, 11) and not pacer.done
    assert pacer.push("right", "!") == [Shown("right", "!")]
    assert pacer.finish("right") == [] and pacer.done
    assert pacer.level() is None


def test_a_finished_side_stops_holding_the_other_back() -> None:
    pacer = Pacer()
    pacer.push("left", "a long fast answer")
    assert pacer.push("right", "ok") == [Shown("left", "a "), Shown("right", "ok")]
    assert pacer.finish("right") == [Shown("left", "long fast answer")]
    assert not pacer.done  # all shown, but the left answer may still grow
    assert pacer.push("left", ".") == [Shown("left", ".")]
    assert pacer.finish("left") == [] and pacer.done


def test_refusals() -> None:
    pacer = Pacer()
    pacer.finish("left")
    with pytest.raises(InputError, match="has finished"):
        pacer.push("left", "more")
    with pytest.raises(InputError, match="left or right"):
        pacer.push("middle", "x")  # type: ignore[arg-type]
