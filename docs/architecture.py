"""Draws ../Architecture.png (run `make diagram`; needs Graphviz)."""

from diagrams import Cluster, Diagram, Edge
from diagrams.aws.compute import Lambda
from diagrams.aws.database import Dynamodb
from diagrams.aws.integration import SQS, Eventbridge
from diagrams.aws.management import Cloudwatch
from diagrams.aws.network import APIGateway
from diagrams.aws.security import SecretsManager
from diagrams.onprem.client import Client, User

GRAPH = {"pad": "0.4", "nodesep": "0.8", "ranksep": "1.2", "fontsize": "20", "splines": "spline"}

with Diagram(
    "Serverless Task Scheduler",
    filename="../Architecture",
    outformat="png",
    show=False,
    direction="LR",
    graph_attr=GRAPH,
):
    user = User("client\n(curl, app)")
    receiver = Client("webhook receiver\n(your URL)")
    with Cluster("your AWS account (one SAM stack)"):
        api = APIGateway(
            "REST API\nAPI key or IAM (ApiAuth)\nPOST /schedule-task\nGET, DELETE /tasks/{task_id}"
        )
        schedule = Lambda("schedule_task\nvalidate, store, arm")
        table = Dynamodb("tasks table\nstatus, attempts, TTL")
        with Cluster("trigger per task (TriggerBackend)"):
            rule = Eventbridge(
                "rules (default)\none rule per task\ncron(M H D MON ? YYYY)\ndefault bus"
            )
            schedules = Eventbridge(
                "scheduler\none schedule per task\nat(...) or cron in its zone\nstack's group"
            )
        execute = Lambda("execute_task\nclaim, sign, deliver, record")
        retries = SQS("retry queue\n(delayed messages)")
        dead = SQS("dead-letter queue")
        alarm = Cloudwatch("alarm on\ndead letters")
        secret = SecretsManager("signing secret\n(whsec_)")
        reconcile = Lambda("reconcile_task\nevery 5 min")

    user >> Edge(label="HTTPS + JSON,\nx-api-key or SigV4") >> api >> schedule
    schedule >> Edge(label="1. write pending\n3. mark scheduled") >> table
    schedule >> Edge(label="2. PutRule + PutTargets") >> rule
    schedule >> Edge(label="2. CreateSchedule (role passed)") >> schedules
    schedule >> Edge(label="imminent: async invoke", style="dashed") >> execute
    rule >> Edge(label='at run_at: {"task_id": ...}') >> execute
    schedules >> Edge(label="at run_at, as the scheduler role") >> execute
    schedules >> Edge(label="undeliverable", style="dotted") >> dead
    execute >> Edge(label="claim, then completed / failed") >> table
    execute >> Edge(label="signed webhook, pinned address") >> receiver
    execute >> Edge(label="read once", style="dotted") >> secret
    execute >> Edge(label="next attempt after backoff") >> retries
    retries >> Edge(label="when due", style="dashed") >> execute
    execute >> Edge(label="failed tasks, crashes") >> dead
    dead >> alarm
    reconcile >> Edge(label="overdue / interrupted", style="dotted") >> table
    reconcile >> Edge(label="hand back", style="dotted") >> retries
