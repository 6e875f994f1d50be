"""The protocol state machine, fed strings: no sockets, no event loop."""

import json

import pytest

from hubbub.protocol import frames
from hubbub.protocol.close_codes import Close
from hubbub.protocol.session import MAX_CONSECUTIVE_ERRORS, Rejection, Session, State


def ready() -> Session:
    s = Session()
    assert isinstance(s.receive('{"type":"auth","token":"t","terminal":"mobile"}'), frames.Auth)
    s.authenticated()
    return s


def test_auth_must_come_first():
    s = Session()
    result = s.receive('{"type":"sync","rid":3}')
    assert isinstance(result, Rejection)
    assert (result.error.code, result.error.rid, result.close) == ("not_authenticated", 3, Close.UNAUTHORIZED)
    assert s.state is State.CLOSED


def test_garbage_before_auth_closes():
    result = Session().receive("{nope")
    assert isinstance(result, Rejection) and result.close is Close.UNAUTHORIZED


def test_auth_decodes_terminal_and_rejects_unknown_terminals():
    frame = Session().receive('{"type":"auth","token":"t","terminal":"desktop","rid":"a"}')
    assert isinstance(frame, frames.Auth) and frame.terminal == "desktop" and frame.rid == "a"
    bad = Session().receive('{"type":"auth","token":"t","terminal":"toaster"}')
    assert isinstance(bad, Rejection) and bad.error.code == "invalid_field"


def test_auth_without_terminal_is_refused_and_closes():
    """``terminal`` is required (docs/protocol.md): no silent default that could replace another terminal."""
    missing = Session().receive('{"type":"auth","token":"t","rid":"a"}')
    assert isinstance(missing, Rejection)
    assert (missing.error.code, missing.error.rid, missing.close) == ("invalid_field", "a", Close.UNAUTHORIZED)
    assert "terminal" in missing.error.message


def test_second_auth_is_an_error_not_a_close():
    s = ready()
    result = s.receive('{"type":"auth","token":"t","terminal":"web"}')
    assert isinstance(result, Rejection) and result.close is None and result.error.code == "bad_request"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{bad", "bad_request"),
        ("42", "bad_request"),
        ('{"type":"fly"}', "unknown_type"),
        ("{}", "unknown_type"),
        ('{"type":"read","conv":"p:1:2"}', "invalid_field"),
        ('{"type":"read","conv":"p:1:2","seq":true}', "invalid_field"),
        ('{"type":"pull","conv":"p:1:2","limit":0}', "invalid_field"),
        ('{"type":"send","cmid":"' + "c" * 65 + '","to":2,"body":{}}', "invalid_field"),
        ('{"type":"send","cmid":"c","to":2,"body":[]}', "invalid_field"),
    ],
)
def test_bad_frames_are_classified(raw, code):
    result = ready().receive(raw)
    assert isinstance(result, Rejection) and result.error.code == code and result.close is None


@pytest.mark.parametrize(
    "conv",
    ["g:07", "p:2:1", "p:1:1", "p:01:2", "g:+7", "g: 7", "g:\uff17", "g:\u00b2", "g:" + "9" * 20, "g:" + "9" * 90,
     "", "g:", "p::", "nonsense"],
)
@pytest.mark.parametrize("kind", ["pull", "history", "read", "recall", "typing", "receipts", "send"])
def test_non_canonical_conversation_ids_are_invalid_id(kind, conv):
    frame = {"type": kind, "conv": conv, "rid": "r1", "seq": 1, "cmid": "c", "body": {"text": "x"}}
    result = ready().receive(json.dumps(frame))
    assert isinstance(result, Rejection), result
    assert (result.error.code, result.error.rid, result.close) == ("invalid_id", "r1", None)


def test_rid_is_salvaged_from_invalid_frames():
    result = ready().receive('{"type":"read","conv":"p:1:2","seq":"x","rid":"r9"}')
    assert isinstance(result, Rejection) and result.error.rid == "r9"


def test_persistent_errors_close_and_a_good_frame_resets_the_count():
    s = ready()
    for _ in range(MAX_CONSECUTIVE_ERRORS - 1):
        assert s.receive("}").close is None
    assert isinstance(s.receive('{"type":"ping"}'), frames.Ping)
    for _ in range(MAX_CONSECUTIVE_ERRORS - 1):
        s.receive("}")
    last = s.receive("}")
    assert isinstance(last, Rejection) and last.close is Close.PROTOCOL


def test_send_frame_defaults():
    frame = ready().receive('{"type":"send","cmid":"c1","to":5,"body":{"text":"hi"}}')
    assert isinstance(frame, frames.Send)
    assert (frame.msg_type, frame.to, frame.conv, frame.rid) == ("text", 5, None, None)


def test_server_frames_encode_with_their_type():
    assert frames.encode(frames.Pong(ts=1)) == b'{"type":"pong","ts":1}'
    assert frames.encode(frames.ErrorFrame(code="x", message="m", rid=2)) == (
        b'{"type":"error","code":"x","message":"m","rid":2}'
    )
