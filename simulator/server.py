"""The simulator's aiohttp application, control endpoints, and ways to run it.

This module owns the public entry points:

* ``build_app(config)`` - the ``aiohttp.web.Application`` with one chat route per provider
  (see ``simulator.providers.endpoints``), its embeddings route when its dialect has one
  (``simulator/embed.py``), and the JSON control endpoints:
  ``GET /_sim/health``, ``GET /_sim/stats``,
  ``GET /_sim/log?provider=&model=&limit=&kind=&bodies=1`` (``bodies=1``: only the entries
  whose request body is still held, each with ``"request": {"path", "headers", "body"}`` as
  received), ``GET|POST /_sim/config``, ``POST /_sim/reset``.
* ``serve(host, port, config)`` - blocking server for ``llmq simulate`` / ``python -m
  simulator``; prints ``simulator listening on http://host:port`` once ready.
* ``start_in_thread(config, host, port)`` - runs the server on its own event loop in a daemon
  thread and returns a ``RunningSimulator`` (``url``, ``port``, ``stop()``, ``configure()``,
  ``stats()``, ``log()``, ``reset()``), which talks to the control endpoints over HTTP.

``POST /_sim/config`` accepts ``{"provider": "openai", <behaviour fields>}`` (partial update of
one provider; ``models`` merged per model, ``null`` removes an override) or ``{"providers":
{name: {fields}}, "default": {fields}, "seed": n}`` (each part a partial update; add
``"replace": true`` to replace the whole config instead). ``POST /_sim/reset`` clears counters,
log and limiter windows and reseeds the RNG; ``{"behaviour": true}`` also restores the config
the app was built with.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiohttp import web
from pydantic import ValidationError

from simulator.config import ProviderBehaviour, SimConfig
from simulator.embed import embed_handler, embed_routes
from simulator.engine import handle_chat
from simulator.providers import Dialect, SimError, api_bases, endpoints, routes
from simulator.providers.batch_routes import batch_routes
from simulator.state import SimState

STATE_KEY = web.AppKey("llmq_sim_state", SimState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _chat_handler(dialect: Dialect) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await handle_chat(request.app[STATE_KEY], dialect, request)

    handler.__name__ = f"chat_{dialect.name}"
    return handler


def _batch_handler(handler: Any, dialect: Dialect, name: str) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        return await handler(request.app[STATE_KEY], dialect, name, request)

    return run


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _health(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].stats_json())


async def _log(request: web.Request) -> web.Response:
    query = request.query
    try:
        limit = int(query["limit"]) if "limit" in query else None
    except ValueError:
        return _json({"ok": False, "error": "limit must be an integer"}, 400)
    bodies = query.get("bodies", "") not in ("", "0", "false")
    entries = request.app[STATE_KEY].log_json(
        query.get("provider"), query.get("model"), limit, bodies=bodies, kind=query.get("kind")
    )
    return _json({"entries": entries, "count": len(entries)})


async def _get_config(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].config.model_dump(mode="json"))


def apply_config_update(current: SimConfig, body: dict[str, Any]) -> SimConfig:
    """The config after a ``POST /_sim/config`` body (see the module docstring)."""
    body = dict(body)
    if body.pop("replace", False):
        return SimConfig.model_validate(body)
    if "provider" in body:
        provider = body.pop("provider")
        return current.updated(str(provider), body)
    config = current
    for provider, fields in dict(body.pop("providers", None) or {}).items():
        config = config.updated(provider, dict(fields))
    data = config.model_dump()
    if "default" in body:
        default = data["default"]
        default.update(dict(body.pop("default")))
        data["default"] = ProviderBehaviour.model_validate(default).model_dump()
    data.update(body)
    return SimConfig.model_validate(data)


async def _post_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        state.set_config(apply_config_update(state.config, body))
    except (ValueError, TypeError, ValidationError) as err:
        return _json({"ok": False, "error": str(err)}, 400)
    return _json({"ok": True, "config": state.config.model_dump(mode="json")})


async def _reset(request: web.Request) -> web.Response:
    body: Any = {}
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return _json({"ok": False, "error": "body must be JSON"}, 400)
    behaviour = bool(body.get("behaviour")) if isinstance(body, dict) else False
    request.app[STATE_KEY].reset(behaviour=behaviour)
    return _json({"ok": True})


def _report_handler(name: str, dialect: Dialect, window: Any, render: Any) -> Any:
    """A usage/cost report route of `dialect`, answered from what this endpoint billed."""

    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        try:
            dialect.check_auth(request)
            start, stop = window(request.query)
        except SimError as err:
            rendered = dialect.error(err, state.next_id())
            return web.Response(
                body=rendered.body, status=rendered.status, content_type=rendered.content_type
            )
        return _json(render(state.books.for_endpoint(name, start, stop)))

    return handler


def build_app(config: SimConfig | None = None) -> web.Application:
    """The simulator application (all provider routes and ``/_sim/*`` control endpoints)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = SimState(config)
    for name, dialect in endpoints().items():
        handler = _chat_handler(dialect)
        for path in routes(name, dialect):
            app.router.add_post(path, handler)
        for path, (window, render) in dialect.report_routes.items():  # issue 19: usage reports
            app.router.add_get(f"/{name}{path}", _report_handler(name, dialect, window, render))
    for name, dialect in endpoints().items():  # issue 18: the batch APIs
        for method, path, batch_handler in batch_routes(name, dialect):
            app.router.add_route(method, path, _batch_handler(batch_handler, dialect, name))
        embed = embed_routes(name, dialect)  # issue 17: the endpoint's embeddings, if any
        if embed is not None:
            app.router.add_post(embed[1], embed_handler(STATE_KEY, dialect, embed[0]))
    app.router.add_get("/_sim/health", _health)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_get("/_sim/log", _log)
    app.router.add_get("/_sim/config", _get_config)
    app.router.add_post("/_sim/config", _post_config)
    app.router.add_post("/_sim/reset", _reset)
    return app


async def _start(
    app: web.Application, host: str, port: int, shutdown_timeout: float
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048)
    await site.start()
    actual = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            actual = int(address[1])
            break
    return runner, actual


async def _serve_forever(host: str, port: int, config: SimConfig | None) -> None:
    runner, actual = await _start(build_app(config), host, port, shutdown_timeout=2.0)
    print(f"simulator listening on http://{host}:{actual}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await stop.wait()
    finally:
        await _shutdown(runner)


def serve(host: str = "127.0.0.1", port: int = 8900, config: SimConfig | None = None) -> None:
    """Run the simulator until SIGINT/SIGTERM (blocking)."""
    try:
        asyncio.run(_serve_forever(host, port, config))
    except KeyboardInterrupt:
        pass


async def _shutdown(runner: web.AppRunner) -> None:
    """Stop the server, then cancel whatever is still running (e.g. held timeouts)."""
    await runner.cleanup()
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class RunningSimulator:
    """A simulator running in a background thread; control helpers go over HTTP."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        runner: web.AppRunner,
        host: str,
        port: int,
    ) -> None:
        self._loop = loop
        self._thread = thread
        self._runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._stopped = False
        self._http = httpx.Client(base_url=self.url, timeout=10.0)
        self._http_lock = threading.Lock()

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        with self._http_lock:
            response = self._http.request(method, path, json=body, params=params)
        response.raise_for_status()
        return response.json()

    def configure(self, provider: str, **behaviour: Any) -> dict[str, Any]:
        """Partially update ``provider``'s behaviour (``"default"`` updates the default)."""
        if provider == "default":
            return self._call("POST", "/_sim/config", {"default": behaviour})
        return self._call("POST", "/_sim/config", {"provider": provider, **behaviour})

    def set_config(self, config: SimConfig | dict[str, Any]) -> dict[str, Any]:
        """Replace the whole configuration."""
        data = config.model_dump(mode="json") if isinstance(config, SimConfig) else dict(config)
        return self._call("POST", "/_sim/config", {**data, "replace": True})

    def set_prices(self, prices: dict[str, tuple[str, str]], batch_discount: str = "0.5") -> None:
        """What each model bills (USD per 1M input, output tokens); issue 18."""
        self._call("POST", "/_sim/config", {"prices": prices, "batch_discount": batch_discount})

    def billing(self, lane: str | None = None) -> list[dict[str, Any]]:
        """What the simulator billed, per (provider, model, lane)."""
        rows = self.stats()["billing"]
        return [r for r in rows if lane is None or r["lane"] == lane]

    def stats(self) -> dict[str, Any]:
        """``GET /_sim/stats``."""
        return self._call("GET", "/_sim/stats")

    def log(
        self, provider: str | None = None, limit: int | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """The last ``limit`` request-log entries, oldest arrival first."""
        params = {"provider": provider, "limit": limit, "model": model}
        params = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", "/_sim/log", params=params)["entries"]

    def requests(
        self,
        provider: str | None = None,
        limit: int | None = None,
        model: str | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """The latest requests with their bodies as received (``entry["request"]["body"]``),
        oldest first; only those still held (``body_log_size``)."""
        params = {"provider": provider, "limit": limit, "model": model, "kind": kind}
        params = {k: v for k, v in params.items() if v is not None}
        params["bodies"] = 1
        return self._call("GET", "/_sim/log", params=params)["entries"]

    def reset(self, behaviour: bool = False) -> None:
        """Clear counters/log/windows (and restore the start config if ``behaviour``)."""
        self._call("POST", "/_sim/reset", {"behaviour": behaviour})

    def api_base(self, provider: str) -> str:
        """The api_base an adapter should use for ``provider``."""
        return self.url + API_BASES[provider]

    def stop(self) -> None:
        """Shut the server down and join its thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._http.close()
        future = asyncio.run_coroutine_threadsafe(_shutdown(self._runner), self._loop)
        try:
            future.result(timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Endpoint name -> api_base path, for the registered providers at import time (a provider
# registered later: `simulator.providers.api_bases()`).
API_BASES: dict[str, str] = api_bases()


def start_in_thread(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Start the simulator on its own loop in a daemon thread (``port=0`` = ephemeral)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["runner"], box["port"] = loop.run_until_complete(
                _start(build_app(config), host, port, shutdown_timeout=0.25)
            )
        except BaseException as err:  # reported to the caller below
            box["error"] = err
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="llmq-simulator", daemon=True)
    thread.start()
    if not ready.wait(timeout=30):
        raise RuntimeError("simulator did not start within 30 s")
    if "error" in box:
        raise RuntimeError(f"simulator failed to start: {box['error']}") from box["error"]
    return RunningSimulator(loop, thread, box["runner"], host, box["port"])
