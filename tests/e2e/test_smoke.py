from hubbub.core.convs import private_conv
from tests.conftest import friends


async def test_two_users_chat(make_client):
    alice = await make_client("alice")
    bob = await make_client("bob")
    await friends(alice, bob)
    ack = await alice.send_text("hello bob", to=bob.user_id)
    assert ack["seq"] == 1
    assert ack["conv"] == private_conv(alice.user_id, bob.user_id)
    push = await bob.next_event("msg")
    assert push["msg"]["body"] == {"text": "hello bob"}
