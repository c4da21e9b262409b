"""Saved conversations: real captured records (sampled with an SAE probe, steered, branched) go to JSON and come
back equal field by field, branches sharing their records again; a damaged or foreign file says what is wrong."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from inspectors.engine import saved
from inspectors.engine.capture import run_turn
from inspectors.engine.conversation import Conversation
from inspectors.engine.loading import load_model
from inspectors.engine.record import TurnRecord
from inspectors.engine.sampling import SamplingParams
from inspectors.engine.steering import Steering
from inspectors.errors import InvalidParameterError, SavedFileError
from inspectors.sae.activations import sae_probe
from inspectors.sae.loading import load_sae_from_disk
from inspectors.sae.sparse import SparseActivations
from inspectors.settings import Settings
from tests.helpers import save_tiny_sae

SYSTEM = "Answer in one short sentence."
FIRST, SECOND = "Name three colours of the rainbow.", "And one more?"
SAMPLED = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, max_new_tokens=6, seed=11)
GREEDY = SamplingParams(max_new_tokens=6)


@pytest.fixture(scope="module")
def lm(tiny_dirs):
    return load_model(settings=Settings(model_id=str(tiny_dirs["gemma3"]), max_context_tokens=256))


@pytest.fixture(scope="module")
def conversation(lm, tmp_path_factory):
    """Turn 1 sampled with an SAE probe, turn 2 greedy; a branch of turn 2 with a token forced; a steered turn 1."""
    lsae = load_sae_from_disk(save_tiny_sae(tmp_path_factory.mktemp("sae"), d_in=64, layer=1))
    chat = Conversation(system_prompt=SYSTEM)
    first = chat.send(lm, FIRST, SAMPLED, probes=[sae_probe(lsae, 5)])
    second = chat.send(lm, SECOND, GREEDY)
    reply = second.reply_ids.tolist()
    token = int(second.steps.raw_ids[1, 1])
    branched = run_turn(lm, second.messages, GREEDY, forced=[reply[0], token])
    branched.branch = {"from_turn": 1, "step": 1, "token_ids": [token], "token": lm.tokenizer.decode([token])}
    chat.fork(1, SECOND, branched, "turn 2, step 1 forced")
    chat.switch(0)
    vector = np.random.default_rng(0).standard_normal(64).astype(np.float32) * 20
    steered = run_turn(lm, first.messages, SAMPLED, steering=Steering(1, vector, "a random direction at layer 1"))
    steered.branch = {"from_turn": 0, "steered": True}
    chat.fork(0, FIRST, steered, "turn 1 steered")
    assert isinstance(first.probes["sae"], SparseActivations) and steered.steering_kl is not None
    return chat


def assert_same(a, b, where="value"):
    """Equal and of the same type, all the way down: arrays by dtype, shape and every value (NaN equal to NaN)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def reopened(conversation, turn=None):
    text = saved.dumps(conversation, turn)
    json.loads(text)  # standard JSON
    return saved.loads(text)


def test_a_conversation_comes_back_exactly_with_its_branches_sharing_records(conversation):
    opened = reopened(conversation)
    loaded = opened.conversation
    assert opened.saved == "conversation" and opened.turn is None and opened.app.startswith("gemma-inspector")
    assert loaded.system_prompt == SYSTEM and loaded.active == conversation.active == 2
    assert len(loaded.branches) == 3
    for mine, theirs in zip(loaded.branches, conversation.branches, strict=True):
        assert (mine.label, mine.parent, mine.from_turn) == (theirs.label, theirs.parent, theirs.from_turn)
        assert mine.messages == theirs.messages
        for i, (record, original) in enumerate(zip(mine.records, theirs.records, strict=True)):
            assert_same(record, original, f"{mine.label} turn {i + 1}")
    # shared earlier turns are one object again, as in the conversation saved
    assert loaded.branches[1].records[0] is loaded.branches[0].records[0]
    first = loaded.branches[0].records[0]
    assert all(type(k) is int for k in first.candidate_pieces) and first.candidate_pieces
    assert first.probes["sae"].top_ids.dtype == np.int32 and first.token_ids.dtype == np.int32
    assert loaded.branches[2].records[0].steering["description"] == "a random direction at layer 1"
    assert loaded.branches[1].records[1].forced == 2


def test_one_turn_is_saved_with_the_turns_before_it_on_its_branch(conversation):
    conversation.switch(1)
    try:
        opened = reopened(conversation, turn=1)
    finally:
        conversation.switch(2)
    loaded = opened.conversation
    assert opened.saved == "turn" and opened.turn == 1
    assert len(loaded.branches) == 1 and loaded.active == 0
    assert loaded.branches[0].parent is None and loaded.branches[0].label == "turn 2, step 1 forced"
    assert len(loaded.messages) == 4
    for record, original in zip(loaded.records, conversation.branches[1].records, strict=True):
        assert_same(record, original)
    with pytest.raises(InvalidParameterError, match="turn"):
        saved.dumps(conversation, turn=5)


