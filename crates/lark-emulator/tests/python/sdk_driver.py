#!/usr/bin/env python3
"""Drives the official Feishu/Lark Python SDK (lark-oapi) against the emulator.

Usage: sdk_driver.py BASE_URL APP_ID APP_SECRET

1. Starts the SDK's long-connection client (lark_oapi.ws.Client, domain =
   BASE_URL) with a handler for im.message.receive_v1; the SDK reassembles
   fragments and acks each event itself.
2. On the first message it prints `DRIVER EVENT <json>`, then replies into the
   same chat through the SDK's REST client (lark.Client, domain = BASE_URL)
   and prints `DRIVER SENT <message_id>`, then exits 0.
Exits 1 when nothing arrives within 60 s or the REST call fails.
"""
import json
import os
import sys
import threading

import lark_oapi as lark
from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

BASE, APP_ID, APP_SECRET = sys.argv[1], sys.argv[2], sys.argv[3]
received = threading.Event()
event_box = {}


def say(*parts):
    print("DRIVER", *parts, flush=True)


def on_message(data):
    msg = data.event.message
    event_box["chat_id"] = msg.chat_id
    say("EVENT", json.dumps({
        "event_id": data.header.event_id,
        "message_id": msg.message_id,
        "chat_id": msg.chat_id,
        "content": msg.content,
    }))
    received.set()


handler = (
    lark.EventDispatcherHandler.builder("", "")
    .register_p2_im_message_receive_v1(on_message)
    .build()
)
ws_client = lark.ws.Client(APP_ID, APP_SECRET, event_handler=handler, domain=BASE, log_level=lark.LogLevel.INFO)
threading.Thread(target=ws_client.start, daemon=True).start()
say("STARTED")

if not received.wait(60):
    say("TIMEOUT")
    os._exit(1)

# Leave the SDK a moment to write its ack before the process goes on.
rest = lark.Client.builder().app_id(APP_ID).app_secret(APP_SECRET).domain(BASE).log_level(lark.LogLevel.INFO).build()
request = (
    CreateMessageRequest.builder()
    .receive_id_type("chat_id")
    .request_body(
        CreateMessageRequestBody.builder()
        .receive_id(event_box["chat_id"])
        .msg_type("text")
        .content(json.dumps({"text": "reply from the official SDK"}))
        .build()
    )
    .build()
)
response = rest.im.v1.message.create(request)
if not response.success():
    say("FAILED", response.code, response.msg)
    os._exit(1)
say("SENT", response.data.message_id)
sys.stdout.flush()
os._exit(0)
