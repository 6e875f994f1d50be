"""Small pieces of the core: conversation ids, message ids, framing, config, rate limits."""

import pytest

from hubbub.config import Config, load
from hubbub.core.convs import group_conv, parse_group, parse_private, peer_of, private_conv, validate
from hubbub.core.errors import HubbubError
from hubbub.core.ids import MAX_ID, MAX_SEQ, MessageIds, parse_id, parse_seq
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.gateway.wire import text_frame


def test_private_conv_ids_are_canonical():
    assert private_conv(9, 3) == private_conv(3, 9) == "p:3:9"
    assert parse_private("p:3:9") == (3, 9)
    for bad in ("p:9:3", "p:3:3", "p:x:1", "p:1", "g:1", "", "p:1:2:3"):
        assert parse_private(bad) is None
    assert peer_of("p:3:9", 3) == 9 and peer_of("p:3:9", 4) is None
    assert parse_group(group_conv(12)) == 12 and parse_group("g:") is None
    with pytest.raises(HubbubError):
        validate("x:1")


#: Spellings ``int`` reads as a number (or that look like one) but that are not an id's one spelling.
NON_CANONICAL = ["07", "0", "+7", "-7", " 7", "7 ", "\uff17", "\u0661", "\u00b2", "7\n", "1_0", "7.0", "", "1" * 5000]


@pytest.mark.parametrize("text", NON_CANONICAL)
def test_ids_have_one_spelling(text):
    assert parse_id(text) is None
    for conv in (f"g:{text}", f"p:{text}:99", f"p:1:{text}"):
        assert parse_group(conv) is None and parse_private(conv) is None
        with pytest.raises(HubbubError) as refused:
            validate(conv)
        assert refused.value.code == "invalid_id"


def test_id_and_seq_ranges():
    assert parse_id("7") == 7 and parse_id(str(MAX_ID)) == MAX_ID and parse_id(str(MAX_ID + 1)) is None
    assert parse_seq("0") == 0 and parse_seq(str(MAX_SEQ)) == MAX_SEQ and parse_seq(str(MAX_SEQ + 1)) is None
    assert parse_seq("00") is None and parse_seq("12", high=10) is None
    assert parse_group(f"g:{MAX_ID + 1}") is None
    assert validate("g:7") == "g:7" and validate("p:1:2") == "p:1:2"
    for bad in ("p:2:1", "p:1:1", "g:7:", "G:7", "g:7\x00"):
        with pytest.raises(HubbubError):
            validate(bad)


def test_message_ids_are_unique_and_increasing():
    ids = MessageIds("node-a")
    batch = [ids.next() for _ in range(20_000)]
    assert batch == sorted(batch) and len(set(batch)) == len(batch)
    assert MessageIds("node-a")._node != MessageIds("node-b")._node


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_lengths(size):
    frame = text_frame(b"x" * size)
    assert frame[0] == 0x81
    if size < 126:
        assert frame[1] == size and len(frame) == size + 2
    elif size < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size


def test_config_defaults_env_and_overrides(tmp_path):
    cfg = Config()
    assert (cfg.host, cfg.port, cfg.heartbeat_s) == ("127.0.0.1", 8080, 25)
    env = {
        "HUBBUB_PORT": "9000",
        "HUBBUB_DATA_DIR": str(tmp_path),
        "HUBBUB_PRIVATE_REQUIRES_FRIENDSHIP": "false",
    }
    cfg = load({"host": "0.0.0.0", "port": None}, env)
    assert (cfg.host, cfg.port, cfg.private_requires_friendship) == ("0.0.0.0", 9000, False)
    assert cfg.database_url.startswith("sqlite+aiosqlite:///") and cfg.database_url.endswith("hubbub.db")
    assert load({"database": "postgresql://u@h/db"}, {}).database_url == "postgresql+asyncpg://u@h/db"


def test_jwt_secret_is_generated_once_and_private(tmp_path):
    cfg = Config(data_dir=str(tmp_path / "d"))
    first = cfg.secret()
    assert len(first) > 40 and first == cfg.secret()
    assert (tmp_path / "d" / "jwt-secret").stat().st_mode & 0o077 == 0
    assert Config(data_dir=str(tmp_path / "other")).secret() != first


async def test_token_bucket():
    limiter = MemoryRateLimiter()
    assert [await limiter.take("k", rate=1.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await limiter.take("k", rate=1.0, burst=3)
    assert 0 < wait <= 1.0
    assert await limiter.take("other", rate=1.0, burst=3) == 0.0
