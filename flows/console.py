"""Prefect's console log handler, without the tracebacks of our own errors.

When a flow raises, Prefect's engine logs "Encountered exception during execution" with the
full traceback, once per flow it passes through (a stage subflow, then the pipeline flow):
about 40 lines each, burying the one line that says what to fix. Our own errors
(`Crawl2GPTError`) already name the file or setting and the fix, so on the console this handler
prints their log line without the traceback. Everything else is untouched: other exceptions
keep their traceback (they are bugs), and the API handler still sends the full record, so the
flow run is marked failed in the UI with its traceback in the run's logs.

The CLI installs it through Prefect's documented override of any logging.yml value,
PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS=flows.console.OwnErrorsConsoleHandler, unless the user
set that variable or passed --verbose.
"""

from __future__ import annotations

import copy
import logging

from prefect.logging.handlers import PrefectConsoleHandler

from pipeline.errors import Crawl2GPTError


class OwnErrorsConsoleHandler(PrefectConsoleHandler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], Crawl2GPTError):
            # A copy: the same record object goes on to the other handlers (the API's).
            record = copy.copy(record)
            record.exc_info, record.exc_text = None, None
        super().emit(record)
