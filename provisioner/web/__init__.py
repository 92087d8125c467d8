"""The HTTP side of provisionerd: a Flask app factory (R8) and its blueprints.

`create_app(config)` builds a fresh app; gunicorn calls it in each worker (after the fork), so
every worker has its own database engine and readers. Reads go through a per-thread light
Reader that sees the latest committed state; writes open one session per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from provisioner.errors import ProvisionerError

if TYPE_CHECKING:
    from provisioner.config import Config
    from provisioner.hooks import Hooks


def create_app(config: Config | None = None, hooks: Hooks | None = None) -> Flask:
    from provisioner.config import Config
    from provisioner.hooks import Hooks
    from provisioner.web import api, boot, discovery, install, ui
    from provisioner.web.state import WebState

    config = config or Config.load()
    hooks = hooks or Hooks.from_config(config)
    app = Flask("provisioner")
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    state = WebState(config, hooks)
    app.extensions["provisioner"] = state
    app.register_blueprint(install.bp)
    app.register_blueprint(boot.bp)
    app.register_blueprint(discovery.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ui.bp)
    # Kickstarts are answered before Flask: a storm of them must not pay for its machinery.
    fast = install.KickstartFastPath(app.wsgi_app, state)
    app.wsgi_app = fast  # type: ignore[method-assign]
    app.extensions["provisioner.kickstart"] = fast
    for blueprint in state.hooks.register_blueprints():
        app.register_blueprint(blueprint)
    app.teardown_appcontext(state.teardown)

    @app.errorhandler(ProvisionerError)
    def one_line(exc: ProvisionerError) -> Response:
        # The same one-line message the CLI would print, with the matching status.
        return Response(f"{exc}\n", exc.http_status, mimetype="text/plain")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        from werkzeug.exceptions import HTTPException

        from provisioner.db.errors import translate as translate_db_error

        if isinstance(exc, HTTPException):
            return exc  # type: ignore[return-value]
        translated = translate_db_error(exc)
        if translated is not None:
            return one_line(translated)
        app.logger.exception("internal error on %s", request_path())
        return Response("internal error\n", 500, mimetype="text/plain")

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        state.reader().generation()
        return "ok\n", 200

    return app


def behind_proxy() -> Flask:
    """The app as gunicorn serves it in provisionerd: behind nginx, on a unix socket only nginx
    can reach (provisioner/web/nginx.py). The client is whoever nginx says it is."""
    from provisioner.web.install import KICKSTART_PATHS

    app = create_app()
    app.wsgi_app = RealIpFromProxy(app.wsgi_app)  # type: ignore[method-assign]
    # The HTTP worker answers these paths itself, before WSGI (provisioner/web/worker.py).
    kickstart = app.extensions["provisioner.kickstart"].behind_proxy
    app.extensions["provisioner.fast_paths"] = dict.fromkeys(KICKSTART_PATHS, kickstart)
    return app


class RealIpFromProxy:
    """REMOTE_ADDR from nginx's `X-Real-IP` (set from the connection's peer address; a header
    of that name sent by a client never gets through nginx). On the unix socket gunicorn has
    no peer address of its own to offer, so a request without the header is refused."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        real = environ.pop("HTTP_X_REAL_IP", "")
        environ.pop("HTTP_X_FORWARDED_FOR", None)
        if not real:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"no client address from the proxy\n"]
        environ["REMOTE_ADDR"] = real
        return self.app(environ, start_response)


def request_path() -> str:
    from flask import request

    return request.path
