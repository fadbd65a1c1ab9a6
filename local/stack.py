"""The whole scheduler on one machine: moto (in-process server) for AWS, the template's functions,
API Gateway and Lambda's Invoke API on 127.0.0.1, and the clocks of EventBridge rules and
EventBridge Scheduler."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from local.functions import add_layers, function_arn
from local.template import (
    api_routes,
    create_queues,
    create_schedule_groups,
    create_secrets,
    create_tables,
    load_template,
    parameter_defaults,
    resolve_value,
    resources_of_type,
    role_references,
    with_language_extensions,
)

log = logging.getLogger("local")

ACCOUNT = "123456789012"
STACK = "local"
DEFAULT_API_KEY = "local-dev-key"


@dataclass(frozen=True)
class LocalConfig:
    port: int = 3000
    api_key: str = DEFAULT_API_KEY
    region: str = "us-east-1"
    aws_timing: bool = False  # fire rules at a random second of their minute, as AWS may
    concurrency: int = 256  # concurrent asynchronous invocations per function
    workers: int = 0  # processes running the handlers; 0: this process runs them
    rules_quota: int = 300  # EventBridge's default quota of rules per event bus
    trigger_backend: str = "rules"  # the template's TriggerBackend: rules or scheduler
    signing_secret: str | None = None  # whsec_...; generated when not given
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LocalConfig:
        env = os.environ if environ is None else environ
        return cls(
            port=int(env.get("PORT") or 3000),
            api_key=env.get("API_KEY") or DEFAULT_API_KEY,
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
            aws_timing=(env.get("LOCAL_AWS_TIMING") or "").strip().lower() in ("1", "true", "yes"),
            concurrency=int(env.get("LOCAL_CONCURRENCY") or 256),
            workers=int(env.get("LOCAL_WORKERS") or (os.cpu_count() or 1)),
            rules_quota=int(env.get("LOCAL_RULES_QUOTA") or 300),
            trigger_backend=(env.get("TRIGGER_BACKEND") or "rules").strip(),
            signing_secret=env.get("WEBHOOK_SIGNING_SECRET") or None,
        )


class LocalStack:
    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self._moto: Any = None
        self.api: Any = None
        self._lambda_api: Any = None
        self.clock: Any = None  # EventBridge rules
        self.schedule_clock: Any = None  # EventBridge Scheduler
        self.functions: dict[str, Any] = {}
        self.table_names: dict[str, str] = {}
        self.signing_secret = ""
        self._pollers: list[Any] = []
        self._before_send: Any = None
        self.workers: Any = None  # local.workers.WorkerPool, with LOCAL_WORKERS > 0

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        from local.moto_fidelity import (
            limit_default_bus_rules,
            make_dynamodb_writes_atomic,
            watch_event_rules,
            watch_schedules,
        )
        from local.moto_speed import make_moto_cheaper
        from local.moto_sqs import receive_like_sqs

        config = self.config
        declared = load_template()
        overrides = template_parameters(declared, config)  # a bad TRIGGER_BACKEND stops us here
        make_dynamodb_writes_atomic()
        receive_like_sqs()
        make_moto_cheaper()
        limit_default_bus_rules(self.config.rules_quota)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, moto_port = self._moto.get_host_and_port()
        # To look inside (aws --endpoint-url ... dynamodb scan --table-name local-TasksTable).
        log.info("AWS is emulated by moto at http://%s:%s", host, moto_port)
        # What the Lambda runtime would give the functions: credentials, region, and (here) the
        # emulated endpoints. Set before any client exists, so every client reads them.
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": config.region,
                "AWS_REGION": config.region,
                "AWS_ENDPOINT_URL": f"http://{host}:{moto_port}",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        from local.aws_dispatch import MotoDispatch, install, route_to

        # The functions' calls to moto skip HTTP (botocore still prepares each one as for AWS).
        self.dispatch = MotoDispatch()
        self._before_send = route_to(self.dispatch, os.environ["AWS_ENDPOINT_URL"])
        install(self._before_send)

        import boto3

        template = with_language_extensions(declared, overrides)  # as CloudFormation resolves it
        add_layers(template)  # the functions' layers, as Lambda mounts them
        from task_scheduler.signing import SECRET_PREFIX, SigningSecret, generate_secret

        params = {**parameter_defaults(template), **overrides}
        pseudo: dict[str, str] = {
            "AWS::Region": config.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
            **{name: str(value) for name, value in params.items()},
        }
        self.table_names = create_tables(
            boto3.client("dynamodb"),
            template,
            {
                name: f"{STACK}-{name}"
                for name in resources_of_type(template, "AWS::DynamoDB::Table")
            },
        )
        queues = create_queues(
            boto3.client("sqs"),
            template,
            {name: f"{STACK}-{name}" for name in resources_of_type(template, "AWS::SQS::Queue")},
        )
        self.signing_secret = config.signing_secret or generate_secret()
        SigningSecret(self.signing_secret)  # a malformed WEBHOOK_SIGNING_SECRET stops us here
        key = self.signing_secret.removeprefix(SECRET_PREFIX)
        secrets_ = create_secrets(
            boto3.client("secretsmanager"),
            template,
            {n: f"{STACK}-{n}" for n in resources_of_type(template, "AWS::SecretsManager::Secret")},
            {"WebhookSigningSecret": json.dumps({"key": key})},
        )
        schedule_groups = create_schedule_groups(
            boto3.client("scheduler"),
            template,
            {
                n: f"{STACK}-{n}"
                for n in resources_of_type(template, "AWS::Scheduler::ScheduleGroup")
            },
            pseudo,
        )
        roles = role_references(
            template,
            ACCOUNT,
            {n: f"{STACK}-{n}" for n in resources_of_type(template, "AWS::IAM::Role")},
            pseudo,
        )
        function_ids = list(resources_of_type(template, "AWS::Serverless::Function"))
        arns = {
            name: function_arn(config.region, ACCOUNT, f"{STACK}-{name}") for name in function_ids
        }
        resolve: dict[str, str] = {
            **pseudo,
            **self.table_names,
            **queues,
            **secrets_,
            **schedule_groups,
            **roles,
            **{f"{name}.Arn": arn for name, arn in arns.items()},
            **{
                f"{name}.Arn": f"arn:aws:dynamodb:{config.region}:{ACCOUNT}:table/{table}"
                for name, table in self.table_names.items()
            },
        }

        from local.functions import load_functions
        from local.http_api import ApiGateway, LambdaInvokeApi
        from local.inbox import Inbox

        # The Lambda endpoint must exist before the functions import (their clients read it).
        self._lambda_api = LambdaInvokeApi({})
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self._lambda_api.url
        local_env = {"ALLOW_LOOPBACK_TARGETS": "true", **config.extra_env}
        handlers = None
        if config.workers > 0:
            from local.worker_process import FunctionsSpec
            from local.workers import WorkerPool

            spec = FunctionsSpec(template, resolve, arns, local_env, os.environ["AWS_ENDPOINT_URL"])
            self.workers = WorkerPool(config.workers, spec, self.dispatch)
            self.workers.start()
            handlers = self.workers.handler
        self.functions = load_functions(
            template, resolve, arns, local_env, config.concurrency, handlers
        )
        self._lambda_api.register(self.functions)
        self._lambda_api.start()
        self._connect_event_sources(template, resolve, queues, boto3.client("sqs"))

        schedule_rules = self._create_schedule_rules(template, boto3.client("events"), arns)
        deliver = _delivery_to(self.functions)
        self.clock = _build_clock(template, resolve, deliver, config, schedule_rules)
        watch_event_rules(self.clock)
        self.clock.start()
        for name, expression in schedule_rules.items():
            self.clock.rule_written(name, expression, "ENABLED")
        self.schedule_clock = _build_schedule_clock(deliver, config)
        watch_schedules(self.schedule_clock)
        self.schedule_clock.start()

        stage = str(
            resolve_value(
                resources_of_type(template, "AWS::Serverless::Api")
                .get("SchedulerApi", {})
                .get("Properties", {})
                .get("StageName", "local"),
                resolve,
            )
        )
        self.inbox = Inbox()
        self.api = ApiGateway(
            api_routes(template),
            self.functions,
            config.api_key,
            self.inbox,
            stage,
            ACCOUNT,
            config.port,
        )
        self.api.start()

    def _create_schedule_rules(
        self, template: dict[str, Any], events: Any, arns: dict[str, str]
    ) -> dict[str, str]:
        """The rules CloudFormation creates for the functions' `Schedule` events."""
        rules = {}
        functions = resources_of_type(template, "AWS::Serverless::Function")
        for logical_id, resource in functions.items():
            for event_id, event in resource["Properties"].get("Events", {}).items():
                if event.get("Type") != "Schedule":
                    continue
                name = f"{STACK}-{logical_id}{event_id}"[:64]
                expression = event["Properties"]["Schedule"]
                events.put_rule(Name=name, ScheduleExpression=expression, State="ENABLED")
                events.put_targets(Rule=name, Targets=[{"Id": logical_id, "Arn": arns[logical_id]}])
                rules[name] = expression
        return rules

    def _connect_event_sources(
        self, template: dict[str, Any], resolve: dict[str, str], queues: dict[str, str], sqs: Any
    ) -> None:
        """The template's SQS events (pollers) and EventInvokeConfig (async failure queues)."""
        from local.moto_sqs import DirectSqs
        from local.sqs_source import QueuePoller

        polling = DirectSqs(ACCOUNT, self.config.region)  # the mapping is AWS's side: no botocore
        functions = resources_of_type(template, "AWS::Serverless::Function")
        url_for_arn = {
            arn: queues[name.removesuffix(".Arn")]
            for name, arn in queues.items()
            if name.endswith(".Arn")
        }
        for logical_id, resource in functions.items():
            props = resource["Properties"]
            function = self.functions[logical_id]
            for event in props.get("Events", {}).values():
                if event.get("Type") != "SQS":
                    continue
                arn = str(resolve_value(event["Properties"]["Queue"], resolve))
                batch_size = int(event["Properties"].get("BatchSize", 10))
                poller = QueuePoller(
                    polling,
                    url_for_arn[arn],
                    arn,
                    self.config.region,
                    function,
                    batch_size,
                    self.config.concurrency,
                )
                poller.start()
                self._pollers.append(poller)
            invoke_config = props.get("EventInvokeConfig", {})
            function.max_retry_attempts = int(invoke_config.get("MaximumRetryAttempts", 2))
            destination = invoke_config.get("DestinationConfig", {}).get("OnFailure", {})
            if destination.get("Type") == "SQS":
                queue_url = url_for_arn[str(resolve_value(destination["Destination"], resolve))]
                function.on_failure = lambda record, url=queue_url: sqs.send_message(
                    QueueUrl=url, MessageBody=json.dumps(record)
                )

    def stop(self) -> None:
        from local.aws_dispatch import uninstall
        from local.moto_fidelity import (
            limit_default_bus_rules,
            unwatch_event_rules,
            unwatch_schedules,
        )

        for step in (
            lambda: self.api and self.api.stop(),
            lambda: [poller.stop() for poller in self._pollers],
            lambda: self.clock and unwatch_event_rules(self.clock),
            lambda: self.clock and self.clock.stop(),
            lambda: self.schedule_clock and unwatch_schedules(self.schedule_clock),
            lambda: self.schedule_clock and self.schedule_clock.stop(),
            lambda: self._lambda_api and self._lambda_api.stop(),
            lambda: self.workers and self.workers.stop(),
            lambda: self._moto and self._moto.stop(),
            lambda: self._before_send and uninstall(self._before_send),
            lambda: limit_default_bus_rules(None),
        ):
            try:
                step()
            except Exception:
                log.exception("error while stopping local mode")

    @property
    def in_flight(self) -> int:
        return sum(f.in_flight for f in self.functions.values())

    @property
    def pending_triggers(self) -> dict[str, int]:
        """Triggers waiting in each clock (entries of rewritten or deleted ones included until
        their time comes)."""
        return {
            "rules": self.clock.pending if self.clock else 0,
            "schedules": self.schedule_clock.pending if self.schedule_clock else 0,
        }


