"""The application factory: wiring only. Handlers -> services -> repositories."""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import WSCloseCode, web

from crypto.clock import Clock, Rng
from crypto.errors import KoppiError
from crypto.keyfile import open_keyfile
from crypto.primitives import SigningKey
from server.appkeys import (
    ADMISSION,
    AUDIT,
    AUTH,
    AUTHENTICATOR,
    BUS,
    CLOCK,
    COMMITS,
    CONFIG,
    CONSENTS,
    DELIVERIES,
    ENGINE,
    EXPORTS,
    MESSAGING,
    METRICS,
    ORGS,
    RELEASE,
    RETENTION,
    RIGHT_TO_KNOW,
    RNG,
    SOCKETS,
    THREADS,
    TRANSLOG,
    USERS,
)
from server.bus import InProcessBus
from server.config import Config, ConfigError
from server.db.engine import make_engine
from server.http import api, health, pages
from server.http import consents as consents_api
from server.http import devices as devices_api
from server.http import log as log_api
from server.http import threads as threads_api
from server.http import users as users_api
from server.http.authn import RequestAuthenticator
from server.http.middleware import access_log, csrf, errors, security_headers
from server.metrics import Metrics
from server.release import Release, build_manifest, publish
from server.repositories.accounts import AccountRepository
from server.repositories.consents import ConsentRepository
from server.repositories.devices import DeviceRepository
from server.repositories.threads import ThreadRepository
from server.repositories.translog import LogRepository
from server.services.admission import AdmissionService
from server.services.auditlog import AuditCheckpoints
from server.services.auth import AuthService, HashCost
from server.services.commits import CommitService
from server.services.consents import ConsentService
from server.services.deliveries import DeliveryAudit
from server.services.export import ExportService
from server.services.messaging import MessagingService
from server.services.organisations import OrganisationService
from server.services.retention import RetentionService
from server.services.right_to_know import RightToKnowService
from server.services.threads import ThreadService
from server.services.translog import TransparencyLog
from server.services.users import UserService

LOG_KEY_NAME = "log-signing-key"


