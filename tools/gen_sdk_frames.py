#!/usr/bin/env python3
"""Writes pbbp2 golden frames using the official Python SDK's own protobuf module.

Usage: python3 -m venv /tmp/sdk && /tmp/sdk/bin/pip install lark-oapi
       /tmp/sdk/bin/python tools/gen_sdk_frames.py crates/lark-wire/tests/fixtures

Only the bytes are committed, never the SDK. Each fixture is <name>.bin; the
Rust test `sdk_fixtures` decodes them, checks the fields, and re-encodes them
byte for byte.
"""
import os
import sys

from lark_oapi.ws.pb.pbbp2_pb2 import Frame


def frame(seq, log, service, method, headers, payload=None, log_id_new=None):
    f = Frame()
    f.SeqID, f.LogID, f.service, f.method = seq, log, service, method
    for k, v in headers:
        h = f.headers.add()
        h.key, h.value = k, v
    if payload is not None:
        f.payload = payload
    if log_id_new is not None:
        f.LogIDNew = log_id_new
    return f.SerializeToString()


FIXTURES = {
    "ping": frame(0, 0, 7, 0, [("type", "ping")]),
    "pong_config": frame(0, 0, 7, 0, [("type", "pong")],
                         b'{"PingInterval":120,"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30}'),
    "event_fragment": frame(123456789012, 987654321, 33554678, 1,
                            [("type", "event"), ("message_id", "msg_1"), ("sum", "2"),
                             ("seq", "1"), ("trace_id", "trace-1"), ("timestamp", "1700000000000")],
                            '{"schema":"2.0","text":"你好"}'.encode(), "log-new-1"),
    "ack": frame(11, 22, 7, 1, [("type", "event"), ("message_id", "m1"), ("sum", "1"),
                                ("seq", "0"), ("trace_id", "t1"), ("biz_rt", "5")], b'{"code":200}'),
}

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in FIXTURES.items():
        with open(os.path.join(out, name + ".bin"), "wb") as fh:
            fh.write(data)
        print(name, data.hex())
