"""Typed application state (aiohttp `web.AppKey`): no globals, no string keys."""

from __future__ import annotations

import weakref

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from crypto.clock import Clock, Rng
from server.bus import FanoutBus
from server.config import Config
from server.metrics import Metrics
from server.principal import Authenticator
from server.release import Release
from server.services.admission import AdmissionService
from server.services.auditlog import AuditCheckpoints
from server.services.auth import AuthService
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

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
RNG = web.AppKey("rng", Rng)
ENGINE = web.AppKey("engine", AsyncEngine)
METRICS = web.AppKey("metrics", Metrics)
BUS = web.AppKey("bus", FanoutBus)
AUTH = web.AppKey("auth", AuthService)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
MESSAGING = web.AppKey("messaging", MessagingService)
TRANSLOG = web.AppKey("translog", TransparencyLog)
ORGS = web.AppKey("organisations", OrganisationService)
RELEASE = web.AppKey("release", Release)
USERS = web.AppKey("users", UserService)
COMMITS = web.AppKey("commits", CommitService)
CONSENTS = web.AppKey("consents", ConsentService)
ADMISSION = web.AppKey("admission", AdmissionService)
AUDIT = web.AppKey("audit_checkpoints", AuditCheckpoints)
THREADS = web.AppKey("threads", ThreadService)
EXPORTS = web.AppKey("exports", ExportService)
RETENTION = web.AppKey("retention", RetentionService)
RIGHT_TO_KNOW = web.AppKey("right_to_know", RightToKnowService)
DELIVERIES = web.AppKey("delivery_audit", DeliveryAudit)
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")