def template_parameters(template: dict[str, Any], config: LocalConfig) -> dict[str, str]:
    """The parameter values local mode deploys with, beyond the template's defaults: TRIGGER_BACKEND
    as TriggerBackend. Raises ValueError for a value the template does not allow, or for a
    backend other than rules when the template has no such parameter."""
    spec = template.get("Parameters", {}).get("TriggerBackend")
    if spec is None:
        if config.trigger_backend != "rules":
            raise ValueError(
                f"TRIGGER_BACKEND={config.trigger_backend}: template.yaml has no TriggerBackend "
                "parameter, so only rules is available"
            )
        return {}
    allowed = [str(value) for value in spec.get("AllowedValues", [])]
    if allowed and config.trigger_backend not in allowed:
        raise ValueError(
            f"TRIGGER_BACKEND={config.trigger_backend}: must be one of {', '.join(allowed)}"
        )
    return {"TriggerBackend": config.trigger_backend}


def _delivery_to(functions: dict[str, Any]) -> Any:
    """How both clocks hand an event to a target: an asynchronous invocation of the local
    function with the target's ARN."""
    from local.eventbridge import Target

    by_arn = {f.arn: f for f in functions.values()}

    def deliver(target: Target, event: dict[str, Any]) -> None:
        function = by_arn.get(target.arn)
        if function is None:
            log.warning("target %s is not a local function; skipped", target.arn)
            return
        function.invoke_async(event)

    return deliver


