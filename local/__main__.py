"""`make local` (python -m local): the scheduler on this machine, until Ctrl-C."""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import sys
import threading

from local.stack import LocalConfig, LocalStack

log = logging.getLogger("local")
EXIT_PORT_IN_USE = 3  # PORT is taken by another program (a test harness then picks another)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO"),
        format="%(asctime)s local %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = LocalConfig.from_env()
    stack = LocalStack(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stack.start()
    except (OSError, ValueError) as error:  # a busy port; a bad setting (e.g. TRIGGER_BACKEND)
        stack.stop()
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            log.error(
                "could not start local mode: port %d is in use; stop what holds it or set PORT"
                " to a free one (PORT=3001 make local)",
                config.port,
            )
            return EXIT_PORT_IN_USE
        log.error("could not start local mode: %s", error)
        return 1
    # What start-up made (modules, botocore's models, moto's backends) lives as long as the
    # process: the collector need not scan it again. A full collection during a burst of 1,000
    # tasks stalled everything here for ~130 ms, and took 0.23 s of CPU; frozen, 0.04 s.
    gc.freeze()
    sys.stdout.write(ready_text(stack.api.url, config.api_key, stack.signing_secret))
    sys.stdout.flush()
    stop.wait()
    log.info("stopping (%d invocation(s) in flight are abandoned)", stack.in_flight)
    stack.stop()
    return 0


def ready_text(url: str, api_key: str, signing_secret: str = "") -> str:
    inbox = f"{url}/_local/inbox"
    body = (
        '{"action": "webhook", "payload": {"url": "' + inbox + '/hello", '
        '"data": {"msg": "Hello from local mode"}}, '
        '"run_at": "\'"$(date -u -d "+1 minute" +%Y-%m-%dT%H:%M:00Z)"\'"}'
    )
    return (
        f"Local scheduler ready at {url} (x-api-key: {api_key})\n"
        "Schedule a webhook to the local inbox for the next minute:\n"
        f"  curl -sS -X POST {url}/schedule-task -H 'Content-Type: application/json' "
        f"-H 'x-api-key: {api_key}' -d '{body}'\n"
        "Watch it arrive:\n"
        f"  curl -sS {inbox} -H 'x-api-key: {api_key}'\n"
        f"Deliveries are signed (Standard Webhooks) with {signing_secret or 'whsec_...'}"
        " - set WEBHOOK_SIGNING_SECRET to choose it.\n"
        "Ctrl-C stops.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