def create_app(
    cfg: Config,
    *,
    clock: Clock,
    rng: Rng,
    hash_cost: HashCost | None = None,
    log_key: SigningKey | None = None,
) -> web.Application:
    """The application. The transparency log runs when a log key is given or configured
    (`log_key_file`, opened with KOPPI_LOG_KEY_PASSPHRASE); without one its endpoints answer
    `koppi.log_unavailable`."""
    if log_key is None and cfg.log_key_file:
        log_key = load_log_key(cfg.log_key_file)
    app = web.Application(
        client_max_size=cfg.max_http_body_bytes,
        middlewares=[access_log, security_headers, errors, csrf],
    )
    app[CONFIG], app[CLOCK], app[RNG] = cfg, clock, rng
    app[METRICS] = Metrics()
    app[BUS] = InProcessBus()
    app[SOCKETS] = weakref.WeakSet()
    app[RELEASE] = Release(build_manifest(Path(_static_dir())))

    async def database(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(cfg.database_url)
        app[ENGINE] = engine
        auth = AuthService(
            AccountRepository(engine),
            clock,
            rng,
            session_lifetime_s=cfg.session_lifetime_s,
            token_lifetime_s=cfg.token_lifetime_s,
            attempts=cfg.login_attempts,
            window_s=cfg.login_window_s,
            cost=hash_cost or HashCost(),
            trail=DeviceRepository(engine),
        )
        app[AUTH] = auth
        app[AUTHENTICATOR] = RequestAuthenticator(auth, secure_cookies=cfg.secure_cookies)
        threads = ThreadRepository(engine)
        trail = DeviceRepository(engine)
        admission = AdmissionService(threads, ConsentRepository(engine), trail, clock)
        app[ADMISSION] = admission
        messaging = MessagingService(
            threads, app[BUS], clock, app[METRICS], admission, batch_max=cfg.commit_batch_max
        )
        app[MESSAGING] = messaging
        messaging.start()
        translog = None
        if log_key is not None:
            translog = TransparencyLog(
                LogRepository(engine), log_key, clock, head_interval_s=cfg.log_head_interval_s
            )
            await translog.start()
            app[TRANSLOG] = translog
            app[RELEASE].log_index = await publish(translog, app[RELEASE].manifest)
            await translog.sign_head()  # so that the first head already covers this release
        app[ORGS] = OrganisationService(trail, translog, clock)
        app[USERS] = UserService(AccountRepository(engine), auth, trail, clock)
        app[COMMITS] = CommitService(messaging, admission, trail, threads, clock)
        app[CONSENTS] = ConsentService(
            ConsentRepository(engine),
            trail,
            threads,
            admission,
            translog,
            clock,
            AccountRepository(engine),
        )
        app[THREADS] = ThreadService(threads, AccountRepository(engine), admission, clock, trail)
        app[EXPORTS] = ExportService(threads, admission, trail, clock)
        app[RIGHT_TO_KNOW] = RightToKnowService(
            threads, ConsentRepository(engine), trail, AccountRepository(engine), admission, clock
        )
        retention = RetentionService(
            threads,
            admission,
            trail,
            clock,
            retention_days=cfg.retention_days,
            max_message_age_days=cfg.max_message_age_days,
            audit_retention_days=cfg.audit_retention_days,
            interval_s=cfg.purge_interval_s,
        )
        app[RETENTION] = retention
        deliveries = DeliveryAudit(threads, clock, flush_s=cfg.audit_delivery_flush_s)
        app[DELIVERIES] = deliveries
        deliveries.start()
        await messaging.load_fences()
        await admission.start()
        retention.start()
        checkpoints = None
        if translog is not None:
            checkpoints = AuditCheckpoints(trail, translog, interval_s=cfg.audit_checkpoint_s)
            app[AUDIT] = checkpoints
            checkpoints.start()
        if translog is not None:
            await app[COMMITS].log_missing_heads(translog)
        messaging.on_commit = functools.partial(app[COMMITS].sequenced, translog)
        yield
        await retention.stop()
        await admission.stop()
        await deliveries.stop()  # before the last checkpoint, which then covers its ranges
        if checkpoints is not None:
            await checkpoints.stop()
        if translog is not None:
            await translog.stop()
        await messaging.stop()
        threads.close()
        await engine.dispose()

    app.cleanup_ctx.append(database)
    app.on_shutdown.append(close_sockets)
    app.add_routes(health.routes)
    app.add_routes(api.routes)
    app.add_routes(log_api.routes)
    app.add_routes(devices_api.routes)
    app.add_routes(consents_api.routes)
    app.add_routes(threads_api.routes)
    app.add_routes(users_api.routes)
    app.add_routes(pages.routes)
    # The release's versioned URLs (cached as immutable), and the plain ones that monitors check.
    app.router.add_static(app[RELEASE].prefix, _static_dir(), follow_symlinks=False)
    app.router.add_static("/static/", _static_dir(), follow_symlinks=False)
    from server import ws

    ws.setup(app)
    return app


async def close_sockets(app: web.Application) -> None:
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for sock in list(sockets):
        await sock.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def _static_dir() -> str:
    from importlib.resources import files

    return str(files("web") / "static")


def load_log_key(path: str) -> SigningKey:
    """Open the log's sealed key file with the passphrase from KOPPI_LOG_KEY_PASSPHRASE."""
    passphrase = os.environ.get("KOPPI_LOG_KEY_PASSPHRASE", "")
    if not passphrase:
        raise ConfigError("log_key_file is set but KOPPI_LOG_KEY_PASSPHRASE is empty")
    try:
        secrets = open_keyfile(Path(path).read_bytes(), passphrase)
        return SigningKey.from_seed(secrets[LOG_KEY_NAME])
    except (OSError, KoppiError, KeyError):
        raise ConfigError(
            f"log_key_file {path}: unreadable, wrong KOPPI_LOG_KEY_PASSPHRASE, or not a log key"
        ) from None
