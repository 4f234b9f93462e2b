"""`simsa serve-model`: serve a model directory over an OpenAI-compatible API for benchmark runs."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer

from simsa.cli.output import console, err_console
from simsa.errors import InputError


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`: localhost, 127.0.0.0/8 or ::1 (a name other than localhost may
    resolve anywhere, so it does not count)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None, insecure: bool) -> str | None:
    """Refuse to serve an open API beyond this machine; the warning to print when --insecure allows it.

    Runs before the model loads, so a refused command costs nothing.
    """
    if api_key or is_loopback(host):
        return None
    if not insecure:
        raise InputError(f"--host {host or '(all interfaces)'} is reachable from other machines and no API key is "
                         "set: anyone who reaches it could use the model. Give --api-key (or $SIMSA_SERVE_API_KEY), "
                         "serve on 127.0.0.1, or pass --insecure to serve without a key anyway")
    return (f"serving on {host or '(all interfaces)'} without an API key (--insecure): anyone who can reach this "
            "port can use the model")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, bound before serving so that port 0 has become a real port to print."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: {exc.strerror or exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def server_url(sock: socket.socket) -> str:
    """The API base URL clients use (`.../v1`), with the port the socket really got."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM ends the process with status 0 once uvicorn has shut down (it re-raises the signal it stopped on)."""
    raise SystemExit(0)


def serve(app: Any, sock: socket.socket, announce: Callable[[], None]) -> None:
    """Serve until SIGINT or SIGTERM; `announce` runs once the socket accepts requests and the app has started.

    On either signal uvicorn finishes the requests in flight (10 s at most), then the app's shutdown stops the model
    worker, and the process exits with status 0.
    """
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                announce()

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        AnnouncingServer(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it stopped on
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def serve_model(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face model directory (safetensors weights).",
                                              show_default=False)],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port; 0 picks a free one (read it from the printed line).")] = 8000,
    name: Annotated[str | None, typer.Option("--name", help="Model name clients ask for (default: the directory's "
                                                            "name).", show_default=False)] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1,
                                           help="Most sequences scored in one forward pass.")] = 16,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="SIMSA_SERVE_API_KEY", show_default=False,
                                                help="Require `Authorization: Bearer KEY` on the API.")] = None,
    device: Annotated[str, typer.Option("--device", help="Torch device for the model (cpu, cuda, cuda:1).")] = "cpu",
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback --host without an API key "
                                                              "(prints a warning).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the address as one JSON line when ready.")] = False,
) -> None:
    """Serve a model over OpenAI-compatible /v1/completions (with logprobs) and /v1/chat/completions until stopped.

    Listening beyond this machine (a --host other than localhost, 127.0.0.0/8 or ::1) needs an API key, or
    --insecure.
    """
    warning = check_exposure(host, api_key, insecure)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    from simsa.bench.server import create_app  # torch and transformers load only when serving

    app = create_app(model_dir, name=name, max_batch=max_batch, api_key=api_key, device=device)
    served = app.state.served
    sock = bind_socket(host, port)
    url = server_url(sock)

    def announce() -> None:
        if as_json:
            sys.stdout.write(json.dumps({"url": url, "model": served.name, "sha256": served.sha256}) + "\n")
            sys.stdout.flush()
        else:
            console.print(f"serving [bold]{served.name}[/] at {url} (weights sha256 {served.sha256[:16]}…); "
                          "Ctrl-C stops", highlight=False, soft_wrap=True)

    serve(app, sock, announce)
