"""How the server logs: text for a person at a terminal, one JSON object per line for everything else.

`auditgraph serve` hands this configuration to uvicorn, which applies it in
its own process and in every worker. uvicorn's access line is replaced by the
request line of graph/http/observed_requests.py, which says far more.
"""

import logging
import sys
from typing import Any

from db.settings import Settings
from graph.observability.facts import current_request_id

# LogRecord attributes that are not worth a JSON field (uvicorn's colour copy of a message among them).
NOT_FIELDS = (
    "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelno", "lineno", "module",
    "msecs", "msg", "pathname", "process", "processName", "relativeCreated", "stack_info", "thread",
    "threadName", "taskName", "color_message",
)


class RequestIdFilter(logging.Filter):
    """Gives every record the id of the request it was made in, so a traceback leads to its request line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class TextFormatter(logging.Formatter):
    """One line a person reads: time, level, logger, the request id when there is one, the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(request)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request = f" [{request_id}]" if request_id else ""
        return super().format(record)


def wants_json(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return not sys.stderr.isatty()
    return settings.log_format == "json"


def log_config(settings: Settings) -> dict[str, Any]:
    """A logging.config.dictConfig for the server's processes."""
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.orjson.OrjsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "reserved_attrs": NOT_FIELDS,
                "timestamp": True,
            },
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json" if wants_json(settings) else "text",
                "filters": ["request_id"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            # Superseded by the request line.
            "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": level},
    }
