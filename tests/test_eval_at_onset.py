# SPDX-License-Identifier: MIT
"""Earlier decisions (`pysg eval --at-ms`): the accuracy t ms after each gesture's onset,
read from the per-step logits of one evaluation, must equal evaluating every gesture cut at
t (its events before t, its duration t) from scratch, for every engine."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pysg.datasets.tonic_adapter import open_split
from pysg.jobs import evaluate, open_engine
from pysg.scoring import decision_at
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES

from pysg.cli import main

AT_MS = (100.0, 300.0, 500.0, 1000.0, 5000.0)


def _cut(samples, ms: float, dt_us: int):
    steps = -(-int(ms * 1000) // dt_us)
    out = []
    for s in samples:
        end = min(int(s.duration_us), steps * dt_us)
        out.append(replace(s, events=s.events[s.events["t"] < end], duration_us=end))
    return out


@pytest.mark.parametrize("engine", ["float", "ref", "c"])
def test_decision_at_onset_equals_the_cut_gesture(engine):
    samples = list(open_split(BUNDLED_SAMPLES, "test"))
    ev = evaluate(BUNDLED_MODEL, samples, engine=engine, at_ms=AT_MS)
    rows = {r["ms"]: r for r in ev.summary["at_onset"]}
    assert sorted(rows) == sorted(AT_MS)
    dt_us = ev.summary["dt_us"]
    ev_rule = open_engine(BUNDLED_MODEL, engine).model.rule
    seen = set()
    for ms in AT_MS:
        cut = evaluate(BUNDLED_MODEL, _cut(samples, ms, dt_us), engine=engine)
        assert rows[ms]["accuracy"] == pytest.approx(cut.summary["accuracy"])
        steps = rows[ms]["steps"]
        assert [decision_at(r.logits, ev_rule, steps) for r in ev.samples] == [r.prediction for r in cut.samples]
        assert rows[ms]["n_ended"] == sum(s.duration_us <= rows[ms]["steps"] * dt_us for s in samples)
        seen.add(round(cut.summary["accuracy"], 6))
    # beyond every gesture's end the decision is the final one
    assert rows[5000.0]["n_ended"] == len(samples)
    assert rows[5000.0]["accuracy"] == pytest.approx(ev.summary["accuracy"])
    assert len(seen) >= 3, "the cut points should give different accuracies, or the test cannot tell them apart"


def test_cli_eval_at_ms_json_and_errors(capsys):
    assert main(["--quiet", "eval", str(BUNDLED_MODEL), str(BUNDLED_SAMPLES), "--engine", "ref",
                 "--at-ms", "1000,300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["ms"] for row in out["at_onset"]] == [300.0, 1000.0]
    assert [row["steps"] for row in out["at_onset"]] == [30, 100]
    with pytest.raises(SystemExit) as e:
        main(["eval", str(BUNDLED_MODEL), str(BUNDLED_SAMPLES), "--at-ms", "300,-1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--at-ms" in err and len(err.strip().splitlines()) == 1
