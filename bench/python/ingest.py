"""Python SDK ingest client for larkgate's benchmarks.

    PY=$(bash tools/sdk-venv.sh)
    $PY bench/python/ingest.py --base-url http://127.0.0.1:PORT --app-id ID --app-secret S

Connects the official Python SDK's long-connection client (`lark-oapi`,
`lark.ws.Client`) to the platform at --base-url (e.g. lark-emulator) with an
`im.message.receive_v1` handler that does nothing, so what the harness
measures is the SDK's own cost of receiving, decoding, dispatching and acking
events. The SDK posts endpoint discovery to `domain + "/callback/ws/endpoint"`
(lark_oapi/ws/client.py), so --base-url is passed as the domain unchanged
(minus a trailing slash).

Runs until SIGTERM/SIGINT.
"""

import argparse
import os
import signal
import sys

import lark_oapi as lark


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--app-id", required=True)
    p.add_argument("--app-secret", required=True)
    args = p.parse_args()

    # Exit at once on SIGTERM (the SDK's start() never returns).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(lambda data: None)
        .build()
    )
    client = lark.ws.Client(
        args.app_id,
        args.app_secret,
        event_handler=handler,
        domain=args.base_url.rstrip("/"),
        log_level=lark.LogLevel.ERROR,
    )
    client.start()


if __name__ == "__main__":
    sys.exit(main())
