"""A server that breaks the /stream_chat contract in one chosen way per path prefix.

`python -m tests.support.contract_breaker PORT`; POST /<mode>/stream_chat. Used to prove the
smoke-test client notices each violation.
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKEN = b'data: {"token": "Hello", "done": false}\n\n'
FINAL = (
    b'data: {"token": "", "done": true, "finish_reason": "stop", '
    b'"usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n'
)

BODIES = {
    "valid": [TOKEN, FINAL],
    "no-final": [TOKEN, TOKEN],
    "special-token": [TOKEN, b'data: {"token": "<|im_end|>", "done": false}\n\n', FINAL],
    "empty-token": [TOKEN, b'data: {"token": "", "done": false}\n\n', FINAL],
    "two-finals": [TOKEN, FINAL, FINAL],
    "non-ascii": [TOKEN, 'data: {"token": " caf\u00e9", "done": false}\n\n'.encode(), FINAL],
    "not-json": [TOKEN, b"data: {token: Hello}\n\n", FINAL],
    "no-space": [b'data:{"token": "Hello", "done": false}\n\n', FINAL],
    "final-without-usage": [TOKEN, b'data: {"token": "", "done": true, "finish_reason": "stop"}\n\n'],
}


async def stream_chat(request):
    mode = request.path_params["mode"]
    if mode == "http-500":
        return JSONResponse({"detail": "boom"}, status_code=500)
    if mode == "json-content-type":
        return Response(b"".join(BODIES["valid"]), media_type="application/json")

    async def chunks():
        for chunk in BODIES[mode]:
            yield chunk

    return StreamingResponse(chunks(), media_type="text/event-stream")


app = Starlette(routes=[Route("/{mode}/stream_chat", stream_chat, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