def _build_clock(
    template: dict[str, Any],
    resolve: dict[str, str],
    deliver: Any,
    config: LocalConfig,
    schedule_rules: dict[str, str],
) -> Any:
    from local.eventbridge import RuleClock, Target
    from local.moto_fidelity import rule_targets

    # EventBridge may invoke a function only where a permission allows it: honour the template's.
    allowed = [
        str(resolve_value(p["Properties"]["SourceArn"], resolve))
        for p in resources_of_type(template, "AWS::Lambda::Permission").values()
        if p["Properties"].get("Principal") == "events.amazonaws.com"
    ]
    # SAM gives each `Schedule` event its own permission.
    allowed += [f"arn:aws:events:{config.region}:{ACCOUNT}:rule/{name}" for name in schedule_rules]

    def lookup(name: str) -> tuple[str, list[Target]] | None:
        found = rule_targets(ACCOUNT, config.region, name)
        if found is None:
            return None
        arn, targets = found
        return arn, [Target(target_arn, given) for target_arn, given in targets]

    return RuleClock(lookup, deliver, allowed, aws_timing=config.aws_timing)


def _build_schedule_clock(deliver: Any, config: LocalConfig) -> Any:
    from local.moto_fidelity import delete_completed_schedule, schedule_target
    from local.scheduler_clock import ScheduleClock

    return ScheduleClock(
        lambda group, name: schedule_target(ACCOUNT, config.region, group, name),
        deliver,
        lambda group, name, revision: delete_completed_schedule(
            ACCOUNT, config.region, group, name, revision
        ),
        aws_timing=config.aws_timing,
    )