@pytest.mark.parametrize(
    "value",
    [
        np.float32(1.5), np.int64(-3), (1, "a", None), {1: "x", 2: [1.5]}, {"$x": 1}, float("inf"), float("nan"),
        np.array([[1.5, np.nan], [-np.inf, 2**-20]], dtype=np.float16), np.zeros((0, 3), np.int32),
        np.array([2**63 + 5], dtype=np.uint64), np.array([True, False]), [True, 0, 0.1, "é"],
    ],
)  # fmt: skip
def test_tagged_values_come_back_with_their_type(value):
    text = json.dumps(saved.encode(value), allow_nan=False)
    assert_same(saved.decode(json.loads(text)), value)


def test_non_finite_floats_in_a_record_stay_standard_json(conversation):
    record = dataclasses.replace(conversation.branches[0].records[1], timings={"generate_s": float("nan")})
    record.steering_kl = np.full(record.steps.n_steps, np.inf, dtype=np.float32)
    text = json.dumps(saved.record_to_json(record), allow_nan=False)
    assert_same(saved.record_from_json(json.loads(text)), record)


def valid(conversation) -> dict:
    return json.loads(saved.dumps(conversation))


def edit(change):
    def apply(doc):
        change(doc)
        return json.dumps(doc)

    return apply


def first_record(doc) -> dict:
    return doc["records"][0]


MALFORMED = {
    "not JSON": (lambda doc: "hello, world", "is not valid JSON"),
    "a list": (lambda doc: "[1, 2]", "is not a Gemma Inspector file"),
    "no marker": (lambda doc: json.dumps({"records": []}), 'no "format" marker'),
    "foreign format": (
        edit(lambda doc: doc.update(format="someone-else/chat")),
        "not a Gemma Inspector file: its format is 'someone-else/chat'",
    ),
    "newer version": (edit(lambda doc: doc.update(version=99)), "saved by a newer Gemma Inspector"),
    "bad version": (edit(lambda doc: doc.update(version="1")), "version must be a whole number"),
    "missing field": (edit(lambda doc: first_record(doc).pop("tokens")), "records[0].tokens is missing"),
    "ill-typed field": (
        edit(lambda doc: first_record(doc).update(model_id=5)),
        "records[0].model_id must be text, but is number 5",
    ),
    "tokens vs ids": (
        edit(lambda doc: first_record(doc)["tokens"].pop()),
        "entries but token_ids has",
    ),
    "array values vs shape": (
        edit(lambda doc: first_record(doc)["token_ids"]["$array"]["data"].pop()),
        "records[0].token_ids has",
    ),
    "n_prompt out of range": (
        edit(lambda doc: first_record(doc).update(n_prompt=10**6)),
        "records[0].n_prompt must be a whole number in [1,",
    ),
    "steps vs reply": (
        edit(lambda doc: first_record(doc).update(n_prompt=first_record(doc)["n_prompt"] - 1)),
        "steps but the reply has",
    ),
    "messages vs turns": (
        edit(lambda doc: doc["branches"][0]["messages"].pop()),
        "branches[0] has 3 messages for 2 turns",
    ),
    "record index": (
        edit(lambda doc: doc["branches"][0]["records"].__setitem__(0, 99)),
        "branches[0].records[0] must be a whole number in [0,",
    ),
    "unknown class": (
        edit(lambda doc: first_record(doc)["probes"]["sae"]["$dataclass"].update(type="os.system")),
        "type must be one of",
    ),
    "candidate pieces": (
        edit(lambda doc: first_record(doc)["candidate_pieces"].update({"x1": "a"})),
        "candidate_pieces keys must be token ids",
    ),
    "truncated file": (lambda doc: json.dumps(doc)[: len(json.dumps(doc)) // 2], "looks cut short"),
    "html page": (lambda doc: "<!DOCTYPE html><html></html>", "is an HTML page"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_damaged_or_foreign_file_says_what_is_wrong(conversation, case):
    make, message = MALFORMED[case]
    text = make(valid(conversation))
    with pytest.raises(SavedFileError) as caught:
        saved.loads(text, "`chat.json`")
    said = str(caught.value)
    assert message in said, said
    assert said.startswith("`chat.json`")
    assert "Update the app" in said if case == "newer version" else "Save button" in said


def test_a_binary_or_oversized_file_is_refused_before_parsing(monkeypatch):
    with pytest.raises(SavedFileError, match="is not a text file"):
        saved.read_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    monkeypatch.setattr(saved, "MAX_FILE_BYTES", 100)
    with pytest.raises(SavedFileError, match="MB are not opened"):
        saved.read_bytes(b" " * 101)


def test_a_record_alone_reports_its_damage(conversation):
    raw = saved.record_to_json(conversation.branches[0].records[0])
    raw["steps"]["raw_probs"]["$array"]["dtype"] = "int32"
    with pytest.raises(SavedFileError, match=r"record.steps.raw_probs must hold floats"):
        saved.record_from_json(raw)
    record = conversation.records[0]
    again = saved.record_from_json(saved.record_to_json(record))
    assert isinstance(again, TurnRecord) and again is not record
    assert_same(again, record)
