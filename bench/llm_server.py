"""A scripted OpenAI-compatible chat server for larkgate's benchmarks (stdlib only).

    python3 bench/llm_server.py --port 18080 [--first-token-ms 0] [--chars 40]
                                [--chunk 20] [--interval-ms 20] [--host 127.0.0.1]

Serves `POST /v1/chat/completions` (also `/chat/completions`):

* with `"stream": true`, a Server-Sent-Events stream of
  `data: {"choices":[{"delta":{"content":"..."}}]}` events: the first after
  --first-token-ms, then one every --interval-ms, each of --chunk characters,
  --chars characters in all; then a usage event (for `stream_options.
  include_usage`) and `data: [DONE]`;
* without it, one `chat.completion` JSON answer with the whole text.

The reply is readable text whose first chunk differs from the rest:
"Reply to <conv>. " followed by a repeated sentence, cut to --chars.

For each completion request it records, in arrival order,

    {"conv": <text of the last user message>,
     "t_req_ns": time.time_ns() when the request head was read,
     "t_first_ns": time.time_ns() right after the first token was written and drained,
     "t_done_ns": ... after the last event, "reply": <the full reply text>,
     "chunks": <content events sent>, "complete": <false if the client left early>}

`GET /_timeline` returns that list as JSON; `POST /_timeline/reset` clears it.
`GET /v1/models` lists one model ("bench"). Prints "llm_server listening on
http://HOST:PORT" once ready and runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import json
import re
import signal
import sys
import time

SENTENCE = "The quick brown fox jumps over the lazy dog. "


class LLMServer:
    def __init__(self, first_token_ms: float, chars: int, chunk: int, interval_ms: float):
        self.first_token_s = first_token_ms / 1000.0
        self.chars = max(0, chars)
        self.chunk = max(1, chunk)
        self.interval_s = interval_ms / 1000.0
        self.timeline = []
        self.counter = 0

    # -- the reply -------------------------------------------------------

    def reply_text(self, conv: str) -> str:
        label = re.search(r"conv-\d+", conv)
        head = f"Reply to {label.group(0) if label else 'you'}. "
        text = head
        while len(text) < self.chars:
            text += SENTENCE
        return text[: self.chars]

    def chunks(self, text: str):
        return [text[i : i + self.chunk] for i in range(0, len(text), self.chunk)] or [""]

    # -- HTTP ------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                t_head = time.time_ns()
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = (lines[0].split(" ", 2) + ["", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await self.read_body(reader, headers)
                keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
                path = target.split("?", 1)[0]
                if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
                    keep = await self.completion(writer, body, t_head, keep)
                elif method == "GET" and path == "/_timeline":
                    await self.send_json(writer, 200, self.timeline, keep)
                elif method == "POST" and path == "/_timeline/reset":
                    self.timeline = []
                    await self.send_json(writer, 200, {"ok": True}, keep)
                elif method == "GET" and path in ("/v1/models", "/models"):
                    await self.send_json(
                        writer, 200, {"object": "list", "data": [{"id": "bench", "object": "model"}]}, keep
                    )
                else:
                    await self.send_json(writer, 404, {"error": {"message": f"no route {method} {path}"}}, keep)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def read_body(self, reader, headers) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return body
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        n = int(headers.get("content-length", "0") or 0)
        return await reader.readexactly(n) if n else b""

    async def send_json(self, writer, status: int, obj, keep: bool):
        data = json.dumps(obj).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nconnection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode()
            + data
        )
        await writer.drain()

    # -- completions -----------------------------------------------------

    @staticmethod
    def last_user_text(req) -> str:
        for msg in reversed(req.get("messages") or []):
            if msg.get("role") != "user":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return ""
        return ""

    async def completion(self, writer, body: bytes, t_head: int, keep: bool) -> bool:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            await self.send_json(writer, 400, {"error": {"message": "bad JSON"}}, keep)
            return keep
        conv = self.last_user_text(req)
        reply = self.reply_text(conv)
        rec = {"conv": conv, "t_req_ns": t_head, "t_first_ns": None, "t_done_ns": None,
               "reply": reply, "chunks": 0, "complete": False}
        self.timeline.append(rec)
        self.counter += 1
        cid = f"chatcmpl-bench{self.counter}"
        model = req.get("model", "bench")
        created = int(time.time())

        if not req.get("stream"):
            if self.first_token_s:
                await asyncio.sleep(self.first_token_s)
            answer = {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(conv) // 4 + 1, "completion_tokens": len(reply) // 4 + 1,
                          "total_tokens": (len(conv) + len(reply)) // 4 + 2},
            }
            await self.send_json(writer, 200, answer, keep)
            rec["t_first_ns"] = rec["t_done_ns"] = time.time_ns()
            rec["chunks"] = 1
            rec["complete"] = True
            return keep

        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\nconnection: " + (b"keep-alive" if keep else b"close") + b"\r\n\r\n"
        )

        def event(obj) -> bytes:
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        def delta(content=None, finish=None, role=False):
            d = {}
            if role:
                d["role"] = "assistant"
            if content is not None:
                d["content"] = content
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

        if self.first_token_s:
            await writer.drain()
            await asyncio.sleep(self.first_token_s)
        for i, piece in enumerate(self.chunks(reply)):
            if i:
                await asyncio.sleep(self.interval_s)
            writer.write(event(delta(piece, role=(i == 0))))
            await writer.drain()
            rec["chunks"] += 1
            if i == 0:
                rec["t_first_ns"] = time.time_ns()
        writer.write(event(delta(finish="stop")))
        if (req.get("stream_options") or {}).get("include_usage"):
            writer.write(event({
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": {"prompt_tokens": len(conv) // 4 + 1, "completion_tokens": len(reply) // 4 + 1,
                          "total_tokens": (len(conv) + len(reply)) // 4 + 2},
            }))
        writer.write(event(b"[DONE]"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        rec["t_done_ns"] = time.time_ns()
        rec["complete"] = True
        return keep


async def main_async(args):
    srv = LLMServer(args.first_token_ms, args.chars, args.chunk, args.interval_ms)
    server = await asyncio.start_server(srv.handle, args.host, args.port, backlog=1024, limit=1 << 22)
    port = server.sockets[0].getsockname()[1]
    print(f"llm_server listening on http://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    p = argparse.ArgumentParser(description="Scripted OpenAI-compatible streaming server for benchmarks.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18080, help="0 picks a free port (printed)")
    p.add_argument("--first-token-ms", type=float, default=0, help="delay before the first token")
    p.add_argument("--chars", type=int, default=40, help="total reply length in characters")
    p.add_argument("--chunk", type=int, default=20, help="characters per SSE event")
    p.add_argument("--interval-ms", type=float, default=20, help="delay between SSE events")
    args = p.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
