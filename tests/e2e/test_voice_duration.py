"""Voice notes with a duration before playing (issue 15): the file's own duration wins; a browser's WebM that
says nothing takes the client's ``?duration=``, if it is believable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hubbub.client import ApiError, HubbubClient
from tests.e2e.test_media import _ebml, auth, wav

MakeClient = Callable[..., Awaitable[HubbubClient]]


def recorder_webm(size: int = 28_000) -> bytes:
    """What MediaRecorder writes: a Cluster before any duration (the container does not say how long)."""
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm"))
    return header + _ebml(0x18538067, _ebml(0x1F43B675, b"\0" * size))


async def upload(client: HubbubClient, kind: str, data: bytes, name: str, duration: str | None = None) -> Any:
    params = {"kind": kind, "name": name, **({"duration": duration} if duration is not None else {})}
    async with client.http.post(
        client.base_url + "/api/v1/uploads", params=params, data=data, headers=auth(client)
    ) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise ApiError(body["error"]["code"], body["error"]["message"], resp.status)
        return body


async def test_the_clients_duration_fills_in_for_a_webm_that_says_nothing(make_client: MakeClient) -> None:
    alice = await make_client(connect=False)
    silent = await upload(alice, "voice", recorder_webm(), "note.webm")
    assert "duration" not in silent  # nothing claimed, nothing known
    claimed = await upload(alice, "voice", recorder_webm(), "note.webm", duration="7.4")
    assert claimed["duration"] == 7.4 and claimed["mime"] == "audio/webm"
    # the message body carries it, for a "Voice message 0:07" preview and a duration before playing
    bob = await make_client(connect=False)
    await alice.befriend(bob)
    ack = await alice.api(
        "POST", "/api/v1/messages", {"cmid": "v1", "to": bob.user_id, "type": "voice", "body": {"upload": claimed["upload"]}}
    )
    page = await bob.api("GET", f"/api/v1/conversations/{ack['conv']}/messages")
    assert page["messages"][-1]["body"]["duration"] == 7.4


async def test_the_files_own_duration_wins(make_client: MakeClient) -> None:
    alice = await make_client(connect=False)
    up = await upload(alice, "voice", wav(1.5), "memo.wav", duration="99")
    assert up["duration"] == 1.5


@pytest.mark.parametrize(
    ("duration", "code"),
    [("abc", "invalid_field"), ("nan", "invalid_field"), ("-3", "invalid_field"), ("0", "invalid_field"),
     ("601", "too_large"), ("0.001", "invalid_field"), ("590", "invalid_field")],
)
async def test_unbelievable_durations_are_refused(make_client: MakeClient, duration: str, code: str) -> None:
    alice = await make_client(connect=False)
    with pytest.raises(ApiError) as err:
        await upload(alice, "voice", recorder_webm(), "note.webm", duration=duration)
    assert err.value.code == code


async def test_a_duration_only_for_voice_and_video(make_client: MakeClient) -> None:
    alice = await make_client(connect=False)
    with pytest.raises(ApiError) as err:
        await upload(alice, "file", b"notes\n", "a.txt", duration="3")
    assert err.value.code == "invalid_field"
